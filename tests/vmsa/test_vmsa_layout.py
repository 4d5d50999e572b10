"""Every VMSA field offset pinned to the spec table (vmsa-layout.md §1-§2).

The expected values below are typed from the reference document, not derived from
the code under test.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from binlayout import BufferLayout
from vmsa.layout import (
    FIELD_KINDS,
    FIELD_NAMES,
    FIELD_OFFSETS,
    RESERVED_FIELDS,
    SEGMENT_FIELD_OFFSETS,
    SEGMENT_FIELDS,
    SEGMENT_LAYOUT,
    VMSA_LAYOUT,
    VMSA_SIZE,
    field_at,
)

# (field, offset, size) exactly as vmsa-layout.md §2 lists them.
SPEC_TABLE: list[tuple[str, int, int]] = [
    ("es", 0x000, 16),
    ("cs", 0x010, 16),
    ("ss", 0x020, 16),
    ("ds", 0x030, 16),
    ("fs", 0x040, 16),
    ("gs", 0x050, 16),
    ("gdtr", 0x060, 16),
    ("ldtr", 0x070, 16),
    ("idtr", 0x080, 16),
    ("tr", 0x090, 16),
    ("pl0_ssp", 0x0A0, 8),
    ("pl1_ssp", 0x0A8, 8),
    ("pl2_ssp", 0x0B0, 8),
    ("pl3_ssp", 0x0B8, 8),
    ("u_cet", 0x0C0, 8),
    ("reserved_0x0c8", 0x0C8, 2),
    ("vmpl", 0x0CA, 1),
    ("cpl", 0x0CB, 1),
    ("reserved_0x0cc", 0x0CC, 4),
    ("efer", 0x0D0, 8),
    ("reserved_0x0d8", 0x0D8, 104),
    ("xss", 0x140, 8),
    ("cr4", 0x148, 8),
    ("cr3", 0x150, 8),
    ("cr0", 0x158, 8),
    ("dr7", 0x160, 8),
    ("dr6", 0x168, 8),
    ("rflags", 0x170, 8),
    ("rip", 0x178, 8),
    ("dr0", 0x180, 8),
    ("dr1", 0x188, 8),
    ("dr2", 0x190, 8),
    ("dr3", 0x198, 8),
    ("dr0_addr_mask", 0x1A0, 8),
    ("dr1_addr_mask", 0x1A8, 8),
    ("dr2_addr_mask", 0x1B0, 8),
    ("dr3_addr_mask", 0x1B8, 8),
    ("reserved_0x1c0", 0x1C0, 24),
    ("rsp", 0x1D8, 8),
    ("s_cet", 0x1E0, 8),
    ("ssp", 0x1E8, 8),
    ("isst_addr", 0x1F0, 8),
    ("rax", 0x1F8, 8),
    ("star", 0x200, 8),
    ("lstar", 0x208, 8),
    ("cstar", 0x210, 8),
    ("sfmask", 0x218, 8),
    ("kernel_gs_base", 0x220, 8),
    ("sysenter_cs", 0x228, 8),
    ("sysenter_esp", 0x230, 8),
    ("sysenter_eip", 0x238, 8),
    ("cr2", 0x240, 8),
    ("reserved_0x248", 0x248, 32),
    ("g_pat", 0x268, 8),
    ("dbgctl", 0x270, 8),
    ("br_from", 0x278, 8),
    ("br_to", 0x280, 8),
    ("last_excp_from", 0x288, 8),
    ("last_excp_to", 0x290, 8),
    ("reserved_0x298", 0x298, 80),
    ("pkru", 0x2E8, 4),
    ("tsc_aux", 0x2EC, 4),
    ("guest_tsc_scale", 0x2F0, 8),
    ("guest_tsc_offset", 0x2F8, 8),
    ("reg_prot_nonce", 0x300, 8),
    ("rcx", 0x308, 8),
    ("rdx", 0x310, 8),
    ("rbx", 0x318, 8),
    ("reserved_0x320", 0x320, 8),
    ("rbp", 0x328, 8),
    ("rsi", 0x330, 8),
    ("rdi", 0x338, 8),
    ("r8", 0x340, 8),
    ("r9", 0x348, 8),
    ("r10", 0x350, 8),
    ("r11", 0x358, 8),
    ("r12", 0x360, 8),
    ("r13", 0x368, 8),
    ("r14", 0x370, 8),
    ("r15", 0x378, 8),
    ("reserved_0x380", 0x380, 16),
    ("guest_exitinfo1", 0x390, 8),
    ("guest_exitinfo2", 0x398, 8),
    ("guest_exitintinfo", 0x3A0, 8),
    ("guest_nrip", 0x3A8, 8),
    ("sev_features", 0x3B0, 8),
    ("vintr_ctrl", 0x3B8, 8),
    ("guest_exit_code", 0x3C0, 8),
    ("virtual_tom", 0x3C8, 8),
    ("tlb_id", 0x3D0, 8),
    ("pcpu_id", 0x3D8, 8),
    ("event_inj", 0x3E0, 8),
    ("xcr0", 0x3E8, 8),
    ("reserved_0x3f0", 0x3F0, 16),
    ("x87_dp", 0x400, 8),
    ("mxcsr", 0x408, 4),
    ("x87_ftw", 0x40C, 2),
    ("x87_fsw", 0x40E, 2),
    ("x87_fcw", 0x410, 2),
    ("x87_fop", 0x412, 2),
    ("x87_ds", 0x414, 2),
    ("x87_cs", 0x416, 2),
    ("x87_rip", 0x418, 8),
    ("fpreg_x87", 0x420, 80),
    ("fpreg_xmm", 0x470, 256),
    ("fpreg_ymm", 0x570, 256),
    ("lbr_stack", 0x670, 256),
    ("lbr_select", 0x770, 8),
    ("ibs_fetch_ctl", 0x778, 8),
    ("ibs_fetch_linaddr", 0x780, 8),
    ("ibs_op_ctl", 0x788, 8),
    ("ibs_op_rip", 0x790, 8),
    ("ibs_op_data", 0x798, 8),
    ("ibs_op_data2", 0x7A0, 8),
    ("ibs_op_data3", 0x7A8, 8),
    ("ibs_dc_linaddr", 0x7B0, 8),
    ("bp_ibstgt_rip", 0x7B8, 8),
    ("ic_ibs_extd_ctl", 0x7C0, 8),
    ("reserved_0x7c8", 0x7C8, 0x1B8),
    ("fpreg_ki", 0x980, 64),
    ("fpreg_zmmhi", 0x9C0, 512),
    ("fpreg_hizmm", 0xBC0, 1024),
    ("reserved_0xfc0", 0xFC0, 64),
]

# vmsa-layout.md §1.
SPEC_SEGMENT: list[tuple[str, int, int]] = [
    ("selector", 0x0, 2),
    ("attrib", 0x2, 2),
    ("limit", 0x4, 4),
    ("base", 0x8, 8),
]


@pytest.mark.parametrize(("name", "offset", "size"), SPEC_TABLE, ids=[r[0] for r in SPEC_TABLE])
def test_field_offset_matches_spec(name: str, offset: int, size: int) -> None:
    assert FIELD_OFFSETS[name] == (offset, size)


def test_layout_has_exactly_the_spec_fields_in_order() -> None:
    assert list(FIELD_NAMES) == [name for name, _, _ in SPEC_TABLE]


def test_spec_table_itself_tiles_the_page() -> None:
    """Guards the hand-typed table: no gaps, no overlaps, 4 KiB in total."""
    pos = 0
    for name, offset, size in SPEC_TABLE:
        assert offset == pos, name
        pos += size
    assert pos == 0x1000


def test_total_size_is_one_page() -> None:
    assert VMSA_SIZE == 0x1000
    assert VMSA_LAYOUT.size == 0x1000
    assert VMSA_LAYOUT.reserved_ranges == ()  # every byte is a named field
    assert VMSA_LAYOUT.struct.sizeof() == 0x1000
    assert len(VMSA_LAYOUT.build(VMSA_LAYOUT.parse(bytes(0x1000)))) == 0x1000


def test_segment_registers_are_groups_of_the_segment_layout() -> None:
    assert SEGMENT_LAYOUT.size == 16
    assert tuple(VMSA_LAYOUT.groups) == SEGMENT_FIELDS
    for name in SEGMENT_FIELDS:
        group = VMSA_LAYOUT.groups[name]
        assert (group.offset, group.size) == FIELD_OFFSETS[name]
        for member, (offset, size) in SEGMENT_FIELD_OFFSETS.items():
            info = VMSA_LAYOUT.fields[f"{name}_{member}"]
            assert (info.offset, info.size) == (group.offset + offset, size)


@pytest.mark.parametrize(("name", "offset", "size"), SPEC_SEGMENT)
def test_segment_member_offsets(name: str, offset: int, size: int) -> None:
    assert SEGMENT_FIELD_OFFSETS[name] == (offset, size)


def test_segment_fields() -> None:
    assert SEGMENT_FIELDS == ("es", "cs", "ss", "ds", "fs", "gs", "gdtr", "ldtr", "idtr", "tr")
    assert all(FIELD_KINDS[name] == "segment" for name in SEGMENT_FIELDS)


def test_reserved_fields_are_byte_fields_named_by_offset() -> None:
    for name in RESERVED_FIELDS:
        assert FIELD_KINDS[name] == "bytes"
        assert int(name.removeprefix("reserved_"), 16) == FIELD_OFFSETS[name][0]
    assert tuple(n for n, _, _ in SPEC_TABLE if n.startswith("reserved_")) == RESERVED_FIELDS


def test_field_kinds() -> None:
    assert FIELD_KINDS["vmpl"] == "int"
    assert FIELD_KINDS["sev_features"] == "int"
    assert FIELD_KINDS["fpreg_xmm"] == "bytes"
    assert FIELD_KINDS["cs"] == "segment"


def test_field_at() -> None:
    assert field_at(0x0CA) == "vmpl"
    assert field_at(0x3B4) == "sev_features"
    assert field_at(0x01F) == "cs"
    assert field_at(0xFFF) == "reserved_0xfc0"
    with pytest.raises(ValueError):
        field_at(0x1000)


def test_little_endian_placement() -> None:
    """A value written through the layout lands at its spec offset, little-endian."""
    page = VMSA_LAYOUT.build({"sev_features": 0x0102030405060708, "cs_base": 0xFFFF0000, "vmpl": 3})
    assert page[0x3B0:0x3B8] == bytes.fromhex("0807060504030201")
    assert page[0x018:0x020] == bytes.fromhex("0000ffff00000000")
    assert page[0x0CA] == 3
    # The construct form places them identically.
    parsed = VMSA_LAYOUT.struct.parse(page)
    assert (parsed.sev_features, parsed.cs_base, parsed.vmpl) == (0x0102030405060708, 0xFFFF0000, 3)
    assert VMSA_LAYOUT.struct.build(parsed) == page


@pytest.mark.parametrize("layout", [VMSA_LAYOUT, SEGMENT_LAYOUT], ids=lambda layout: layout.name)
@given(data=st.data())
def test_struct_codec_agrees_with_construct(layout: BufferLayout, data: st.DataObject) -> None:
    """The ``struct`` codec and the ``construct`` form of the one declaration read and write
    the same bytes (the VMSA has no reserved gap, so both round-trip every page)."""
    rng = random.Random(data.draw(st.integers(0, 2**64)))
    density = data.draw(st.sampled_from([0.0, 0.05, 1.0]))
    raw = bytes(rng.randrange(256) if rng.random() < density else 0 for _ in range(layout.size))
    words = layout.struct.parse(raw)
    fields = layout.parse(raw)
    assert fields == {m.wire_name: words[m.wire_name] for m in layout.members}
    assert tuple(fields.values()) == layout.unpack(raw)
    assert layout.build(fields) == layout.pack(layout.unpack(raw)) == raw
    assert layout.struct.build(words) == raw
