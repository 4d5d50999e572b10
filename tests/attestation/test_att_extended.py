"""The extended guest request (GHCB NAE 0x8000_0012; attestation.md §7): the hypervisor
answers INVALID_LEN with the pages it needs, or fills the certificate table and runs
SNP_GUEST_REQUEST."""

from __future__ import annotations

import struct

import pytest

from sp_emu.attestation import (
    ASK_GUID,
    VLEK_GUID,
    CertTableError,
    GuestRequestError,
    build_cert_table,
    parse_cert_table,
)
from sp_emu.attestation.ghcb import SVM_VMGEXIT_EXT_GUEST_REQUEST, SVM_VMGEXIT_GUEST_REQUEST
from tests.attestation.att_helpers import (
    PAGE,
    SUCCESS,
    Guest,
    launched_guest,
    open_response,
    report_req,
    request,
    u32,
    verify_with_cryptography,
)

ARK = b"ark-certificate" * 40  # 600 bytes
ASK = b"ask-certificate" * 30  # 450 bytes
VCEK = b"vcek-certificate" * 250  # 4000 bytes
GUIDS = {
    "ark": bytes.fromhex("c0b406a4a803495297433fb6014cd0ae"),
    "ask": bytes.fromhex("4ab7b379bbac4fe4a02f05aef327c782"),
    "vcek": bytes.fromhex("63da758de6644564adc5f4b93be8accd"),
}


@pytest.fixture
def g() -> Guest:
    return launched_guest(certs={"ark": ARK, "ask": ASK, "vcek": VCEK})


def test_nae_exit_codes() -> None:
    assert SVM_VMGEXIT_GUEST_REQUEST == 0x8000_0011
    assert SVM_VMGEXIT_EXT_GUEST_REQUEST == 0x8000_0012


def test_certificate_table_layout() -> None:
    buf = build_cert_table({"ark": ARK, "ask": ASK, "vcek": VCEK})
    table_size = 4 * 24  # three entries and the zero terminator
    offsets = [table_size, table_size + len(ARK), table_size + len(ARK) + len(ASK)]
    for i, (name, blob) in enumerate((("ark", ARK), ("ask", ASK), ("vcek", VCEK))):
        entry = buf[24 * i : 24 * (i + 1)]
        assert entry[:16] == GUIDS[name]
        assert struct.unpack("<II", entry[16:]) == (offsets[i], len(blob))
        assert buf[offsets[i] : offsets[i] + len(blob)] == blob
    assert buf[72:96] == bytes(24)
    assert len(buf) == table_size + len(ARK) + len(ASK) + len(VCEK)


def test_parse_cert_table_checks_entries() -> None:
    buf = build_cert_table({"vcek": VCEK})
    assert [(c.name, c.data) for c in parse_cert_table(buf)] == [("vcek", VCEK)]
    with pytest.raises(CertTableError):
        parse_cert_table(buf[:-1])  # runs past the buffer
    with pytest.raises(CertTableError):
        parse_cert_table(buf[:24])  # no terminator
    bad = bytearray(buf)
    struct.pack_into("<I", bad, 16, 24)  # points into the table
    with pytest.raises(CertTableError):
        parse_cert_table(bytes(bad))
    assert parse_cert_table(bytes(24)) == []


def test_too_few_pages_then_success(g: Guest) -> None:
    """The guest driver's view: INVALID_LEN with the pages needed, the key kept, the
    sequence number spent; then a retry with enough pages succeeds."""
    needed = -(-(4 * 24 + len(ARK) + len(ASK) + len(VCEK)) // PAGE)
    assert needed == 2
    with pytest.raises(GuestRequestError) as info:
        g.driver.get_extended_report(g.host, b"ext", cert_pages=1)
    err = info.value
    assert err.vmm_error == 1 and err.fw_status == 0 and err.exitinfo2 == 1 << 32
    assert err.npages == needed and not err.vmpck_disabled
    assert not g.driver.disabled
    # the driver resent the request as a plain one, so the firmware consumed its seqno
    assert g.ctx.msg_count[0] == 2 == g.driver.seqno

    rsp = g.driver.get_extended_report(g.host, b"ext", cert_pages=needed)
    assert rsp.status == SUCCESS
    assert [(c.name, c.data) for c in rsp.certs] == [("ark", ARK), ("ask", ASK), ("vcek", VCEK)]
    assert len(rsp.certs_raw) == needed * PAGE
    assert rsp.report[0x50:0x53] == b"ext"
    st = g.p.fw.state
    verify_with_cryptography(
        rsp.report, g.p.fw.chip.vcek_private_key(st.effective_reported_tcb()).public_key()
    )
    assert g.ctx.msg_count[0] == 4 == g.driver.seqno


def test_hypervisor_does_not_call_the_firmware_when_pages_are_short(g: Guest) -> None:
    msg = request(g.ctx.vmpck[0], report_req(), seqno=1)
    result = g.host.ext_guest_request(msg, 1)
    assert (result.vmm_error, result.fw_status, result.npages) == (1, 0, 2)
    assert result.exitinfo2 == 0x1_0000_0000 and not result.response
    assert g.ctx.msg_count[0] == 0
    # the same message, with room for the certificates
    result = g.host.ext_guest_request(msg, 3)
    assert result.ok and len(result.certs) == 3 * PAGE
    assert result.certs[: 4 * 24] == build_cert_table(g.certs)[: 4 * 24]
    hdr, payload = open_response(g.ctx.vmpck[0], result.response)
    assert hdr["seqno"] == 2 and u32(payload, 0) == SUCCESS


def test_no_certificate_pages_means_a_plain_request(g: Guest) -> None:
    msg = request(g.ctx.vmpck[0], report_req(), seqno=1)
    result = g.host.ext_guest_request(msg, 0)
    assert result.ok and result.certs == b"" and result.response
    g.driver.seqno = 2  # that message was sent behind the driver's back
    rsp = g.driver.get_extended_report(g.host, cert_pages=0)
    assert rsp.status == SUCCESS and rsp.certs == ()


def test_hypervisor_without_certificates_writes_an_empty_table() -> None:
    g = launched_guest()
    rsp = g.driver.get_extended_report(g.host, cert_pages=1)
    assert rsp.status == SUCCESS and rsp.certs == () and rsp.certs_raw == bytes(PAGE)


def test_firmware_failure_is_reported_in_exitinfo2(g: Guest) -> None:
    msg = request(g.ctx.vmpck[0], report_req(), seqno=5)
    result = g.host.ext_guest_request(msg, 2)
    assert (result.vmm_error, result.fw_status) == (0, 0x1D)
    assert result.exitinfo2 == 0x1D


def test_vlek_certificates_by_guid(g: Guest) -> None:
    g.host.certs = {VLEK_GUID: b"vlek", ASK_GUID: b"asvk"}  # the ASVK goes under the ASK GUID
    rsp = g.driver.get_extended_report(g.host, cert_pages=1)
    assert [(c.name, c.data) for c in rsp.certs] == [("vlek", b"vlek"), ("ask", b"asvk")]
    assert rsp.certs_raw[:16] == bytes.fromhex("a8074bc2a25a483eaae639c045a0b8a1")
