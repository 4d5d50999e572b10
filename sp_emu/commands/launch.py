"""Launch commands: SNP_LAUNCH_START (firmware-commands.md §6; launch-measurement.md §6-7)."""

from __future__ import annotations

from sp_emu.abi.commands import CommandId as C
from sp_emu.abi.launch import POLICY_BASE_BITS, GuestPolicy
from sp_emu.abi.status import SnpStatus as S
from sp_emu.commands.guests import require_page_aligned
from sp_emu.errors import SnpError
from sp_emu.firmware import Firmware, Request, command
from sp_emu.state import GuestContext, GuestState

# Guest policy bits (launch-measurement.md §6).
POLICY_SMT = GuestPolicy.SMT
POLICY_RSVD_MBO = GuestPolicy.RSVD_MBO
POLICY_MIGRATE_MA = GuestPolicy.MIGRATE_MA
POLICY_SINGLE_SOCKET = GuestPolicy.SINGLE_SOCKET
POLICY_RAPL_DIS = GuestPolicy.RAPL_DIS
POLICY_CIPHERTEXT_HIDING = GuestPolicy.CIPHERTEXT_HIDING
NO_MA = (1 << 64) - 1


def check_policy(fw: Firmware, policy: int, ma: GuestContext | None) -> None:
    """The LAUNCH_START policy checks, in AFW's order; POLICY_FAILURE on the first miss."""
    st = fw.state
    if ma is not None:
        if not policy & POLICY_MIGRATE_MA:
            raise SnpError(S.POLICY_FAILURE, "MA_EN needs policy MIGRATE_MA")
        if ma.ma_paddr != NO_MA:
            raise SnpError(S.POLICY_FAILURE, "the migration agent has an agent of its own")
    if not policy & POLICY_RSVD_MBO:
        raise SnpError(S.POLICY_FAILURE, "policy bit 17 must be 1")
    if st.smt and not policy & POLICY_SMT:
        raise SnpError(S.POLICY_FAILURE, "SMT is enabled but the policy forbids it")
    abi = ((policy >> 8) & 0xFF, policy & 0xFF)
    if abi > (st.api_major, st.api_minor):
        raise SnpError(S.POLICY_FAILURE, f"policy needs ABI {abi[0]}.{abi[1]}")
    allowed = POLICY_BASE_BITS | st.product.policy_optional_bits
    if policy & ~allowed:
        raise SnpError(S.POLICY_FAILURE, f"policy sets unsupported bits {policy & ~allowed:#x}")
    if policy & POLICY_RAPL_DIS and not st.rapl_dis:
        raise SnpError(S.POLICY_FAILURE, "policy needs RAPL disabled")
    if policy & POLICY_CIPHERTEXT_HIDING and not st.ciphertext_hiding_en:
        raise SnpError(S.POLICY_FAILURE, "policy needs ciphertext hiding")
    if ma is not None and policy & POLICY_SINGLE_SOCKET and not ma.policy & POLICY_SINGLE_SOCKET:
        raise SnpError(S.POLICY_FAILURE, "SINGLE_SOCKET guest needs a SINGLE_SOCKET agent")


@command(C.SNP_LAUNCH_START, "SNP_LAUNCH_START; firmware-commands.md §6")
def snp_launch_start(fw: Firmware, req: Request) -> None:
    """Begin the launch: store the policy, draw the guest's keys (VMPCK0-3, VMRK, OEK) and
    REPORT_ID, and move the guest from INIT to LAUNCH."""
    f = req.f
    # CHECKS
    require_page_aligned(f["gctx_paddr"], "GCTX_PADDR")
    if f["ma_en"]:
        require_page_aligned(f["ma_gctx_paddr"], "MA_GCTX_PADDR")
    req.check_reserved()
    fw.require_init()
    guest = fw.guest(f["gctx_paddr"])
    if guest.state is not GuestState.INIT:
        raise SnpError(S.INVALID_GUEST_STATE, f"guest is {guest.state.name}, not INIT")
    ma = fw.guest(f["ma_gctx_paddr"]) if f["ma_en"] else None
    check_policy(fw, f["policy"], ma)
    # COMMIT
    rng = fw.rng
    guest.policy = f["policy"]
    guest.ma_paddr = f["ma_gctx_paddr"] if ma is not None else NO_MA
    guest.oek = rng.bytes(32)
    guest.vmpck = (rng.bytes(32), rng.bytes(32), rng.bytes(32), rng.bytes(32))
    guest.vmrk = rng.bytes(32)
    guest.report_id = rng.bytes(32)
    guest.report_id_ma = ma.report_id if ma is not None else b"\xff" * 32
    guest.imi_en = bool(f["imi_en"])
    guest.gosvw = bytes(f["gosvw"])
    guest.desired_tsc_freq = f["desired_tsc_freq"]
    guest.launched = True
    guest.state = GuestState.LAUNCH
