"""The raw RMP entry, the RMPUPDATE/RMPREAD state and the page-state classification, pinned
against the facts digest (rmp-and-instructions.md §2.2, §2.3, §3).

Expected bytes are written out by hand from the bit tables; the comment on each row says where
the value comes from.  Both quadwords are little endian, so bit n of quadword 0 is bit n % 8 of
byte n // 8, and quadword 1 starts at byte 8.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from binlayout import Bits, BufferLayout
from rmp import layout as L
from rmp.entry import PageSize, PageState, RmpEntry, classify
from rmp.table import RmpTable
from sp_emu.testing.rmp_reference import RefEntry, page_state
from sp_emu.testing.strategies import raw_entry_bytes, rmp_entries

_2M = PageSize.SIZE_2M
_BYTES = bytes.fromhex


# --- §2.2: one field at a time ---------------------------------------------------------------
SINGLE_FIELDS = [
    # Assigned is quadword-0 bit 0 -> byte 0 = 0x01.
    ("assigned", RmpEntry(assigned=True), "01000000000000000000000000000000"),
    # Page_Size is bit 1 -> byte 0 = 0x02.
    ("page_size", RmpEntry(page_size=_2M), "02000000000000000000000000000000"),
    # Immutable is bit 2 -> byte 0 = 0x04; the lock bit 63 mirrors it -> byte 7 = 0x80.
    ("immutable", RmpEntry(immutable=True), "04000000000000800000000000000000"),
    # Sub-page count is bits 11:3: a count of 1 is bit 3 -> byte 0 = 0x08.
    ("subpage_count_1", RmpEntry(subpage_count=1), "08000000000000000000000000000000"),
    # 511 << 3 = 0xFF8 -> bytes 0..1 = F8 0F.
    ("subpage_count_511", RmpEntry(subpage_count=511), "F80F0000000000000000000000000000"),
    # GPA bits 50:12 sit in entry bits 50:12, so GPA 0x1000 is bit 12 -> byte 1 = 0x10.
    ("gpa_lowest", RmpEntry(gpa=0x1000), "00100000000000000000000000000000"),
    # The highest GPA, 2^51 - 4 KiB = 0x7_FFFF_FFFF_F000 -> bytes 1..6 = F0 FF FF FF FF 07.
    ("gpa_highest", RmpEntry(gpa=(1 << 51) - 0x1000), "00F0FFFFFFFF07000000000000000000"),
    # ASID is bits 60:51: ASID 1 is bit 51 = bit 3 of byte 6 -> byte 6 = 0x08.
    ("asid_1", RmpEntry(asid=1), "00000000000008000000000000000000"),
    # ASID 1023 fills bits 60:51: 0x3FF << 51 = 0x1FF8_0000_0000_0000 -> bytes 6..7 = F8 1F.
    ("asid_1023", RmpEntry(asid=1023), "000000000000F81F0000000000000000"),
    # VMSA is bit 61 -> byte 7 = 0x20.
    ("vmsa", RmpEntry(vmsa=True), "00000000000000200000000000000000"),
    # Validated is bit 62 -> byte 7 = 0x40.
    ("validated", RmpEntry(validated=True), "00000000000000400000000000000000"),
    # Quadword 1 bits 7:0 are the VMPL0 mask -> byte 8.
    ("vmpl0", RmpEntry(perms=(0x1F, 0, 0, 0)), "00000000000000001F00000000000000"),
    # Bits 15:8 VMPL1 -> byte 9.
    ("vmpl1", RmpEntry(perms=(0, 0x03, 0, 0)), "00000000000000000003000000000000"),
    # Bits 23:16 VMPL2 -> byte 10.
    ("vmpl2", RmpEntry(perms=(0, 0, 0x05, 0)), "00000000000000000000050000000000"),
    # Bits 31:24 VMPL3 -> byte 11.
    ("vmpl3", RmpEntry(perms=(0, 0, 0, 0x10)), "00000000000000000000001000000000"),
]

WHOLE_ENTRIES = [
    # A validated guest page: assigned (bit 0), GPA 0x1234000 (bits 50:12 in place), ASID 5
    # (5 << 51 = 0x0028_0000_0000_0000), Validated (bit 62 = 0x4000_0000_0000_0000):
    # q0 = 0x4028_0000_0123_4001 -> 01 40 23 01 00 00 28 40.
    # Masks VMPL0 0x1F, VMPL1 0x0B, VMPL2 0, VMPL3 0x01: q1 = 0x0100_0B1F -> 1F 0B 00 01 0..0.
    (
        "guest_valid",
        RmpEntry(assigned=True, validated=True, asid=5, gpa=0x1234000, perms=(0x1F, 0x0B, 0, 1)),
        "01402301000028401F0B000100000000",
    ),
    # A 2 MiB pre-guest page: bits 2:0 = 0b111, lock bit 63, ASID 1023 (0x1FF8 << 48) and the
    # highest 2 MiB-aligned GPA 0x7_FFFF_FFE0_0000:
    # q0 = 0x8000.. | 0x1FF8.. | 0x0007_FFFF_FFE0_0000 | 7 = 0x9FFF_FFFF_FFE0_0007.
    (
        "pre_guest_2m",
        RmpEntry(
            assigned=True,
            page_size=_2M,
            immutable=True,
            asid=1023,
            gpa=(1 << 51) - (1 << 21),
        ),
        "0700E0FFFFFFFF9F0000000000000000",
    ),
    # A guest context page: assigned, immutable (+ lock), VMSA (bit 61), ASID 0, GPA 0:
    # q0 = 0x8000.. | 0x2000.. | 0x5 = 0xA000_0000_0000_0005.
    (
        "context",
        RmpEntry(assigned=True, immutable=True, vmsa=True),
        "05000000000000A00000000000000000",
    ),
]


@pytest.mark.parametrize(
    ("entry", "hex_bytes"),
    [pytest.param(e, h, id=n) for n, e, h in SINGLE_FIELDS + WHOLE_ENTRIES],
)
def test_raw_entry_bytes(entry: RmpEntry, hex_bytes: str) -> None:
    raw = _BYTES(hex_bytes)
    assert len(raw) == L.RAW_ENTRY_SIZE == 16
    assert entry.to_bytes() == raw
    assert RmpEntry.from_bytes(raw) == entry
    q0, q1 = entry.to_raw()
    assert q0.to_bytes(8, "little") + q1.to_bytes(8, "little") == raw


def test_bit_constants_match_the_table() -> None:
    # §2.2 quadword 0, field by field: (lsb, width).
    assert (L.ASSIGNED.lsb, L.ASSIGNED.width) == (0, 1)
    assert (L.PAGE_SIZE.lsb, L.PAGE_SIZE.width) == (1, 1)
    assert (L.IMMUTABLE.lsb, L.IMMUTABLE.width) == (2, 1)
    assert (L.SUBPAGE_COUNT.lsb, L.SUBPAGE_COUNT.width) == (3, 9)  # bits 11:3
    assert (L.GPA.lsb, L.GPA.width) == (12, 39)  # bits 50:12
    assert (L.ASID.lsb, L.ASID.width) == (51, 10)  # bits 60:51
    assert (L.VMSA.lsb, L.VMSA.width) == (61, 1)
    assert (L.VALIDATED.lsb, L.VALIDATED.width) == (62, 1)
    assert (L.LOCK.lsb, L.LOCK.width) == (63, 1)
    # Firmware marker: GPA-field bits 38:36 = entry bits 50:48.
    assert (L.FW_MARKER.lsb, L.FW_MARKER.width) == (48, 3)
    # Quadword 1: one byte per VMPL.
    assert [(f.lsb, f.width) for f in L.PERMS] == [(0, 8), (8, 8), (16, 8), (24, 8)]
    # §2.4: R, W, X-user, X-supervisor, supervisor shadow stack; 7:5 reserved.
    assert (L.PERM_READ, L.PERM_WRITE, L.PERM_EXEC_USER, L.PERM_EXEC_SUPERVISOR) == (1, 2, 4, 8)
    assert L.PERM_SUPERVISOR_SHADOW_STACK == 0x10
    assert L.PERM_ALL == 0x1F


def test_reserved_quadword1_bits_are_ignored_on_decode() -> None:
    # Bit 32 of quadword 1 (implicit key select) and the bits above it are not modelled; a
    # decoded entry keeps only the four masks.
    raw = _BYTES("01000000000000001F000000FFFFFFFF")
    assert RmpEntry.from_bytes(raw) == RmpEntry(assigned=True, perms=(0x1F, 0, 0, 0))


@given(rmp_entries())
def test_entry_round_trip(entry: RmpEntry) -> None:
    raw = entry.to_bytes()
    assert len(raw) == 16
    assert RmpEntry.from_bytes(raw) == entry
    assert RmpEntry.from_raw(*entry.to_raw()) == entry


@given(raw_entry_bytes())
def test_bytes_round_trip(raw: bytes) -> None:
    # Any 16 bytes with the lock bit equal to Immutable and quadword-1 bits 63:32 clear.
    assert RmpEntry.from_bytes(raw).to_bytes() == raw


# --- §2.3: the RMPUPDATE input / RMPREAD output state ----------------------------------------
def test_rmp_state_layout() -> None:
    assert L.RMP_STATE_LAYOUT.size == 16
    assert L.RMP_STATE_LAYOUT.struct.sizeof() == 16
    # Flags word at 0x08: ASSIGNED is byte 0x08 bit 0, PAGE_SIZE byte 0x09 bit 0,
    # 2MB_REGION_STATUS byte 0x09 bit 1, IMMUTABLE byte 0x0A bit 0.
    assert L.STATE_ASSIGNED.lsb == 0
    assert L.STATE_PAGE_SIZE.lsb == 8
    assert L.STATE_REGION_STATUS.lsb == 9
    assert L.STATE_IMMUTABLE.lsb == 16
    flags = L.STATE_ASSIGNED.mask | L.STATE_PAGE_SIZE.mask | L.STATE_IMMUTABLE.mask
    assert flags == L.STATE_DEFINED_FLAGS
    values = {"gpa": 0x200000, "assigned": 1, "page_size": 1, "immutable": 1, "asid": 7}
    built = L.RMP_STATE_LAYOUT.build(values)
    # GPA u64 at 0x00; 01 01 01 00 at 0x08 (ASSIGNED, PAGE_SIZE, IMMUTABLE, reserved);
    # ASID u32 at 0x0C.
    assert built == _BYTES("00002000000000000101010007000000")
    assert L.RMP_STATE_LAYOUT.struct.build({"gpa": 0x200000, "flags": flags, "asid": 7}) == built
    assert L.RMP_STATE_LAYOUT.parse(built) == {**values, "region_status": 0}
    region = L.RMP_STATE_LAYOUT.build({"region_status": 1})
    assert region[9] == 0x02
    # Every flag bit RMPUPDATE does not define, other than the RMPREAD-only region status,
    # is reserved in the declaration.
    flags_mask = L.RMP_STATE_LAYOUT.reserved_mask >> 64 & 0xFFFF_FFFF
    assert flags_mask == 0xFFFF_FFFF & ~(flags | L.STATE_REGION_STATUS.mask)


def test_raw_entry_layout_is_the_bit_tables() -> None:
    assert L.RAW_ENTRY_LAYOUT.size == L.RAW_ENTRY_SIZE
    q0, q1 = L.RAW_ENTRY_LAYOUT.members
    assert (q0.offset, q0.size, q0.bits) == (0, 8, L.RAW_Q0_FIELDS)
    assert (q1.offset, q1.size, q1.bits) == (8, 8, L.RAW_Q1_FIELDS)
    # Quadword 0 is fully defined; quadword 1 bits 63:32 are reserved.
    assert L.RAW_ENTRY_LAYOUT.reserved_mask == 0xFFFF_FFFF << 96


@pytest.mark.parametrize(
    "layout", [L.RAW_ENTRY_LAYOUT, L.RMP_STATE_LAYOUT], ids=lambda layout: layout.name
)
@given(raw=st.binary(min_size=16, max_size=16))
def test_struct_codec_agrees_with_construct(layout: BufferLayout, raw: bytes) -> None:
    """The ``struct`` codec and the ``construct`` form of each declaration agree."""
    words = layout.struct.parse(raw)
    fields = layout.parse(raw)
    for member in layout.members:
        word = words[member.wire_name]
        for b in member.bits or (Bits(member.wire_name, 0, 8 * member.size),):
            assert fields[b.name] == (word >> b.lsb) & ((1 << b.width) - 1)
    cleared = int.from_bytes(raw, "little") & ~layout.reserved_mask
    assert layout.build(fields) == cleared.to_bytes(layout.size, "little")
    assert layout.struct.build(words) == raw


# --- §3: page states ---------------------------------------------------------------------------
_FW = {"assigned": True, "immutable": True}  # assigned, ASID 0, immutable, not validated


def _marker(marker: int, rest: int = 0) -> int:
    """A firmware GPA field: ``marker`` in GPA bits 50:48 and ``rest`` below it (byte address)."""
    return (marker << 48) | rest


STATE_ROWS = [
    # (id, entry, expected state); columns of the §3 table: Assigned, Validated, ASID,
    # Immutable, GPA/marker, VMSA.
    ("hypervisor", RmpEntry(), PageState.HYPERVISOR),
    ("hypervisor_any_gpa_vmsa", RmpEntry(gpa=0x5000, vmsa=True), PageState.HYPERVISOR),
    ("hv_fixed", RmpEntry(immutable=True), PageState.HV_FIXED),
    ("hv_fixed_any_gpa", RmpEntry(immutable=True, gpa=0x7000), PageState.HV_FIXED),
    ("firmware", RmpEntry(**_FW), PageState.FIRMWARE),
    ("firmware_2m", RmpEntry(page_size=_2M, **_FW), PageState.FIRMWARE),
    # FIRMWARE_IOMMU: marker 2 and the rest of the GPA field = 1 (byte address 0x1000), VMSA 0.
    ("firmware_iommu", RmpEntry(gpa=_marker(2, 0x1000), **_FW), PageState.FIRMWARE_IOMMU),
    ("context", RmpEntry(vmsa=True, **_FW), PageState.CONTEXT),
    # METADATA: marker 1 plus the owning context page's sPA >> 12 (here page 0x1234); any VMSA.
    ("metadata", RmpEntry(gpa=_marker(1, 0x1234000), **_FW), PageState.METADATA),
    ("metadata_vmsa", RmpEntry(gpa=_marker(1, 0x1000), vmsa=True, **_FW), PageState.METADATA),
    ("reclaim", RmpEntry(assigned=True), PageState.RECLAIM),
    ("reclaim_any_gpa_vmsa", RmpEntry(assigned=True, gpa=0x9000, vmsa=True), PageState.RECLAIM),
    ("pre_guest", RmpEntry(assigned=True, immutable=True, asid=3, gpa=0x1000), PageState.PRE_GUEST),
    (
        "pre_swap",
        RmpEntry(assigned=True, immutable=True, validated=True, asid=3),
        PageState.PRE_SWAP,
    ),
    ("guest_invalid", RmpEntry(assigned=True, asid=3, gpa=0x2000), PageState.GUEST_INVALID),
    (
        "guest_valid",
        RmpEntry(assigned=True, validated=True, asid=1023, gpa=0x2000),
        PageState.GUEST_VALID,
    ),
    (
        "guest_valid_2m_vmsa",
        RmpEntry(assigned=True, validated=True, asid=1, page_size=_2M, vmsa=True),
        PageState.GUEST_VALID,
    ),
    # INVALID: every combination no row names.
    ("unassigned_validated", RmpEntry(validated=True), PageState.INVALID),
    ("unassigned_asid", RmpEntry(asid=1), PageState.INVALID),
    ("hv_fixed_asid", RmpEntry(immutable=True, asid=1), PageState.INVALID),
    ("asid0_validated", RmpEntry(assigned=True, validated=True), PageState.INVALID),
    ("asid0_validated_immutable", RmpEntry(validated=True, **_FW), PageState.INVALID),
    ("firmware_gpa_no_marker", RmpEntry(gpa=0x1000, **_FW), PageState.INVALID),
    ("firmware_marker_3", RmpEntry(gpa=_marker(3, 0x1000), **_FW), PageState.INVALID),
    ("firmware_marker_7", RmpEntry(gpa=_marker(7), **_FW), PageState.INVALID),
    ("iommu_rest_0", RmpEntry(gpa=_marker(2), **_FW), PageState.INVALID),
    ("iommu_rest_2", RmpEntry(gpa=_marker(2, 0x2000), **_FW), PageState.INVALID),
    ("iommu_vmsa", RmpEntry(gpa=_marker(2, 0x1000), vmsa=True, **_FW), PageState.INVALID),
]


@pytest.mark.parametrize(("entry", "state"), [pytest.param(e, s, id=n) for n, e, s in STATE_ROWS])
def test_page_state(entry: RmpEntry, state: PageState) -> None:
    assert entry.state is state
    assert classify(entry.to_raw()[0]) is state
    table = RmpTable(512)
    table.set_entry(7, entry)
    assert table.state(7) is state
    # The reference model reads the same table independently.
    assert page_state(RefEntry.from_fields(entry)) is state


def test_metadata_with_owner_page_zero() -> None:
    # Inference: the digest gives no range for the owning page number; ``rmp`` accepts 0.
    # (The Genoa firmware source additionally requires it to be non-zero.)
    entry = RmpEntry(gpa=_marker(1), **_FW)
    assert entry.state is PageState.METADATA


def test_default_outside_the_rmp() -> None:
    table = RmpTable(512)
    assert table.state(511) is PageState.HYPERVISOR
    assert table.state(512) is PageState.DEFAULT
    assert table.state(-1) is PageState.DEFAULT
