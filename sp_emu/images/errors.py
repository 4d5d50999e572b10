"""The one exception type of the guest-image layer."""

from __future__ import annotations

__all__ = ["ImageError"]


class ImageError(ValueError):
    """A guest image (OVMF, SVSM, hashes table) is malformed or lacks something a launch needs.

    The message is one line saying what is wrong and, when it is tied to a place in the
    image, the byte offset from the start of the image (also kept in :attr:`offset`).
    QEMU refuses to launch such an image (or sev-snp-measure refuses to measure it); the
    emulator reports it instead of guessing.
    """

    def __init__(self, message: str, *, offset: int | None = None) -> None:
        self.offset = offset
        self.reason = message
        text = message if offset is None else f"{message} (at offset {offset:#x})"
        super().__init__(text)
