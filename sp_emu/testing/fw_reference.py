"""A tiny shadow model of the SNP firmware's life cycle, for property tests.

It follows only what a short random sequence of host actions can reach on a few tracked
4 KiB DRAM pages: the platform state (SNP_INIT, SNP_INIT_EX, SNP_SHUTDOWN(_EX)), WBINVD and
SNP_DF_FLUSH with the per-ASID dirty set, RMPUPDATE of the tracked pages, and the guest
commands SNP_GCTX_CREATE, SNP_LAUNCH_START, SNP_ACTIVATE, SNP_DECOMMISSION, SNP_GUEST_STATUS
and SNP_PAGE_RECLAIM.  Each method returns the status the firmware must give (written from
``shared/reference/firmware-commands.md`` §4 and §6, independently of ``sp_emu.commands``) and
applies the effect only on success, so a test can drive the model and the emulator side by
side and compare statuses, page states and guests after every step.

Deliberately small: no LAUNCH_UPDATE/FINISH (guests never reach RUNNING), no 2 MiB pages, no
PVALIDATE (no page is ever validated), no firmware updates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rmp import PageState, RmpResult
from sp_emu.abi.status import SnpStatus
from sp_emu.state import GuestState

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

S = SnpStatus
P = PageState

IMMUTABLE = frozenset(
    {P.FIRMWARE, P.FIRMWARE_IOMMU, P.CONTEXT, P.METADATA, P.PRE_GUEST, P.PRE_SWAP, P.HV_FIXED}
)
"""States whose RMP entry has Immutable set: RMPUPDATE fails with FAIL_PERMISSION."""
GUEST_OWNED = frozenset({P.PRE_GUEST, P.PRE_SWAP, P.GUEST_INVALID, P.GUEST_VALID})
ASID_FIELD_LIMIT = 1 << 10
"""ASIDs an RMP entry can hold; the CPU's per-ASID page counts exist only for these."""

POLICY_SMT = 1 << 16
POLICY_RSVD_MBO = 1 << 17
POLICY_KNOWN = (1 << 21) - 1
"""Policy bits FW 1.55 knows (launch-measurement.md §6: bits >= 21 are reserved there)."""


@dataclass
class RefGuest:
    """What the model keeps of one guest."""

    state: GuestState = GuestState.INIT
    policy: int = 0
    asid: int = 0
    """The ASID it is bound to (pending or active); 0 when not activated."""


@dataclass
class FwReference:
    """The expected firmware behaviour on ``pages`` (4 KiB DRAM pages the test uses)."""

    pages: tuple[int, ...]
    max_asid: int = 1006
    smt: bool = True
    api: tuple[int, int] = (1, 55)
    initialised: bool = False
    rmp_initialized: bool = False
    wbinvd_done: bool = False
    dirty: set[int] = field(default_factory=set)
    owner: dict[int, int] = field(default_factory=dict)
    """ASID -> context page of the guest bound to it."""
    guests: dict[int, RefGuest] = field(default_factory=dict)
    state: dict[int, PageState] = field(default_factory=dict)
    page_asid: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for spa in self.pages:
            self.state.setdefault(spa, P.HYPERVISOR)
            self.page_asid.setdefault(spa, 0)

    # --- helpers -------------------------------------------------------------------------------
    def _guest(self, gctx: int) -> RefGuest | None:
        if self.state.get(gctx) is not P.CONTEXT:
            return None
        return self.guests.get(gctx)  # a CONTEXT page left from before a shutdown: None

    def _asid_has_pages(self, asid: int) -> bool:
        return any(
            self.state[spa] in GUEST_OWNED and self.page_asid[spa] == asid for spa in self.pages
        )

    def policy_ok(self, policy: int) -> bool:
        """The LAUNCH_START policy checks that do not involve a migration agent."""
        if not policy & POLICY_RSVD_MBO:
            return False
        if self.smt and not policy & POLICY_SMT:
            return False
        if ((policy >> 8) & 0xFF, policy & 0xFF) > self.api:
            return False
        return not policy & ~POLICY_KNOWN

    # --- platform ------------------------------------------------------------------------------
    def _init(self, reset_rmp: bool) -> SnpStatus:
        if reset_rmp:
            for spa in self.pages:
                self.state[spa] = P.HYPERVISOR
                self.page_asid[spa] = 0
            self.rmp_initialized = True
        self.initialised = True
        self.wbinvd_done = False
        self.dirty = set(range(1, self.max_asid + 1))
        self.owner.clear()
        self.guests.clear()
        return S.SUCCESS

    def snp_init(self) -> SnpStatus:
        if self.initialised:
            return S.INVALID_PLATFORM_STATE
        return self._init(True)

    def snp_init_ex(self, init_rmp: bool) -> SnpStatus:
        if self.initialised:
            return S.INVALID_PLATFORM_STATE
        if not init_rmp and not self.rmp_initialized:
            return S.RMP_INIT_REQUIRED
        return self._init(init_rmp)

    def snp_shutdown(self) -> SnpStatus:
        return self.snp_shutdown_ex(8, False)

    def snp_shutdown_ex(self, length: int, iommu: bool) -> SnpStatus:
        if not self.initialised:
            return S.SUCCESS  # nothing checked, nothing done
        if self.dirty or self.owner:
            return S.DFFLUSH_REQUIRED
        if length != 8:
            return S.INVALID_PARAM
        self.initialised = False
        self.guests.clear()
        if iommu:
            self.rmp_initialized = False
        return S.SUCCESS

    def wbinvd(self) -> None:
        self.wbinvd_done = True

    def snp_df_flush(self) -> SnpStatus:
        if not self.wbinvd_done:
            return S.WBINVD_REQUIRED
        self.dirty.clear()
        return S.SUCCESS

    # --- host RMPUPDATE ------------------------------------------------------------------------
    def rmpupdate(self, spa: int, *, assigned: bool, immutable: bool, asid: int) -> RmpResult:
        """RMPUPDATE of a tracked 4 KiB page (GPA 0 for ASID 0, else a guest GPA)."""
        if self.state[spa] in IMMUTABLE:
            return RmpResult.FAIL_PERMISSION
        if not assigned:
            new = P.HV_FIXED if immutable else P.HYPERVISOR
            asid = 0
        elif not asid:
            new = P.FIRMWARE if immutable else P.RECLAIM
        else:
            new = P.PRE_GUEST if immutable else P.GUEST_INVALID
        self.state[spa] = new
        self.page_asid[spa] = asid
        return RmpResult.SUCCESS

    # --- guest commands ------------------------------------------------------------------------
    def gctx_create(self, gctx: int) -> SnpStatus:
        if not self.initialised:
            return S.INVALID_PLATFORM_STATE
        if self.state[gctx] is not P.FIRMWARE:
            return S.INVALID_PAGE_STATE
        self.state[gctx] = P.CONTEXT
        self.guests[gctx] = RefGuest()
        return S.SUCCESS

    def launch_start(self, gctx: int, policy: int) -> SnpStatus:
        if not self.initialised:
            return S.INVALID_PLATFORM_STATE
        g = self._guest(gctx)
        if g is None:
            return S.INVALID_GUEST
        if g.state is not GuestState.INIT:
            return S.INVALID_GUEST_STATE
        if not self.policy_ok(policy):
            return S.POLICY_FAILURE
        g.state = GuestState.LAUNCH
        g.policy = policy
        return S.SUCCESS

    def activate(self, gctx: int, asid: int) -> SnpStatus:
        if not self.initialised:
            return S.INVALID_PLATFORM_STATE
        g = self._guest(gctx)
        if g is None:
            return S.INVALID_GUEST
        if g.state not in (GuestState.LAUNCH, GuestState.RUNNING):
            return S.INVALID_GUEST_STATE
        if 0 < asid < ASID_FIELD_LIMIT and self._asid_has_pages(asid):
            return S.INVALID_CONFIG
        if not 0 < asid <= self.max_asid:
            return S.INVALID_ASID
        if asid in self.owner:
            return S.ASID_OWNED
        if g.asid:
            return S.ACTIVE
        if asid in self.dirty:
            return S.DFFLUSH_REQUIRED
        g.asid = asid
        self.owner[asid] = gctx
        return S.SUCCESS

    def decommission(self, gctx: int) -> SnpStatus:
        if not self.initialised:
            return S.INVALID_PLATFORM_STATE
        g = self._guest(gctx)
        if g is None:
            return S.INVALID_GUEST
        if g.asid:
            self.dirty.add(g.asid)
            del self.owner[g.asid]
        del self.guests[gctx]
        self.state[gctx] = P.FIRMWARE
        return S.SUCCESS

    def guest_status(self, gctx: int, out: int) -> tuple[SnpStatus, dict[str, Any] | None]:
        if not self.initialised:
            return S.INVALID_PLATFORM_STATE, None
        g = self._guest(gctx)
        if g is None:
            return S.INVALID_GUEST, None
        if self.state[out] is not P.FIRMWARE:
            return S.INVALID_PAGE_STATE, None
        return S.SUCCESS, {
            "policy": g.policy,
            "asid": g.asid,
            "state": int(g.state),
            "vcek_disabled": 0,
        }

    def page_reclaim(self, spa: int) -> SnpStatus:
        if not self.initialised:
            return S.INVALID_PLATFORM_STATE
        state = self.state[spa]
        if state not in IMMUTABLE:
            return S.SUCCESS  # already mutable: nothing to do
        if state is P.FIRMWARE:
            self.state[spa] = P.RECLAIM
        elif state is P.PRE_GUEST:
            self.state[spa] = P.GUEST_INVALID
        else:
            return S.INVALID_PAGE_STATE
        return S.SUCCESS

    @staticmethod
    def reserved_bits_set() -> SnpStatus:
        """A command whose MBZ check comes first (SNP_INIT_EX, SNP_LAUNCH_START,
        SNP_PAGE_RECLAIM, SNP_GCTX_CREATE address bits) with a reserved bit set."""
        return S.INVALID_PARAM
