"""Typed, immutable view of one VMSA page.

:class:`Vmsa` is the domain type; :data:`vmsa.layout.VMSA_LAYOUT` is the wire format.
They are joined by exactly one conversion pair, :meth:`Vmsa.from_bytes` /
:meth:`Vmsa.to_bytes`, both of which go through that declaration (its ``struct`` codec, one
value per wire member in offset order; a segment register is four wire members).

Why the fields are spelled out here as well as in the layout: the layout is the single
source of *offsets and sizes*; this class is the single source of *static types*, so
that a misspelt register name in a builder is a ``mypy`` error and a ``TypeError`` at
run time rather than a silently ignored keyword (sev-snp-measure 0.0.13 passes
``fcw=`` instead of ``x87_fcw=`` to ctypes in its SVSM mode and the value is lost,
launch-measurement.md §9.6).  An import-time check refuses to load the module if the
two lists of names (or their kinds) ever disagree.
"""

from __future__ import annotations

from collections.abc import Mapping

from binlayout.records import fields, record, replace

from .errors import VmsaInvalid
from .layout import (
    FIELD_KINDS,
    FIELD_NAMES,
    FIELD_OFFSETS,
    SEGMENT_FIELD_OFFSETS,
    SEGMENT_FIELDS,
    VMSA_LAYOUT,
    VMSA_SIZE,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final

_SEGMENT_LIMITS: Final = tuple(
    (name, 1 << (8 * size)) for name, (_, size) in SEGMENT_FIELD_OFFSETS.items()
)


@record
class Segment:
    """One segment register as the VMSA stores it (vmsa-layout.md §1).

    ``attrib`` is the VMCB-compressed attribute word: bits 7:0 are descriptor byte 5
    (type, S, DPL, P) and bits 11:8 are the high nibble of descriptor byte 6
    (AVL, L, D/B, G).  E.g. 0x93 = present ring-0 read/write data, accessed;
    0x9B = present execute/read code, accessed; 0xC9B = 32-bit flat code.
    """

    selector: int = 0
    attrib: int = 0
    limit: int = 0
    base: int = 0

    def __post_init__(self) -> None:
        """Check each member is an int that fits its field; normalise int subclasses."""
        for name, bound in _SEGMENT_LIMITS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"Segment.{name} must be an int, not {type(value).__name__}")
            if not 0 <= value < bound:
                raise ValueError(f"Segment.{name} = {value:#x} does not fit in its field")
            if type(value) is not int:
                object.__setattr__(self, name, int(value))

    def to_dict(self) -> dict[str, int]:
        """The four members as a plain dict (the JSON shape; see :meth:`Vmsa.to_dict`)."""
        return {
            "selector": self.selector,
            "attrib": self.attrib,
            "limit": self.limit,
            "base": self.base,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, int]) -> Segment:
        """Inverse of :meth:`to_dict`; missing members are zero, unknown ones rejected."""
        unknown = set(data) - set(SEGMENT_FIELD_OFFSETS)
        if unknown:
            raise ValueError(f"unknown segment members: {sorted(unknown)}")
        return cls(**data)

    def __repr__(self) -> str:
        """Valid Python with hex members."""
        return (
            f"Segment(selector={self.selector:#x}, attrib={self.attrib:#x}, "
            f"limit={self.limit:#x}, base={self.base:#x})"
        )


ZERO_SEGMENT: Final = Segment()
"""A segment register whose four members are all zero."""

FieldValue = int | bytes | Segment
"""The value of one top-level VMSA field."""


def _zeros(name: str) -> bytes:
    """All-zero default for a byte field, sized from the layout (never re-typed here)."""
    return bytes(FIELD_OFFSETS[name][1])


@record
class Vmsa:
    """The register state of one vCPU as held in its VMSA page.

    Every field of the 4 KiB page is an attribute, named as in
    :data:`vmsa.layout.FIELD_OFFSETS`; a default-constructed ``Vmsa()`` is the
    all-zero page.  Integers are unsigned and must fit their field, byte fields must
    have their exact size; both are checked at construction.  Instances are frozen:
    derive a modified copy with :meth:`replace`.
    """

    es: Segment = ZERO_SEGMENT
    cs: Segment = ZERO_SEGMENT
    ss: Segment = ZERO_SEGMENT
    ds: Segment = ZERO_SEGMENT
    fs: Segment = ZERO_SEGMENT
    gs: Segment = ZERO_SEGMENT
    gdtr: Segment = ZERO_SEGMENT
    ldtr: Segment = ZERO_SEGMENT
    idtr: Segment = ZERO_SEGMENT
    tr: Segment = ZERO_SEGMENT
    pl0_ssp: int = 0
    pl1_ssp: int = 0
    pl2_ssp: int = 0
    pl3_ssp: int = 0
    u_cet: int = 0
    reserved_0x0c8: bytes = _zeros("reserved_0x0c8")
    vmpl: int = 0
    cpl: int = 0
    reserved_0x0cc: bytes = _zeros("reserved_0x0cc")
    efer: int = 0
    reserved_0x0d8: bytes = _zeros("reserved_0x0d8")
    xss: int = 0
    cr4: int = 0
    cr3: int = 0
    cr0: int = 0
    dr7: int = 0
    dr6: int = 0
    rflags: int = 0
    rip: int = 0
    dr0: int = 0
    dr1: int = 0
    dr2: int = 0
    dr3: int = 0
    dr0_addr_mask: int = 0
    dr1_addr_mask: int = 0
    dr2_addr_mask: int = 0
    dr3_addr_mask: int = 0
    reserved_0x1c0: bytes = _zeros("reserved_0x1c0")
    rsp: int = 0
    s_cet: int = 0
    ssp: int = 0
    isst_addr: int = 0
    rax: int = 0
    star: int = 0
    lstar: int = 0
    cstar: int = 0
    sfmask: int = 0
    kernel_gs_base: int = 0
    sysenter_cs: int = 0
    sysenter_esp: int = 0
    sysenter_eip: int = 0
    cr2: int = 0
    reserved_0x248: bytes = _zeros("reserved_0x248")
    g_pat: int = 0
    dbgctl: int = 0
    br_from: int = 0
    br_to: int = 0
    last_excp_from: int = 0
    last_excp_to: int = 0
    reserved_0x298: bytes = _zeros("reserved_0x298")
    pkru: int = 0
    tsc_aux: int = 0
    guest_tsc_scale: int = 0
    guest_tsc_offset: int = 0
    reg_prot_nonce: int = 0
    rcx: int = 0
    rdx: int = 0
    rbx: int = 0
    reserved_0x320: bytes = _zeros("reserved_0x320")
    rbp: int = 0
    rsi: int = 0
    rdi: int = 0
    r8: int = 0
    r9: int = 0
    r10: int = 0
    r11: int = 0
    r12: int = 0
    r13: int = 0
    r14: int = 0
    r15: int = 0
    reserved_0x380: bytes = _zeros("reserved_0x380")
    guest_exitinfo1: int = 0
    guest_exitinfo2: int = 0
    guest_exitintinfo: int = 0
    guest_nrip: int = 0
    sev_features: int = 0
    vintr_ctrl: int = 0
    guest_exit_code: int = 0
    virtual_tom: int = 0
    tlb_id: int = 0
    pcpu_id: int = 0
    event_inj: int = 0
    xcr0: int = 0
    reserved_0x3f0: bytes = _zeros("reserved_0x3f0")
    x87_dp: int = 0
    mxcsr: int = 0
    x87_ftw: int = 0
    x87_fsw: int = 0
    x87_fcw: int = 0
    x87_fop: int = 0
    x87_ds: int = 0
    x87_cs: int = 0
    x87_rip: int = 0
    fpreg_x87: bytes = _zeros("fpreg_x87")
    fpreg_xmm: bytes = _zeros("fpreg_xmm")
    fpreg_ymm: bytes = _zeros("fpreg_ymm")
    lbr_stack: bytes = _zeros("lbr_stack")
    lbr_select: int = 0
    ibs_fetch_ctl: int = 0
    ibs_fetch_linaddr: int = 0
    ibs_op_ctl: int = 0
    ibs_op_rip: int = 0
    ibs_op_data: int = 0
    ibs_op_data2: int = 0
    ibs_op_data3: int = 0
    ibs_dc_linaddr: int = 0
    bp_ibstgt_rip: int = 0
    ic_ibs_extd_ctl: int = 0
    reserved_0x7c8: bytes = _zeros("reserved_0x7c8")
    fpreg_ki: bytes = _zeros("fpreg_ki")
    fpreg_zmmhi: bytes = _zeros("fpreg_zmmhi")
    fpreg_hizmm: bytes = _zeros("fpreg_hizmm")
    reserved_0xfc0: bytes = _zeros("reserved_0xfc0")

    def __post_init__(self) -> None:
        """Check every value against its field's kind and size; normalise subclasses."""
        for name, bound in _INT_BOUNDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"Vmsa.{name} must be an int, not {type(value).__name__}")
            if not 0 <= value < bound:
                raise ValueError(f"Vmsa.{name} = {value:#x} does not fit in its field")
            if type(value) is not int:  # e.g. an IntFlag: store the plain number
                object.__setattr__(self, name, int(value))
        for name, size in _BYTES_SIZES:
            value = getattr(self, name)
            if not isinstance(value, bytes | bytearray | memoryview):
                raise TypeError(f"Vmsa.{name} must be bytes, not {type(value).__name__}")
            if len(value) != size:
                raise ValueError(f"Vmsa.{name} must be {size} bytes, got {len(value)}")
            if type(value) is not bytes:
                object.__setattr__(self, name, bytes(value))
        for name in SEGMENT_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, Segment):
                raise TypeError(f"Vmsa.{name} must be a Segment, not {type(value).__name__}")

    # --- wire format ---------------------------------------------------------------------

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> Vmsa:
        """Parse a 4096-byte VMSA page.

        Raises :class:`vmsa.errors.VmsaInvalid` (field ``"length"``) if ``data`` is not
        exactly one page.  No other check is made here: use :func:`vmsa.check_vmsa`.
        """
        if len(data) != VMSA_SIZE:
            raise VmsaInvalid("length", f"a VMSA is {VMSA_SIZE} bytes, got {len(data)}")
        values: dict[str, Any] = {}
        segments: dict[str, dict[str, int]] = {name: {} for name in SEGMENT_FIELDS}
        for (name, member), value in zip(_WIRE_PLAN, VMSA_LAYOUT.unpack(data), strict=True):
            if member is None:
                values[name] = value
            else:
                segments[name][member] = value
        for name, members in segments.items():
            values[name] = Segment(**members)
        return cls(**values)

    def to_bytes(self) -> bytes:
        """Serialise to the 4096-byte page, through :data:`vmsa.layout.VMSA_LAYOUT`."""
        return VMSA_LAYOUT.pack(
            [
                getattr(self, name) if member is None else getattr(getattr(self, name), member)
                for name, member in _WIRE_PLAN
            ]
        )

    # --- generic access ------------------------------------------------------------------

    def __getitem__(self, name: str) -> FieldValue:
        """The value of field ``name`` (for code that iterates over ``FIELD_NAMES``)."""
        if name not in FIELD_KINDS:
            raise KeyError(name)
        value: FieldValue = getattr(self, name)
        return value

    def replace(self, **changes: Any) -> Vmsa:
        """A copy with ``changes`` applied (field names are checked)."""
        return replace(self, **changes)

    def diff(self, other: Vmsa) -> list[tuple[str, FieldValue, FieldValue]]:
        """Field-by-field differences, in offset order, as ``(field, self_value, other_value)``.

        Segment registers are compared member by member and reported as ``"cs.base"``
        etc. with integer values; byte fields are reported whole.
        """
        out: list[tuple[str, FieldValue, FieldValue]] = []
        for name in FIELD_NAMES:
            mine = getattr(self, name)
            theirs = getattr(other, name)
            if mine == theirs:
                continue
            if isinstance(mine, Segment):
                for member in SEGMENT_FIELD_OFFSETS:
                    a, b = getattr(mine, member), getattr(theirs, member)
                    if a != b:
                        out.append((f"{name}.{member}", a, b))
            else:
                out.append((name, mine, theirs))
        return out

    # --- JSON ----------------------------------------------------------------------------

    def to_dict(self, *, omit_zero: bool = False) -> dict[str, Any]:
        """JSON-ready dict: ints stay ints, byte fields become lower-case hex strings,
        segments become ``{"selector", "attrib", "limit", "base"}`` dicts.

        With ``omit_zero=True`` fields equal to their all-zero default are left out
        (``from_dict`` restores them).
        """
        out: dict[str, Any] = {}
        for name in FIELD_NAMES:
            value = getattr(self, name)
            if omit_zero and value == _DEFAULTS[name]:
                continue
            if isinstance(value, Segment):
                out[name] = value.to_dict()
            elif isinstance(value, bytes):
                out[name] = value.hex()
            else:
                out[name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Vmsa:
        """Inverse of :meth:`to_dict`; missing fields are zero, unknown ones rejected."""
        unknown = set(data) - set(FIELD_KINDS)
        if unknown:
            raise ValueError(f"unknown VMSA fields: {sorted(unknown)}")
        values: dict[str, Any] = {}
        for name, value in data.items():
            kind = FIELD_KINDS[name]
            if kind == "segment":
                values[name] = value if isinstance(value, Segment) else Segment.from_dict(value)
            elif kind == "bytes" and isinstance(value, str):
                values[name] = bytes.fromhex(value)
            else:
                values[name] = value
        return cls(**values)

    def __repr__(self) -> str:
        """Valid Python that rebuilds this value, listing only non-zero fields."""
        parts = []
        for name in FIELD_NAMES:
            value = getattr(self, name)
            if value == _DEFAULTS[name]:
                continue
            if isinstance(value, int):
                parts.append(f"{name}={value:#x}")
            elif isinstance(value, bytes):
                parts.append(f"{name}=bytes.fromhex({value.hex()!r})")
            else:
                parts.append(f"{name}={value!r}")
        return f"Vmsa({', '.join(parts)})"


_WIRE_PLAN: Final[tuple[tuple[str, str | None], ...]] = tuple(
    (m.name, None) if m.group is None else (m.group.name, m.name.removeprefix(m.group.name + "_"))
    for m in VMSA_LAYOUT.members
)
"""For each wire member of :data:`VMSA_LAYOUT`, in offset order: the :class:`Vmsa` field it
belongs to and, for a segment register, which :class:`Segment` member it is."""
_INT_BOUNDS: Final = tuple(
    (name, 1 << (8 * FIELD_OFFSETS[name][1])) for name, k in FIELD_KINDS.items() if k == "int"
)
_BYTES_SIZES: Final = tuple(
    (name, FIELD_OFFSETS[name][1]) for name, k in FIELD_KINDS.items() if k == "bytes"
)
_DEFAULTS: Final[Mapping[str, Any]] = {f.name: f.default for f in fields(Vmsa)}


def _check_model_matches_layout() -> None:
    """Refuse to import if :class:`Vmsa`'s fields drift from the layout's."""
    annotation_of = {"int": "int", "bytes": "bytes", "segment": "Segment"}
    annotations = Vmsa.__annotations__
    if tuple(annotations) != FIELD_NAMES:  # pragma: no cover - guards edits
        raise RuntimeError("Vmsa fields and VMSA_LAYOUT members differ (names or order)")
    for name, annotation in annotations.items():
        if annotation != annotation_of[FIELD_KINDS[name]]:  # pragma: no cover - guards edits
            raise RuntimeError(f"Vmsa.{name} is annotated {annotation}, layout says otherwise")
    if tuple(f.name for f in fields(Segment)) != tuple(SEGMENT_FIELD_OFFSETS):
        raise RuntimeError("Segment fields and SEGMENT_LAYOUT members differ")  # pragma: no cover


_check_model_matches_layout()
