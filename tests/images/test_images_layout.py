"""The image structures, each declared once with binlayout: sizes and offsets pinned to the
sources (launch-measurement.md §9.2-9.3), and the struct codec agreeing with the construct
form of every declaration."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from binlayout import BufferLayout
from sp_emu.images import layout as L

LAYOUTS = [
    L.GUID_TABLE_TRAILER,
    L.U32_ENTRY,
    L.GPA_RANGE_ENTRY,
    L.SEV_METADATA_HEADER,
    L.SEV_METADATA_SECTION,
    L.SEV_HASH_ENTRY,
    L.SEV_HASH_TABLE,
    L.PADDED_SEV_HASH_TABLE,
]


def test_sizes() -> None:
    # {u16 SIZE, GUID}; {u32}; {u32 base, u32 size}; "ASEV" + 3 u32; {u32 GPA, SIZE, TYPE};
    # GUID + u16 + SHA-256; GUID + u16 + 3 entries; padded to a multiple of 16.
    sizes = [layout.size for layout in LAYOUTS]
    assert sizes == [18, 4, 8, 16, 12, 50, 168, 176]
    assert L.GUID_TABLE_TRAILER_SIZE == 18
    assert L.SEV_HASH_TABLE_SIZE == 168
    assert L.PADDED_SEV_HASH_TABLE_SIZE == 176


def test_hash_table_offsets() -> None:
    # QEMU SevHashTable: GUID at 0x00, LENGTH at 0x10, entries at 0x12, 0x44, 0x76.
    table = L.SEV_HASH_TABLE
    assert table.fields["guid"].offset == 0x00
    assert table.fields["length"].offset == 0x10
    assert [(g.name, g.offset, g.size) for g in table.groups.values()] == [
        ("cmdline", 0x12, 50),
        ("initrd", 0x44, 50),
        ("kernel", 0x76, 50),
    ]
    assert table.fields["kernel_digest"].offset == 0x76 + 0x12
    # Every byte of the unpadded table is a field; the padding is the only gap.
    assert table.reserved_ranges == ()
    assert L.PADDED_SEV_HASH_TABLE.reserved_ranges == ((168, 8),)


def test_guid_bytes_are_efi_order() -> None:
    guid = uuid.UUID("96b582de-1fb2-45f7-baea-a366c55a082d")
    raw = L.guid_to_bytes(guid)
    assert raw == bytes.fromhex("de82b596b21ff745baeaa366c55a082d")
    assert L.guid_from_bytes(raw) == guid


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda layout: layout.name)
@given(data=st.data())
def test_struct_codec_agrees_with_construct(layout: BufferLayout, data: st.DataObject) -> None:
    raw = data.draw(st.binary(min_size=layout.size, max_size=layout.size))
    words = layout.struct.parse(raw)
    fields = layout.parse(raw)
    assert fields == {m.wire_name: words[m.wire_name] for m in layout.members}
    cleared = int.from_bytes(raw, "little") & ~layout.reserved_mask
    assert layout.build(fields) == cleared.to_bytes(layout.size, "little")
    assert layout.struct.build(words) == raw
