"""Binary layouts of the guest-image structures, each declared once with :mod:`binlayout`.

Every structure is little-endian and packed, as EDK2 emits it (NASM ``DD``/``DW``/``DB``)
and as QEMU reads it (``QEMU_PACKED`` structs). The same declarations serve for parsing and
for building, so a layout fact lives in exactly one place; each layout's ``.struct`` is its
``construct`` form (made on first use: importing the package does not import ``construct``).
Variable-length things (the footer GUID table walked backwards, the metadata section list)
are loops over these fixed-size records in :mod:`sp_emu.images.ovmf`.

GUIDs are 16-byte fields in EFI byte order; :func:`guid_from_bytes` and
:func:`guid_to_bytes` convert them to and from :class:`~sp_emu.images.guids.Guid`.

Facts: launch-measurement.md §9.2 (footer table, metadata) and §9.3 (hashes table).
"""

from __future__ import annotations

from binlayout import BufferLayout, Member, blob, group, u16, u32

from .guids import Guid

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final
    from uuid import UUID

__all__ = [
    "GPA_RANGE_ENTRY",
    "GPA_RANGE_ENTRY_SIZE",
    "GUID_SIZE",
    "GUID_TABLE_TRAILER",
    "GUID_TABLE_TRAILER_SIZE",
    "PADDED_SEV_HASH_TABLE",
    "PADDED_SEV_HASH_TABLE_SIZE",
    "SEV_HASH_ENTRY",
    "SEV_HASH_ENTRY_SIZE",
    "SEV_HASH_TABLE",
    "SEV_HASH_TABLE_SIZE",
    "SEV_METADATA_HEADER",
    "SEV_METADATA_HEADER_SIZE",
    "SEV_METADATA_SECTION",
    "SEV_METADATA_SECTION_SIZE",
    "U32_ENTRY",
    "U32_ENTRY_SIZE",
    "guid_from_bytes",
    "guid_to_bytes",
]

#: Size of an EFI_GUID.
GUID_SIZE: Final = 16


def guid_from_bytes(raw: bytes) -> Guid:
    """A 16-byte EFI_GUID field (EFI byte order) as a :class:`Guid`."""
    return Guid.from_bytes_le(raw)


def guid_to_bytes(guid: Guid | UUID) -> bytes:
    """The 16 bytes of ``guid`` in EFI byte order."""
    return guid.bytes_le


# --- OVMF footer GUID table (EDK2 OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.asm) -------------

#: The 18 bytes that close every footer-table entry: the entry's total size (data + these
#: 18 bytes) and its GUID. The table's own footer uses the same shape, with SIZE = whole table.
GUID_TABLE_TRAILER: Final = BufferLayout(
    "guid_table_trailer",
    0x12,
    (
        u16(0x00, "size"),
        blob(0x02, GUID_SIZE, "guid"),
    ),
)
GUID_TABLE_TRAILER_SIZE: Final[int] = GUID_TABLE_TRAILER.size

#: Data of a one-word entry: SEV-ES reset block (reset address), SEV metadata offset
#: (offset from end of image), SVSM info (entry offset). Extra trailing data is ignored.
U32_ENTRY: Final = BufferLayout("u32_entry", 4, (u32(0x0, "value"),))
U32_ENTRY_SIZE: Final[int] = U32_ENTRY.size

#: Data of an area entry: SEV hash table block and SEV secret block {u32 base, u32 size}
#: (QEMU ``SevHashTableDescriptor``).
GPA_RANGE_ENTRY: Final = BufferLayout(
    "gpa_range_entry",
    8,
    (
        u32(0x0, "gpa"),
        u32(0x4, "size"),
    ),
)
GPA_RANGE_ENTRY_SIZE: Final[int] = GPA_RANGE_ENTRY.size

# --- OVMF SEV metadata (EDK2 OvmfPkg/ResetVector/X64/OvmfSevMetadata.asm) ---------------

#: "ASEV" header; SIZE covers header plus all section descriptors. NUM_ITEMS section
#: descriptors follow it.
SEV_METADATA_HEADER: Final = BufferLayout(
    "sev_metadata_header",
    0x10,
    (
        blob(0x0, 4, "signature"),
        u32(0x4, "size"),
        u32(0x8, "version"),
        u32(0xC, "num_items"),
    ),
)
SEV_METADATA_HEADER_SIZE: Final[int] = SEV_METADATA_HEADER.size

#: One section descriptor (QEMU ``OvmfSevMetadataDesc``): base GPA, length, type.
SEV_METADATA_SECTION: Final = BufferLayout(
    "sev_metadata_section",
    0xC,
    (
        u32(0x0, "gpa"),
        u32(0x4, "size"),
        u32(0x8, "section_type"),
    ),
)
SEV_METADATA_SECTION_SIZE: Final[int] = SEV_METADATA_SECTION.size

# --- Kernel hashes table (QEMU target/i386/sev.c, SevHashTable / PaddedSevHashTable) -----

#: One entry: GUID, u16 length of this entry (50), SHA-256 digest.
SEV_HASH_ENTRY: Final = BufferLayout(
    "sev_hash_entry",
    0x32,
    (
        blob(0x00, GUID_SIZE, "guid"),
        u16(0x10, "length"),
        blob(0x12, 32, "digest"),
    ),
)
SEV_HASH_ENTRY_SIZE: Final[int] = SEV_HASH_ENTRY.size

#: Table header GUID, u16 length of the unpadded table (168), then the three entries in
#: the order QEMU writes them: cmdline, initrd, kernel (fields ``cmdline_guid``,
#: ``cmdline_length``, ``cmdline_digest``, ...).
_SEV_HASH_TABLE_MEMBERS: Final[tuple[Member, ...]] = (
    blob(0x00, GUID_SIZE, "guid"),
    u16(0x10, "length"),
    *group(0x12, "cmdline", SEV_HASH_ENTRY),
    *group(0x44, "initrd", SEV_HASH_ENTRY),
    *group(0x76, "kernel", SEV_HASH_ENTRY),
)
SEV_HASH_TABLE: Final = BufferLayout("sev_hash_table", 0xA8, _SEV_HASH_TABLE_MEMBERS)
SEV_HASH_TABLE_SIZE: Final[int] = SEV_HASH_TABLE.size

#: The table zero-padded to a multiple of 16 bytes, as QEMU copies it into guest memory
#: (the padding is a reserved gap: built as zeros, not checked on parsing).
PADDED_SEV_HASH_TABLE: Final = BufferLayout(
    "padded_sev_hash_table",
    SEV_HASH_TABLE_SIZE + -SEV_HASH_TABLE_SIZE % 16,
    _SEV_HASH_TABLE_MEMBERS,
)
PADDED_SEV_HASH_TABLE_SIZE: Final[int] = PADDED_SEV_HASH_TABLE.size
