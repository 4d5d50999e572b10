"""The kernel/initrd/cmdline hashes table QEMU builds for measured direct boot.

With ``-kernel`` (and ``kernel-hashes=on`` for SEV/SEV-ES, always for SNP), QEMU hashes the
kernel, initrd and command line it hands to OVMF through fw_cfg and puts a table of the
SHA-256 digests into guest memory, where the launch measurement covers it. OVMF later
re-hashes what it receives over fw_cfg and refuses to boot on a mismatch.

Layout (QEMU ``SevHashTable``/``PaddedSevHashTable``, launch-measurement.md §9.3):

====== ==== =====================================================================
Offset Size Field
====== ==== =====================================================================
0x00   16   header GUID 9438d606-4f22-4cc9-b479-a793d411fd21
0x10   2    LENGTH = 168, the unpadded table size
0x12   50   cmdline entry: GUID 97d02dd8-..., u16 length 50, SHA-256
0x44   50   initrd entry: GUID 44baf731-..., 50, SHA-256
0x76   50   kernel entry: GUID 4de79437-..., 50, SHA-256
0xA8   8    zero padding to 176 bytes (a multiple of 16)
====== ==== =====================================================================

What is hashed: the kernel file as given (QEMU leaves the setup header unmodified for SEV
guests precisely so this hash matches), the initrd file (the empty string when there is
none), and the command line bytes **including the terminating NUL** (a lone NUL when empty).

For SNP, QEMU zeroes the whole SNP_KERNEL_HASHES metadata section, copies the padded table
to offset ``hashes-table GPA & 0xFFF`` in it and launches the section as NORMAL pages.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Final
from uuid import UUID

from construct import ConstructError

from .errors import ImageError
from .guids import (
    SEV_CMDLINE_ENTRY_GUID,
    SEV_HASH_TABLE_HEADER_GUID,
    SEV_INITRD_ENTRY_GUID,
    SEV_KERNEL_ENTRY_GUID,
)
from .layout import (
    PADDED_SEV_HASH_TABLE,
    PADDED_SEV_HASH_TABLE_SIZE,
    SEV_HASH_ENTRY_SIZE,
    SEV_HASH_TABLE_SIZE,
)

__all__ = [
    "PADDED_SEV_HASH_TABLE_SIZE",
    "SEV_HASH_TABLE_SIZE",
    "SevHashes",
    "build_sev_hashes_region",
    "build_sev_hashes_table",
    "cmdline_bytes",
    "parse_sev_hashes_table",
]

_PAGE_MASK: Final = 0xFFF
_DIGEST_SIZE: Final = 32


def cmdline_bytes(cmdline: str | bytes | None) -> bytes:
    """The bytes QEMU hashes for a command line: its UTF-8 bytes plus a terminating NUL.

    ``None`` and the empty string both give a lone NUL byte, as QEMU's default ``-append ""``
    does.
    """
    if cmdline is None:
        raw = b""
    elif isinstance(cmdline, str):
        raw = cmdline.encode()
    else:
        raw = bytes(cmdline)
    return raw + b"\x00"


@dataclass(frozen=True)
class SevHashes:
    """The three SHA-256 digests that go into the hashes table."""

    kernel: bytes
    initrd: bytes
    cmdline: bytes

    def __post_init__(self) -> None:
        for name in ("kernel", "initrd", "cmdline"):
            if len(getattr(self, name)) != _DIGEST_SIZE:
                raise ValueError(f"{name} digest must be {_DIGEST_SIZE} bytes")

    @classmethod
    def from_inputs(
        cls,
        kernel: bytes,
        initrd: bytes | None = None,
        cmdline: str | bytes | None = None,
    ) -> SevHashes:
        """Hash a kernel image, an optional initrd and an optional command line like QEMU."""
        return cls(
            kernel=hashlib.sha256(kernel).digest(),
            initrd=hashlib.sha256(initrd or b"").digest(),
            cmdline=hashlib.sha256(cmdline_bytes(cmdline)).digest(),
        )


def _entry(guid: UUID, digest: bytes) -> dict[str, Any]:
    return {"guid": guid, "length": SEV_HASH_ENTRY_SIZE, "digest": digest}


def build_sev_hashes_table(hashes: SevHashes) -> bytes:
    """The 176-byte padded hashes table exactly as QEMU writes it into guest memory."""
    return bytes(
        PADDED_SEV_HASH_TABLE.build(
            {
                "table": {
                    "guid": SEV_HASH_TABLE_HEADER_GUID,
                    "length": SEV_HASH_TABLE_SIZE,
                    "cmdline": _entry(SEV_CMDLINE_ENTRY_GUID, hashes.cmdline),
                    "initrd": _entry(SEV_INITRD_ENTRY_GUID, hashes.initrd),
                    "kernel": _entry(SEV_KERNEL_ENTRY_GUID, hashes.kernel),
                },
                "padding": bytes(PADDED_SEV_HASH_TABLE_SIZE - SEV_HASH_TABLE_SIZE),
            }
        )
    )


def parse_sev_hashes_table(data: bytes) -> SevHashes:
    """Decode a padded hashes table (e.g. read back from guest memory).

    Checks the header GUID, LENGTH = 168, and each entry's GUID and length of 50; the
    padding is not checked (OVMF ignores it). Raises :class:`ImageError` with the offset
    of the first bad field.
    """
    if len(data) < PADDED_SEV_HASH_TABLE_SIZE:
        raise ImageError(
            f"hashes table is {len(data)} bytes, needs {PADDED_SEV_HASH_TABLE_SIZE}", offset=0
        )
    try:
        parsed = PADDED_SEV_HASH_TABLE.parse(bytes(data[:PADDED_SEV_HASH_TABLE_SIZE]))
    except ConstructError as exc:  # pragma: no cover - length checked above
        raise ImageError(f"cannot parse hashes table: {exc}", offset=0) from exc
    table = parsed.table
    if table.guid != SEV_HASH_TABLE_HEADER_GUID:
        raise ImageError(
            f"hashes table header GUID is {table.guid}, expected {SEV_HASH_TABLE_HEADER_GUID}",
            offset=0,
        )
    if table.length != SEV_HASH_TABLE_SIZE:
        raise ImageError(
            f"hashes table LENGTH is {table.length}, expected {SEV_HASH_TABLE_SIZE}",
            offset=0x10,
        )
    digests: dict[str, bytes] = {}
    expected = (
        ("cmdline", SEV_CMDLINE_ENTRY_GUID),
        ("initrd", SEV_INITRD_ENTRY_GUID),
        ("kernel", SEV_KERNEL_ENTRY_GUID),
    )
    for index, (name, guid) in enumerate(expected):
        offset = 0x12 + index * SEV_HASH_ENTRY_SIZE
        entry = table[name]
        if entry.guid != guid:
            raise ImageError(
                f"hashes table {name} entry has GUID {entry.guid}, expected {guid}",
                offset=offset,
            )
        if entry.length != SEV_HASH_ENTRY_SIZE:
            raise ImageError(
                f"hashes table {name} entry length is {entry.length}, "
                f"expected {SEV_HASH_ENTRY_SIZE}",
                offset=offset + 0x10,
            )
        digests[name] = bytes(entry.digest)
    return SevHashes(kernel=digests["kernel"], initrd=digests["initrd"], cmdline=digests["cmdline"])


def build_sev_hashes_region(hashes: SevHashes, table_gpa: int, region_size: int) -> bytes:
    """Contents of an SNP_KERNEL_HASHES section of ``region_size`` bytes, as QEMU fills it.

    QEMU zeroes the whole section and copies the padded table to offset
    ``table_gpa & 0xFFF`` (the table's offset within its page), asserting that it fits.
    With a one-page section this is the page sev-snp-measure builds.
    """
    offset = table_gpa & _PAGE_MASK
    if offset + PADDED_SEV_HASH_TABLE_SIZE > region_size:
        raise ImageError(
            f"hashes table at page offset {offset:#x} does not fit in the "
            f"{region_size:#x}-byte SNP_KERNEL_HASHES section"
        )
    table = build_sev_hashes_table(hashes)
    return bytes(offset) + table + bytes(region_size - offset - len(table))
