"""A slow, obviously-correct reference model of the RMP and the five SNP instructions.

Written from the facts digest (``rmp-and-instructions.md`` §2-§6), independently of the
``rmp`` package: it borrows only its vocabulary (:class:`rmp.RmpResult`, :class:`rmp.PageState`).
The table is a plain dict from PFN to a mutable :class:`RefEntry`; nothing is bit-packed, and
the 2 MiB sub-page count the CPU keeps is recomputed by counting.  Every rule is written the
way the digest states it, so that a disagreement with ``rmp`` points at one of the two.

Where the digest is silent or marks a behaviour unconfirmed, the model makes the same choice
as ``rmp`` and says so with "inference" in a comment; those are the places to revisit when a
better source turns up.

Faults are raised as :class:`RefFault` carrying the vector name and the error code, so a test
can compare them with ``rmp.RmpFault`` without the two sharing code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from rmp.entry import PageState
from rmp.errors import RmpResult

__all__ = [
    "ERR_ENC",
    "ERR_FETCH",
    "ERR_PRESENT",
    "ERR_RMP",
    "ERR_SIZEM",
    "ERR_VMPL",
    "ERR_WRITE",
    "PAGE_2M",
    "PAGE_4K",
    "PERM_EXEC_SUPERVISOR",
    "PERM_EXEC_USER",
    "PERM_FULL",
    "PERM_READ",
    "PERM_WRITE",
    "VC_NOT_VALIDATED",
    "EntryFields",
    "RefEntry",
    "RefFault",
    "RefPvalidate",
    "RefReadout",
    "ReferenceRmp",
    "comparable",
    "page_state",
]

# --- constants, restated from the digest ------------------------------------------------------
KIB4 = 4096
MIB2 = 2 * 1024 * 1024
PAGES_PER_2M = 512
PAGE_4K = 0
PAGE_2M = 1
ASID_COUNT = 1024  # the raw entry's ASID field is 10 bits wide (§2.2)
GPA_LIMIT = 1 << 51  # the raw entry holds GPA bits 50:12 (§2.2)

# VMPL permission bits (§2.4).
PERM_READ = 0x01
PERM_WRITE = 0x02
PERM_EXEC_USER = 0x04
PERM_EXEC_SUPERVISOR = 0x08
PERM_SHADOW_STACK = 0x10
PERM_FULL = PERM_READ | PERM_WRITE | PERM_EXEC_USER | PERM_EXEC_SUPERVISOR | PERM_SHADOW_STACK

# Page-fault error-code bits.  31/34/35/36 are the RMP-specific ones the digest lists (§6, from
# KVM's PFERR_GUEST_*); 0 (present), 1 (write) and 4 (instruction fetch) are the ordinary x86
# page-fault error-code bits.
ERR_PRESENT = 1 << 0
ERR_WRITE = 1 << 1
ERR_FETCH = 1 << 4
ERR_RMP = 1 << 31
ERR_ENC = 1 << 34
ERR_SIZEM = 1 << 35
ERR_VMPL = 1 << 36

VC_NOT_VALIDATED = 0x404  # #VC exit code for "page not validated" (§6, unconfirmed value)

# Firmware markers kept in GPA bits 50:48 of firmware-owned entries (§2.2).
MARKER_SHIFT = 48
MARKER_METADATA = 1
MARKER_FIRMWARE_IOMMU = 2


# --- the entry ---------------------------------------------------------------------------------
def _initial_perms() -> list[int]:
    """What RMPUPDATE resets the masks to: VMPL0 full, VMPL1-3 none (§2.4)."""
    return [PERM_FULL, 0, 0, 0]


@dataclass
class RefEntry:
    """One RMP entry, field by field (§2.1).  ``gpa`` is a page-aligned byte address."""

    assigned: bool = False
    page_size: int = PAGE_4K
    immutable: bool = False
    validated: bool = False
    vmsa: bool = False
    asid: int = 0
    gpa: int = 0
    perms: list[int] = field(default_factory=lambda: [0, 0, 0, 0])

    def copy(self) -> RefEntry:
        return RefEntry(
            self.assigned,
            self.page_size,
            self.immutable,
            self.validated,
            self.vmsa,
            self.asid,
            self.gpa,
            list(self.perms),
        )

    @classmethod
    def from_fields(cls, e: EntryFields) -> RefEntry:
        """A reference entry with the fields of any entry-like object (e.g. ``rmp.RmpEntry``)."""
        return cls(
            assigned=bool(e.assigned),
            page_size=int(e.page_size),
            immutable=bool(e.immutable),
            validated=bool(e.validated),
            vmsa=bool(e.vmsa),
            asid=int(e.asid),
            gpa=int(e.gpa),
            perms=[int(p) for p in e.perms],
        )

    @property
    def state(self) -> PageState:
        return page_state(self)


class EntryFields(Protocol):
    """What :func:`comparable` reads: the field names shared by ``RefEntry`` and ``RmpEntry``."""

    @property
    def assigned(self) -> bool: ...
    @property
    def page_size(self) -> int: ...
    @property
    def immutable(self) -> bool: ...
    @property
    def validated(self) -> bool: ...
    @property
    def vmsa(self) -> bool: ...
    @property
    def asid(self) -> int: ...
    @property
    def gpa(self) -> int: ...
    @property
    def perms(self) -> Sequence[int]: ...


def comparable(e: EntryFields) -> tuple[object, ...]:
    """The fields of an entry that two RMP models must agree on, plus its page state.

    The VMPL masks of an unassigned entry are left out: nothing reads them (every assignment
    resets them), and ``rmp`` stores 0 where the digest (§2.4) says RMPUPDATE resets them to
    VMPL0-full, a known, unobservable difference.
    """
    ref = RefEntry.from_fields(e)
    perms = tuple(ref.perms) if ref.assigned else None
    return (
        page_state(ref).name,
        ref.assigned,
        ref.page_size,
        ref.immutable,
        ref.validated,
        ref.vmsa,
        ref.asid,
        hex(ref.gpa),
        perms,
    )


def page_state(e: RefEntry) -> PageState:
    """The firmware's page state of an entry: the rows of the §3 table, first match wins
    (the digest notes FIRMWARE is tested before METADATA)."""
    marker = e.gpa >> MARKER_SHIFT
    below_marker = e.gpa & ((1 << MARKER_SHIFT) - 1)
    fw = e.assigned and not e.validated and e.asid == 0 and e.immutable
    rows: list[tuple[bool, PageState]] = [
        (
            not e.assigned and not e.validated and e.asid == 0 and not e.immutable,
            PageState.HYPERVISOR,
        ),
        (not e.assigned and not e.validated and e.asid == 0 and e.immutable, PageState.HV_FIXED),
        (fw and e.gpa == 0 and not e.vmsa, PageState.FIRMWARE),
        (
            fw and marker == MARKER_FIRMWARE_IOMMU and below_marker == KIB4 and not e.vmsa,
            PageState.FIRMWARE_IOMMU,
        ),
        (fw and e.gpa == 0 and e.vmsa, PageState.CONTEXT),
        # The digest gives "marker 1 + sPA>>12 of the owning context page"; any owner is
        # accepted here, as in ``rmp`` (inference: the digest states no range).
        (fw and marker == MARKER_METADATA, PageState.METADATA),
        (
            e.assigned and not e.validated and e.asid == 0 and not e.immutable,
            PageState.RECLAIM,
        ),
        (e.assigned and not e.validated and e.asid != 0 and e.immutable, PageState.PRE_GUEST),
        (e.assigned and e.validated and e.asid != 0 and e.immutable, PageState.PRE_SWAP),
        (
            e.assigned and not e.validated and e.asid != 0 and not e.immutable,
            PageState.GUEST_INVALID,
        ),
        (e.assigned and e.validated and e.asid != 0 and not e.immutable, PageState.GUEST_VALID),
    ]
    for matches, state in rows:
        if matches:
            return state
    return PageState.INVALID


# --- outcomes ----------------------------------------------------------------------------------
class RefFault(Exception):
    """A fault the instruction or access raised instead of completing."""

    def __init__(self, vector: str, error_code: int, reason: str) -> None:
        super().__init__(f"{vector} {error_code:#x}: {reason}")
        self.vector = vector
        self.error_code = error_code
        self.reason = reason


@dataclass(frozen=True)
class RefPvalidate:
    """PVALIDATE's RAX and whether the Validated bit changed (``changed`` False means CF=1)."""

    result: RmpResult
    changed: bool = True


@dataclass(frozen=True)
class RefReadout:
    """What RMPREAD reports (§2.3/§4.3): the governing entry and 2MB_REGION_STATUS."""

    entry: RefEntry
    region_status: bool


# --- the model ---------------------------------------------------------------------------------
_HYPERVISOR = RefEntry()  # what an entry nobody has written holds; never modified


class ReferenceRmp:
    """RMP entries for system pages ``0 .. covered_pages - 1``, all HYPERVISOR at first."""

    def __init__(self, covered_pages: int) -> None:
        self.covered_pages = covered_pages
        self.entries: dict[int, RefEntry] = {}

    # .. table access ..
    def covers(self, pfn: int) -> bool:
        return 0 <= pfn < self.covered_pages

    def get(self, pfn: int) -> RefEntry:
        """A copy of ``pfn``'s own entry."""
        return self._peek(pfn).copy()

    def _peek(self, pfn: int) -> RefEntry:
        """``pfn``'s own entry, for reading only."""
        return self.entries.get(pfn, _HYPERVISOR)

    def _entry(self, pfn: int) -> RefEntry:
        """``pfn``'s own entry, for modification in place."""
        if pfn not in self.entries:
            self.entries[pfn] = RefEntry()
        return self.entries[pfn]

    def subpage_count(self, pfn: int) -> int:
        """The sub-page count the CPU keeps in a 2 MiB-aligned entry: how many of the other
        511 entries of the region are assigned (0 for an entry that is not 2 MiB aligned)."""
        if pfn % PAGES_PER_2M:
            return 0
        return sum(1 for i in range(1, PAGES_PER_2M) if self._peek(pfn + i).assigned)

    def governing_pfn(self, pfn: int) -> int:
        """The entry the CPU consults for ``pfn``: the 2 MiB-aligned entry of its region when
        that entry is an assigned 2 MiB page, else ``pfn``'s own (§2.1 Page_Size, §3 note)."""
        base = pfn - pfn % PAGES_PER_2M
        head = self._peek(base)
        if head.assigned and head.page_size == PAGE_2M:
            return base
        return pfn

    def states(self) -> dict[int, PageState]:
        """Page state of every entry that is not plain HYPERVISOR."""
        out: dict[int, PageState] = {}
        for pfn in sorted(self.entries):
            s = page_state(self.entries[pfn])
            if s is not PageState.HYPERVISOR:
                out[pfn] = s
        return out

    # .. RMPUPDATE (§4.1) ..
    def rmpupdate(
        self,
        spa: int,
        *,
        gpa: int = 0,
        assigned: bool = False,
        page_size: int = PAGE_4K,
        immutable: bool = False,
        asid: int = 0,
        flags_reserved: int = 0,
        current_asid: int = 0,
    ) -> RmpResult:
        if current_asid != 0:
            return RmpResult.FAIL_PERMISSION  # hypervisor only
        pfn = spa // KIB4
        size = MIB2 if page_size == PAGE_2M else KIB4
        # FAIL_INPUT: the digest's examples are unconfirmed; this list is the same set of
        # "invalid parameter" readings ``rmp`` uses (inference).
        if (
            flags_reserved != 0
            or spa % KIB4 != 0
            or not self.covers(pfn)
            or page_size not in (PAGE_4K, PAGE_2M)
            or not 0 <= asid < ASID_COUNT
            or not 0 <= gpa < GPA_LIMIT
            or (assigned and gpa % size != 0)
            or spa % size != 0
        ):
            return RmpResult.FAIL_INPUT
        old = self.get(pfn)
        if old.immutable:
            return RmpResult.FAIL_PERMISSION
        base = pfn - pfn % PAGES_PER_2M
        if page_size == PAGE_2M:
            # A 2 MiB entry while a 4 KiB entry of the region is assigned.  (Inference: also
            # when the 2 MiB update itself unassigns, as in ``rmp``.)
            if any(self._peek(base + i).assigned for i in range(1, PAGES_PER_2M)):
                return RmpResult.FAIL_OVERLAP
        else:
            # A 4 KiB entry inside an assigned 2 MiB page (the 2 MiB-aligned page included).
            head = self.get(base)
            if head.assigned and head.page_size == PAGE_2M:
                return RmpResult.FAIL_OVERLAP

        new_gpa = gpa - gpa % KIB4
        same_owner = (
            old.assigned == assigned
            and old.page_size == page_size
            and old.asid == asid
            and old.gpa == new_gpa
        )
        new = RefEntry(
            assigned=assigned,
            page_size=page_size,
            immutable=immutable,
            asid=asid,
            gpa=new_gpa,
        )
        if assigned and asid != 0 and same_owner:
            # Nothing ownership-relevant changed: Validated, VMSA and the masks stay (this is
            # how a validated guest page becomes PRE_SWAP).
            new.validated, new.vmsa, new.perms = old.validated, old.vmsa, list(old.perms)
        else:
            # The owner changed, the page became unassigned, or the ASID is 0: reset (§2.4).
            new.perms = _initial_perms()
        self.entries[pfn] = new
        return RmpResult.SUCCESS

    # .. PSMASH (§4.2) ..
    def psmash(self, spa: int, *, current_asid: int = 0) -> RmpResult:
        if current_asid != 0:
            return RmpResult.FAIL_PERMISSION
        pfn = spa // KIB4
        if spa % MIB2 != 0 or not self.covers(pfn):
            return RmpResult.FAIL_INPUT
        head = self.get(pfn)
        # FAIL_BADADDR for an entry that is not an assigned 2 MiB entry (inference: the digest
        # infers it for a 4 KiB entry; an unassigned 2 MiB entry does not govern its region).
        if not (head.assigned and head.page_size == PAGE_2M):
            return RmpResult.FAIL_BADADDR
        for i in range(PAGES_PER_2M):
            sub = head.copy()
            sub.page_size = PAGE_4K
            sub.gpa = head.gpa + i * KIB4
            # Ownership, Validated (stated), permissions (presumed) and VMSA (inference) are
            # carried into every 4 KiB entry.
            self.entries[pfn + i] = sub
        return RmpResult.SUCCESS

    # .. RMPREAD (§4.3) ..
    def rmpread(self, spa: int, *, current_asid: int = 0) -> tuple[RmpResult, RefReadout | None]:
        if current_asid != 0:
            return RmpResult.FAIL_PERMISSION, None
        pfn = spa // KIB4
        if not self.covers(pfn):
            return RmpResult.FAIL_INPUT, None
        base = pfn - pfn % PAGES_PER_2M
        # Inference (as in ``rmp``): a 4 KiB page inside an assigned 2 MiB page reads as the
        # 2 MiB entry.
        entry = self.get(self.governing_pfn(pfn))
        region = any(self._peek(base + i).assigned for i in range(PAGES_PER_2M))
        return RmpResult.SUCCESS, RefReadout(entry, region)

    # .. the RMP checks of guest instructions and private accesses (§5.1, §6) ..
    def _npf(self, reason: str, extra: int = 0) -> RefFault:
        # Inference: the present bit (the nested translation exists) and ENC (the operation
        # is on a private, C-bit mapping) accompany the RMP bit.
        return RefFault("#NPF", ERR_PRESENT | ERR_RMP | ERR_ENC | extra, reason)

    def _owned(self, spa: int, gpa: int, asid: int, extra: int = 0) -> int:
        """Check ``spa`` is a private page of ``asid`` at ``gpa``; return the governing PFN."""
        pfn = spa // KIB4
        if not self.covers(pfn):
            raise self._npf("not covered by the RMP", extra)
        gov = self.governing_pfn(pfn)
        e = self.get(gov)
        # The GPA page i of a 2 MiB page is mapped at (PSMASH: GPA_i = GPA_2M + i * 4 KiB).
        expected_gpa = e.gpa + (pfn - gov) * KIB4
        if not e.assigned:
            raise self._npf("not assigned", extra)
        if e.asid != asid:
            raise self._npf("other ASID", extra)
        if gpa >= GPA_LIMIT or expected_gpa != gpa - gpa % KIB4:
            raise self._npf("GPA mismatch", extra)
        if e.immutable:
            raise self._npf("immutable", extra)
        return gov

    # .. PVALIDATE (§5.1) ..
    def pvalidate(
        self,
        spa: int,
        *,
        gpa: int,
        asid: int,
        vmpl: int,
        page_size: int,
        validate: bool,
    ) -> RefPvalidate:
        if vmpl != 0:
            raise RefFault("#GP", 0, "PVALIDATE needs VMPL0")
        if page_size == PAGE_2M and gpa % MIB2 != 0:
            return RefPvalidate(RmpResult.FAIL_INPUT)
        gov = self._owned(spa, gpa, asid)
        e = self._entry(gov)
        if page_size == PAGE_4K and e.page_size == PAGE_2M:
            raise self._npf("4K request on a 2M page", ERR_SIZEM)
        if page_size == PAGE_2M and e.page_size == PAGE_4K:
            return RefPvalidate(RmpResult.FAIL_SIZEMISMATCH)
        if e.validated == validate:
            return RefPvalidate(RmpResult.SUCCESS, changed=False)
        e.validated = validate
        return RefPvalidate(RmpResult.SUCCESS, changed=True)

    # .. RMPADJUST (§5.2) ..
    def rmpadjust(
        self,
        spa: int,
        *,
        gpa: int,
        asid: int,
        vmpl: int,
        page_size: int,
        target_vmpl: int,
        perms: int,
        vmsa: bool = False,
        reserved: int = 0,
    ) -> RmpResult:
        if (
            (page_size == PAGE_2M and gpa % MIB2 != 0)
            or reserved != 0
            or perms & ~PERM_FULL  # bits 7:5 of a mask are reserved (§2.4)
            or target_vmpl not in range(4)
            or vmpl not in range(4)
        ):
            return RmpResult.FAIL_INPUT
        if target_vmpl <= vmpl:
            return RmpResult.FAIL_PERMISSION
        gov = self._owned(spa, gpa, asid)
        e = self._entry(gov)
        if page_size == PAGE_4K and e.page_size == PAGE_2M:
            raise self._npf("4K request on a 2M page", ERR_SIZEM)
        if not e.validated:
            raise RefFault("#VC", VC_NOT_VALIDATED, "not validated")
        if page_size == PAGE_2M and e.page_size == PAGE_4K:
            return RmpResult.FAIL_SIZEMISMATCH
        own = PERM_FULL if vmpl == 0 else e.perms[vmpl]  # VMPL0 always holds everything
        if perms & ~own:
            return RmpResult.FAIL_PERMISSION
        e.perms[target_vmpl] = perms
        if vmpl == 0:
            e.vmsa = vmsa  # the VMSA bit is honoured only at VMPL0 (MSDOC)
        return RmpResult.SUCCESS

    # .. ordinary memory accesses (§6) ..
    def host_write(self, spa: int) -> None:
        """A hypervisor write: the page (or the 2 MiB page holding it) must not be assigned."""
        pfn = spa // KIB4
        if self.covers(pfn) and self._peek(self.governing_pfn(pfn)).assigned:
            raise RefFault("#PF", ERR_PRESENT | ERR_WRITE | ERR_RMP, "host write to assigned")

    def guest_access(
        self,
        spa: int,
        *,
        gpa: int,
        asid: int,
        vmpl: int,
        perm: int,
        private: bool,
        npt_page_size: int = PAGE_4K,
    ) -> None:
        """A guest access needing VMPL permission ``perm`` (one ``PERM_*`` bit)."""
        kind = 0
        if perm == PERM_WRITE:
            kind = ERR_WRITE
        elif perm in (PERM_EXEC_USER, PERM_EXEC_SUPERVISOR):
            kind = ERR_FETCH
        pfn = spa // KIB4
        if not private:
            if self.covers(pfn) and self._peek(self.governing_pfn(pfn)).assigned:
                raise RefFault("#NPF", ERR_PRESENT | ERR_RMP | kind, "shared access to assigned")
            return
        e = self.get(self._owned(spa, gpa, asid, kind))
        if npt_page_size == PAGE_2M and e.page_size == PAGE_4K:
            raise self._npf("RMP page smaller than the nested mapping", ERR_SIZEM | kind)
        if not e.validated:
            raise RefFault("#VC", VC_NOT_VALIDATED, "not validated")
        if vmpl != 0 and not e.perms[vmpl] & perm:
            raise self._npf("VMPL permission", ERR_VMPL | kind)
