"""Binary layouts of the guest-image structures, each declared once with ``construct``.

Every structure is little-endian and packed, as EDK2 emits it (NASM ``DD``/``DW``/``DB``)
and as QEMU reads it (``QEMU_PACKED`` structs). The same declarations serve for parsing and
for building, so a layout fact lives in exactly one place.

Facts: launch-measurement.md §9.2 (footer table, metadata) and §9.3 (hashes table).
"""

from __future__ import annotations

from typing import Any, Final
from uuid import UUID

from construct import Array, Bytes, ExprAdapter, Int16ul, Int32ul, Struct, this

__all__ = [
    "EFI_GUID",
    "GPA_RANGE_ENTRY",
    "GUID_TABLE_TRAILER",
    "GUID_TABLE_TRAILER_SIZE",
    "PADDED_SEV_HASH_TABLE",
    "PADDED_SEV_HASH_TABLE_SIZE",
    "SEV_HASH_ENTRY",
    "SEV_HASH_ENTRY_SIZE",
    "SEV_HASH_TABLE",
    "SEV_HASH_TABLE_SIZE",
    "SEV_METADATA",
    "SEV_METADATA_HEADER",
    "SEV_METADATA_HEADER_SIZE",
    "SEV_METADATA_SECTION",
    "SEV_METADATA_SECTION_SIZE",
    "U32_ENTRY",
]


def _guid_decode(obj: bytes, _ctx: Any) -> UUID:
    return UUID(bytes_le=bytes(obj))


def _guid_encode(obj: UUID, _ctx: Any) -> bytes:
    return obj.bytes_le


#: A 16-byte EFI_GUID in EFI byte order, exposed as :class:`uuid.UUID`.
EFI_GUID: Final = ExprAdapter(Bytes(16), _guid_decode, _guid_encode)

# --- OVMF footer GUID table (EDK2 OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.asm) -------------

#: The 18 bytes that close every footer-table entry: the entry's total size (data + these
#: 18 bytes) and its GUID. The table's own footer uses the same shape, with SIZE = whole table.
GUID_TABLE_TRAILER: Final = Struct(
    "size" / Int16ul,
    "guid" / EFI_GUID,
)
GUID_TABLE_TRAILER_SIZE: Final[int] = GUID_TABLE_TRAILER.sizeof()

#: Data of a one-word entry: SEV-ES reset block (reset address), SEV metadata offset
#: (offset from end of image), SVSM info (entry offset). Extra trailing data is ignored.
U32_ENTRY: Final = Struct("value" / Int32ul)

#: Data of an area entry: SEV hash table block and SEV secret block {u32 base, u32 size}
#: (QEMU ``SevHashTableDescriptor``).
GPA_RANGE_ENTRY: Final = Struct(
    "gpa" / Int32ul,
    "size" / Int32ul,
)

# --- OVMF SEV metadata (EDK2 OvmfPkg/ResetVector/X64/OvmfSevMetadata.asm) ---------------

#: "ASEV" header; SIZE covers header plus all section descriptors.
SEV_METADATA_HEADER: Final = Struct(
    "signature" / Bytes(4),
    "size" / Int32ul,
    "version" / Int32ul,
    "num_items" / Int32ul,
)
SEV_METADATA_HEADER_SIZE: Final[int] = SEV_METADATA_HEADER.sizeof()

#: One section descriptor (QEMU ``OvmfSevMetadataDesc``): base GPA, length, type.
SEV_METADATA_SECTION: Final = Struct(
    "gpa" / Int32ul,
    "size" / Int32ul,
    "section_type" / Int32ul,
)
SEV_METADATA_SECTION_SIZE: Final[int] = SEV_METADATA_SECTION.sizeof()

#: Header followed by ``num_items`` section descriptors.
SEV_METADATA: Final = Struct(
    "header" / SEV_METADATA_HEADER,
    "sections" / Array(this.header.num_items, SEV_METADATA_SECTION),
)

# --- Kernel hashes table (QEMU target/i386/sev.c, SevHashTable / PaddedSevHashTable) -----

#: One entry: GUID, u16 length of this entry (50), SHA-256 digest.
SEV_HASH_ENTRY: Final = Struct(
    "guid" / EFI_GUID,
    "length" / Int16ul,
    "digest" / Bytes(32),
)
SEV_HASH_ENTRY_SIZE: Final[int] = SEV_HASH_ENTRY.sizeof()

#: Table header GUID, u16 length of the unpadded table (168), then the three entries in
#: the order QEMU writes them: cmdline, initrd, kernel.
SEV_HASH_TABLE: Final = Struct(
    "guid" / EFI_GUID,
    "length" / Int16ul,
    "cmdline" / SEV_HASH_ENTRY,
    "initrd" / SEV_HASH_ENTRY,
    "kernel" / SEV_HASH_ENTRY,
)
SEV_HASH_TABLE_SIZE: Final[int] = SEV_HASH_TABLE.sizeof()

_HASH_TABLE_PADDING: Final[int] = -SEV_HASH_TABLE_SIZE % 16

#: The table zero-padded to a multiple of 16 bytes, as QEMU copies it into guest memory.
PADDED_SEV_HASH_TABLE: Final = Struct(
    "table" / SEV_HASH_TABLE,
    "padding" / Bytes(_HASH_TABLE_PADDING),
)
PADDED_SEV_HASH_TABLE_SIZE: Final[int] = PADDED_SEV_HASH_TABLE.sizeof()
