"""The guest's side of SNP guest requests over the GHCB (NAE events 0x8000_0011/0x8000_0012).

:class:`GhcbRequestChannel` carries the messages a :class:`~sp_emu.attestation.GuestMessenger`
seals: it writes the request into a shared page, raises the NAE event with the request and
response page GPAs (and, for the extended request, the certificate buffer in RAX and its page
count in RBX), and reads the response page and SW_EXITINFO2 back, as the Linux sev-guest
driver does through ``snp_issue_guest_request``.
"""

from __future__ import annotations

from rmp import PAGE_4K as PAGE
from sp_emu.attestation.ghcb import GhcbResult
from sp_emu.guest.ghcb import GhcbField, NaeExit, PscOp
from sp_emu.guest.software import GhcbProtocolError, GuestSoftware


class GhcbRequestChannel:
    """Guest requests through the GHCB of ``guest``, using shared pages at ``req_gpa``,
    ``rsp_gpa`` and (extended requests) ``certs_gpa``."""

    def __init__(
        self,
        guest: GuestSoftware,
        req_gpa: int,
        rsp_gpa: int,
        certs_gpa: int | None = None,
        cert_pages: int = 0,
    ) -> None:
        self.guest = guest
        self.req_gpa = req_gpa
        self.rsp_gpa = rsp_gpa
        self.certs_gpa = certs_gpa
        pages = [req_gpa, rsp_gpa]
        if certs_gpa is not None:
            pages += [certs_gpa + i * PAGE for i in range(cert_pages)]
        for gpa in pages:  # the message pages are shared with the host
            err = guest.page_state_change(gpa, PscOp.SHARED)
            if err:
                raise GhcbProtocolError(f"PSC to shared of {gpa:#x} failed: {err:#x}")

    def _exchange(self, exit_code: int, request: bytes, **regs: int) -> tuple[int, int]:
        self.guest.write(self.req_gpa, request.ljust(PAGE, b"\0"), private=False)
        answer = self.guest.nae(exit_code, self.req_gpa, self.rsp_gpa, **regs)
        if answer is None:
            raise GhcbProtocolError("the vCPU did not resume after the guest request")
        if answer.exit_info1:
            raise GhcbProtocolError(f"the host refused the event (reason {answer.exit_info2})")
        return answer.exit_info2, answer.ghcb.get(GhcbField.RBX)

    def _response(self, info2: int) -> bytes:
        if info2:
            return b""
        return self.guest.read(self.rsp_gpa, PAGE, private=False)

    def guest_request(self, request: bytes) -> GhcbResult:
        """NAE 0x8000_0011: one request, one response."""
        info2, _ = self._exchange(NaeExit.GUEST_REQUEST, request)
        return GhcbResult(info2 & 0xFFFF_FFFF, info2 >> 32, self._response(info2))

    def ext_guest_request(self, request: bytes, npages: int) -> GhcbResult:
        """NAE 0x8000_0012: the request plus the host's certificates in ``npages`` pages."""
        if self.certs_gpa is None:
            raise GhcbProtocolError("this channel has no certificate buffer")
        info2, rbx = self._exchange(
            NaeExit.EXT_GUEST_REQUEST, request, rax=self.certs_gpa, rbx=npages
        )
        certs = b""
        if not info2:
            certs = self.guest.read(self.certs_gpa, npages * PAGE, private=False)
        return GhcbResult(info2 & 0xFFFF_FFFF, info2 >> 32, self._response(info2), certs, rbx)
