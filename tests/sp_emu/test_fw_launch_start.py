"""SNP_LAUNCH_START, table driven: buffer checks, platform and guest state, the migration
agent, and every policy check.

Statuses and their order: firmware-commands.md §6 SNP_LAUNCH_START (address/MBZ bits, platform
INIT, GCTX CONTEXT, guest INIT, MA CONTEXT, then the policy checks -> POLICY_FAILURE) and
launch-measurement.md §6 (policy bits: ABI minor 7:0, major 15:8, SMT 16, RSVD_MBO 17,
MIGRATE_MA 18, DEBUG 19, SINGLE_SOCKET 20, 21-25 newer, FW 1.55 rejects bits >= 21)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sp_emu.abi.commands import CommandId as C
from sp_emu.abi.status import SnpStatus as S
from sp_emu.firmware import CommandResult
from sp_emu.platform import Platform
from sp_emu.state import GuestState
from tests.sp_emu.helpers import (
    GCTX,
    GCTX2,
    GCTX3,
    POLICY,
    Check,
    Row,
    Step,
    created,
    flushed,
    fw_page,
    guest_status,
    launched,
    ok,
    platform,
    platform_status,
    row_params,
    run_row,
    setup,
)

IPS = S.INVALID_PLATFORM_STATE
SMT = 1 << 16
MBO = 1 << 17
MIGRATE_MA = 1 << 18
DEBUG = 1 << 19
SINGLE_SOCKET = 1 << 20
NO_MA = (1 << 64) - 1
GOSVW = bytes(range(16))


def abi(major: int, minor: int) -> int:
    return major << 8 | minor


def ls(policy: int = POLICY, **kw: object) -> dict[str, object]:
    return {"gctx_paddr": GCTX, "policy": policy, **kw}


def _created(gctx: int = GCTX) -> Step:
    return lambda p: created(p, gctx)


def _launched(gctx: int, policy: int = POLICY, **kw: object) -> Step:
    return lambda p: launched(p, gctx, policy, **kw)


def _fw(spa: int) -> Step:
    return lambda p: fw_page(p, spa)


def turin(**kw: object) -> Callable[[], Platform]:
    def build() -> Platform:
        p = flushed(product="Turin")
        if kw:
            ok(p.run(C.SNP_SHUTDOWN))
            ok(p.run(C.SNP_INIT_EX, init_rmp=1, **kw))
            p.cpu.wbinvd()
            ok(p.run(C.SNP_DF_FLUSH))
        created(p, GCTX)
        return p

    return build


def no_smt() -> Platform:
    return created(flushed(smt=False), GCTX)


_guest = setup(_created())


# --- checks --------------------------------------------------------------------------------------
def launched_with(
    policy: int = POLICY,
    *,
    ma: int = NO_MA,
    ma_report: int | None = None,
    gosvw: bytes = bytes(16),
    tsc: int = 0,
    imi: bool = False,
    count: int = 1,
) -> Check:
    def check(p: Platform, r: CommandResult) -> None:
        g = p.fw.state.guests[GCTX]
        assert g.state is GuestState.LAUNCH
        assert g.policy == policy
        assert g.ma_paddr == ma
        assert g.gosvw == gosvw and g.desired_tsc_freq == tsc and g.imi_en is imi
        assert g.report_id != bytes(32) and len(g.report_id) == 32
        assert all(len(k) == 32 for k in g.vmpck) and len(set(g.vmpck)) == 4
        assert g.ld == bytes(48)  # LD stays zero until LAUNCH_UPDATE
        if ma_report is None:
            assert g.report_id_ma == b"\xff" * 32
        else:
            assert g.report_id_ma == p.fw.state.guests[ma_report].report_id
        st = guest_status(p, GCTX)
        assert (st["state"], st["policy"], st["asid"]) == (1, policy, 0)
        assert platform_status(p)["guest_count"] == count

    return check


# --- rows ----------------------------------------------------------------------------------------
_LS = C.SNP_LAUNCH_START
_MA = {"ma_en": 1, "ma_gctx_paddr": GCTX2}

BASIC_ROWS = [
    Row("default policy 0x30000", _guest, _LS, ls(), check=launched_with()),
    Row(
        "GOSVW and DESIRED_TSC_FREQ stored",
        _guest,
        _LS,
        ls(gosvw=GOSVW, desired_tsc_freq=2_000_000),
        check=launched_with(gosvw=GOSVW, tsc=2_000_000),
    ),
    Row("IMI_EN stored", _guest, _LS, ls(imi_en=1), check=launched_with(imi=True)),
    Row(
        "second guest counts",
        setup(_launched(GCTX2), _created()),
        _LS,
        ls(),
        check=launched_with(count=2),
    ),
    # MBZ / address bits (before the platform state)
    Row("GCTX_PADDR not page aligned", _guest, _LS, ls(gctx_paddr=GCTX + 4), S.INVALID_PARAM),
    Row(
        "MA_GCTX_PADDR not page aligned with MA_EN",
        setup(_created(), _launched(GCTX2)),
        _LS,
        ls(MIGRATE_MA | POLICY, ma_en=1, ma_gctx_paddr=GCTX2 + 0x10),
        S.INVALID_PARAM,
    ),
    Row("reserved flag bit 2", _guest, _LS, ls(), S.INVALID_PARAM, patch={0x18: 0x04}),
    Row("reserved flag bit 31", _guest, _LS, ls(), S.INVALID_PARAM, patch={0x1B: 0x80}),
    Row("MBZ before platform state", platform, _LS, ls(), S.INVALID_PARAM, patch={0x19: 1}),
    # platform INIT
    Row("uninit", platform, _LS, ls(), IPS),
    # GCTX CONTEXT
    Row("FIRMWARE page", setup(_fw(GCTX)), _LS, ls(), S.INVALID_GUEST),
    Row("HYPERVISOR page", flushed, _LS, ls(), S.INVALID_GUEST),
    Row(
        "decommissioned guest",
        setup(_created(), lambda p: ok(p.run(C.SNP_DECOMMISSION, gctx_paddr=GCTX))),
        _LS,
        ls(),
        S.INVALID_GUEST,
    ),
    # guest state INIT
    Row("already launched", setup(_launched(GCTX)), _LS, ls(), S.INVALID_GUEST_STATE),
    Row("guest state before policy", setup(_launched(GCTX)), _LS, ls(0), S.INVALID_GUEST_STATE),
    # MA context
    Row(
        "MA_EN, MA page not a context",
        setup(_created(), _fw(GCTX2)),
        _LS,
        ls(POLICY | MIGRATE_MA, **_MA),
        S.INVALID_GUEST,
    ),
    Row(
        "MA context before policy",
        setup(_created(), _fw(GCTX2)),
        _LS,
        ls(0, **_MA),
        S.INVALID_GUEST,
    ),
    Row(
        "MA_EN=0 ignores MA_GCTX_PADDR", _guest, _LS, ls(ma_gctx_paddr=GCTX2), check=launched_with()
    ),
]

MA_ROWS = [
    Row(
        "with a migration agent",
        setup(_created(), _launched(GCTX2)),
        _LS,
        ls(POLICY | MIGRATE_MA, **_MA),
        check=launched_with(POLICY | MIGRATE_MA, ma=GCTX2, ma_report=GCTX2, count=2),
    ),
    Row(
        "MA_EN needs MIGRATE_MA",
        setup(_created(), _launched(GCTX2)),
        _LS,
        ls(POLICY, **_MA),
        S.POLICY_FAILURE,
    ),
    Row(
        "the MA may not have an MA of its own",
        setup(
            _created(),
            _launched(GCTX3),
            _launched(GCTX2, POLICY | MIGRATE_MA, ma_en=1, ma_gctx_paddr=GCTX3),
        ),
        _LS,
        ls(POLICY | MIGRATE_MA, **_MA),
        S.POLICY_FAILURE,
    ),
    Row(
        "SINGLE_SOCKET guest needs a SINGLE_SOCKET MA",
        setup(_created(), _launched(GCTX2)),
        _LS,
        ls(POLICY | MIGRATE_MA | SINGLE_SOCKET, **_MA),
        S.POLICY_FAILURE,
    ),
    Row(
        "SINGLE_SOCKET guest with a SINGLE_SOCKET MA",
        setup(_created(), _launched(GCTX2, POLICY | SINGLE_SOCKET)),
        _LS,
        ls(POLICY | MIGRATE_MA | SINGLE_SOCKET, **_MA),
        check=launched_with(
            POLICY | MIGRATE_MA | SINGLE_SOCKET, ma=GCTX2, ma_report=GCTX2, count=2
        ),
    ),
]

POLICY_ROWS = [
    Row("RSVD_MBO (bit 17) clear", _guest, _LS, ls(SMT), S.POLICY_FAILURE),
    Row("policy 0", _guest, _LS, ls(0), S.POLICY_FAILURE),
    Row("SMT clear while SMT is enabled", _guest, _LS, ls(MBO), S.POLICY_FAILURE),
    Row("SMT clear, SMT disabled on the platform", no_smt, _LS, ls(MBO), check=launched_with(MBO)),
    Row(
        "ABI 1.55 = firmware",
        _guest,
        _LS,
        ls(POLICY | abi(1, 55)),
        check=launched_with(POLICY | abi(1, 55)),
    ),
    Row(
        "ABI 0.255 (lower major)",
        _guest,
        _LS,
        ls(POLICY | abi(0, 255)),
        check=launched_with(POLICY | abi(0, 255)),
    ),
    Row("ABI 1.56 > firmware 1.55", _guest, _LS, ls(POLICY | abi(1, 56)), S.POLICY_FAILURE),
    Row("ABI 2.0 > firmware 1.55", _guest, _LS, ls(POLICY | abi(2, 0)), S.POLICY_FAILURE),
    Row(
        "DEBUG, MIGRATE_MA, SINGLE_SOCKET allowed",
        _guest,
        _LS,
        ls(POLICY | DEBUG | MIGRATE_MA | SINGLE_SOCKET),
        check=launched_with(POLICY | DEBUG | MIGRATE_MA | SINGLE_SOCKET),
    ),
    *[
        Row(f"bit {bit} reserved on FW 1.55", _guest, _LS, ls(POLICY | 1 << bit), S.POLICY_FAILURE)
        for bit in (21, 22, 23, 24, 25, 26, 40, 63)
    ],
    Row(
        "ABI 1.56 on Turin (1.58)",
        turin(),
        _LS,
        ls(POLICY | abi(1, 56)),
        check=launched_with(POLICY | abi(1, 56)),
    ),
    Row("ABI 1.59 on Turin (1.58)", turin(), _LS, ls(POLICY | abi(1, 59)), S.POLICY_FAILURE),
    Row(
        "MEM_AES_256_XTS on Turin",
        turin(),
        _LS,
        ls(POLICY | 1 << 22),
        check=launched_with(POLICY | 1 << 22),
    ),
    Row("CXL_ALLOW unsupported on Turin", turin(), _LS, ls(POLICY | 1 << 21), S.POLICY_FAILURE),
    Row("RAPL_DIS policy, RAPL not disabled", turin(), _LS, ls(POLICY | 1 << 23), S.POLICY_FAILURE),
    Row(
        "RAPL_DIS policy, RAPL disabled by SNP_INIT_EX",
        turin(rapl_dis=1),
        _LS,
        ls(POLICY | 1 << 23),
        check=launched_with(POLICY | 1 << 23),
    ),
    Row(
        "CIPHERTEXT_HIDING policy without it enabled",
        turin(),
        _LS,
        ls(POLICY | 1 << 24),
        S.POLICY_FAILURE,
    ),
    Row("bit 26 reserved on Turin", turin(), _LS, ls(POLICY | 1 << 26), S.POLICY_FAILURE),
]

ROWS = BASIC_ROWS + MA_ROWS + POLICY_ROWS


@pytest.mark.parametrize(("row", "path"), row_params(ROWS))
def test_launch_start(row: Row, path: str) -> None:
    run_row(row, path)


def test_each_launch_draws_fresh_secrets() -> None:
    p = flushed()
    launched(p, GCTX)
    launched(p, GCTX2)
    a, b = p.fw.state.guests[GCTX], p.fw.state.guests[GCTX2]
    assert a.report_id != b.report_id
    assert a.vmpck != b.vmpck and a.vmrk != b.vmrk and a.oek != b.oek
    assert a.vek != b.vek


def test_launch_start_is_reproducible_for_a_seed() -> None:
    def secrets(seed: bytes) -> tuple[bytes, bytes]:
        p = launched(flushed(seed=seed), GCTX)
        g = p.fw.state.guests[GCTX]
        return g.report_id, g.vmpck[0]

    assert secrets(b"one") == secrets(b"one")
    assert secrets(b"one") != secrets(b"two")
