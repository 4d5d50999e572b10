"""SNP_GUEST_REQUEST: every mailbox-level check in the documented order (firmware-commands.md
§6), AES-GCM and sequence numbers (attestation.md §1.2-1.3), and the payload STATUS of each
message type (§2, §8.2).  Requests are sealed with the tests' own encoder."""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sp_emu.abi.commands import CommandId as C
from sp_emu.hypervisors import LaunchOptions
from sp_emu.platform import Platform
from tests.attestation.att_helpers import (
    AEAD_OFLOW,
    BAD_MEASUREMENT,
    CPUID_REQ,
    INVALID_ADDRESS,
    INVALID_GUEST,
    INVALID_GUEST_STATE,
    INVALID_KEY,
    INVALID_PAGE_SIZE,
    INVALID_PAGE_STATE,
    INVALID_PARAM,
    INVALID_PLATFORM_STATE,
    KEY_REQ,
    KEY_RSP,
    MEM,
    PAGE,
    REPORT_REQ,
    REPORT_RSP,
    SUCCESS,
    TSC_INFO_REQ,
    TSC_INFO_RSP,
    Guest,
    fw_page,
    header,
    key_req,
    launched_guest,
    open_response,
    report_req,
    request,
    response_page,
    run_request,
    seal,
    u32,
    u64,
)

FREE = 0x300_0000
"""Free host DRAM (48 MiB) for pages the tests place by hand."""
FREE_2M = 0x340_0000


@pytest.fixture
def g() -> Guest:
    return launched_guest()


def vmpck(g: Guest, n: int = 0) -> bytes:
    return g.ctx.vmpck[n]


def report_msg(g: Guest, *, seqno: int = 1, vmpck_id: int = 0, **hdr: int) -> bytes:
    return request(vmpck(g, vmpck_id), report_req(), seqno=seqno, vmpck=vmpck_id, **hdr)


def expect_mailbox_failure(g: Guest, status: int, message: bytes, **where: int) -> None:
    """The command fails with ``status``, writes nothing and leaves every counter alone."""
    before_counts = list(g.ctx.msg_count)
    before_page = response_page(g, where.get("rsp_spa"))
    result = run_request(g, message, **where)
    assert result.status == status, result.detail
    assert g.ctx.msg_count == before_counts
    assert response_page(g, where.get("rsp_spa")) == before_page


# --- mailbox level, in order ---------------------------------------------------------------------
def test_gctx_low_bits_are_checked_first() -> None:
    p = Platform(memory=MEM)  # SNP not even initialised: the MBZ check still comes first
    res = p.run(C.SNP_GUEST_REQUEST, gctx_paddr=FREE | 0x8, req_paddr=FREE, res_paddr=FREE)
    assert res.status == INVALID_PARAM
    res = p.run(C.SNP_GUEST_REQUEST, gctx_paddr=FREE, req_paddr=FREE, res_paddr=FREE)
    assert res.status == INVALID_PLATFORM_STATE


def test_page_lookups_come_before_the_context_check(g: Guest) -> None:
    beyond = MEM + PAGE
    p = g.p
    res = p.run(C.SNP_GUEST_REQUEST, gctx_paddr=FREE, req_paddr=beyond, res_paddr=FREE)
    assert res.status == INVALID_ADDRESS
    in_rmp = p.fw.rmp_base
    res = p.run(C.SNP_GUEST_REQUEST, gctx_paddr=FREE, req_paddr=FREE, res_paddr=in_rmp)
    assert res.status == INVALID_PARAM
    res = p.run(C.SNP_GUEST_REQUEST, gctx_paddr=FREE, req_paddr=FREE, res_paddr=FREE)
    assert res.status == INVALID_GUEST


def test_response_page_must_be_firmware(g: Guest) -> None:
    expect_mailbox_failure(g, INVALID_PAGE_STATE, report_msg(g), rsp_spa=FREE)


def test_request_page_may_be_in_any_state(g: Guest) -> None:
    fw_page(g.p, FREE)  # a FIRMWARE request page works as well as a HYPERVISOR one
    result = run_request(g, report_msg(g), req_spa=FREE)
    assert result.status == SUCCESS


def test_request_and_response_pages_must_be_4k(g: Guest) -> None:
    fw_page(g.p, FREE_2M, page_size=1)
    expect_mailbox_failure(g, INVALID_PAGE_SIZE, report_msg(g), req_spa=FREE_2M)
    expect_mailbox_failure(g, INVALID_PAGE_SIZE, report_msg(g), rsp_spa=FREE_2M)


def test_response_state_is_checked_before_page_size(g: Guest) -> None:
    fw_page(g.p, FREE_2M, page_size=1)
    expect_mailbox_failure(g, INVALID_PAGE_STATE, report_msg(g), req_spa=FREE_2M, rsp_spa=FREE)


def test_guest_must_be_running(g: Guest) -> None:
    gctx2 = fw_page(g.p, FREE + PAGE)
    assert g.p.run(C.SNP_GCTX_CREATE, gctx_paddr=gctx2).ok
    g.p.memory.write(g.host.req_spa, report_msg(g))
    res = g.p.run(
        C.SNP_GUEST_REQUEST, gctx_paddr=gctx2, req_paddr=g.host.req_spa, res_paddr=g.host.rsp_spa
    )
    assert res.status == INVALID_GUEST_STATE


def test_c_bit_in_page_addresses_is_ignored(g: Guest) -> None:
    g.p.memory.write(g.host.req_spa, report_msg(g))
    c_bit = 1 << 51
    res = g.p.run(
        C.SNP_GUEST_REQUEST,
        gctx_paddr=g.gctx,
        req_paddr=g.host.req_spa | c_bit,
        res_paddr=g.host.rsp_spa | c_bit,
    )
    assert res.status == SUCCESS
    assert open_response(vmpck(g), response_page(g))[0]["seqno"] == 2


def test_header_must_fit_in_its_page(g: Guest) -> None:
    spa = FREE + PAGE - 0x5F  # header would run 1 byte into the next page
    expect_mailbox_failure(g, INVALID_PARAM, report_msg(g), req_spa=spa)


def test_unaligned_request_that_fits_is_accepted(g: Guest) -> None:
    msg = report_msg(g)
    result = run_request(g, msg, req_spa=FREE + PAGE - len(msg))
    assert result.status == SUCCESS


@pytest.mark.parametrize(
    "bad",
    [
        {"hdr_version": 2},
        {"hdr_version": 0},
        {"hdr_size": 0x50},
        {"algo": 0},
        {"algo": 2},
    ],
)
def test_header_fields(g: Guest, bad: dict[str, int]) -> None:
    expect_mailbox_failure(g, INVALID_PARAM, report_msg(g, **bad))


@pytest.mark.parametrize("size", [0, 0x18, 0x5F])
def test_msg_size_must_be_a_nonzero_multiple_of_16(g: Guest, size: int) -> None:
    payload = report_req()[:size]
    expect_mailbox_failure(g, INVALID_PARAM, request(vmpck(g), payload, seqno=1))


def test_payload_must_fit_in_the_page(g: Guest) -> None:
    msg = report_msg(g)
    expect_mailbox_failure(g, INVALID_PARAM, msg, req_spa=FREE + PAGE - len(msg) + 0x10)


def test_msg_vmpck_above_3(g: Guest) -> None:
    h = header(seqno=1, msg_type=REPORT_REQ, msg_size=0x60, vmpck=4)
    expect_mailbox_failure(g, INVALID_PARAM, seal(vmpck(g), h, report_req()))


def test_wrong_vmpck_fails_authentication(g: Guest) -> None:
    h = header(seqno=1, msg_type=REPORT_REQ, msg_size=0x60, vmpck=0)
    expect_mailbox_failure(g, BAD_MEASUREMENT, seal(vmpck(g, 1), h, report_req()))


@pytest.mark.parametrize(
    "offset",
    [0x00, 0x0F, 0x20, 0x34, 0x35, 0x3C, 0x3F, 0x5F, 0x60, 0x60 + 0x5F],
    ids=lambda o: f"byte{o:#x}",
)
def test_tampering_fails_authentication(g: Guest, offset: int) -> None:
    """Tag, ciphertext, the AAD (0x30..0x5F: type, version, VMPCK id, reserved bytes) and the
    sequence number (through the IV) are all bound by the tag."""
    msg = bytearray(report_msg(g))
    msg[offset] ^= 0x01
    expect_mailbox_failure(g, BAD_MEASUREMENT, bytes(msg))


def test_header_checks_come_before_authentication(g: Guest) -> None:
    msg = bytearray(report_msg(g))
    msg[0x30] = 0  # ALGO
    expect_mailbox_failure(g, INVALID_PARAM, bytes(msg))


def test_tag_padding_bytes_are_not_checked(g: Guest) -> None:
    """Header bytes 0x10..0x1F are outside the tag and the AAD."""
    msg = bytearray(report_msg(g))
    msg[0x10:0x20] = b"\xff" * 16
    assert run_request(g, bytes(msg)).status == SUCCESS


def test_request_page_of_the_guest_reads_as_ciphertext(g: Guest) -> None:
    """A guest-private page holds the message encrypted under the guest's memory key."""
    spa = next(s for s in range(0x100_0000, 0x200_0000, PAGE) if g.p.rmp.entry(s >> 12).asid)
    key = g.p.fw.asid_keys[g.launch.asid]
    before = g.p.memory.read(spa, PAGE, key)
    g.p.memory.write(spa, report_msg(g), key)
    res = g.p.run(C.SNP_GUEST_REQUEST, gctx_paddr=g.gctx, req_paddr=spa, res_paddr=g.host.rsp_spa)
    assert res.status in (BAD_MEASUREMENT, INVALID_PARAM)
    g.p.memory.write(spa, before, key)


@pytest.mark.parametrize("seqno", [0, 2, 3, 1 << 40])
def test_sequence_number_must_be_counter_plus_one(g: Guest, seqno: int) -> None:
    expect_mailbox_failure(g, AEAD_OFLOW, report_msg(g, seqno=seqno))


def test_counter_at_the_limit_overflows(g: Guest) -> None:
    g.ctx.msg_count[0] = (1 << 64) - 2
    expect_mailbox_failure(g, AEAD_OFLOW, report_msg(g, seqno=(1 << 64) - 1))
    g.ctx.msg_count[0] = (1 << 64) - 4
    assert run_request(g, report_msg(g, seqno=(1 << 64) - 3)).status == SUCCESS
    assert g.ctx.msg_count[0] == (1 << 64) - 2


@pytest.mark.parametrize("version", [0, 2, 255])
def test_msg_version(g: Guest, version: int) -> None:
    expect_mailbox_failure(g, INVALID_PARAM, report_msg(g, version=version))


@pytest.mark.parametrize("msg_type", [0, REPORT_RSP, 19, 200, CPUID_REQ, 7, 13])
def test_unanswered_message_types(g: Guest, msg_type: int) -> None:
    """Unknown types, response types, and the types the emulator does not model."""
    msg = request(vmpck(g), report_req(), seqno=1, msg_type=msg_type)
    expect_mailbox_failure(g, INVALID_PARAM, msg)


def test_authentication_is_checked_before_the_sequence_number(g: Guest) -> None:
    h = header(seqno=7, msg_type=REPORT_REQ, msg_size=0x60)
    expect_mailbox_failure(g, BAD_MEASUREMENT, seal(vmpck(g, 2), h, report_req()))


def test_sequence_is_checked_before_version_and_type(g: Guest) -> None:
    msg = request(vmpck(g), report_req(), seqno=5, msg_type=200, version=0)
    expect_mailbox_failure(g, AEAD_OFLOW, msg)


def test_response_must_fit_in_its_page(g: Guest) -> None:
    """Checked last, once the response size is known (0x60 + 0x4C0 for a report)."""
    rsp = g.host.rsp_spa + PAGE - 0x520 + 0x10
    before = g.p.memory.read(g.host.rsp_spa, PAGE)
    res = run_request(g, report_msg(g), rsp_spa=rsp)
    assert res.status == INVALID_PARAM
    assert g.ctx.msg_count[0] == 0 and g.p.memory.read(g.host.rsp_spa, PAGE) == before
    assert run_request(g, report_msg(g), rsp_spa=rsp - 0x10).status == SUCCESS


# --- the response -------------------------------------------------------------------------------
def test_response_header_and_payload(g: Guest) -> None:
    result = run_request(g, report_msg(g))
    assert result.ok
    hdr, payload = open_response(vmpck(g), response_page(g))
    assert hdr == {
        "seqno": 2,
        "algo": 1,
        "hdr_version": 1,
        "hdr_size": 0x60,
        "msg_type": REPORT_RSP,
        "version": 1,
        "msg_size": 0x4C0,
        "vmpck": 0,
    }
    page = response_page(g)
    assert page[0x10:0x20] == bytes(16) and page[0x28:0x30] == bytes(8)
    assert page[0x38:0x3C] == bytes(4) and page[0x3D:0x60] == bytes(0x23)
    assert u32(payload, 0) == SUCCESS and u32(payload, 4) == 0x4A0
    assert payload[0x08:0x20] == bytes(0x18)
    assert result.out is not None and result.out["msg_seqno"] == 2


def test_response_to_an_unaligned_response_address(g: Guest) -> None:
    rsp = g.host.rsp_spa + 0x100
    assert run_request(g, report_msg(g), rsp_spa=rsp).ok
    hdr, payload = open_response(vmpck(g), g.p.memory.read(rsp, PAGE - 0x100))
    assert hdr["seqno"] == 2 and u32(payload, 0) == SUCCESS


# --- sequence numbers -----------------------------------------------------------------------------
def test_counter_advances_by_two_per_exchange(g: Guest) -> None:
    for n in range(4):
        seqno = 2 * n + 1
        assert run_request(g, report_msg(g, seqno=seqno)).ok
        hdr, _ = open_response(vmpck(g), response_page(g))
        assert hdr["seqno"] == seqno + 1
        assert g.ctx.msg_count == [seqno + 1, 0, 0, 0]


def test_replayed_request_is_refused(g: Guest) -> None:
    msg = report_msg(g)
    assert run_request(g, msg).ok
    expect_mailbox_failure(g, AEAD_OFLOW, msg)


def test_mailbox_error_leaves_the_counter_so_the_next_request_works(g: Guest) -> None:
    assert run_request(g, report_msg(g, seqno=1)).ok
    expect_mailbox_failure(g, AEAD_OFLOW, report_msg(g, seqno=5))
    expect_mailbox_failure(g, INVALID_PARAM, report_msg(g, seqno=3, version=2))
    assert run_request(g, report_msg(g, seqno=3)).ok
    assert g.ctx.msg_count[0] == 4


def test_payload_error_still_advances_the_counter(g: Guest) -> None:
    msg = request(vmpck(g), report_req(key_sel=3), seqno=1)
    assert run_request(g, msg).ok
    _, payload = open_response(vmpck(g), response_page(g))
    assert u32(payload, 0) == INVALID_KEY
    assert g.ctx.msg_count[0] == 2
    assert run_request(g, report_msg(g, seqno=3)).ok


def test_each_vmpck_has_its_own_counter(g: Guest) -> None:
    assert run_request(g, report_msg(g, vmpck_id=2, seqno=1)).ok
    assert g.ctx.msg_count == [0, 0, 2, 0]
    hdr, _ = open_response(vmpck(g, 2), response_page(g))
    assert hdr["vmpck"] == 2
    assert run_request(g, report_msg(g, vmpck_id=0, seqno=1)).ok
    assert run_request(g, report_msg(g, vmpck_id=2, seqno=3)).ok
    assert g.ctx.msg_count == [2, 0, 4, 0]


def test_short_payload_reads_as_zero_extended(g: Guest) -> None:
    """A 0x20-byte KEY_REQ-sized payload for REPORT_REQ: the missing bytes read as zero."""
    msg = request(vmpck(g), report_req()[:0x50], seqno=1)
    assert run_request(g, msg).ok
    _, payload = open_response(vmpck(g), response_page(g))
    assert u32(payload, 0) == SUCCESS


# --- payload STATUS -------------------------------------------------------------------------------
def payload_status(g: Guest, msg_type: int, payload: bytes, vmpck_id: int = 0) -> bytes:
    seqno = g.ctx.msg_count[vmpck_id] + 1
    msg = request(vmpck(g, vmpck_id), payload, seqno=seqno, msg_type=msg_type, vmpck=vmpck_id)
    assert run_request(g, msg).ok
    hdr, out = open_response(vmpck(g, vmpck_id), response_page(g))
    assert hdr["msg_type"] == msg_type + 1
    return out


def with_byte(payload: bytes, offset: int, value: int) -> bytes:
    b = bytearray(payload)
    b[offset] = value
    return bytes(b)


REPORT_CASES: list[tuple[str, Callable[[], bytes], int, int]] = [
    ("reserved 0x48", lambda: with_byte(report_req(), 0x48, 1), 0, INVALID_PARAM),
    ("reserved 0x5F", lambda: with_byte(report_req(), 0x5F, 1), 0, INVALID_PARAM),
    ("key_sel bits 31:2", lambda: with_byte(report_req(), 0x44, 4), 0, INVALID_PARAM),
    ("reserved before key_sel", lambda: with_byte(report_req(key_sel=3), 0x50, 1), 0, 0x16),
    ("key_sel 3", lambda: report_req(key_sel=3), 0, INVALID_KEY),
    ("VLEK only, none loaded", lambda: report_req(key_sel=2), 0, INVALID_KEY),
    ("key before vmpl", lambda: report_req(vmpl=0, key_sel=3), 1, INVALID_KEY),
    ("vmpl below vmpck", lambda: report_req(vmpl=0), 1, INVALID_PARAM),
    ("vmpl = vmpck", lambda: report_req(vmpl=1), 1, SUCCESS),
    ("vmpl above vmpck", lambda: report_req(vmpl=3), 1, SUCCESS),
    ("vmpl 3 from vmpck 3", lambda: report_req(vmpl=3), 3, SUCCESS),
]


@pytest.mark.parametrize(
    ("payload", "vmpck_id", "status"),
    [c[1:] for c in REPORT_CASES],
    ids=[c[0] for c in REPORT_CASES],
)
def test_report_payload_status(
    g: Guest, payload: Callable[[], bytes], vmpck_id: int, status: int
) -> None:
    out = payload_status(g, REPORT_REQ, payload(), vmpck_id)
    assert u32(out, 0) == status
    assert u32(out, 4) == 0x4A0  # REPORT_SIZE is set whatever the status
    if status != SUCCESS:
        assert out[0x20:] == bytes(0x4A0)


def test_vcek_disabled_guest_report_status() -> None:
    g = launched_guest(opts=LaunchOptions(vcek_disabled=True))
    assert u32(payload_status(g, REPORT_REQ, report_req(key_sel=0)), 0) == INVALID_KEY
    assert u32(payload_status(g, REPORT_REQ, report_req(key_sel=1)), 0) == INVALID_KEY
    g.p.fw.state.vlek = g.p.fw.chip.vlek_seed(g.p.fw.state.committed_tcb)
    assert u32(payload_status(g, REPORT_REQ, report_req(key_sel=0)), 0) == SUCCESS
    assert u32(payload_status(g, REPORT_REQ, report_req(key_sel=2)), 0) == SUCCESS
    assert u32(payload_status(g, REPORT_REQ, report_req(key_sel=1)), 0) == INVALID_KEY


def committed(g: Guest) -> int:
    return g.p.fw.state.committed_tcb.to_int()


KEY_CASES: list[tuple[str, Callable[[Guest], bytes], int, int]] = [
    ("ok", lambda g: key_req(gfs=0x3F, tcb=committed(g)), 0, SUCCESS),
    ("word 0x04", lambda g: with_byte(key_req(), 0x04, 1), 0, INVALID_PARAM),
    ("bits 31:3 of 0x00", lambda g: with_byte(key_req(), 0x00, 8), 0, INVALID_PARAM),
    ("key_sel 3", lambda g: key_req(key_sel=3), 0, INVALID_KEY),
    ("VLEK only, none", lambda g: key_req(key_sel=2), 0, INVALID_KEY),
    ("VMRK ignores key_sel", lambda g: key_req(root=1, key_sel=3), 0, SUCCESS),
    ("key before vmpl", lambda g: key_req(key_sel=3, vmpl=0), 2, INVALID_KEY),
    ("vmpl below vmpck", lambda g: key_req(vmpl=1), 2, INVALID_PARAM),
    ("vmpl above vmpck", lambda g: key_req(vmpl=3), 2, SUCCESS),
    ("gfs bit 6", lambda g: key_req(gfs=1 << 6), 0, INVALID_PARAM),
    ("gfs bit 63", lambda g: key_req(gfs=1 << 63), 0, INVALID_PARAM),
    ("tcb above committed", lambda g: key_req(gfs=1 << 5, tcb=committed(g) + 1), 0, 0x16),
    ("tcb reserved byte", lambda g: key_req(gfs=1 << 5, tcb=committed(g) | 1 << 24), 0, 0x16),
    ("tcb not selected", lambda g: key_req(tcb=0xFFFF_FFFF_FFFF_FFFF), 0, SUCCESS),
    ("tcb below committed", lambda g: key_req(gfs=1 << 5, tcb=committed(g) - 1), 0, SUCCESS),
    ("svn above id block", lambda g: key_req(gfs=1 << 4, svn=1), 0, INVALID_PARAM),
    ("svn not selected", lambda g: key_req(svn=7), 0, SUCCESS),
    ("gfs before tcb", lambda g: key_req(gfs=1 << 6 | 1 << 5, tcb=1 << 24), 0, INVALID_PARAM),
]


@pytest.mark.parametrize(
    ("payload", "vmpck_id", "status"),
    [c[1:] for c in KEY_CASES],
    ids=[c[0] for c in KEY_CASES],
)
def test_key_payload_status(
    g: Guest, payload: Callable[[Guest], bytes], vmpck_id: int, status: int
) -> None:
    out = payload_status(g, KEY_REQ, payload(g), vmpck_id)
    assert len(out) == 0x40
    assert u32(out, 0) == status
    assert (out[0x20:] != bytes(32)) == (status == SUCCESS)


def test_mask_chip_key_refuses_chip_rooted_keys(g: Guest) -> None:
    assert g.p.run(C.SNP_CONFIG, mask_chip_key=1).ok
    assert u32(payload_status(g, KEY_REQ, key_req()), 0) == INVALID_KEY
    assert u32(payload_status(g, KEY_REQ, key_req(root=1)), 0) == SUCCESS
    # checked before KEY_SEL and VMPL
    assert u32(payload_status(g, KEY_REQ, key_req(key_sel=3), 1), 0) == INVALID_KEY


def test_vcek_disabled_guest_key_status() -> None:
    g = launched_guest(opts=LaunchOptions(vcek_disabled=True))
    assert u32(payload_status(g, KEY_REQ, key_req(key_sel=1)), 0) == INVALID_KEY
    assert u32(payload_status(g, KEY_REQ, key_req(key_sel=0)), 0) == INVALID_KEY
    assert u32(payload_status(g, KEY_REQ, key_req(root=1)), 0) == SUCCESS


def test_tsc_info(g: Guest) -> None:
    out = payload_status(g, TSC_INFO_REQ, bytes(0x80))
    assert len(out) == 0x80 and u32(out, 0) == SUCCESS
    assert u64(out, 0x10) == 0  # GUEST_TSC_OFFSET
    assert u32(out, 0x18) == 200  # Genoa TSC_FACTOR
    bad = payload_status(g, TSC_INFO_REQ, with_byte(bytes(0x80), 0x7F, 1))
    assert u32(bad, 0) == INVALID_PARAM and bad[4:] == bytes(0x7C)
    hdr, _ = open_response(vmpck(g), response_page(g))
    assert hdr["msg_type"] == TSC_INFO_RSP and hdr["msg_size"] == 0x80


def test_tsc_scale_is_8_32_fixed_point() -> None:
    from sp_emu.securetsc import tsc_scale

    ref = 99_800  # kHz: 100 MHz less Genoa's 0.2 % spread
    assert tsc_scale(ref, ref) == 1 << 32
    assert tsc_scale(2 * ref, ref) == 2 << 32
    # 2.5 GHz: 25 + 5000/99800, the fraction rounded up
    whole, rest = divmod(2_500_000, ref)
    assert tsc_scale(2_500_000, ref) == whole << 32 | -(-(rest << 32) // ref)
    assert tsc_scale(0, ref) == 0


def test_key_response_header(g: Guest) -> None:
    payload_status(g, KEY_REQ, key_req())
    hdr, _ = open_response(vmpck(g), response_page(g))
    assert (hdr["msg_type"], hdr["msg_size"]) == (KEY_RSP, 0x40)


def test_response_payload_is_not_readable_by_the_host(g: Guest) -> None:
    run_request(g, request(vmpck(g), key_req(), seqno=1, msg_type=KEY_REQ))
    page = response_page(g)
    _, plain = open_response(vmpck(g), page)
    assert plain[0x20:0x40] not in page


def test_failed_command_changes_no_page(g: Guest) -> None:
    g.p.memory.write(g.host.req_spa, report_msg(g, seqno=9))
    before = g.p.memory.fingerprint()
    rmp_before = g.p.rmp.snapshot()
    res = g.p.run(
        C.SNP_GUEST_REQUEST,
        gctx_paddr=g.gctx,
        req_paddr=g.host.req_spa,
        res_paddr=g.host.rsp_spa,
    )
    assert res.status == AEAD_OFLOW
    assert g.p.memory.fingerprint() == before and g.p.rmp.snapshot() == rmp_before


def test_raw_buffer_path_matches_the_typed_path(g: Guest) -> None:
    g.p.memory.write(g.host.req_spa, report_msg(g))
    buf = struct.pack("<QQQ", g.gctx, g.host.req_spa, g.host.rsp_spa)
    assert g.p.execute(0x94, buf).status == SUCCESS
    assert g.ctx.msg_count[0] == 2


UNAUTHENTICATED = set(range(0x10, 0x20)) | set(range(0x28, 0x30))
"""Header bytes outside the tag, the IV (MSG_SEQNO) and the AAD (0x30..0x5F)."""


@settings(max_examples=60, deadline=None)
@given(offset=st.integers(0, 0x60 + 0x60 - 1), mask=st.integers(1, 255))
def test_any_flipped_bit_is_refused_without_a_trace(offset: int, mask: int) -> None:
    """Flipping bits anywhere in the message makes the command fail with nothing written and
    the counter unmoved -- except in the header bytes no check covers."""
    g = launched_guest()
    msg = bytearray(report_msg(g))
    msg[offset] ^= mask
    if offset in UNAUTHENTICATED:
        assert run_request(g, bytes(msg)).status == SUCCESS
        return
    before = response_page(g)
    result = run_request(g, bytes(msg))
    assert result.status in (BAD_MEASUREMENT, INVALID_PARAM)
    assert g.ctx.msg_count == [0, 0, 0, 0] and response_page(g) == before
