"""Relying-party verification of reports (sp_emu.attestation.verify): chain, TCB and hwID
binding, signature and expected values, with cryptography alone."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from sp_emu import CommandId, Platform, PlatformConfig
from sp_emu.attestation import GuestMessenger, GuestRequestHost
from sp_emu.attestation.verify import verify_report
from sp_emu.certs import ChipCertificates
from sp_emu.hypervisors import KVM_QEMU, LaunchOptions, LaunchResult, launch
from sp_emu.images import PageType, build_sample_ovmf, snp_launch_plan
from sp_emu.tcb import TcbVersion


@dataclass
class Attested:
    platform: Platform
    result: LaunchResult
    report: bytes
    certs: ChipCertificates


def attest(product: str = "Genoa", *, mask_chip_id: bool = False) -> Attested:
    p = Platform(PlatformConfig(product=product))
    plan = snp_launch_plan(build_sample_ovmf())
    result = launch(p, plan, KVM_QEMU, LaunchOptions(host_data=b"\x42" * 32))
    if mask_chip_id:
        assert p.run(CommandId.SNP_CONFIG, mask_chip_id=1).ok
    secrets = next(i.gpa for i in plan.items if i.page_type == PageType.SECRETS)
    guest = GuestMessenger.from_guest_memory(p, result.asid, secrets)
    rsp = guest.get_report(GuestRequestHost(p, result.gctx), b"\x07" * 64)
    assert rsp.status == 0 and rsp.report is not None
    return Attested(p, result, rsp.report, ChipCertificates(p.fw.chip))


@pytest.fixture(scope="module")
def genoa() -> Attested:
    return attest()


def failed(v: object) -> list[str]:
    return [c.name for c in v.checks if not c.ok]  # type: ignore[attr-defined]


@pytest.mark.parametrize("product", ["Milan", "Genoa", "Turin"])
def test_a_launched_guests_report_verifies(product: str) -> None:
    a = attest(product)
    c = a.certs
    v = verify_report(
        a.report,
        c.ark_cert,
        c.ask_cert,
        c.vcek_cert(),
        measurement=a.result.digest,
        report_data=b"\x07" * 64,
        host_data=b"\x42" * 32,
    )
    assert v.ok, failed(v)
    assert v.fields["measurement"] == a.result.digest
    assert len(v.checks) == 10


def test_every_signed_byte_is_covered(genoa: Attested) -> None:
    c = genoa.certs
    for offset in (0x08, 0x50, 0x90, 0xC0, 0x180, 0x1A0, 0x1F7):
        bad = bytearray(genoa.report)
        bad[offset] ^= 0x01
        v = verify_report(bytes(bad), c.ark_cert, c.ask_cert, c.vcek_cert())
        assert "report signature verifies with the VCEK" in failed(v), hex(offset)


def test_unexpected_measurement_is_reported(genoa: Attested) -> None:
    c = genoa.certs
    v = verify_report(genoa.report, c.ark_cert, c.ask_cert, c.vcek_cert(), measurement=bytes(48))
    assert failed(v) == ["MEASUREMENT is as expected"]


def test_a_vcek_for_another_tcb_does_not_match(genoa: Attested) -> None:
    c = genoa.certs
    other = TcbVersion(bootloader=1, tee=0, snp=1, microcode=1)
    v = verify_report(genoa.report, c.ark_cert, c.ask_cert, c.vcek_cert(other))
    assert "VCEK TCB equals REPORTED_TCB" in failed(v)
    assert "report signature verifies with the VCEK" in failed(v)


def test_another_chips_certificates_are_refused(genoa: Attested) -> None:
    other = ChipCertificates(Platform(PlatformConfig(seed=b"another chip")).fw.chip)
    v = verify_report(genoa.report, other.ark_cert, other.ask_cert, other.vcek_cert())
    assert failed(v) == ["VCEK hwID equals CHIP_ID", "report signature verifies with the VCEK"]


def test_a_broken_chain_is_refused(genoa: Attested) -> None:
    c = genoa.certs
    # The VCEK presented as the ASK: the ASK's signature by the ARK cannot verify.
    v = verify_report(genoa.report, c.ark_cert, c.vcek_cert(), c.vcek_cert())
    assert "ASK is signed by the ARK" in failed(v)


def test_masked_chip_id_skips_the_hwid_binding() -> None:
    a = attest(mask_chip_id=True)
    c = a.certs
    v = verify_report(a.report, c.ark_cert, c.ask_cert, c.vcek_cert())
    assert v.ok and not any(v.fields["chip_id"])
    assert "VCEK hwID equals CHIP_ID" not in [x.name for x in v.checks]


def test_malformed_report(genoa: Attested) -> None:
    c = genoa.certs
    v = verify_report(genoa.report[:-1], c.ark_cert, c.ask_cert, c.vcek_cert())
    assert failed(v) == ["report is well formed"] and not v.ok


def test_the_root_says_it_is_an_emulator_test_root(genoa: Attested) -> None:
    subject = genoa.certs.ark_cert.subject.rfc4514_string()
    assert "EMULATOR TEST" in subject and "NOT AMD" in subject
