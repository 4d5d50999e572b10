"""Random host command sequences on a small platform, checked against the shadow model in
``sp_emu.testing.fw_reference``: every status must be the one the model predicts, a command
that does not succeed must change nothing, and after every step the tracked pages, guests and
ASID bookkeeping must agree with the model.

Run with ``--hypothesis-show-statistics`` to see how often each (command, status) pair comes
up."""

from __future__ import annotations

from typing import Any

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, multiple, rule

from rmp import PageState
from sp_emu.abi.buffers import BUFFERS
from sp_emu.abi.commands import CommandId as C
from sp_emu.abi.status import SnpStatus as S
from sp_emu.firmware import CommandResult
from sp_emu.platform import Platform
from sp_emu.state import Activation, PlatformStateName
from sp_emu.testing.fw_reference import FwReference
from tests.sp_emu.helpers import assert_unchanged, capture

MEMORY = 64 << 20
PAGES = tuple(0x200000 + i * 0x1000 for i in range(6))
STATUS_PAGE = PAGES[-1]
"""The page ``bring_up`` donates to the firmware for status output."""
MAX_ASID = 1006
POLICIES = (
    0x30000,  # SMT | RSVD_MBO
    0xB0000,  # ... | DEBUG
    0x10000,  # RSVD_MBO clear
    0x20000,  # SMT clear (SMT is on)
    0x30000 | 1 << 8 | 56,  # ABI 1.56 > 1.55
    0x30000 | 1 << 22,  # reserved on FW 1.55
)

pages = st.sampled_from(PAGES)
asids = st.sampled_from((1, 1, 2, 2, 3, 0, MAX_ASID, MAX_ASID + 1))  # mostly valid ones
good_policies = st.sampled_from(POLICIES[:2])
out_pages = st.one_of(st.just(STATUS_PAGE), st.just(STATUS_PAGE), pages)


class FirmwareLifecycle(RuleBasedStateMachine):
    contexts = Bundle("contexts")
    """Pages that became guest context pages (they may have been decommissioned since)."""

    def __init__(self) -> None:
        super().__init__()
        self.p = Platform(memory=MEMORY)
        self.ref = FwReference(PAGES, max_asid=MAX_ASID)

    def send(
        self, cmd: C, want: int, fields: dict[str, Any] | None = None, patch: bool = False
    ) -> CommandResult:
        """Send through the byte path (``patch``: set the buffer's first reserved bit)."""
        raw = bytearray(BUFFERS[cmd].build(fields or {}))
        if patch:
            mask = BUFFERS[cmd].reserved_mask
            bit = (mask & -mask).bit_length() - 1
            raw[bit // 8] |= 1 << (bit % 8)
        event(f"{cmd.name} -> {S(want).name}")
        before = capture(self.p)
        result = self.p.execute(cmd, bytes(raw))
        assert result.status == want, (
            f"{cmd.name} {fields}: got {S(result.status).name}, model says {S(want).name} "
            f"({result.detail})"
        )
        if result.status != S.SUCCESS:
            assert_unchanged(self.p, before, cmd.name)
        return result

    def host_rmpupdate(self, spa: int, kind: str, asid: int = 1) -> None:
        assigned = kind != "hypervisor"
        immutable = kind in ("firmware", "pre_guest")
        asid = asid if kind in ("pre_guest", "guest_invalid") else 0
        gpa = 0x100000 + (spa & 0xFFFFF) if asid else 0
        want = self.ref.rmpupdate(spa, assigned=assigned, immutable=immutable, asid=asid)
        got = self.p.cpu.rmpupdate(spa, assigned=assigned, immutable=immutable, asid=asid, gpa=gpa)
        assert got is want, (kind, got, want)

    def create(self, gctx: int) -> Any:
        want = self.ref.gctx_create(gctx)
        self.send(C.SNP_GCTX_CREATE, want, {"gctx_paddr": gctx})
        return multiple(gctx) if want == S.SUCCESS else multiple()

    # --- platform ------------------------------------------------------------------------------
    @rule(how=st.sampled_from(["SNP_INIT", "INIT_EX init_rmp=1", "INIT_EX init_rmp=0"]))
    def platform_init(self, how: str) -> None:
        if how == "SNP_INIT":
            self.send(C.SNP_INIT, self.ref.snp_init())
        else:
            init_rmp = how.endswith("1")
            want = self.ref.snp_init_ex(init_rmp)
            self.send(C.SNP_INIT_EX, want, {"init_rmp": int(init_rmp)})

    @rule(how=st.sampled_from(["SNP_SHUTDOWN", "EX", "EX iommu", "EX length 0", "EX length 16"]))
    def platform_shutdown(self, how: str) -> None:
        if how == "SNP_SHUTDOWN":
            self.send(C.SNP_SHUTDOWN, self.ref.snp_shutdown())
            return
        length = int(how.split()[-1]) if "length" in how else 8
        iommu = how.endswith("iommu")
        want = self.ref.snp_shutdown_ex(length, iommu)
        self.send(C.SNP_SHUTDOWN_EX, want, {"length": length, "iommu_snp_shutdown": int(iommu)})

    @rule()
    def wbinvd(self) -> None:
        self.ref.wbinvd()
        self.p.cpu.wbinvd()

    @rule()
    def df_flush(self) -> None:
        self.send(C.SNP_DF_FLUSH, self.ref.snp_df_flush())

    @rule(
        spa=pages,
        kind=st.sampled_from(["firmware", "hypervisor", "pre_guest", "guest_invalid"]),
        asid=st.sampled_from([1, 2, 3]),
    )
    def rmpupdate(self, spa: int, kind: str, asid: int) -> None:
        self.host_rmpupdate(spa, kind, asid)

    # --- guests --------------------------------------------------------------------------------
    @rule(target=contexts, gctx=pages)
    def gctx_create(self, gctx: int) -> Any:
        return self.create(gctx)

    @rule(gctx=st.one_of(contexts, contexts, pages), policy=st.sampled_from(POLICIES))
    def launch_start(self, gctx: int, policy: int) -> None:
        want = self.ref.launch_start(gctx, policy)
        self.send(C.SNP_LAUNCH_START, want, {"gctx_paddr": gctx, "policy": policy})

    @rule(gctx=st.one_of(contexts, contexts, pages), asid=asids)
    def activate(self, gctx: int, asid: int) -> None:
        want = self.ref.activate(gctx, asid)
        self.send(C.SNP_ACTIVATE, want, {"gctx_paddr": gctx, "asid": asid})

    @rule(gctx=st.one_of(contexts, contexts, pages))
    def decommission(self, gctx: int) -> None:
        self.send(C.SNP_DECOMMISSION, self.ref.decommission(gctx), {"gctx_paddr": gctx})

    @rule(gctx=st.one_of(contexts, contexts, pages), out=out_pages)
    def guest_status(self, gctx: int, out: int) -> None:
        want, out_fields = self.ref.guest_status(gctx, out)
        result = self.send(C.SNP_GUEST_STATUS, want, {"gctx_paddr": gctx, "status_paddr": out})
        if want == S.SUCCESS:
            assert result.out == out_fields

    @rule(spa=pages)
    def page_reclaim(self, spa: int) -> None:
        self.send(C.SNP_PAGE_RECLAIM, self.ref.page_reclaim(spa), {"page_paddr": spa})

    # --- what a host does in one go (each step still checked against the model) ----------------
    @rule()
    def bring_up(self) -> None:
        """SNP_INIT, WBINVD, SNP_DF_FLUSH, and a FIRMWARE page for status output."""
        self.send(C.SNP_INIT, self.ref.snp_init())
        self.wbinvd()
        self.df_flush()
        self.host_rmpupdate(STATUS_PAGE, "firmware")

    @rule(target=contexts, gctx=pages, policy=good_policies, asid=asids)
    def new_guest(self, gctx: int, policy: int, asid: int) -> Any:
        """RMPUPDATE to FIRMWARE, SNP_GCTX_CREATE, SNP_LAUNCH_START, SNP_ACTIVATE."""
        self.host_rmpupdate(gctx, "firmware")
        created = self.create(gctx)
        self.launch_start(gctx, policy)
        self.activate(gctx, asid)
        return created

    # --- hostile -------------------------------------------------------------------------------
    @rule(
        kind=st.sampled_from(
            [
                C.SNP_INIT_EX,
                C.SNP_LAUNCH_START,
                C.SNP_PAGE_RECLAIM,
                C.SNP_CONFIG,
                "misaligned GCTX",
                "unknown id",
            ]
        ),
        spa=pages,
        low=st.sampled_from([1, 0x8, 0x800]),
    )
    def hostile(self, kind: C | str, spa: int, low: int) -> None:
        """A reserved bit set where the MBZ check comes first, a context address with low bits
        set, or an id that names no command: the first check fails, nothing changes."""
        if kind == "misaligned GCTX":
            for cmd in (C.SNP_GCTX_CREATE, C.SNP_DECOMMISSION):
                self.send(cmd, self.ref.reserved_bits_set(), {"gctx_paddr": spa | low})
        elif kind == "unknown id":
            before = capture(self.p)
            assert self.p.execute(0xC4 if low == 1 else 0x01, bytes(8)).status == (
                S.INVALID_COMMAND
            )
            assert_unchanged(self.p, before, "unknown id")
        else:
            assert isinstance(kind, C)
            fields: dict[str, Any] = {
                C.SNP_INIT_EX: {"init_rmp": 1},
                C.SNP_LAUNCH_START: {"gctx_paddr": spa, "policy": POLICIES[0]},
                C.SNP_PAGE_RECLAIM: {"page_paddr": spa},
                C.SNP_CONFIG: {},
            }[kind]
            self.send(kind, self.ref.reserved_bits_set(), fields, patch=True)

    # --- agreement with the model --------------------------------------------------------------
    @invariant()
    def platform_agrees(self) -> None:
        fw = self.p.fw.state
        want = PlatformStateName.INIT if self.ref.initialised else PlatformStateName.UNINIT
        assert fw.state is want
        assert fw.rmp_initialized == self.ref.rmp_initialized
        assert fw.wbinvd_done == self.ref.wbinvd_done
        assert fw.dirty_asids == self.ref.dirty
        assert fw.asid_owner == self.ref.owner
        assert set(self.p.fw.asid_keys) == set(self.ref.owner)

    @invariant()
    def pages_agree(self) -> None:
        for spa in PAGES:
            got = self.p.rmp.state(spa >> 12)
            assert got is self.ref.state[spa], (hex(spa), got, self.ref.state[spa])
            if got is not PageState.HYPERVISOR:
                assert self.p.rmp.entry(spa >> 12).asid == self.ref.page_asid[spa]

    @invariant()
    def guests_agree(self) -> None:
        got = {
            gctx: (g.state, g.policy, g.asid if g.activation is not Activation.NONE else 0)
            for gctx, g in self.p.fw.state.guests.items()
        }
        want = {gctx: (g.state, g.policy, g.asid) for gctx, g in self.ref.guests.items()}
        assert got == want


FirmwareLifecycle.TestCase.settings = settings(
    settings.default, stateful_step_count=50, deadline=None
)
TestFirmwareLifecycle = FirmwareLifecycle.TestCase
