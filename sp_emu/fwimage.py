"""The emulated firmware image that SNP_DOWNLOAD_FIRMWARE_EX installs.

Real images are AMD-signed binaries; the emulator's carry just what the ABI lets the host
observe of an update: the API version and build the image runs as, and the TCB (SVNs) it
brings.  Layout (0x60 bytes, little-endian):

======  ====  ===========================================
offset  size  field
======  ====  ===========================================
0x00    8     magic ``SPEMU-FW``
0x08    16    product name (``Milan``, ``Genoa``, ``Turin``), NUL padded
0x18    1     api_major
0x19    1     api_minor
0x1A    2     reserved, zero
0x1C    4     build
0x20    8     TCB_VERSION (the product's layout)
0x28    8     reserved, zero
0x30    48    SHA-384 of bytes 0x00-0x2F (stands in for AMD's signature)
======  ====  ===========================================
"""

from __future__ import annotations

import hashlib

from binlayout import BufferLayout, blob, u8, u32, u64
from binlayout.records import record

MAGIC = b"SPEMU-FW"
FIRMWARE_IMAGE = BufferLayout(
    "sp-emu firmware image",
    0x60,
    (
        blob(0x00, 8, "magic"),
        blob(0x08, 16, "product"),
        u8(0x18, "api_major"),
        u8(0x19, "api_minor"),
        u32(0x1C, "build"),
        u64(0x20, "tcb"),
        blob(0x30, 48, "digest"),
    ),
)
IMAGE_SIZE = FIRMWARE_IMAGE.size


@record
class FirmwareImage:
    """What an emulated firmware image declares about itself."""

    product: str
    api_major: int
    api_minor: int
    build: int
    tcb: int

    def to_bytes(self) -> bytes:
        """The image bytes, with their digest."""
        name = self.product.encode("ascii")
        if len(name) > 16:
            raise ValueError("a product name is at most 16 ASCII characters")
        body = FIRMWARE_IMAGE.build(
            {
                "magic": MAGIC,
                "product": name.ljust(16, b"\0"),
                "api_major": self.api_major,
                "api_minor": self.api_minor,
                "build": self.build,
                "tcb": self.tcb,
            }
        )[:0x30]
        return body + hashlib.sha384(body).digest()

    @classmethod
    def from_bytes(cls, data: bytes) -> FirmwareImage:
        """Parse and authenticate an image; ValueError says what is wrong."""
        if len(data) != IMAGE_SIZE:
            raise ValueError(f"an image is {IMAGE_SIZE:#x} bytes, not {len(data):#x}")
        f = FIRMWARE_IMAGE.parse(data)
        if f["magic"] != MAGIC:
            raise ValueError("not an sp-emu firmware image (bad magic)")
        if FIRMWARE_IMAGE.first_reserved_violation(data) is not None:
            raise ValueError("not an sp-emu firmware image (reserved bytes set)")
        if hashlib.sha384(data[:0x30]).digest() != f["digest"]:
            raise ValueError("the image's digest does not match its contents")
        try:
            product = f["product"].rstrip(b"\0").decode("ascii")
        except UnicodeDecodeError:
            raise ValueError("not an sp-emu firmware image (product name)") from None
        return cls(product, f["api_major"], f["api_minor"], f["build"], f["tcb"])
