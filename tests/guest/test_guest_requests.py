"""SNP guest requests through the GHCB (NAE 0x8000_0011/12) under the KVM runtime model."""

from __future__ import annotations

import pytest

from sp_emu.attestation import GuestMessenger, parse_cert_table
from sp_emu.attestation.verify import verify_report
from sp_emu.certs import ChipCertificates, der
from sp_emu.guest import GhcbProtocolError, GuestSoftware, PscOp
from sp_emu.guest.requests import GhcbRequestChannel
from sp_emu.images import PageType

from .helpers import GHCB_GPA, PLAN, boot, launch_vm

REQ, RSP, CERTS = 0x105000, 0x106000, 0x110000
SECRETS = next(i.gpa for i in PLAN.items if i.page_type == PageType.SECRETS)
GUEST_REQUEST, EXT_GUEST_REQUEST = 0x8000_0011, 0x8000_0012  # rmp-and-instructions.md §7.3


def setup(
    cert_pages: int = 4,
) -> tuple[GuestSoftware, GhcbRequestChannel, GuestMessenger, ChipCertificates]:
    vm = launch_vm()
    certs = ChipCertificates(vm.p.fw.chip)
    vm.attach_certificates(
        {"ark": der(certs.ark_cert), "ask": der(certs.ask_cert), "vcek": der(certs.vcek_cert())}
    )
    guest = boot(vm)
    channel = GhcbRequestChannel(guest, REQ, RSP, CERTS, cert_pages)
    driver = GuestMessenger.from_secrets_page(guest.read(SECRETS, 0x1000), 0)
    return guest, channel, driver, certs


def test_report_through_the_ghcb_verifies() -> None:
    _guest, channel, driver, certs = setup()
    rsp = driver.get_report(channel, b"\x11" * 64)
    assert rsp.status == 0 and rsp.report is not None
    v = verify_report(
        rsp.report, certs.ark_cert, certs.ask_cert, certs.vcek_cert(), report_data=b"\x11" * 64
    )
    assert v.ok, [c for c in v.checks if not c.ok]
    assert driver.seqno == 2  # one request and its response


def test_extended_report_carries_the_hosts_certificates() -> None:
    _guest, channel, driver, certs = setup()
    rsp = driver.get_extended_report(channel, b"\x22" * 64, cert_pages=4)
    assert rsp.status == 0 and rsp.certs_raw is not None
    entries = parse_cert_table(rsp.certs_raw)
    blobs = [e.data for e in entries]
    assert blobs == [der(certs.ark_cert), der(certs.ask_cert), der(certs.vcek_cert())]


def test_too_small_certificate_buffer_gets_invalid_len_with_the_page_count() -> None:
    guest, channel, _driver, _certs = setup(cert_pages=1)
    raw = GuestMessenger.from_secrets_page(guest.read(SECRETS, 0x1000), 0).wrap(
        5,
        bytes(0x60),  # MSG_REPORT_REQ
    )
    result = channel.ext_guest_request(raw, 1)
    assert result.vmm_error == 1 and result.npages >= 2  # INVALID_LEN, pages needed in RBX


def test_request_pages_must_be_shared_guest_pages() -> None:
    guest, _channel, driver, _certs = setup()
    private = GhcbRequestChannel.__new__(GhcbRequestChannel)
    private.guest, private.req_gpa, private.rsp_gpa, private.certs_gpa = guest, REQ, 0x1F0000, None
    with pytest.raises(GhcbProtocolError, match="refused"):
        driver.get_report(private, bytes(64))


def test_extended_request_without_rax_and_rbx_is_missing_input() -> None:
    guest, _channel, _driver, _certs = setup()
    answer = guest.nae(EXT_GUEST_REQUEST, REQ, RSP)
    assert answer is not None
    assert (answer.exit_info1, answer.exit_info2) == (2, 4)  # malformed input: missing input
    assert guest.page_state_change(GHCB_GPA, PscOp.SHARED) == 0
