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

from binlayout.records import record

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
    SEV_HASH_ENTRY,
    SEV_HASH_ENTRY_SIZE,
    SEV_HASH_TABLE,
    SEV_HASH_TABLE_SIZE,
    guid_from_bytes,
    guid_to_bytes,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final

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


@record
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


_ENTRIES: Final = (
    ("cmdline", SEV_CMDLINE_ENTRY_GUID),
    ("initrd", SEV_INITRD_ENTRY_GUID),
    ("kernel", SEV_KERNEL_ENTRY_GUID),
)
"""The table's entries in the order QEMU writes them, with their GUIDs; each is the group of
fields ``<name>_guid``, ``<name>_length`` and ``<name>_digest`` of :data:`SEV_HASH_TABLE`."""


def build_sev_hashes_table(hashes: SevHashes) -> bytes:
    """The 176-byte padded hashes table exactly as QEMU writes it into guest memory."""
    fields: dict[str, Any] = {
        "guid": guid_to_bytes(SEV_HASH_TABLE_HEADER_GUID),
        "length": SEV_HASH_TABLE_SIZE,
    }
    for name, guid in _ENTRIES:
        fields[f"{name}_guid"] = guid_to_bytes(guid)
        fields[f"{name}_length"] = SEV_HASH_ENTRY_SIZE
        fields[f"{name}_digest"] = getattr(hashes, name)
    return PADDED_SEV_HASH_TABLE.build(fields)


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
    table = PADDED_SEV_HASH_TABLE.parse(data)
    header_guid = guid_from_bytes(table["guid"])
    if header_guid != SEV_HASH_TABLE_HEADER_GUID:
        raise ImageError(
            f"hashes table header GUID is {header_guid}, expected {SEV_HASH_TABLE_HEADER_GUID}",
            offset=SEV_HASH_TABLE.fields["guid"].offset,
        )
    if table["length"] != SEV_HASH_TABLE_SIZE:
        raise ImageError(
            f"hashes table LENGTH is {table['length']}, expected {SEV_HASH_TABLE_SIZE}",
            offset=SEV_HASH_TABLE.fields["length"].offset,
        )
    digests: dict[str, bytes] = {}
    for name, guid in _ENTRIES:
        offset = SEV_HASH_TABLE.groups[name].offset
        entry_guid = guid_from_bytes(table[f"{name}_guid"])
        if entry_guid != guid:
            raise ImageError(
                f"hashes table {name} entry has GUID {entry_guid}, expected {guid}",
                offset=offset,
            )
        length = table[f"{name}_length"]
        if length != SEV_HASH_ENTRY_SIZE:
            raise ImageError(
                f"hashes table {name} entry length is {length}, expected {SEV_HASH_ENTRY_SIZE}",
                offset=offset + SEV_HASH_ENTRY.fields["length"].offset,
            )
        digests[name] = table[f"{name}_digest"]
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
