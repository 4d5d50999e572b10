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
from dataclasses import dataclass

import construct as c

MAGIC = b"SPEMU-FW"
FirmwareImageLayout = c.Struct(
    "magic" / c.Const(MAGIC),
    "product" / c.PaddedString(16, "ascii"),
    "api_major" / c.Int8ul,
    "api_minor" / c.Int8ul,
    "reserved_0x1a" / c.Const(b"\0\0"),
    "build" / c.Int32ul,
    "tcb" / c.Int64ul,
    "reserved_0x28" / c.Const(bytes(8)),
    "digest" / c.Bytes(48),
)
IMAGE_SIZE = 0x60


@dataclass(frozen=True)
class FirmwareImage:
    """What an emulated firmware image declares about itself."""

    product: str
    api_major: int
    api_minor: int
    build: int
    tcb: int

    def to_bytes(self) -> bytes:
        """The image bytes, with their digest."""
        body: bytes = FirmwareImageLayout.build(
            {
                "product": self.product,
                "api_major": self.api_major,
                "api_minor": self.api_minor,
                "build": self.build,
                "tcb": self.tcb,
                "digest": bytes(48),
            }
        )[:0x30]
        return body + hashlib.sha384(body).digest()

    @classmethod
    def from_bytes(cls, data: bytes) -> FirmwareImage:
        """Parse and authenticate an image; ValueError says what is wrong."""
        if len(data) != IMAGE_SIZE:
            raise ValueError(f"an image is {IMAGE_SIZE:#x} bytes, not {len(data):#x}")
        try:
            parsed = FirmwareImageLayout.parse(data)
        except c.ConstructError as err:
            raise ValueError(f"not an sp-emu firmware image: {err}") from None
        if hashlib.sha384(data[:0x30]).digest() != parsed.digest:
            raise ValueError("the image's digest does not match its contents")
        return cls(parsed.product, parsed.api_major, parsed.api_minor, parsed.build, parsed.tcb)
