"""SNP_LAUNCH_START policy checks that tests/sp_emu/test_fw_launch_start.py does not cover
(launch-measurement.md §6, firmware-commands.md §6 SNP_LAUNCH_START):

* the ABI compare is a (major, minor) compare against the *running* firmware's API (a
  firmware with a higher major accepts any minor; a live SNP_DOWNLOAD_FIRMWARE_EX moves it);
* SMT set is fine whether or not the platform runs SMT;
* policy bits 21-24 on Turin: each is accepted exactly when the platform has the feature
  SNP_FEATURE_INFO ECX advertises for it (and, for RAPL_DIS and CIPHERTEXT_HIDING, has it
  enabled by SNP_INIT_EX); all four together; Genoa and Milan reject all of them;
* the guest-state check comes before the migration agent's context check;
* what the policy and LAUNCH_START fields do later in the launch (GOSVW in the secrets page,
  the policy checked by the ID block)."""

from __future__ import annotations

import struct

import pytest

from sp_emu.abi.commands import CommandId as C
from sp_emu.abi.status import SnpStatus as S
from sp_emu.fwimage import FirmwareImage
from sp_emu.platform import Platform
from sp_emu.state import GuestState
from tests.launch.helpers import (
    AES_256_XTS,
    CIPHERTEXT_HIDING,
    CXL_ALLOW,
    DATA,
    GCTX,
    GCTX2,
    HV_PAGE,
    MIGRATE_MA,
    POLICY,
    RAPL_DIS,
    RSVD_MBO,
    SECRETS,
    SMT,
    assert_unchanged,
    capture,
    created,
    flushed,
    fw_page,
    guest,
    guest_read,
    launch_page,
    launched,
    ok,
    ready,
    with_product,
)

FEATURE_OUT = 0x130000


def abi(major: int, minor: int) -> int:
    return major << 8 | minor


def start(p: Platform, policy: int, gctx: int = GCTX, **fields: object) -> S:
    result = p.run(C.SNP_LAUNCH_START, gctx_paddr=gctx, policy=policy, **fields)
    return S(result.status)


def expect(p: Platform, policy: int, want: S) -> None:
    """LAUNCH_START on a fresh context: ``want``; a failure changes nothing, a success
    stores the policy and moves the guest to LAUNCH."""
    before = capture(p)
    got = start(p, policy)
    assert got == want, f"policy {policy:#x}: {got.name}, want {want.name}"
    if want == S.SUCCESS:
        assert guest(p).state is GuestState.LAUNCH
        assert guest(p).policy == policy
    else:
        assert_unchanged(p, before, f"policy {policy:#x}")
        assert guest(p).state is GuestState.INIT


# --- ABI version -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("policy_abi", "want"),
    [
        ((1, 255), S.SUCCESS),  # lower major, any minor
        ((2, 0), S.SUCCESS),
        ((2, 3), S.SUCCESS),
        ((2, 4), S.POLICY_FAILURE),
        ((3, 0), S.POLICY_FAILURE),
        ((0, 0), S.SUCCESS),
    ],
)
def test_abi_is_compared_as_major_then_minor(policy_abi: tuple[int, int], want: S) -> None:
    """Firmware API 2.3: policy ABI <= 2.3 passes, compared as (major, minor)."""
    p = created(flushed(api_major=2, api_minor=3))
    expect(p, POLICY | abi(*policy_abi), want)


def test_abi_check_uses_the_running_firmware_after_a_live_update() -> None:
    p = created(flushed())  # Genoa, API 1.55
    assert start(p, POLICY | abi(1, 57)) == S.POLICY_FAILURE
    image = FirmwareImage("Genoa", 1, 57, 3, p.fw.state.current_tcb.to_int()).to_bytes()
    p.cpu.host_write(HV_PAGE, image)
    ok(p.run(C.SNP_DOWNLOAD_FIRMWARE_EX, length=0x18, fw_paddr=HV_PAGE, fw_len=len(image)))
    assert p.fw.state.committed_api[:2] == (1, 55)  # not committed: the running one counts
    expect(p, POLICY | abi(1, 57), S.SUCCESS)


# --- SMT ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("smt", [True, False])
def test_smt_allowed_policy_launches_with_or_without_smt(smt: bool) -> None:
    expect(created(flushed(smt=smt)), SMT | RSVD_MBO, S.SUCCESS)


def test_smt_forbidden_policy_on_an_smt_platform_after_the_abi_check_too() -> None:
    """Two policy defects still answer POLICY_FAILURE (the status cannot show which)."""
    expect(created(flushed()), RSVD_MBO | abi(9, 0), S.POLICY_FAILURE)


# --- policy bits 21-24 by product and platform feature ------------------------------------------
OPTIONAL = {
    CXL_ALLOW: ("cxl_allow", 5),
    AES_256_XTS: ("aes_256_xts", 4),
    RAPL_DIS: ("rapl_disable", 2),
    CIPHERTEXT_HIDING: ("ciphertext_hiding", 3),
}
"""policy bit -> (product trait, SNP_FEATURE_INFO ECX bit) per launch-measurement.md §6."""


def turin(*, cxl: bool = False, rapl: bool = False, hiding: bool = False) -> Platform:
    """A Turin platform, SNP_INIT_EX with RAPL_DIS / CIPHERTEXT_HIDING_EN as asked."""
    p = Platform(memory=64 << 20, product="Turin")
    if cxl:
        with_product(p, cxl_allow=True)
    ok(p.run(C.SNP_INIT_EX, init_rmp=1, rapl_dis=int(rapl), ciphertext_hiding_en=int(hiding)))
    p.cpu.wbinvd()
    ok(p.run(C.SNP_DF_FLUSH))
    return created(p)


def feature_ecx(p: Platform) -> int:
    fw_page(p, FEATURE_OUT)
    ok(p.run(C.SNP_FEATURE_INFO, length=0x10, ecx_in=0, feature_info_paddr=FEATURE_OUT))
    return int(struct.unpack_from("<I", p.cpu.host_read(FEATURE_OUT + 8, 4))[0])


@pytest.mark.parametrize("bit", list(OPTIONAL), ids=lambda b: f"bit{b.bit_length() - 1}")
@pytest.mark.parametrize("cxl", [False, True])
def test_turin_accepts_an_optional_bit_iff_feature_info_advertises_it(bit: int, cxl: bool) -> None:
    p = turin(cxl=cxl, rapl=True, hiding=True)
    advertised = bool(feature_ecx(p) >> OPTIONAL[bit][1] & 1)
    assert advertised == getattr(p.fw.state.product, OPTIONAL[bit][0])
    expect(p, POLICY | bit, S.SUCCESS if advertised else S.POLICY_FAILURE)


def test_turin_accepts_bits_21_to_24_together_given_every_feature() -> None:
    p = turin(cxl=True, rapl=True, hiding=True)
    assert feature_ecx(p) >> 2 & 0xF == 0xF
    expect(p, POLICY | CXL_ALLOW | AES_256_XTS | RAPL_DIS | CIPHERTEXT_HIDING, S.SUCCESS)


@pytest.mark.parametrize(
    ("rapl", "hiding", "bit", "want"),
    [
        (False, True, RAPL_DIS, S.POLICY_FAILURE),
        (True, False, RAPL_DIS, S.SUCCESS),
        (True, False, CIPHERTEXT_HIDING, S.POLICY_FAILURE),
        (False, True, CIPHERTEXT_HIDING, S.SUCCESS),
    ],
)
def test_rapl_and_hiding_policies_need_the_feature_enabled(
    rapl: bool, hiding: bool, bit: int, want: S
) -> None:
    """RAPL_DIS / CIPHERTEXT_HIDING *require* the platform state (SNP_INIT_EX flags), not
    just a firmware that knows the bit."""
    expect(turin(rapl=rapl, hiding=hiding), POLICY | bit, want)


@pytest.mark.parametrize("product", ["Genoa", "Milan"])
@pytest.mark.parametrize("bit", list(OPTIONAL), ids=lambda b: f"bit{b.bit_length() - 1}")
def test_fw_1_55_products_reject_bits_21_to_24(product: str, bit: int) -> None:
    p = created(flushed(product))
    assert feature_ecx(p) >> 2 & 0xF == 0
    expect(p, POLICY | bit, S.POLICY_FAILURE)


# --- order against the migration-agent context check --------------------------------------------
def test_guest_state_is_checked_before_the_ma_context() -> None:
    p = launched(flushed())
    fw_page(p, GCTX2)  # not a context page
    got = start(p, POLICY | MIGRATE_MA, ma_en=1, ma_gctx_paddr=GCTX2)
    assert got == S.INVALID_GUEST_STATE


def test_ma_context_is_checked_before_the_policy() -> None:
    p = created(flushed())
    got = start(p, 0, ma_en=1, ma_gctx_paddr=GCTX2)  # MA page HYPERVISOR, policy 0
    assert got == S.INVALID_GUEST


# --- LAUNCH_START fields used later in the launch ----------------------------------------------
def test_gosvw_reaches_the_secrets_page_and_tsc_freq_is_stored() -> None:
    gosvw = b"gosvw-0123456789"
    p = ready(gosvw=gosvw, desired_tsc_freq=1_800_000)
    assert guest(p).desired_tsc_freq == 1_800_000
    launch_page(p, DATA, 0x5000, SECRETS)
    assert guest_read(p, 0x5000, DATA)[0x10:0x20] == gosvw
