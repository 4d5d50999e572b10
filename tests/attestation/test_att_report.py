"""Attestation reports from a launched guest (attestation.md §4): the fields, the signature by
the VCEK of the REPORTED_TCB (checked with ``cryptography`` alone), VLEK and masking, and the
report version each product's firmware writes."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec

from sp_emu.abi.commands import CommandId as C
from sp_emu.attestation import ReportSignatureError, parse_report, verify_report_signature
from sp_emu.hypervisors import LaunchOptions
from sp_emu.tcb import TcbVersion
from tests.attestation.att_helpers import (
    INVALID_KEY,
    SUCCESS,
    Guest,
    launched_guest,
    u32,
    u64,
    verify_with_cryptography,
)

HOST_DATA = bytes(range(32))
NONCE = b"attest me".ljust(64, b"!")


@pytest.fixture
def g() -> Guest:
    return launched_guest(opts=LaunchOptions(host_data=HOST_DATA))


def vcek_public(g: Guest, tcb: TcbVersion) -> ec.EllipticCurvePublicKey:
    return g.p.fw.chip.vcek_private_key(tcb).public_key()


def test_report_of_a_launched_guest(g: Guest) -> None:
    rsp = g.driver.get_report(g.host, NONCE)
    assert rsp.status == SUCCESS and len(rsp.report) == 0x4A0
    r = rsp.report
    st = g.p.fw.state
    # MEASUREMENT is the launch digest: the last PAGE_INFO chain value of the launch
    assert r[0x090:0x0C0] == g.launch.digest == g.launch.units[-1].digest
    assert r[0x050:0x090] == NONCE
    assert r[0x0C0:0x0E0] == HOST_DATA
    assert u32(r, 0x000) == 2  # Genoa FW 1.55.25
    assert u32(r, 0x004) == 0  # GUEST_SVN without an ID block
    assert u64(r, 0x008) == 0x30000  # the launch policy
    assert u32(r, 0x030) == 0  # VMPL
    assert u32(r, 0x034) == 1  # ECDSA P-384 with SHA-384
    assert u64(r, 0x038) == st.current_tcb.to_int()
    assert u64(r, 0x040) & 1 == 1  # SMT_EN
    assert u32(r, 0x048) == 0  # AUTHOR_KEY_EN 0, MASK_CHIP_KEY 0, SIGNING_KEY 0 (VCEK)
    assert r[0x140:0x160] == g.ctx.report_id != bytes(32)
    assert r[0x160:0x180] == b"\xff" * 32  # no migration agent
    assert u64(r, 0x180) == st.committed_tcb.to_int()  # no SNP_CONFIG: the committed TCB
    assert r[0x1A0:0x1E0] == g.p.fw.chip.chip_id
    assert u64(r, 0x1E0) == st.committed_tcb.to_int()
    assert tuple(r[0x1E8:0x1EB]) == (st.build, st.api_minor, st.api_major)
    assert tuple(r[0x1EC:0x1EF]) == (st.committed_api[2], st.committed_api[1], 1)
    assert u64(r, 0x1F0) == g.ctx.launch_tcb
    assert r[0x188:0x1A0] == bytes(0x18) and r[0x1F8:0x2A0] == bytes(0xA8)
    assert r[0x330:] == bytes(0x170)


def test_signature_verifies_with_cryptography_alone(g: Guest) -> None:
    report = g.driver.get_report(g.host, NONCE).report
    reported = g.p.fw.state.effective_reported_tcb()
    verify_with_cryptography(report, vcek_public(g, reported))
    verify_report_signature(report, vcek_public(g, reported))
    # not by the VCEK of another TCB
    other = TcbVersion(bootloader=1, tee=0, snp=1, microcode=1)
    with pytest.raises(InvalidSignature):
        verify_with_cryptography(report, vcek_public(g, other))


@pytest.mark.parametrize("offset", [0x000, 0x050, 0x090, 0x0BF, 0x180, 0x1A0, 0x29F, 0x2A0, 0x2E8])
def test_tampered_report_fails_verification(g: Guest, offset: int) -> None:
    report = bytearray(g.driver.get_report(g.host, NONCE).report)
    report[offset] ^= 0x01
    key = vcek_public(g, g.p.fw.state.effective_reported_tcb())
    with pytest.raises(InvalidSignature):
        verify_with_cryptography(bytes(report), key)
    with pytest.raises(ValueError):  # ReportSignatureError, or ReportFormatError for VERSION
        verify_report_signature(bytes(report), key)


def test_reports_differ_only_where_the_request_does(g: Guest) -> None:
    a = g.driver.get_report(g.host, b"a").report
    b = g.driver.get_report(g.host, b"b").report
    assert a[:0x50] == b[:0x50] and a[0x90:0x2A0] == b[0x90:0x2A0]
    assert a[0x50:0x90] != b[0x50:0x90]


def test_reported_tcb_selects_the_signing_vcek(g: Guest) -> None:
    st = g.p.fw.state
    lower = TcbVersion.from_int(st.committed_tcb.to_int() - 1)  # boot loader SVN one lower
    assert g.p.run(C.SNP_CONFIG, reported_tcb=lower.to_int()).ok
    report = g.driver.get_report(g.host).report
    assert u64(report, 0x180) == lower.to_int()
    assert u64(report, 0x1E0) == st.committed_tcb.to_int()
    verify_with_cryptography(report, vcek_public(g, lower))
    with pytest.raises(InvalidSignature):
        verify_with_cryptography(report, vcek_public(g, st.committed_tcb))


def test_mask_chip_id(g: Guest) -> None:
    assert g.p.run(C.SNP_CONFIG, mask_chip_id=1).ok
    report = g.driver.get_report(g.host).report
    assert report[0x1A0:0x1E0] == bytes(64)
    verify_with_cryptography(report, vcek_public(g, g.p.fw.state.committed_tcb))


def test_mask_chip_key_leaves_the_report_unsigned(g: Guest) -> None:
    assert g.p.run(C.SNP_CONFIG, mask_chip_key=1).ok
    for key_sel in (0, 1):
        rsp = g.driver.get_report(g.host, key_sel=key_sel)
        assert rsp.status == SUCCESS
        r = rsp.report
        assert u32(r, 0x048) == 7 << 2 | 1 << 1  # SIGNING_KEY none, MASK_CHIP_KEY
        assert r[0x2A0:] == bytes(0x200)
        with pytest.raises(ReportSignatureError):
            verify_report_signature(r, vcek_public(g, g.p.fw.state.committed_tcb))


def test_vlek_signs_when_loaded(g: Guest) -> None:
    chip, st = g.p.fw.chip, g.p.fw.state
    seed = chip.vlek_seed(st.committed_tcb)
    st.vlek = seed
    vlek = chip.vlek_private_key(seed).public_key()
    for key_sel, signer in ((0, 1), (2, 1), (1, 0)):
        r = g.driver.get_report(g.host, key_sel=key_sel).report
        assert (u32(r, 0x048) >> 2) & 7 == signer
        verify_with_cryptography(r, vlek if signer == 1 else vcek_public(g, st.committed_tcb))
    # MASK_CHIP_KEY hides the VCEK, not the VLEK
    assert g.p.run(C.SNP_CONFIG, mask_chip_key=1).ok
    r = g.driver.get_report(g.host, key_sel=0).report
    assert (u32(r, 0x048) >> 2) & 7 == 1
    verify_with_cryptography(r, vlek)
    assert (u32(g.driver.get_report(g.host, key_sel=1).report, 0x048) >> 2) & 7 == 7


def test_vmpl_is_reported(g: Guest) -> None:
    driver = g.driver_for(2)
    rsp = driver.get_report(g.host, vmpl=3)
    assert u32(rsp.report, 0x030) == 3
    assert driver.get_report(g.host).report[0x030] == 2  # default: the VMPCK's level
    assert driver.get_report(g.host, vmpl=1).status == 0x16


def test_vcek_disabled_guest_gets_invalid_key() -> None:
    g = launched_guest(opts=LaunchOptions(vcek_disabled=True))
    rsp = g.driver.get_report(g.host)
    assert rsp.status == INVALID_KEY and rsp.report == bytes(0x4A0)


@pytest.mark.parametrize(
    ("product", "build", "version", "cpuid"),
    [
        ("Milan", None, 2, None),
        ("Milan", 31, 4, (0x19, 0x01, 1)),
        ("Genoa", None, 2, None),
        ("Genoa", 40, 3, (0x19, 0x11, 1)),
        ("Turin", None, 5, (0x1A, 0x02, 1)),
    ],
)
def test_report_version_by_product(
    product: str, build: int | None, version: int, cpuid: tuple[int, int, int] | None
) -> None:
    g = launched_guest(product, build=build)
    r = g.driver.get_report(g.host).report
    assert u32(r, 0) == version
    assert parse_report(r)["version"] == version  # reserved bytes of that version are zero
    if cpuid is None:
        assert r[0x188:0x1A0] == bytes(0x18)
    else:
        assert tuple(r[0x188:0x18B]) == cpuid and r[0x18B:0x1A0] == bytes(0x15)
    assert r[0x1F8:0x208] == bytes(16)  # mitigation vectors: reserved, or 0 in v5
    if product == "Turin":
        assert r[0x1A0:0x1A8] != bytes(8) and r[0x1A8:0x1E0] == bytes(56)  # 8-byte CHIP_ID
    verify_with_cryptography(r, vcek_public(g, g.p.fw.state.effective_reported_tcb()))


def test_parse_report_round_trip(g: Guest) -> None:
    r = g.driver.get_report(g.host, NONCE).report
    f = parse_report(r)
    assert f["measurement"] == g.launch.digest and f["report_data"] == NONCE
    assert f["signing_key"] == 0 and f["signature_algo"] == 1
    assert int.from_bytes(f["signature_r"], "little") < 1 << 384
