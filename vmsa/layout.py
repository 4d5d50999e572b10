"""Byte layout of the VMSA: the 4 KiB SEV-ES / SEV-SNP guest save area.

When an SEV-ES or SEV-SNP guest exits, the CPU saves the guest's register state into
this encrypted page instead of the (host-readable) VMCB save area, and VMRUN restores
it from there.  The VMSA is therefore exactly one 4 KiB page, and its byte layout is
fixed by the hardware (AMD APM vol. 2, table B-4; restated in
``/work/shared/reference/vmsa-layout.md`` §1-§2, cross-checked between sev-snp-measure,
COCONUT-SVSM, the ``sev`` crate, Linux ``struct sev_es_save_area`` and the Genoa SEV
firmware).

The whole page is declared **once**, below, as the ``construct`` Struct :data:`VMSA_LAYOUT`.
Every other table in this package (field offsets and sizes, the list of reserved
ranges, the kind of each field) is *computed* from that declaration, never re-typed.

Conventions:

* All integers are little-endian.
* Reserved ranges are real named byte fields, ``reserved_0x<offset>`` with a
  three-digit offset, so they survive a parse/build round trip and can be checked
  (:mod:`vmsa.validate`); nothing is hidden behind ``Padding``.
* The ten segment registers use the 16-byte VMCB segment format :data:`SEGMENT_LAYOUT`.
* Arrays of architectural registers (DR0-DR3, R8-R15) are spelled out as one field
  each; opaque register files (x87, XMM, YMM, the LBR stack, AVX-512 state) are byte
  fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final, Literal

import construct as c

VMSA_SIZE: Final = 0x1000
"""Size of a VMSA page in bytes (one 4 KiB page)."""

U64_MASK: Final = (1 << 64) - 1
"""All ones in a 64-bit field (the widest integer field of the VMSA)."""

SEGMENT_SIZE: Final = 16
"""Size of one VMCB-format segment register in bytes."""

SEGMENT_LAYOUT: Final[Any] = c.Struct(
    # Selector value loaded into the segment register.
    "selector" / c.Int16ul,
    # VMCB-compressed attributes: bits 7:0 = descriptor byte 5 (type, S, DPL, P),
    # bits 11:8 = descriptor byte 6 bits 7:4 (AVL, L, D/B, G).  vmsa-layout.md §1.
    "attrib" / c.Int16ul,
    # Segment limit, already expanded to bytes (no granularity scaling).
    "limit" / c.Int32ul,
    # Segment base address.
    "base" / c.Int64ul,
)
"""One segment register in the VMCB/VMSA format (vmsa-layout.md §1)."""


def _u8(name: str) -> Any:
    """A named little-endian 8-bit unsigned field."""
    return name / c.Int8ul


def _u16(name: str) -> Any:
    """A named little-endian 16-bit unsigned field."""
    return name / c.Int16ul


def _u32(name: str) -> Any:
    """A named little-endian 32-bit unsigned field."""
    return name / c.Int32ul


def _u64(name: str) -> Any:
    """A named little-endian 64-bit unsigned field."""
    return name / c.Int64ul


def _raw(name: str, size: int) -> Any:
    """A named field of ``size`` opaque bytes (register files and reserved ranges)."""
    return name / c.Bytes(size)


def _seg(name: str) -> Any:
    """A named 16-byte segment register."""
    return name / SEGMENT_LAYOUT


VMSA_LAYOUT: Final[Any] = c.Struct(
    # 0x000: segment registers, 16 bytes each.
    _seg("es"),  # 0x000
    _seg("cs"),  # 0x010
    _seg("ss"),  # 0x020
    _seg("ds"),  # 0x030
    _seg("fs"),  # 0x040
    _seg("gs"),  # 0x050
    _seg("gdtr"),  # 0x060 (only base and limit are meaningful)
    _seg("ldtr"),  # 0x070
    _seg("idtr"),  # 0x080 (only base and limit are meaningful)
    _seg("tr"),  # 0x090
    # 0x0A0: CET shadow-stack pointers (Linux/sev-snp-measure call them vmplN_ssp).
    _u64("pl0_ssp"),  # 0x0A0
    _u64("pl1_ssp"),  # 0x0A8
    _u64("pl2_ssp"),  # 0x0B0
    _u64("pl3_ssp"),  # 0x0B8
    _u64("u_cet"),  # 0x0C0
    _raw("reserved_0x0c8", 2),  # 0x0C8
    _u8("vmpl"),  # 0x0CA: the VMPL this vCPU state runs at (0-3)
    _u8("cpl"),  # 0x0CB
    _raw("reserved_0x0cc", 4),  # 0x0CC
    _u64("efer"),  # 0x0D0
    _raw("reserved_0x0d8", 104),  # 0x0D8
    _u64("xss"),  # 0x140
    _u64("cr4"),  # 0x148
    _u64("cr3"),  # 0x150
    _u64("cr0"),  # 0x158
    _u64("dr7"),  # 0x160
    _u64("dr6"),  # 0x168
    _u64("rflags"),  # 0x170
    _u64("rip"),  # 0x178
    _u64("dr0"),  # 0x180
    _u64("dr1"),  # 0x188
    _u64("dr2"),  # 0x190
    _u64("dr3"),  # 0x198
    _u64("dr0_addr_mask"),  # 0x1A0
    _u64("dr1_addr_mask"),  # 0x1A8
    _u64("dr2_addr_mask"),  # 0x1B0
    _u64("dr3_addr_mask"),  # 0x1B8
    _raw("reserved_0x1c0", 24),  # 0x1C0
    _u64("rsp"),  # 0x1D8
    _u64("s_cet"),  # 0x1E0
    _u64("ssp"),  # 0x1E8
    _u64("isst_addr"),  # 0x1F0
    _u64("rax"),  # 0x1F8
    _u64("star"),  # 0x200
    _u64("lstar"),  # 0x208
    _u64("cstar"),  # 0x210
    _u64("sfmask"),  # 0x218
    _u64("kernel_gs_base"),  # 0x220
    _u64("sysenter_cs"),  # 0x228
    _u64("sysenter_esp"),  # 0x230
    _u64("sysenter_eip"),  # 0x238
    _u64("cr2"),  # 0x240
    _raw("reserved_0x248", 32),  # 0x248
    _u64("g_pat"),  # 0x268
    _u64("dbgctl"),  # 0x270
    _u64("br_from"),  # 0x278
    _u64("br_to"),  # 0x280
    _u64("last_excp_from"),  # 0x288
    _u64("last_excp_to"),  # 0x290
    _raw("reserved_0x298", 80),  # 0x298
    _u32("pkru"),  # 0x2E8
    _u32("tsc_aux"),  # 0x2EC (COCONUT-SVSM marks it reserved)
    _u64("guest_tsc_scale"),  # 0x2F0: Secure TSC; zeroed for measurement
    _u64("guest_tsc_offset"),  # 0x2F8: Secure TSC; zeroed for measurement
    _u64("reg_prot_nonce"),  # 0x300: register-protection tweak, written by firmware
    _u64("rcx"),  # 0x308
    _u64("rdx"),  # 0x310
    _u64("rbx"),  # 0x318
    _raw("reserved_0x320", 8),  # 0x320 (the slot RSP would have)
    _u64("rbp"),  # 0x328
    _u64("rsi"),  # 0x330
    _u64("rdi"),  # 0x338
    _u64("r8"),  # 0x340
    _u64("r9"),  # 0x348
    _u64("r10"),  # 0x350
    _u64("r11"),  # 0x358
    _u64("r12"),  # 0x360
    _u64("r13"),  # 0x368
    _u64("r14"),  # 0x370
    _u64("r15"),  # 0x378
    _raw("reserved_0x380", 16),  # 0x380: SEV-ES CRC bookkeeping; SNP firmware writes 0/~0
    _u64("guest_exitinfo1"),  # 0x390
    _u64("guest_exitinfo2"),  # 0x398
    _u64("guest_exitintinfo"),  # 0x3A0 (event format, vmsa-layout.md §3.3)
    _u64("guest_nrip"),  # 0x3A8
    _u64("sev_features"),  # 0x3B0 (vmsa.features.SevFeatures)
    _u64("vintr_ctrl"),  # 0x3B8 (vmsa-layout.md §3.2)
    _u64("guest_exit_code"),  # 0x3C0
    _u64("virtual_tom"),  # 0x3C8
    _u64("tlb_id"),  # 0x3D0
    _u64("pcpu_id"),  # 0x3D8
    _u64("event_inj"),  # 0x3E0 (event format, vmsa-layout.md §3.3)
    _u64("xcr0"),  # 0x3E8
    _raw("reserved_0x3f0", 16),  # 0x3F0
    # 0x400: floating-point state.
    _u64("x87_dp"),  # 0x400
    _u32("mxcsr"),  # 0x408
    _u16("x87_ftw"),  # 0x40C
    _u16("x87_fsw"),  # 0x40E
    _u16("x87_fcw"),  # 0x410
    _u16("x87_fop"),  # 0x412
    _u16("x87_ds"),  # 0x414
    _u16("x87_cs"),  # 0x416
    _u64("x87_rip"),  # 0x418
    # ST0-ST7: bytes 0-7 of STi at 0x420 + 8*i, bytes 8-9 at 0x460 + 2*i (not FXSAVE order).
    _raw("fpreg_x87", 80),  # 0x420
    _raw("fpreg_xmm", 256),  # 0x470: XMM0-XMM15
    _raw("fpreg_ymm", 256),  # 0x570: upper 128 bits of YMM0-YMM15
    _raw("lbr_stack", 256),  # 0x670: LBR from/to pairs
    _u64("lbr_select"),  # 0x770
    _u64("ibs_fetch_ctl"),  # 0x778
    _u64("ibs_fetch_linaddr"),  # 0x780
    _u64("ibs_op_ctl"),  # 0x788
    _u64("ibs_op_rip"),  # 0x790
    _u64("ibs_op_data"),  # 0x798
    _u64("ibs_op_data2"),  # 0x7A0
    _u64("ibs_op_data3"),  # 0x7A8
    _u64("ibs_dc_linaddr"),  # 0x7B0
    _u64("bp_ibstgt_rip"),  # 0x7B8
    _u64("ic_ibs_extd_ctl"),  # 0x7C0
    _raw("reserved_0x7c8", 0x1B8),  # 0x7C8
    _raw("fpreg_ki", 64),  # 0x980: AVX-512 opmask K0-K7
    _raw("fpreg_zmmhi", 512),  # 0x9C0: upper 256 bits of ZMM0-ZMM15
    _raw("fpreg_hizmm", 1024),  # 0xBC0: ZMM16-ZMM31
    _raw("reserved_0xfc0", 64),  # 0xFC0: processor history; SEV-ES CRC covers 0x000-0xFBF
)
"""The whole VMSA page (vmsa-layout.md §2).  Parse and build with this Struct only."""

VMSA_CODEC: Final[Any] = VMSA_LAYOUT.compile()
""":data:`VMSA_LAYOUT` compiled by ``construct`` to Python source (same bytes, ~10x faster)."""

FieldKind = Literal["int", "bytes", "segment"]
"""How a VMSA field is represented: an unsigned integer, raw bytes, or a segment register."""


def _kind(subcon: Any) -> FieldKind:
    """Classify one member of :data:`VMSA_LAYOUT` by its construct type."""
    inner = subcon.subcon  # strip the Renamed wrapper that carries the name
    if inner is SEGMENT_LAYOUT:
        return "segment"
    if isinstance(inner, c.FormatField):
        return "int"
    if isinstance(inner, c.Bytes):
        return "bytes"
    raise TypeError(f"unexpected construct type in VMSA_LAYOUT: {inner!r}")


def _offsets(struct: Any) -> dict[str, tuple[int, int]]:
    """Walk ``struct``'s members in order, summing their fixed sizes."""
    table: dict[str, tuple[int, int]] = {}
    pos = 0
    for member in struct.subcons:
        size = member.sizeof()
        table[member.name] = (pos, size)
        pos += size
    return table


FIELD_OFFSETS: Final[Mapping[str, tuple[int, int]]] = MappingProxyType(_offsets(VMSA_LAYOUT))
"""``field name -> (offset, size)`` for every top-level VMSA field, in layout order."""

SEGMENT_FIELD_OFFSETS: Final[Mapping[str, tuple[int, int]]] = MappingProxyType(
    _offsets(SEGMENT_LAYOUT)
)
"""``member -> (offset, size)`` inside one 16-byte segment register."""

FIELD_KINDS: Final[Mapping[str, FieldKind]] = MappingProxyType(
    {member.name: _kind(member) for member in VMSA_LAYOUT.subcons}
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


def _check_total_size() -> None:
    """Refuse to import a layout that does not cover exactly one page."""
    total = VMSA_LAYOUT.sizeof()
    if total != VMSA_SIZE:  # pragma: no cover - guards edits to the table above
        raise RuntimeError(f"VMSA_LAYOUT is {total:#x} bytes, expected {VMSA_SIZE:#x}")
    if SEGMENT_LAYOUT.sizeof() != SEGMENT_SIZE:  # pragma: no cover
        raise RuntimeError("SEGMENT_LAYOUT is not 16 bytes")


_check_total_size()
