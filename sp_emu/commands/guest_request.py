"""SNP_GUEST_REQUEST: a guest's encrypted message to the firmware and the firmware's encrypted
answer (firmware-commands.md §6; attestation.md §1-2, §4, §8).

Two levels of failure, as in AFW ``snp_mcmd_guest_request``:

* mailbox level -- the hypervisor's (or an attacker's) fault: the command fails with a
  status, nothing is written and the guest's message counter does not move.  Checked in AFW
  order: GCTX_PADDR bits 11:0; platform INIT; the RMP lookups of the three pages; the context
  page CONTEXT (INVALID_GUEST); the response page FIRMWARE (INVALID_PAGE_STATE); both pages
  4 KiB in the RMP (INVALID_PAGE_SIZE); the guest RUNNING; the header within its page; the
  header fields (HDR_VERSION 1, HDR_SIZE 0x60, ALGO 1, MSG_SIZE non-zero and a multiple of 16);
  the payload within the page; MSG_VMPCK <= 3; AES-GCM authentication (BAD_MEASUREMENT, the
  status AFW's GCM engine returns for a tag mismatch); MSG_SEQNO == counter + 1 and counter
  != 2^64 - 2 (AEAD_OFLOW); MSG_VERSION in 1..1; MSG_TYPE one the emulator answers
  (INVALID_PARAM); finally the response within its page.
* payload level -- the guest's fault: an encrypted response is written with the error in its
  STATUS word, the command returns SUCCESS, and the counter advances by 2 as for a success.

The request page may be in any RMP state (it is read as raw DRAM, so a guest-private page
reads as ciphertext and fails authentication).  A payload shorter than its structure reads as
zero-extended: AFW decrypts into a scratch buffer it clears after every message.

Message types answered: MSG_REPORT_REQ, MSG_KEY_REQ, MSG_TSC_INFO_REQ.  MSG_CPUID_REQ and the
migration messages (EXPORT/IMPORT/ABSORB/VMRK/ABSORB_NOMA) are not modelled: they fail at
mailbox level with INVALID_PARAM like an unknown type (a deviation from real firmware).
"""

from __future__ import annotations

from collections.abc import Callable

from binlayout import BufferLayout
from rmp import PAGE_4K as PAGE
from rmp import PageState
from rmp import layout as RL
from sp_emu.abi.commands import CommandId as C
from sp_emu.abi.messages import (
    AEAD_ALGO_AES_256_GCM,
    GFS_ALL,
    GFS_GUEST_SVN,
    GFS_TCB_VERSION,
    HDR_SIZE,
    HDR_VERSION,
    MSG_KEY_REQ,
    MSG_KEY_RSP,
    MSG_REPORT_REQ,
    MSG_REPORT_RSP,
    MSG_TSC_INFO_REQ,
    MSG_TSC_INFO_RSP,
    MSG_VERSION,
    REPORT_SIZE,
    MsgType,
)
from sp_emu.abi.status import SnpStatus as S
from sp_emu.commands.guests import require_page_aligned
from sp_emu.errors import SnpError
from sp_emu.firmware import Firmware, Request, command
from sp_emu.securetsc import guest_tsc_scale
from sp_emu.state import GuestContext, GuestState
from sp_emu.tcb import TcbVersion

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sp_emu.attestation.aead import MessageHeader

SEQNO_LIMIT = (1 << 64) - 2
"""A counter at this value cannot take another request (the response would overflow)."""
MAX_MSG_VERSION: dict[int, int] = {t: 1 for t in MsgType if t % 2 == 1}
"""Highest MSG_VERSION of each request type (1 for every type in FW 1.55)."""


class _Status(Exception):
    """A payload-level failure: the response carries ``status`` in its STATUS word."""

    def __init__(self, status: S) -> None:
        super().__init__(status.name)
        self.status = status


def _payload(layout: BufferLayout, plaintext: bytes) -> tuple[dict[str, Any], bytes]:
    raw = (plaintext + bytes(layout.size))[: layout.size]
    return layout.parse(raw), raw


def _report(fw: Firmware, guest: GuestContext, hdr: MessageHeader, plaintext: bytes) -> bytes:
    """MSG_REPORT_REQ -> MSG_REPORT_RSP (attestation.md §2.1, §4.2)."""
    from sp_emu.attestation.report import build_report, key_sel_available

    f, raw = _payload(MSG_REPORT_REQ, plaintext)
    report = bytes(REPORT_SIZE)
    try:
        if MSG_REPORT_REQ.first_reserved_violation(raw) is not None:
            raise _Status(S.INVALID_PARAM)
        if not key_sel_available(fw.state, guest, f["key_sel"]):
            raise _Status(S.INVALID_KEY)
        if f["vmpl"] < hdr.msg_vmpck:
            raise _Status(S.INVALID_PARAM)  # VMPCKn may only ask for VMPL >= n
        report = build_report(
            fw.state,
            fw.chip,
            guest,
            report_data=f["report_data"],
            vmpl=f["vmpl"],
            key_sel=f["key_sel"],
        )
        status = S.SUCCESS
    except _Status as err:
        status = err.status
    return MSG_REPORT_RSP.build({"status": status, "report_size": REPORT_SIZE, "report": report})


def _key(fw: Firmware, guest: GuestContext, hdr: MessageHeader, plaintext: bytes) -> bytes:
    """MSG_KEY_REQ -> MSG_KEY_RSP (attestation.md §2.2, §8; checks in AFW order)."""
    from sp_emu.attestation.kdf import derive_key, key_mix_data, key_root
    from sp_emu.attestation.report import key_sel_available

    st = fw.state
    f, raw = _payload(MSG_KEY_REQ, plaintext)
    root_select, key_sel, gfs = f["root_key_select"], f["key_sel"], f["guest_field_select"]
    key = bytes(32)
    try:
        if MSG_KEY_REQ.first_reserved_violation(raw) is not None:
            raise _Status(S.INVALID_PARAM)
        if not root_select and st.mask_chip_key:
            raise _Status(S.INVALID_KEY)
        if not root_select and not key_sel_available(st, guest, key_sel):
            raise _Status(S.INVALID_KEY)
        if f["vmpl"] < hdr.msg_vmpck:
            raise _Status(S.INVALID_PARAM)
        if gfs & ~GFS_ALL:
            raise _Status(S.INVALID_PARAM)
        tcb = None
        if gfs & GFS_TCB_VERSION:
            turin = st.product.turin_tcb_layout
            if TcbVersion.reserved_bits(f["tcb_version"], turin_layout=turin):
                raise _Status(S.INVALID_PARAM)
            tcb = TcbVersion.from_int(f["tcb_version"], turin_layout=turin)
            if not tcb.le(st.committed_tcb):
                raise _Status(S.INVALID_PARAM)
        if gfs & GFS_GUEST_SVN and f["guest_svn"] > guest.guest_svn:
            raise _Status(S.INVALID_PARAM)
        root = key_root(st, fw.chip, guest, root_key_select=root_select, key_sel=key_sel, tcb=tcb)
        if root is None:
            raise _Status(S.INVALID_KEY)
        mix = key_mix_data(
            guest,
            root_key_select=root_select,
            guest_field_select=gfs,
            vmpl=f["vmpl"],
            guest_svn=f["guest_svn"],
            tcb_version=f["tcb_version"],
        )
        key = derive_key(root, mix)
        status = S.SUCCESS
    except _Status as err:
        status = err.status
    return MSG_KEY_RSP.build({"status": status, "derived_key": key})


def _tsc_info(fw: Firmware, guest: GuestContext, hdr: MessageHeader, plaintext: bytes) -> bytes:
    """MSG_TSC_INFO_REQ -> MSG_TSC_INFO_RSP (attestation.md §2.4): the guest's TSC scale
    (:mod:`sp_emu.securetsc`); the TSC offset is 0 (it changes only by migration, not
    modelled)."""
    _, raw = _payload(MSG_TSC_INFO_REQ, plaintext)
    factor = fw.state.product.tsc_factor
    if any(raw):
        return MSG_TSC_INFO_RSP.build({"status": S.INVALID_PARAM})
    return MSG_TSC_INFO_RSP.build(
        {
            "status": S.SUCCESS,
            "guest_tsc_scale": guest_tsc_scale(guest.desired_tsc_freq, fw.state.product),
            "guest_tsc_offset": 0,
            "tsc_factor": factor,
        }
    )


_Payload = Callable[[Firmware, GuestContext, "MessageHeader", bytes], bytes]
PAYLOADS: dict[int, tuple[MsgType, _Payload]] = {
    MsgType.REPORT_REQ: (MsgType.REPORT_RSP, _report),
    MsgType.KEY_REQ: (MsgType.KEY_RSP, _key),
    MsgType.TSC_INFO_REQ: (MsgType.TSC_INFO_RSP, _tsc_info),
}
"""Request type -> (response type, payload handler) for the types the emulator answers."""


def _is_2m(fw: Firmware, spa: int) -> bool:
    pfn = spa >> 12
    return fw.rmp.covers(pfn) and bool(fw.rmp.read_q0(pfn) & RL.PAGE_SIZE.mask)


@command(C.SNP_GUEST_REQUEST, "SNP_GUEST_REQUEST; firmware-commands.md §6, attestation.md §1-2")
def snp_guest_request(fw: Firmware, req: Request) -> dict[str, Any]:
    """Authenticate and decrypt the guest's request with the VMPCK it names, answer it, and
    write the encrypted response (MSG_SEQNO + 1) to the FIRMWARE response page."""
    from sp_emu.attestation.aead import (
        MessageAuthError,
        MessageHeader,
        open_payload,
        parse_header,
        seal_message,
    )

    f = req.f
    gctx_paddr = f["gctx_paddr"]
    req_spa, rsp_spa = f["req_paddr"], f["res_paddr"]  # C-bit already stripped (Request)
    # CHECKS (buffer, platform)
    require_page_aligned(gctx_paddr, "GCTX_PADDR")
    fw.require_init()
    # PAGES (AFW looks all three up before judging any of them)
    fw.page_state(gctx_paddr)
    fw.page_state(req_spa)
    rsp_state = fw.page_state(rsp_spa)
    guest = fw.guest(gctx_paddr)
    if rsp_state is not PageState.FIRMWARE:
        raise SnpError(S.INVALID_PAGE_STATE, f"the response page is {rsp_state.name}")
    if _is_2m(fw, req_spa) or _is_2m(fw, rsp_spa):
        raise SnpError(S.INVALID_PAGE_SIZE, "the request and response pages must be 4 KiB")
    if guest.state is not GuestState.RUNNING:
        raise SnpError(S.INVALID_GUEST_STATE, f"guest is {guest.state.name}, not RUNNING")
    # MESSAGE: header
    offset = req_spa & (PAGE - 1)
    if offset > PAGE - HDR_SIZE:
        raise SnpError(S.INVALID_PARAM, "the request header crosses its page")
    header = fw.memory.read(req_spa, HDR_SIZE)
    hdr = parse_header(header)
    if (
        hdr.hdr_version != HDR_VERSION
        or hdr.hdr_size != HDR_SIZE
        or hdr.algo != AEAD_ALGO_AES_256_GCM
        or hdr.msg_size == 0
        or hdr.msg_size % 16
    ):
        raise SnpError(S.INVALID_PARAM, "bad message header")
    if offset + HDR_SIZE + hdr.msg_size > PAGE:
        raise SnpError(S.INVALID_PARAM, "the request payload crosses its page")
    if hdr.msg_vmpck > 3:
        raise SnpError(S.INVALID_PARAM, f"MSG_VMPCK {hdr.msg_vmpck} is not 0-3")
    # MESSAGE: authenticate, sequence, version, type
    vmpck = guest.vmpck[hdr.msg_vmpck]
    ciphertext = fw.memory.read(req_spa + HDR_SIZE, hdr.msg_size)
    try:
        plaintext = open_payload(vmpck, header, ciphertext)
    except MessageAuthError:
        raise SnpError(S.BAD_MEASUREMENT, "the message does not authenticate") from None
    counter = guest.msg_count[hdr.msg_vmpck]
    if counter == SEQNO_LIMIT or hdr.msg_seqno != counter + 1:
        expected = f"expected {counter + 1} (VMPCK{hdr.msg_vmpck})"
        raise SnpError(S.AEAD_OFLOW, f"MSG_SEQNO {hdr.msg_seqno}, {expected}")
    limit = MAX_MSG_VERSION.get(hdr.msg_type)
    if hdr.msg_version == 0 or (limit is not None and hdr.msg_version > limit):
        raise SnpError(S.INVALID_PARAM, f"MSG_VERSION {hdr.msg_version} is not supported")
    answer = PAYLOADS.get(hdr.msg_type)
    if answer is None:
        raise SnpError(S.INVALID_PARAM, f"MSG_TYPE {hdr.msg_type} is not answered")
    rsp_type, handler = answer
    payload = handler(fw, guest, hdr, plaintext)
    if (rsp_spa & (PAGE - 1)) + HDR_SIZE + len(payload) > PAGE:
        raise SnpError(S.INVALID_PARAM, "the response would cross its page")
    # COMMIT
    rsp_header = MessageHeader(
        msg_type=int(rsp_type),
        msg_size=len(payload),
        msg_seqno=hdr.msg_seqno + 1,
        msg_vmpck=hdr.msg_vmpck,
        msg_version=MSG_VERSION,
    )
    fw.memory.write(rsp_spa, seal_message(vmpck, rsp_header, payload))
    guest.msg_count[hdr.msg_vmpck] = counter + 2
    # OUTPUT (the response header is plaintext; the payload only the guest can read)
    return rsp_header.fields()
