"""The guest driver model (Linux ``sev-guest``): the counter it keeps, the response checks it
makes, and when it wipes its VMPCK to avoid IV reuse (attestation.md §1.3)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from sp_emu.attestation import GhcbResult, GuestMessenger, GuestRequestError
from sp_emu.attestation.ghcb import VMM_ERR_BUSY
from sp_emu.cpu import GuestCpu
from tests.attestation.att_helpers import (
    AEAD_OFLOW,
    SECRETS_GPA,
    SUCCESS,
    Guest,
    launched_guest,
    open_response,
)


@pytest.fixture
def g() -> Guest:
    return launched_guest()


@dataclass
class Tamper:
    """A hypervisor that relays to the real one and then misbehaves."""

    inner: Guest
    flip: dict[int, int] = field(default_factory=dict)
    """Response byte offset -> XOR mask."""
    busy: int = 0
    sent: list[bytes] = field(default_factory=list)

    def guest_request(self, request: bytes) -> GhcbResult:
        self.sent.append(request)
        if self.busy:
            self.busy -= 1
            return GhcbResult(vmm_error=VMM_ERR_BUSY)
        result = self.inner.host.guest_request(request)
        page = bytearray(result.response)
        for offset, mask in self.flip.items():
            page[offset] ^= mask
        return replace(result, response=bytes(page))

    def ext_guest_request(self, request: bytes, npages: int) -> GhcbResult:
        return self.inner.host.ext_guest_request(request, npages)


def test_reads_vmpck_and_counter_from_the_secrets_page(g: Guest) -> None:
    page = g.p.cpu.guest_read(GuestCpu(g.launch.asid), SECRETS_GPA, 0x1000)
    for n in range(4):
        d = GuestMessenger.from_secrets_page(page, n)
        assert d.vmpck == page[0x20 + 32 * n : 0x40 + 32 * n] == g.ctx.vmpck[n]
        assert d.seqno == 0
    d = GuestMessenger.from_secrets_page(page, 2)
    d.seqno = 0x1_2345_6789
    stored = d.store_seqno(page)
    assert stored[0xA8:0xAC] == (0x2345_6789).to_bytes(4, "little")  # LO word of VMPCK2
    assert stored[0xC0:0xC4] == (1).to_bytes(4, "little")  # HI word of VMPCK2
    assert GuestMessenger.from_secrets_page(stored, 2).seqno == 0x1_2345_6789
    assert GuestMessenger.from_secrets_page(stored, 1).seqno == 0


def test_counter_follows_the_firmware(g: Guest) -> None:
    for n in range(1, 4):
        assert g.driver.get_report(g.host).status == SUCCESS
        assert g.driver.seqno == g.ctx.msg_count[0] == 2 * n
    assert g.driver.get_derived_key(g.host).ok
    assert g.driver.get_tsc_info(g.host).status == SUCCESS
    assert g.driver.seqno == g.ctx.msg_count[0] == 10


def test_request_carries_counter_plus_one(g: Guest) -> None:
    g.driver.seqno = 0
    msg = g.driver.wrap(5, bytes(0x60))
    assert int.from_bytes(msg[0x20:0x28], "little") == 1
    assert msg[0x3C] == 0 and msg[0x34] == 5 and msg[0x35] == 1
    assert g.driver.seqno == 0  # wrapping alone spends nothing


def test_payload_errors_are_returned_not_raised(g: Guest) -> None:
    rsp = g.driver.get_report(g.host, key_sel=3)
    assert rsp.status == 0x27 and not g.driver.disabled and g.driver.seqno == 2


def test_firmware_error_wipes_the_vmpck(g: Guest) -> None:
    g.ctx.msg_count[0] = 8  # out of step with the driver
    with pytest.raises(GuestRequestError) as info:
        g.driver.get_report(g.host)
    assert info.value.fw_status == AEAD_OFLOW and info.value.vmpck_disabled
    assert g.driver.disabled and g.driver.seqno == 2
    with pytest.raises(GuestRequestError, match="disabled"):
        g.driver.get_report(g.host)


@pytest.mark.parametrize(
    "flip",
    [
        {0x20: 0x01},  # response seqno 2 -> 3
        {0x34: 0x0E},  # response type 6 -> 8 (in the AAD, but checked before decrypting)
        {0x35: 0x03},  # response version 1 -> 2
        {0x37: 0x08},  # MSG_SIZE 0x4C0 -> 0xCC0, larger than MSG_REPORT_RSP
        {0x3D: 0x01},  # a reserved AAD byte
        {0x60: 0x01},  # ciphertext
        {0x00: 0x01},  # tag
    ],
    ids=["seqno", "type", "version", "size", "aad", "ciphertext", "tag"],
)
def test_bad_response_wipes_the_vmpck(g: Guest, flip: dict[int, int]) -> None:
    hv = Tamper(g, flip)
    with pytest.raises(GuestRequestError, match="unexpected response"):
        g.driver.get_report(hv)
    assert g.driver.disabled and g.driver.seqno == 2


def test_busy_hypervisor_gets_the_same_message_again(g: Guest) -> None:
    hv = Tamper(g, busy=2)
    assert g.driver.get_report(hv).status == SUCCESS
    assert len(hv.sent) == 3 and hv.sent[0] == hv.sent[1] == hv.sent[2]
    assert g.driver.seqno == 2


def test_zeroed_vmpck_is_disabled(g: Guest) -> None:
    d = GuestMessenger(bytes(32), 0)
    assert d.disabled
    with pytest.raises(GuestRequestError):
        d.get_report(g.host)


def test_driver_for_a_lower_privileged_vmpck(g: Guest) -> None:
    d = g.driver_for(3)
    rsp = d.get_report(g.host)
    assert rsp.status == SUCCESS and rsp.report[0x30] == 3
    assert g.ctx.msg_count == [0, 0, 0, 2]
    hdr, _ = open_response(g.ctx.vmpck[3], g.p.memory.read(g.host.rsp_spa, 0x1000))
    assert hdr["vmpck"] == 3


def test_counter_storage_limit(g: Guest) -> None:
    g.driver.seqno = 0xFFFF_FFFE  # Linux keeps 32 bits and refuses to wrap
    with pytest.raises(GuestRequestError, match="overflow"):
        g.driver.get_report(g.host)
    assert not g.driver.disabled
