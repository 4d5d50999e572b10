"""OVMF footer table and SEV metadata: hand-derived sample values, round trips, errors."""

from __future__ import annotations

import struct
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sp_emu.images import (
    FOUR_GIB,
    OVMF_TABLE_FOOTER_GUID,
    SEV_ES_RESET_BLOCK_GUID,
    SEV_HASH_TABLE_GUID,
    SEV_METADATA_GUID,
    SEV_SECRET_BLOCK_GUID,
    GpaRange,
    ImageError,
    MetadataSection,
    SectionType,
    build_guid_table,
    build_ovmf_image,
    build_sev_metadata,
    parse_guid_table,
    parse_ovmf,
    parse_sev_metadata,
)

# Hand layout of the sample (256 KiB): the table ends at 0x40000 - 0x20 = 0x3FFE0; the
# footer trailer is the 18 bytes before that. Entries (data + 18-byte trailer): metadata
# offset 4+18, hash table 8+18, secret 8+18, reset block 4+18, footer 18 -> 114 = 0x72.
SIZE = 0x40000
FOOTER_OFF = 0x3FFE0 - 18  # 0x3FFCE
TABLE_START = 0x3FFE0 - 0x72  # 0x3FF6E
# Metadata: 16 + 7*12 = 100 bytes, ends at or before TABLE_START, 16-byte aligned:
# 0x3FF6E - 100 = 0x3FF0A -> 0x3FF00, i.e. 0x100 bytes before the end.
META_OFF = 0x3FF00


def u32(data: bytes, off: int) -> int:
    return int(struct.unpack_from("<I", data, off)[0])


def u16(data: bytes, off: int) -> int:
    return int(struct.unpack_from("<H", data, off)[0])


def test_sample_raw_bytes_match_hand_layout(sample_bytes: bytes) -> None:
    d = sample_bytes
    assert len(d) == SIZE
    assert u16(d, FOOTER_OFF) == 0x72
    assert d[FOOTER_OFF + 2 : FOOTER_OFF + 18] == bytes.fromhex("de82b596b21ff745baeaa366c55a082d")
    # metadata offset entry: value, size 22, GUID dc886566 in EFI order
    assert u32(d, TABLE_START) == 0x100
    assert u16(d, TABLE_START + 4) == 22
    assert d[TABLE_START + 6 : TABLE_START + 10] == bytes.fromhex("666588dc")
    # hash table entry {0x80CC00, 0x400}
    assert (u32(d, 0x3FF84), u32(d, 0x3FF88), u16(d, 0x3FF8C)) == (0x80CC00, 0x400, 26)
    # secret block {0x80C000, 0xC00}
    assert (u32(d, 0x3FF9E), u32(d, 0x3FFA2), u16(d, 0x3FFA6)) == (0x80C000, 0xC00, 26)
    # reset block 0x80B004
    assert (u32(d, 0x3FFB8), u16(d, 0x3FFBC)) == (0x80B004, 22)
    # ASEV header and the first/last descriptors
    assert d[META_OFF : META_OFF + 4] == b"ASEV"
    assert (u32(d, META_OFF + 4), u32(d, META_OFF + 8), u32(d, META_OFF + 12)) == (100, 1, 7)
    assert struct.unpack_from("<III", d, META_OFF + 16) == (0x800000, 0x9000, 1)
    assert struct.unpack_from("<III", d, META_OFF + 16 + 6 * 12) == (0x80C000, 0x1000, 0x10)
    # reset vector: nop; nop; jmp rel16 from IP 0xFFF2 to 0xF000; AP jump; "VTF\0"
    assert d[-16:-11] == bytes([0x90, 0x90, 0xE9]) + ((0xF000 - 0xFFF5) & 0xFFFF).to_bytes(
        2, "little"
    )
    assert d[-0x14:-0x10] == b"VTF\x00"
    assert d[-0x20] == 0xE9
    assert d[SIZE - 0x1000 : SIZE - 0x1000 + 4] == bytes([0xFA, 0xF4, 0xEB, 0xFD])


def test_parse_sample(sample_bytes: bytes) -> None:
    img = parse_ovmf(sample_bytes)
    assert img.size == SIZE
    assert img.end_gpa == FOUR_GIB
    assert img.load_gpa == 0xFFFC0000
    assert [e.guid for e in img.guid_table] == [
        SEV_METADATA_GUID,
        SEV_HASH_TABLE_GUID,
        SEV_SECRET_BLOCK_GUID,
        SEV_ES_RESET_BLOCK_GUID,
    ]
    assert [e.offset for e in img.guid_table] == [0x3FF6E, 0x3FF84, 0x3FF9E, 0x3FFB8]
    assert img.sev_es_reset_eip == 0x80B004
    assert img.require_reset_eip() == 0x80B004
    assert img.hashes_table == GpaRange(0x80CC00, 0x400)
    assert img.launch_secret == GpaRange(0x80C000, 0xC00)
    assert img.supports_kernel_hashes
    assert img.metadata is not None
    assert img.metadata.offset == META_OFF
    assert img.metadata.version == 1
    assert [(s.gpa, s.size, s.kind) for s in img.sections] == [
        (0x800000, 0x9000, SectionType.SNP_SEC_MEM),
        (0x80A000, 0x2000, SectionType.SNP_SEC_MEM),
        (0x80D000, 0x1000, SectionType.SNP_SECRETS),
        (0x80E000, 0x1000, SectionType.CPUID),
        (0x80F000, 0x1000, SectionType.SVSM_CAA),
        (0x810000, 0x10000, SectionType.SNP_SEC_MEM),
        (0x80C000, 0x1000, SectionType.SNP_KERNEL_HASHES),
    ]
    assert img.sections[6].name == "SNP_KERNEL_HASHES"
    assert img.sections[5].end == 0x820000
    assert img.require_entry(SEV_HASH_TABLE_GUID).name.startswith("SEV hash table block")


def test_parse_with_other_end_gpa(sample_bytes: bytes) -> None:
    img = parse_ovmf(sample_bytes, end_gpa=0x8000_0000)
    assert img.load_gpa == 0x8000_0000 - SIZE


def test_repr_omits_image_bytes(sample_bytes: bytes) -> None:
    assert len(repr(parse_ovmf(sample_bytes))) < 2000


def test_unknown_section_type_parses_but_has_no_kind() -> None:
    section = MetadataSection(0x1000, 0x1000, 7)
    assert section.kind is None
    assert section.name == "TYPE_0x7"


# --- round trips -----------------------------------------------------------------------

guids = st.uuids().filter(lambda g: g != OVMF_TABLE_FOOTER_GUID)
payloads = st.binary(max_size=40)


@given(st.lists(st.tuples(guids, payloads), max_size=6, unique_by=lambda e: e[0]))
def test_guid_table_round_trip(entries: list[tuple[uuid.UUID, bytes]]) -> None:
    table = build_guid_table(entries)
    image = bytes(0x100) + table + bytes(0x20)
    parsed = parse_guid_table(image)
    assert [(e.guid, e.data) for e in parsed] == entries
    for entry in parsed:
        assert image[entry.offset : entry.offset + len(entry.data)] == entry.data


sections_st = st.lists(
    st.builds(
        MetadataSection,
        gpa=st.integers(0, 0xFFFFF).map(lambda p: p * 0x1000),
        size=st.integers(1, 0x100).map(lambda p: p * 0x1000),
        section_type=st.sampled_from([1, 2, 3, 4, 0x10, 5]),
    ),
    max_size=10,
)


@given(sections_st)
def test_sev_metadata_round_trip(sections: list[MetadataSection]) -> None:
    blob = build_sev_metadata(sections)
    image = bytes(0x40) + blob + bytes(0x30)
    meta = parse_sev_metadata(image, len(image) - 0x40)
    assert meta.sections == tuple(sections)
    assert meta.offset == 0x40


u32s = st.integers(0, 0xFFFF_FFFF)
ranges = st.builds(GpaRange, u32s, u32s)


@settings(max_examples=40)
@given(
    sections=st.one_of(st.none(), sections_st),
    reset=st.one_of(st.none(), u32s),
    hashes=st.one_of(st.none(), ranges),
    secret=st.one_of(st.none(), ranges),
    pages=st.integers(1, 4),
)
def test_ovmf_image_round_trip(
    sections: list[MetadataSection] | None,
    reset: int | None,
    hashes: GpaRange | None,
    secret: GpaRange | None,
    pages: int,
) -> None:
    body = bytes(range(256)) * (pages * 16)
    image = build_ovmf_image(
        body, sections=sections, reset_eip=reset, hashes_table=hashes, launch_secret=secret
    )
    assert len(image) == len(body)
    assert image[-0x20:] == body[-0x20:]
    parsed = parse_ovmf(image)
    assert parsed.sev_es_reset_eip == reset
    assert parsed.hashes_table == hashes
    assert parsed.launch_secret == secret
    if sections is None:
        assert parsed.metadata is None
    else:
        assert parsed.sections == tuple(sections)


def test_build_rejects_body_too_small() -> None:
    with pytest.raises(ImageError, match="too small"):
        build_ovmf_image(bytes(0x40), sections=[MetadataSection(0, 0x1000, 1)] * 4)


def test_build_rejects_oversized_table() -> None:
    with pytest.raises(ImageError, match="overflows"):
        build_guid_table([(uuid.uuid4(), bytes(0x4000)) for _ in range(5)])


# --- errors ----------------------------------------------------------------------------


def patched(data: bytes, offset: int, new: bytes) -> bytes:
    return data[:offset] + new + data[offset + len(new) :]


def test_too_short_image() -> None:
    with pytest.raises(ImageError, match=r"too short for an OVMF footer table") as info:
        parse_guid_table(bytes(0x31))
    assert info.value.offset == 0


def test_not_an_ovmf_image() -> None:
    with pytest.raises(ImageError, match=r"not an OVMF image: footer GUID 96b582de") as info:
        parse_ovmf(bytes(0x2000))
    assert info.value.offset == 0x2000 - 0x32
    assert "at offset 0x1fce" in str(info.value)


def test_image_cut_at_the_end_loses_its_footer(sample_bytes: bytes) -> None:
    with pytest.raises(ImageError, match="not an OVMF image"):
        parse_ovmf(sample_bytes[:-0x1000])


def test_bad_footer_guid(sample_bytes: bytes) -> None:
    bad = patched(sample_bytes, FOOTER_OFF + 2, b"\x00")
    with pytest.raises(ImageError, match="footer GUID") as info:
        parse_ovmf(bad)
    assert info.value.offset == FOOTER_OFF


def test_truncated_table_size_beyond_image(sample_bytes: bytes) -> None:
    small = sample_bytes[-0x1000:]
    bad = patched(small, 0x1000 - 0x32, struct.pack("<H", 0x2000))
    with pytest.raises(ImageError, match=r"truncated image: footer table size 0x2000") as info:
        parse_guid_table(bad)
    assert info.value.offset == 0x1000 - 0x32


def test_footer_size_smaller_than_footer(sample_bytes: bytes) -> None:
    bad = patched(sample_bytes, FOOTER_OFF, struct.pack("<H", 10))
    with pytest.raises(ImageError, match="smaller than the 18-byte footer"):
        parse_ovmf(bad)


def test_entry_size_out_of_range(sample_bytes: bytes) -> None:
    reset_trailer = 0x3FFB8 + 4
    bad = patched(sample_bytes, reset_trailer, struct.pack("<H", 0x7000))
    with pytest.raises(
        ImageError, match=r"entry 00f771de-.* has size 28672, outside 18\.\."
    ) as info:
        parse_ovmf(bad)
    assert info.value.offset == reset_trailer


def test_stray_bytes_in_table(sample_bytes: bytes) -> None:
    bad = patched(sample_bytes, FOOTER_OFF, struct.pack("<H", 0x72 + 5))
    with pytest.raises(ImageError, match="5 stray bytes") as info:
        parse_ovmf(bad)
    assert info.value.offset == TABLE_START - 5


def test_duplicate_guid() -> None:
    g = uuid.UUID("12345678-1234-5678-9abc-def012345678")
    table = build_guid_table([(g, b"a"), (g, b"b")])
    image = bytes(0x1000 - 0x20 - len(table)) + table + bytes(0x20)
    with pytest.raises(ImageError, match="repeats GUID 12345678"):
        parse_ovmf(image)


def test_size_not_page_multiple(sample_bytes: bytes) -> None:
    with pytest.raises(ImageError, match="not a multiple of 4 KiB"):
        parse_ovmf(sample_bytes[1:])


def test_image_larger_than_end_gpa(sample_bytes: bytes) -> None:
    with pytest.raises(ImageError, match="does not fit below GPA"):
        parse_ovmf(sample_bytes, end_gpa=0x1000)


def test_missing_guid_is_reported(sample_bytes: bytes) -> None:
    body = sample_bytes
    image = parse_ovmf(build_ovmf_image(body, sections=None, reset_eip=None))
    assert image.entry(SEV_ES_RESET_BLOCK_GUID) is None
    assert image.sev_es_reset_eip is None and image.metadata is None
    with pytest.raises(ImageError, match=r"no SEV-ES reset block \(00f771de-") as info:
        image.require_reset_eip()
    assert info.value.offset == FOOTER_OFF
    with pytest.raises(ImageError, match=r"no OVMF SEV metadata offset \(dc886566-"):
        image.require_metadata()
    with pytest.raises(ImageError, match=r"no SEV hash table block"):
        image.require_entry(SEV_HASH_TABLE_GUID)


def test_short_entry_data() -> None:
    body = bytes(0x1000)
    image = build_ovmf_image(body, extra_entries=[(SEV_ES_RESET_BLOCK_GUID, b"\x01\x02")])
    with pytest.raises(ImageError, match=r"SEV-ES reset block .* holds 2 bytes, needs at least 4"):
        parse_ovmf(image)
    image = build_ovmf_image(body, extra_entries=[(SEV_HASH_TABLE_GUID, b"\x00" * 4)])
    with pytest.raises(ImageError, match=r"hash table block .* holds 4 bytes, needs at least 8"):
        parse_ovmf(image)


def test_metadata_offset_outside_image(sample_bytes: bytes) -> None:
    bad = patched(sample_bytes, TABLE_START, struct.pack("<I", SIZE + 0x10))
    with pytest.raises(
        ImageError, match=r"SEV metadata offset 0x40010 from the end points outside"
    ):
        parse_ovmf(bad)
    bad = patched(sample_bytes, TABLE_START, struct.pack("<I", 8))
    with pytest.raises(ImageError, match="points outside"):
        parse_ovmf(bad)


def test_metadata_bad_signature(sample_bytes: bytes) -> None:
    bad = patched(sample_bytes, META_OFF, b"XSEV")
    with pytest.raises(ImageError, match=r"bad SEV metadata signature b'XSEV'") as info:
        parse_ovmf(bad)
    assert info.value.offset == META_OFF
    assert str(info.value).endswith("(at offset 0x3ff00)")


def test_metadata_bad_version(sample_bytes: bytes) -> None:
    bad = patched(sample_bytes, META_OFF + 8, struct.pack("<I", 2))
    with pytest.raises(ImageError, match="unsupported SEV metadata version 2"):
        parse_ovmf(bad)


def test_metadata_size_too_small_for_items(sample_bytes: bytes) -> None:
    bad = patched(sample_bytes, META_OFF + 4, struct.pack("<I", 40))
    with pytest.raises(ImageError, match=r"size 0x28 cannot hold its 7 sections \(needs 0x64\)"):
        parse_ovmf(bad)


def test_metadata_runs_past_end(sample_bytes: bytes) -> None:
    bad = patched(sample_bytes, META_OFF + 4, struct.pack("<I", 0x1000))
    with pytest.raises(ImageError, match="runs past the end"):
        parse_ovmf(bad)


def test_error_messages_are_one_line(sample_bytes: bytes) -> None:
    for bad in (bytes(0x2000), patched(sample_bytes, META_OFF, b"XSEV")):
        with pytest.raises(ImageError) as info:
            parse_ovmf(bad)
        assert "\n" not in str(info.value)
        assert isinstance(info.value, ValueError)
