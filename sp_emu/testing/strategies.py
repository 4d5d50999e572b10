"""Hypothesis strategies for RMP entries and for the operations that change or consult the RMP.

Operations are plain frozen records (``RmpUpdate``, ``Psmash``, ...) whose ``repr`` is valid
Python, so a falsifying example printed by Hypothesis can be pasted into a regression test.
They name their arguments exactly as the keyword arguments of ``rmp.instructions`` and of
:class:`sp_emu.testing.rmp_reference.ReferenceRmp`.

The operations range over a small :class:`RmpSpace` (a few 2 MiB regions, a few page offsets,
ASIDs and GPAs) so that random sequences collide often enough to reach interesting states.
Strategies for guest operations accept ``owned``: ``(spa, gpa, asid)`` triples known to be
private pages of ``asid`` at ``gpa``, which they favour so that the RMP checks pass often.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TypeVar

from hypothesis import strategies as st

from rmp import access
from rmp import instructions as ins
from rmp.entry import PageSize, RmpEntry
from rmp.errors import RmpFault, RmpResult
from rmp.table import RmpTable
from sp_emu.testing.rmp_reference import ReferenceRmp, RefFault

__all__ = [
    "GuestAccess",
    "HostWrite",
    "Outcome",
    "Owned",
    "Psmash",
    "Pvalidate",
    "RmpAdjust",
    "RmpOp",
    "RmpRead",
    "RmpSpace",
    "RmpUpdate",
    "guest_access_ops",
    "host_write_ops",
    "psmash_ops",
    "pvalidate_ops",
    "raw_entry_bytes",
    "rmp_entries",
    "rmp_ops",
    "rmpadjust_ops",
    "rmpread_ops",
    "rmpupdate_ops",
    "run_on_reference",
    "run_on_table",
]

_4K = 0x1000
_2M = 0x200000

T = TypeVar("T")

Owned = tuple[int, int, int]
"""``(spa, gpa, asid)``: a page a guest owns, with the GPA the RMP records for it."""


# --- entries -----------------------------------------------------------------------------------
def rmp_entries() -> st.SearchStrategy[RmpEntry]:
    """Any :class:`RmpEntry` whose fields fit the raw layout (so it survives a byte round trip)."""
    return st.builds(
        RmpEntry,
        assigned=st.booleans(),
        page_size=st.sampled_from(PageSize),
        immutable=st.booleans(),
        validated=st.booleans(),
        vmsa=st.booleans(),
        asid=st.integers(0, 1023),
        gpa=st.integers(0, (1 << 39) - 1).map(lambda pfn: pfn << 12),
        perms=st.tuples(*[st.integers(0, 255)] * 4),
        subpage_count=st.integers(0, 511),
    )


def raw_entry_bytes() -> st.SearchStrategy[bytes]:
    """16 raw bytes as the CPU would leave them: lock bit equal to Immutable, and nothing in
    the quadword-1 bits above the four permission masks."""

    def fix(b: bytes) -> bytes:
        q0 = int.from_bytes(b[:8], "little")
        q0 = (q0 & ~(1 << 63)) | (((q0 >> 2) & 1) << 63)
        return q0.to_bytes(8, "little") + b[8:12] + bytes(4)

    return st.binary(min_size=16, max_size=16).map(fix)


# --- operation records -------------------------------------------------------------------------
@dataclass(frozen=True)
class RmpUpdate:
    spa: int
    gpa: int = 0
    assigned: bool = False
    page_size: int = 0
    immutable: bool = False
    asid: int = 0
    flags_reserved: int = 0
    current_asid: int = 0


@dataclass(frozen=True)
class Psmash:
    spa: int
    current_asid: int = 0


@dataclass(frozen=True)
class RmpRead:
    spa: int
    current_asid: int = 0


@dataclass(frozen=True)
class Pvalidate:
    spa: int
    gpa: int
    asid: int
    vmpl: int = 0
    page_size: int = 0
    validate: bool = True


@dataclass(frozen=True)
class RmpAdjust:
    spa: int
    gpa: int
    asid: int
    vmpl: int = 0
    page_size: int = 0
    target_vmpl: int = 1
    perms: int = 0
    vmsa: bool = False
    reserved: int = 0


@dataclass(frozen=True)
class HostWrite:
    spa: int


@dataclass(frozen=True)
class GuestAccess:
    spa: int
    gpa: int
    asid: int
    vmpl: int = 0
    perm: int = 0x01
    """The VMPL permission bit the access needs: 1 read, 2 write, 4 user / 8 supervisor exec."""
    private: bool = True
    npt_page_size: int = 0


RmpOp = RmpUpdate | Psmash | RmpRead | Pvalidate | RmpAdjust | HostWrite | GuestAccess


# --- the space operations range over -----------------------------------------------------------
@dataclass(frozen=True)
class RmpSpace:
    """A small corner of the machine: ``regions`` 2 MiB regions covered by the RMP."""

    regions: int = 2
    offsets: tuple[int, ...] = (0, 1, 2, 511)
    """4 KiB page offsets inside a region that operations pick (0 is the 2 MiB-aligned page)."""
    guest_asids: tuple[int, ...] = (1, 2)
    gpa_regions: tuple[int, ...] = (0, _2M, 3 * _2M)
    """2 MiB-aligned GPAs; 4 KiB GPAs are these plus an offset from ``offsets``."""

    @property
    def covered_pages(self) -> int:
        return self.regions * 512

    # The strategies are built once per space: a state machine draws from them at every step.
    @functools.cached_property
    def _regions(self) -> tuple[int, ...]:
        """Region indexes, each RMP region five times as likely as the first one beyond it."""
        return tuple(range(self.regions)) * 5 + (self.regions,)

    @functools.cached_property
    def _bases(self) -> st.SearchStrategy[int]:
        return st.sampled_from([r * _2M for r in self._regions])

    @functools.cached_property
    def _spas(self) -> st.SearchStrategy[int]:
        return st.sampled_from([r * _2M + off * _4K for r in self._regions for off in self.offsets])

    @functools.cached_property
    def _gpas_4k(self) -> st.SearchStrategy[int]:
        return st.sampled_from([g + off * _4K for g in self.gpa_regions for off in self.offsets])

    @functools.cached_property
    def _gpas_2m(self) -> st.SearchStrategy[int]:
        return st.sampled_from(self.gpa_regions)

    @functools.cached_property
    def _asids(self) -> st.SearchStrategy[int]:
        return st.sampled_from((*self.guest_asids, 0))

    def bases(self) -> st.SearchStrategy[int]:
        """sPAs of 2 MiB-aligned pages (now and then one just beyond the RMP)."""
        return self._bases

    def spas(self) -> st.SearchStrategy[int]:
        """sPAs of 4 KiB pages at the chosen offsets of every region (or just beyond)."""
        return self._spas

    def gpas(self, page_size: int = 0) -> st.SearchStrategy[int]:
        """GPAs of 2 MiB pages (``page_size`` 1) or of 4 KiB pages."""
        return self._gpas_2m if page_size else self._gpas_4k

    def asids(self) -> st.SearchStrategy[int]:
        """ASIDs for RMPUPDATE: mostly guests, sometimes 0 (firmware / hypervisor)."""
        return self._asids


def _rare(value: int, otherwise: int = 0) -> st.SearchStrategy[int]:
    """``otherwise`` most of the time, ``value`` now and then."""
    return st.sampled_from((otherwise,) * 15 + (value,))


# --- host operations ---------------------------------------------------------------------------
@st.composite
def _rmpupdate(draw: st.DrawFn, space: RmpSpace, well_formed: bool) -> RmpUpdate:
    page_size = draw(st.sampled_from((0, 0, 1)))
    spa = draw(space.bases() if page_size else space.spas())
    gpa = draw(space.gpas(page_size))
    if not well_formed and draw(st.integers(0, 15)) == 0:
        gpa += 0x1000  # now and then misaligned for a 2 MiB page
    assigned = draw(st.sampled_from((True, True, False)))
    if well_formed:
        return RmpUpdate(
            spa=spa,
            gpa=gpa,
            assigned=assigned,
            page_size=page_size,
            immutable=draw(st.sampled_from((False,) * 7 + (True,))),
            asid=draw(st.sampled_from(space.guest_asids)) if assigned else 0,
        )
    return RmpUpdate(
        spa=spa,
        gpa=gpa,
        assigned=assigned,
        page_size=page_size,
        immutable=draw(st.sampled_from((False, False, False, True))),
        asid=draw(space.asids()) if assigned else draw(_rare(1)),
        flags_reserved=draw(_rare(1 << 1)),
        current_asid=draw(_rare(1)),
    )


def rmpupdate_ops(space: RmpSpace, *, well_formed: bool = False) -> st.SearchStrategy[RmpUpdate]:
    """RMPUPDATEs over ``space``.  ``well_formed``: only a host's ordinary page conversions
    (a guest page, 4 KiB or 2 MiB, or back to the hypervisor), with no malformed input."""
    return _rmpupdate(space, well_formed)


def psmash_ops(space: RmpSpace) -> st.SearchStrategy[Psmash]:
    spa = st.sampled_from((True, True, True, False)).flatmap(
        lambda aligned: space.bases() if aligned else space.spas()
    )
    return st.builds(Psmash, spa=spa, current_asid=_rare(1))


def rmpread_ops(space: RmpSpace) -> st.SearchStrategy[RmpRead]:
    return st.builds(RmpRead, spa=space.spas(), current_asid=_rare(1))


def host_write_ops(space: RmpSpace) -> st.SearchStrategy[HostWrite]:
    return st.builds(HostWrite, spa=space.spas())


# --- guest operations --------------------------------------------------------------------------
@functools.lru_cache(maxsize=512)
def _cached(
    make: Callable[[RmpSpace, tuple[Owned, ...]], st.SearchStrategy[T]],
    space: RmpSpace,
    owned: tuple[Owned, ...],
) -> st.SearchStrategy[T]:
    # A state machine asks for the same (space, owned) again and again; building and
    # validating a fresh strategy each time costs more than running the operation.
    return make(space, owned)


@st.composite
def _target(
    draw: st.DrawFn, space: RmpSpace, owned: Sequence[Owned], page_size: int
) -> tuple[int, int, int]:
    """An (spa, gpa, asid) triple: usually an owned page, otherwise anything in the space."""
    if owned and draw(st.integers(0, 3)) != 0:
        spa, gpa, asid = draw(st.sampled_from(owned))
        if page_size and draw(st.booleans()):
            # A 2 MiB request at the 2 MiB-aligned page holding the owned page.
            spa, gpa = spa & ~(_2M - 1), gpa & ~(_2M - 1)
        elif draw(st.integers(0, 3)) == 0:
            # A near miss: the neighbouring GPA (inside a 2 MiB page, the wrong offset).
            gpa = gpa + _4K if gpa == 0 or draw(st.booleans()) else gpa - _4K
        return spa, gpa, asid
    return (
        draw(space.bases() if page_size else space.spas()),
        draw(space.gpas(page_size)),
        draw(st.sampled_from(space.guest_asids)),
    )


@st.composite
def _pvalidate(draw: st.DrawFn, space: RmpSpace, owned: Sequence[Owned]) -> Pvalidate:
    page_size = draw(st.sampled_from((0, 0, 1)))
    spa, gpa, asid = draw(_target(space, owned, page_size))
    return Pvalidate(
        spa=spa,
        gpa=gpa,
        asid=asid,
        vmpl=draw(_rare(1)),
        page_size=page_size,
        validate=draw(st.sampled_from((True, True, False))),
    )


def pvalidate_ops(space: RmpSpace, owned: Sequence[Owned] = ()) -> st.SearchStrategy[Pvalidate]:
    return _cached(_pvalidate, space, tuple(owned))


@st.composite
def _rmpadjust(draw: st.DrawFn, space: RmpSpace, owned: Sequence[Owned]) -> RmpAdjust:
    page_size = draw(st.sampled_from((0, 0, 1)))
    spa, gpa, asid = draw(_target(space, owned, page_size))
    vmpl = draw(st.sampled_from((0, 0, 1, 2)))
    higher = st.integers(vmpl + 1, 3)
    return RmpAdjust(
        spa=spa,
        gpa=gpa,
        asid=asid,
        vmpl=vmpl,
        page_size=page_size,
        target_vmpl=draw(st.one_of(higher, higher, higher, st.integers(0, 3))),
        # From VMPL1+ only a subset of the VMPL's own (usually empty) mask succeeds.
        perms=draw(
            st.sampled_from((0x00,) * 4 + (0x01, 0x03))
            if vmpl
            else st.sampled_from((0x00, 0x01, 0x03, 0x05, 0x0F, 0x1F, 0x20))
        ),
        vmsa=draw(st.booleans()),
        reserved=draw(_rare(1 << 17)),
    )


def rmpadjust_ops(space: RmpSpace, owned: Sequence[Owned] = ()) -> st.SearchStrategy[RmpAdjust]:
    return _cached(_rmpadjust, space, tuple(owned))


@st.composite
def _guest_access(draw: st.DrawFn, space: RmpSpace, owned: Sequence[Owned]) -> GuestAccess:
    spa, gpa, asid = draw(_target(space, owned, 0))
    return GuestAccess(
        spa=spa,
        gpa=gpa,
        asid=asid,
        vmpl=draw(st.integers(0, 3)),
        perm=draw(st.sampled_from((0x01, 0x02, 0x04, 0x08))),
        private=draw(st.sampled_from((True, True, False))),
        npt_page_size=draw(_rare(1)),
    )


def guest_access_ops(
    space: RmpSpace, owned: Sequence[Owned] = ()
) -> st.SearchStrategy[GuestAccess]:
    return _cached(_guest_access, space, tuple(owned))


def rmp_ops(space: RmpSpace, owned: Sequence[Owned] = ()) -> st.SearchStrategy[RmpOp]:
    """Any one RMP operation."""
    ops: list[st.SearchStrategy[RmpOp]] = [
        rmpupdate_ops(space),
        psmash_ops(space),
        rmpread_ops(space),
        pvalidate_ops(space, owned),
        rmpadjust_ops(space, owned),
        host_write_ops(space),
        guest_access_ops(space, owned),
    ]
    return st.one_of(ops)


# --- running an operation on either model ------------------------------------------------------
Outcome = tuple[object, ...]
"""What an operation did, in a form both models produce: ``("result", RmpResult)`` for
RMPUPDATE, PSMASH and RMPADJUST; ``("result", RmpResult, changed)`` for PVALIDATE (``changed``
None unless it succeeded); ``("result", RmpResult, readout)`` for RMPREAD; ``("ok",)`` for an
access that passed; ``("fault", vector, error_code)`` for anything that faulted."""


def _readout_key(readout: object) -> tuple[object, ...] | None:
    """The RMPREAD output fields (§2.3): GPA, ASSIGNED, PAGE_SIZE, IMMUTABLE, ASID and
    2MB_REGION_STATUS."""
    if readout is None:
        return None
    e = readout.entry  # type: ignore[attr-defined]
    return (
        hex(e.gpa),
        bool(e.assigned),
        int(e.page_size),
        bool(e.immutable),
        e.asid,
        readout.region_status,  # type: ignore[attr-defined]
    )


def _carry(result: RmpResult, changed: bool) -> bool | None:
    """PVALIDATE's "changed" (CF clear) only means something when it succeeded."""
    return changed if result is RmpResult.SUCCESS else None


def run_on_table(table: RmpTable, op: RmpOp) -> Outcome:
    """Apply ``op`` to an :class:`rmp.RmpTable` through ``rmp.instructions`` / ``rmp.access``."""
    try:
        if isinstance(op, RmpUpdate):
            return ("result", ins.rmpupdate(table, **asdict(op)))
        if isinstance(op, Psmash):
            return ("result", ins.psmash(table, **asdict(op)))
        if isinstance(op, RmpRead):
            result, readout = ins.rmpread(table, **asdict(op))
            return ("result", result, _readout_key(readout))
        if isinstance(op, Pvalidate):
            out = ins.pvalidate(table, **asdict(op))
            return ("result", out.result, _carry(out.result, out.changed))
        if isinstance(op, RmpAdjust):
            return ("result", ins.rmpadjust(table, **asdict(op)))
        if isinstance(op, HostWrite):
            access.check_host_write(table, op.spa)
            return ("ok",)
        args = asdict(op)
        args["access"] = access.Access(args.pop("perm"))
        access.check_guest_access(table, **args)
        return ("ok",)
    except RmpFault as fault:
        return ("fault", fault.vector.value, fault.error_code)


def run_on_reference(model: ReferenceRmp, op: RmpOp) -> Outcome:
    """Apply ``op`` to the reference model."""
    try:
        if isinstance(op, RmpUpdate):
            return ("result", model.rmpupdate(**asdict(op)))
        if isinstance(op, Psmash):
            return ("result", model.psmash(**asdict(op)))
        if isinstance(op, RmpRead):
            result, readout = model.rmpread(**asdict(op))
            return ("result", result, _readout_key(readout))
        if isinstance(op, Pvalidate):
            out = model.pvalidate(**asdict(op))
            return ("result", out.result, _carry(out.result, out.changed))
        if isinstance(op, RmpAdjust):
            return ("result", model.rmpadjust(**asdict(op)))
        if isinstance(op, HostWrite):
            model.host_write(op.spa)
            return ("ok",)
        model.guest_access(**asdict(op))
        return ("ok",)
    except RefFault as fault:
        return ("fault", fault.vector, fault.error_code)
