"""Byte layout of the VMSA: the 4 KiB SEV-ES / SEV-SNP guest save area.

When an SEV-ES or SEV-SNP guest exits, the CPU saves the guest's register state into
this encrypted page instead of the (host-readable) VMCB save area, and VMRUN restores
it from there.  The VMSA is therefore exactly one 4 KiB page, and its byte layout is
fixed by the hardware (AMD APM vol. 2, table B-4; restated in
``/work/shared/reference/vmsa-layout.md`` §1-§2, cross-checked between sev-snp-measure,
COCONUT-SVSM, the ``sev`` crate, Linux ``struct sev_es_save_area`` and the Genoa SEV
firmware).

The whole page is declared **once**, below, as the :mod:`binlayout` declaration
:data:`VMSA_LAYOUT`: it parses and builds the page with a generated ``struct`` format, and
``VMSA_LAYOUT.struct`` is the same declaration as a ``construct`` Struct (made on first
use, so that importing this package does not import ``construct``).  Every other table in
this package (field offsets and sizes, the list of reserved ranges, the kind of each
field) is *computed* from that declaration, never re-typed.

Conventions:

* All integers are little-endian.
* Reserved ranges are real named byte fields, ``reserved_0x<offset>`` with a
  three-digit offset, so they survive a parse/build round trip and can be checked
  (:mod:`vmsa.validate`); the declaration leaves no gap (checked at import).
* The ten segment registers use the 16-byte VMCB segment format :data:`SEGMENT_LAYOUT`,
  spliced in with :func:`binlayout.group`: the register ``cs`` is the four wire fields
  ``cs_selector``, ``cs_attrib``, ``cs_limit`` and ``cs_base``.
* Arrays of architectural registers (DR0-DR3, R8-R15) are spelled out as one field
  each; opaque register files (x87, XMM, YMM, the LBR stack, AVX-512 state) are byte
  fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from binlayout import BufferLayout, Member, blob, group, u8, u16, u32, u64

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final, Literal

    FieldKind = Literal["int", "bytes", "segment"]
    """How a VMSA field is represented: an unsigned integer, raw bytes, or a segment register."""

VMSA_SIZE: Final = 0x1000
"""Size of a VMSA page in bytes (one 4 KiB page)."""

U64_MASK: Final = (1 << 64) - 1
"""All ones in a 64-bit field (the widest integer field of the VMSA)."""

SEGMENT_SIZE: Final = 16
"""Size of one VMCB-format segment register in bytes."""

SEGMENT_LAYOUT: Final = BufferLayout(
    "vmsa_segment",
    SEGMENT_SIZE,
    (
        # Selector value loaded into the segment register.
        u16(0x0, "selector"),
        # VMCB-compressed attributes: bits 7:0 = descriptor byte 5 (type, S, DPL, P),
        # bits 11:8 = descriptor byte 6 bits 7:4 (AVL, L, D/B, G).  vmsa-layout.md §1.
        u16(0x2, "attrib"),
        # Segment limit, already expanded to bytes (no granularity scaling).
        u32(0x4, "limit"),
        # Segment base address.
        u64(0x8, "base"),
    ),
)
"""One segment register in the VMCB/VMSA format (vmsa-layout.md §1)."""


def _segment(offset: int, name: str) -> tuple[Member, ...]:
    """A 16-byte segment register ``name`` at ``offset``."""
    return group(offset, name, SEGMENT_LAYOUT)


VMSA_LAYOUT: Final = BufferLayout(
    "vmsa",
    VMSA_SIZE,
    (
        # 0x000: segment registers, 16 bytes each.
        *_segment(0x000, "es"),
        *_segment(0x010, "cs"),
        *_segment(0x020, "ss"),
        *_segment(0x030, "ds"),
        *_segment(0x040, "fs"),
        *_segment(0x050, "gs"),
        *_segment(0x060, "gdtr"),  # only base and limit are meaningful
        *_segment(0x070, "ldtr"),
        *_segment(0x080, "idtr"),  # only base and limit are meaningful
        *_segment(0x090, "tr"),
        # 0x0A0: CET shadow-stack pointers (Linux/sev-snp-measure call them vmplN_ssp).
        u64(0x0A0, "pl0_ssp"),
        u64(0x0A8, "pl1_ssp"),
        u64(0x0B0, "pl2_ssp"),
        u64(0x0B8, "pl3_ssp"),
        u64(0x0C0, "u_cet"),
        blob(0x0C8, 2, "reserved_0x0c8"),
        u8(0x0CA, "vmpl"),  # the VMPL this vCPU state runs at (0-3)
        u8(0x0CB, "cpl"),
        blob(0x0CC, 4, "reserved_0x0cc"),
        u64(0x0D0, "efer"),
        blob(0x0D8, 104, "reserved_0x0d8"),
        u64(0x140, "xss"),
        u64(0x148, "cr4"),
        u64(0x150, "cr3"),
        u64(0x158, "cr0"),
        u64(0x160, "dr7"),
        u64(0x168, "dr6"),
        u64(0x170, "rflags"),
        u64(0x178, "rip"),
        u64(0x180, "dr0"),
        u64(0x188, "dr1"),
        u64(0x190, "dr2"),
        u64(0x198, "dr3"),
        u64(0x1A0, "dr0_addr_mask"),
        u64(0x1A8, "dr1_addr_mask"),
        u64(0x1B0, "dr2_addr_mask"),
        u64(0x1B8, "dr3_addr_mask"),
        blob(0x1C0, 24, "reserved_0x1c0"),
        u64(0x1D8, "rsp"),
        u64(0x1E0, "s_cet"),
        u64(0x1E8, "ssp"),
        u64(0x1F0, "isst_addr"),
        u64(0x1F8, "rax"),
        u64(0x200, "star"),
        u64(0x208, "lstar"),
        u64(0x210, "cstar"),
        u64(0x218, "sfmask"),
        u64(0x220, "kernel_gs_base"),
        u64(0x228, "sysenter_cs"),
        u64(0x230, "sysenter_esp"),
        u64(0x238, "sysenter_eip"),
        u64(0x240, "cr2"),
        blob(0x248, 32, "reserved_0x248"),
        u64(0x268, "g_pat"),
        u64(0x270, "dbgctl"),
        u64(0x278, "br_from"),
        u64(0x280, "br_to"),
        u64(0x288, "last_excp_from"),
        u64(0x290, "last_excp_to"),
        blob(0x298, 80, "reserved_0x298"),
        u32(0x2E8, "pkru"),
        u32(0x2EC, "tsc_aux"),  # COCONUT-SVSM marks it reserved
        u64(0x2F0, "guest_tsc_scale"),  # Secure TSC; zeroed for measurement
        u64(0x2F8, "guest_tsc_offset"),  # Secure TSC; zeroed for measurement
        u64(0x300, "reg_prot_nonce"),  # register-protection tweak, written by firmware
        u64(0x308, "rcx"),
        u64(0x310, "rdx"),
        u64(0x318, "rbx"),
        blob(0x320, 8, "reserved_0x320"),  # the slot RSP would have
        u64(0x328, "rbp"),
        u64(0x330, "rsi"),
        u64(0x338, "rdi"),
        u64(0x340, "r8"),
        u64(0x348, "r9"),
        u64(0x350, "r10"),
        u64(0x358, "r11"),
        u64(0x360, "r12"),
        u64(0x368, "r13"),
        u64(0x370, "r14"),
        u64(0x378, "r15"),
        blob(0x380, 16, "reserved_0x380"),  # SEV-ES CRC bookkeeping; SNP firmware writes 0/~0
        u64(0x390, "guest_exitinfo1"),
        u64(0x398, "guest_exitinfo2"),
        u64(0x3A0, "guest_exitintinfo"),  # event format, vmsa-layout.md §3.3
        u64(0x3A8, "guest_nrip"),
        u64(0x3B0, "sev_features"),  # vmsa.features.SevFeatures
        u64(0x3B8, "vintr_ctrl"),  # vmsa-layout.md §3.2
        u64(0x3C0, "guest_exit_code"),
        u64(0x3C8, "virtual_tom"),
        u64(0x3D0, "tlb_id"),
        u64(0x3D8, "pcpu_id"),
        u64(0x3E0, "event_inj"),  # event format, vmsa-layout.md §3.3
        u64(0x3E8, "xcr0"),
        blob(0x3F0, 16, "reserved_0x3f0"),
        # 0x400: floating-point state.
        u64(0x400, "x87_dp"),
        u32(0x408, "mxcsr"),
        u16(0x40C, "x87_ftw"),
        u16(0x40E, "x87_fsw"),
        u16(0x410, "x87_fcw"),
        u16(0x412, "x87_fop"),
        u16(0x414, "x87_ds"),
        u16(0x416, "x87_cs"),
        u64(0x418, "x87_rip"),
        # ST0-ST7: bytes 0-7 of STi at 0x420 + 8*i, bytes 8-9 at 0x460 + 2*i (not FXSAVE order).
        blob(0x420, 80, "fpreg_x87"),
        blob(0x470, 256, "fpreg_xmm"),  # XMM0-XMM15
        blob(0x570, 256, "fpreg_ymm"),  # upper 128 bits of YMM0-YMM15
        blob(0x670, 256, "lbr_stack"),  # LBR from/to pairs
        u64(0x770, "lbr_select"),
        u64(0x778, "ibs_fetch_ctl"),
        u64(0x780, "ibs_fetch_linaddr"),
        u64(0x788, "ibs_op_ctl"),
        u64(0x790, "ibs_op_rip"),
        u64(0x798, "ibs_op_data"),
        u64(0x7A0, "ibs_op_data2"),
        u64(0x7A8, "ibs_op_data3"),
        u64(0x7B0, "ibs_dc_linaddr"),
        u64(0x7B8, "bp_ibstgt_rip"),
        u64(0x7C0, "ic_ibs_extd_ctl"),
        blob(0x7C8, 0x1B8, "reserved_0x7c8"),
        blob(0x980, 64, "fpreg_ki"),  # AVX-512 opmask K0-K7
        blob(0x9C0, 512, "fpreg_zmmhi"),  # upper 256 bits of ZMM0-ZMM15
        blob(0xBC0, 1024, "fpreg_hizmm"),  # ZMM16-ZMM31
        blob(0xFC0, 64, "reserved_0xfc0"),  # processor history; SEV-ES CRC covers 0x000-0xFBF
    ),
)
"""The whole VMSA page (vmsa-layout.md §2).  Parse and build with this declaration only
(``VMSA_LAYOUT.struct`` is its ``construct`` form)."""


def _top_level(layout: BufferLayout) -> dict[str, tuple[int, int, FieldKind]]:
    """``name -> (offset, size, kind)`` of every top-level field, in offset order: a group
    of :data:`SEGMENT_LAYOUT` members is one segment field."""
    table: dict[str, tuple[int, int, FieldKind]] = {}
    for m in layout.members:
        if m.group is not None:
            table.setdefault(m.group.name, (m.group.offset, m.group.size, "segment"))
        else:
            table[m.name] = (m.offset, m.size, "bytes" if m.blob else "int")
    return table


_TOP_LEVEL: Final = _top_level(VMSA_LAYOUT)

FIELD_OFFSETS: Final[Mapping[str, tuple[int, int]]] = MappingProxyType(
    {name: (offset, size) for name, (offset, size, _) in _TOP_LEVEL.items()}
)
"""``field name -> (offset, size)`` for every top-level VMSA field, in layout order."""

SEGMENT_FIELD_OFFSETS: Final[Mapping[str, tuple[int, int]]] = MappingProxyType(
    {m.name: (m.offset, m.size) for m in SEGMENT_LAYOUT.members}
)
"""``member -> (offset, size)`` inside one 16-byte segment register."""

FIELD_KINDS: Final[Mapping[str, FieldKind]] = MappingProxyType(
    {name: kind for name, (_, _, kind) in _TOP_LEVEL.items()}
)
"""``field name -> kind`` for every top-level VMSA field, in layout order."""

FIELD_NAMES: Final[tuple[str, ...]] = tuple(FIELD_OFFSETS)
"""Every top-level VMSA field name, in layout (offset) order."""

SEGMENT_FIELDS: Final[tuple[str, ...]] = tuple(
    name for name, kind in FIELD_KINDS.items() if kind == "segment"
)
"""The ten segment-register fields: es, cs, ss, ds, fs, gs, gdtr, ldtr, idtr, tr."""

RESERVED_FIELDS: Final[tuple[str, ...]] = tuple(
    name for name in FIELD_NAMES if name.startswith("reserved_")
)
"""Every reserved byte range, named ``reserved_0x<offset>``, in offset order."""


def field_at(offset: int) -> str:
    """Return the name of the top-level field that contains byte ``offset`` of a VMSA."""
    if not 0 <= offset < VMSA_SIZE:
        raise ValueError(f"offset {offset:#x} is outside a {VMSA_SIZE:#x}-byte VMSA")
    for name, (start, size) in FIELD_OFFSETS.items():
        if start <= offset < start + size:
            return name
    raise AssertionError("unreachable: FIELD_OFFSETS covers the whole page")  # pragma: no cover


def _check_layout() -> None:
    """Refuse to import a layout with a hole (every byte of the page is a named field) or a
    segment group that is not a :data:`SEGMENT_LAYOUT`."""
    if VMSA_LAYOUT.reserved_ranges:  # pragma: no cover - guards edits to the table above
        raise RuntimeError(f"VMSA_LAYOUT leaves bytes unnamed: {VMSA_LAYOUT.reserved_ranges}")
    for g in VMSA_LAYOUT.groups.values():
        if g.size != SEGMENT_SIZE:  # pragma: no cover
            raise RuntimeError(f"VMSA_LAYOUT group {g.name} is not a segment register")


_check_layout()
