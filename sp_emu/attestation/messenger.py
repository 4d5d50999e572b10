"""The guest's side of SNP guest messages: what Linux's ``sev-guest`` driver does with one
VMPCK (``drivers/virt/coco/sev-guest/sev-guest.c``).

* The driver keeps the message counter (Linux: in the secrets page's OS area).  A request
  carries counter + 1; the firmware answers with counter + 2; the driver then adds 2.
* Once a request has left the guest, its sequence number is spent: the counter advances by 2
  whatever the outcome, and on any failure that might lead to IV reuse the driver wipes its
  copy of the VMPCK and refuses further requests (``snp_disable_vmpck``).  The one exception
  is an extended request whose certificate buffer was too small: the driver resends the same
  message as a plain guest request (so the firmware consumes the sequence number), then
  reports INVALID_LEN with the pages needed and keeps the key.
* A throttled request (VMM error BUSY) is resent unchanged.
* The response must carry request MSG_SEQNO + 1, the response type, the same MSG_VERSION and
  fit the expected structure, and must authenticate; otherwise the key is wiped.

Payload-level errors (STATUS in the response) are not driver errors: the response is returned
to the caller with its STATUS, as Linux returns it to user space.
"""

from __future__ import annotations

from dataclasses import dataclass

from binlayout import BufferLayout
from sp_emu.abi.launch import SECRETS_PAGE
from sp_emu.abi.messages import (
    HDR_SIZE,
    MSG_KEY_REQ,
    MSG_KEY_RSP,
    MSG_REPORT_REQ,
    MSG_REPORT_RSP,
    MSG_TSC_INFO_REQ,
    MSG_TSC_INFO_RSP,
    MSG_VERSION,
    MsgType,
)
from sp_emu.attestation.aead import (
    VMPCK_LEN,
    MessageAuthError,
    MessageHeader,
    open_payload,
    parse_header,
    seal_message,
)
from sp_emu.attestation.cert_table import CertEntry, parse_cert_table
from sp_emu.attestation.ghcb import (
    VMM_ERR_BUSY,
    VMM_ERR_INVALID_LEN,
    GhcbResult,
    GuestRequestChannel,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sp_emu.platform import Platform

SEQNO_LO = 0xA0
"""Secrets page OS area: the per-VMPCK counters' low words (0xA0 + 4n) ..."""
SEQNO_HI = 0xB8
"""... and high words (0xB8 + 4n)."""
GUEST_SEQNO_LIMIT = 0xFFFF_FFFF
"""Linux stores the counter in 32 bits and refuses a sequence number at or above this."""
BUSY_RETRIES = 16


class GuestRequestError(Exception):
    """The driver could not complete a request (the ioctl's error), with SW_EXITINFO2's two
    halves, RBX for INVALID_LEN, and whether the VMPCK was wiped."""

    def __init__(
        self,
        message: str,
        *,
        fw_status: int = 0,
        vmm_error: int = 0,
        npages: int = 0,
        vmpck_disabled: bool = False,
    ) -> None:
        super().__init__(message)
        self.fw_status = fw_status
        self.vmm_error = vmm_error
        self.npages = npages
        self.vmpck_disabled = vmpck_disabled

    @property
    def exitinfo2(self) -> int:
        return (self.vmm_error << 32) | self.fw_status


@dataclass(frozen=True)
class ReportResponse:
    """MSG_REPORT_RSP: STATUS and the 0x4A0-byte report (zero unless STATUS is 0)."""

    status: int
    report: bytes
    certs: tuple[CertEntry, ...] = ()
    """Extended requests: the certificates the hypervisor supplied."""
    certs_raw: bytes = b""

    @property
    def ok(self) -> bool:
        return self.status == 0


@dataclass(frozen=True)
class DerivedKeyResponse:
    """MSG_KEY_RSP: STATUS and the 32-byte derived key (zero unless STATUS is 0)."""

    status: int
    key: bytes

    @property
    def ok(self) -> bool:
        return self.status == 0


@dataclass(frozen=True)
class TscInfoResponse:
    """MSG_TSC_INFO_RSP."""

    status: int
    guest_tsc_scale: int
    guest_tsc_offset: int
    tsc_factor: int


class GuestMessenger:
    """One guest driver instance bound to VMPCK ``vmpck_id``.

    ``seqno`` is the driver's counter (the last sequence number the firmware used; 0 for a
    fresh guest); the next request carries ``seqno + 1``.
    """

    def __init__(self, vmpck: bytes, vmpck_id: int = 0, *, seqno: int = 0) -> None:
        if len(vmpck) != VMPCK_LEN:
            raise ValueError("a VMPCK is 32 bytes")
        if not 0 <= vmpck_id <= 3:
            raise ValueError("VMPCK ids are 0-3")
        self.vmpck: bytes | None = None if not any(vmpck) else bytes(vmpck)
        self.vmpck_id = vmpck_id
        self.seqno = seqno

    # --- construction ---------------------------------------------------------------------------
    @classmethod
    def from_secrets_page(cls, page: bytes, vmpck_id: int = 0) -> GuestMessenger:
        """A driver reading VMPCK ``vmpck_id`` and its counter from a secrets page."""
        f = SECRETS_PAGE.parse(page[: SECRETS_PAGE.size])
        area = f["guest_os_area"]
        lo_at, hi_at = SEQNO_LO - 0xA0 + 4 * vmpck_id, SEQNO_HI - 0xA0 + 4 * vmpck_id
        lo = int.from_bytes(area[lo_at : lo_at + 4], "little")
        hi = int.from_bytes(area[hi_at : hi_at + 4], "little")
        return cls(f[f"vmpck{vmpck_id}"], vmpck_id, seqno=hi << 32 | lo)

    @classmethod
    def from_guest_memory(
        cls, platform: Platform, asid: int, secrets_gpa: int, vmpck_id: int = 0, vmpl: int = 0
    ) -> GuestMessenger:
        """A driver in the guest on ``asid`` (running at ``vmpl``) that reads its secrets page
        at ``secrets_gpa`` through private memory."""
        from sp_emu.cpu import GuestCpu

        page = platform.cpu.guest_read(GuestCpu(asid, vmpl), secrets_gpa, 0x1000)
        return cls.from_secrets_page(page, vmpck_id)

    def store_seqno(self, page: bytes) -> bytes:
        """``page`` (a secrets page) with this VMPCK's OS-area counter set to ``seqno``."""
        out = bytearray(page)
        lo_at, hi_at = SEQNO_LO + 4 * self.vmpck_id, SEQNO_HI + 4 * self.vmpck_id
        out[lo_at : lo_at + 4] = (self.seqno & 0xFFFF_FFFF).to_bytes(4, "little")
        out[hi_at : hi_at + 4] = (self.seqno >> 32).to_bytes(4, "little")
        return bytes(out)

    # --- state ------------------------------------------------------------------------------------
    @property
    def disabled(self) -> bool:
        """The VMPCK was wiped (after a failure that could lead to IV reuse)."""
        return self.vmpck is None

    def _disable(self) -> None:
        self.vmpck = None

    def _key(self) -> bytes:
        if self.vmpck is None:
            raise GuestRequestError(f"VMPCK{self.vmpck_id} is disabled")
        return self.vmpck

    # --- messages ---------------------------------------------------------------------------------
    def wrap(self, msg_type: int, payload: bytes, *, msg_version: int = MSG_VERSION) -> bytes:
        """The request message (header + encrypted payload) for the next sequence number.
        Changes nothing: the counter moves only when a request is sent."""
        seqno = self.seqno + 1
        if seqno >= GUEST_SEQNO_LIMIT:
            raise GuestRequestError("the message sequence counter would overflow")
        header = MessageHeader(
            msg_type=msg_type,
            msg_size=len(payload),
            msg_seqno=seqno,
            msg_vmpck=self.vmpck_id,
            msg_version=msg_version,
        )
        return seal_message(self._key(), header, payload)

    def unwrap(self, request: bytes, response: bytes, max_size: int) -> bytes:
        """Check and decrypt the response to ``request``; on any mismatch wipe the VMPCK and
        raise GuestRequestError (``verify_and_dec_payload``)."""
        key = self._key()
        req, rsp = parse_header(request), parse_header(response)
        problem = ""
        if rsp.msg_seqno != req.msg_seqno + 1:
            problem = f"response MSG_SEQNO {rsp.msg_seqno}, expected {req.msg_seqno + 1}"
        elif rsp.msg_type != req.msg_type + 1 or rsp.msg_version != req.msg_version:
            problem = f"response type/version {rsp.msg_type}/{rsp.msg_version} do not match"
        elif rsp.msg_size > max_size or HDR_SIZE + rsp.msg_size > len(response):
            problem = f"response MSG_SIZE {rsp.msg_size:#x} is too large"
        if not problem:
            body = response[HDR_SIZE : HDR_SIZE + rsp.msg_size]
            try:
                return open_payload(key, response[:HDR_SIZE], body)
            except MessageAuthError as err:
                problem = str(err)
        self._disable()
        raise GuestRequestError(f"unexpected response: {problem}", vmpck_disabled=True)

    def _issue(
        self, channel: GuestRequestChannel, request: bytes, npages: int | None
    ) -> GhcbResult:
        for _ in range(BUSY_RETRIES):
            if npages is None:
                result = channel.guest_request(request)
            else:
                result = channel.ext_guest_request(request, npages)
            if result.vmm_error != VMM_ERR_BUSY:
                return result
        return result

    def exchange(
        self,
        channel: GuestRequestChannel,
        msg_type: int,
        payload: bytes,
        response_layout: BufferLayout,
        *,
        cert_pages: int | None = None,
    ) -> tuple[bytes, GhcbResult]:
        """Send one request and return the decrypted response payload (zero-padded to
        ``response_layout``) and the hypervisor's result.  ``cert_pages`` makes it an
        extended request with that many certificate pages."""
        request = self.wrap(msg_type, payload)
        result = self._issue(channel, request, cert_pages)
        if cert_pages is not None and result.vmm_error == VMM_ERR_INVALID_LEN:
            needed = result.npages
            retry = self._issue(channel, request, None)  # spend the sequence number
            self.seqno += 2
            if not retry.ok:
                self._disable()
                raise GuestRequestError(
                    "guest request failed",
                    fw_status=retry.fw_status,
                    vmm_error=retry.vmm_error,
                    vmpck_disabled=True,
                )
            raise GuestRequestError(
                f"the certificate buffer is too small: {needed} pages needed",
                vmm_error=VMM_ERR_INVALID_LEN,
                npages=needed,
            )
        self.seqno += 2
        if not result.ok:
            self._disable()
            raise GuestRequestError(
                f"guest request failed (SW_EXITINFO2 {result.exitinfo2:#x})",
                fw_status=result.fw_status,
                vmm_error=result.vmm_error,
                vmpck_disabled=True,
            )
        plain = self.unwrap(request, result.response, response_layout.size)
        return (plain + bytes(response_layout.size))[: response_layout.size], result

    # --- the driver's requests --------------------------------------------------------------------
    def get_report(
        self,
        channel: GuestRequestChannel,
        report_data: bytes = b"",
        *,
        vmpl: int | None = None,
        key_sel: int = 0,
    ) -> ReportResponse:
        """SNP_GET_REPORT: a report over ``report_data`` (zero padded to 64 bytes) for
        ``vmpl`` (default: this VMPCK's level)."""
        payload = _report_req(report_data, self.vmpck_id if vmpl is None else vmpl, key_sel)
        plain, _ = self.exchange(channel, MsgType.REPORT_REQ, payload, MSG_REPORT_RSP)
        f = MSG_REPORT_RSP.parse(plain)
        return ReportResponse(f["status"], f["report"])

    def get_extended_report(
        self,
        channel: GuestRequestChannel,
        report_data: bytes = b"",
        *,
        cert_pages: int,
        vmpl: int | None = None,
        key_sel: int = 0,
    ) -> ReportResponse:
        """SNP_GET_EXT_REPORT: a report plus the hypervisor's certificates, given
        ``cert_pages`` pages for them.  Too few pages raises GuestRequestError with
        ``vmm_error`` INVALID_LEN and ``npages`` the pages needed (the key stays usable)."""
        payload = _report_req(report_data, self.vmpck_id if vmpl is None else vmpl, key_sel)
        plain, result = self.exchange(
            channel, MsgType.REPORT_REQ, payload, MSG_REPORT_RSP, cert_pages=cert_pages
        )
        f = MSG_REPORT_RSP.parse(plain)
        certs = tuple(parse_cert_table(result.certs)) if result.certs else ()
        return ReportResponse(f["status"], f["report"], certs, result.certs)

    def get_derived_key(
        self,
        channel: GuestRequestChannel,
        *,
        root_key_select: int = 0,
        key_sel: int = 0,
        guest_field_select: int = 0,
        vmpl: int | None = None,
        guest_svn: int = 0,
        tcb_version: int = 0,
    ) -> DerivedKeyResponse:
        """SNP_GET_DERIVED_KEY (MSG_KEY_REQ)."""
        payload = MSG_KEY_REQ.build(
            {
                "root_key_select": root_key_select,
                "key_sel": key_sel,
                "guest_field_select": guest_field_select,
                "vmpl": self.vmpck_id if vmpl is None else vmpl,
                "guest_svn": guest_svn,
                "tcb_version": tcb_version,
            }
        )
        plain, _ = self.exchange(channel, MsgType.KEY_REQ, payload, MSG_KEY_RSP)
        f = MSG_KEY_RSP.parse(plain)
        return DerivedKeyResponse(f["status"], f["derived_key"])

    def get_tsc_info(self, channel: GuestRequestChannel) -> TscInfoResponse:
        """MSG_TSC_INFO_REQ (what Linux asks for at boot with Secure TSC)."""
        plain, _ = self.exchange(
            channel, MsgType.TSC_INFO_REQ, MSG_TSC_INFO_REQ.build(), MSG_TSC_INFO_RSP
        )
        f = MSG_TSC_INFO_RSP.parse(plain)
        return TscInfoResponse(
            f["status"], f["guest_tsc_scale"], f["guest_tsc_offset"], f["tsc_factor"]
        )


def _report_req(report_data: bytes, vmpl: int, key_sel: int) -> bytes:
    if len(report_data) > 64:
        raise ValueError("REPORT_DATA is at most 64 bytes")
    return MSG_REPORT_REQ.build(
        {"report_data": report_data.ljust(64, b"\0"), "vmpl": vmpl, "key_sel": key_sel}
    )
