"""The hypervisor's side of guest requests (KVM ``snp_handle_guest_req`` /
``snp_handle_ext_guest_req``): GHCB NAE events 0x8000_0011 and 0x8000_0012.

The extended request is a hypervisor feature, not a firmware command: the firmware only ever
sees SNP_GUEST_REQUEST.  For 0x8000_0012 the hypervisor first deals with the certificates:

* the guest gave no pages (RBX = 0): no certificates, just the request;
* too few pages for the table and the certificates: VMM error INVALID_LEN (1) in
  SW_EXITINFO2[63:32] with the pages needed in RBX, and the firmware is not called;
* otherwise the pages get the certificate table (attestation.md §7) and the certificates,
  then the request runs.

Like KVM, the host keeps one response page in the FIRMWARE state for the guest's lifetime
(SNP_GUEST_REQUEST writes only to a FIRMWARE page), copies the guest's request into an
ordinary hypervisor page, runs the command and copies the response out.
"""

from __future__ import annotations

import uuid

from rmp import PAGE_4K as PAGE
from rmp import RmpResult
from sp_emu.abi.commands import CommandId as C
from sp_emu.attestation.cert_table import CertMap, build_cert_table, to_guid
from sp_emu.attestation.ghcb import VMM_ERR_INVALID_LEN, GhcbResult

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sp_emu.platform import Platform


def free_host_pages(platform: Platform, count: int, *, below: int | None = None) -> list[int]:
    """``count`` host pages nobody uses yet (RMP entry clear, never written), searched
    downward from ``below`` (default: half of memory, the top of the launcher's range)."""
    spa = (platform.config.memory // 2 if below is None else below) & ~(PAGE - 1)
    found: list[int] = []
    while len(found) < count:
        spa -= PAGE
        if spa < 0:
            raise MemoryError("no free host page")
        if platform.rmp.read(spa >> 12) != (0, 0) or platform.memory.page_key(spa) is not None:
            continue
        if any(platform.memory.page_bytes(spa)):
            continue
        found.append(spa)
    return found


class GuestRequestHost:
    """KVM's guest-request handling for the guest whose context page is ``gctx``.

    ``certs`` maps GUIDs (or the names ``ark``, ``ask``, ``vcek``, ``vlek``, ``crl``) to the
    certificate bytes handed to extended requests, in table order; the caller supplies them
    (e.g. from ``sp_emu.certs``).  ``req_spa``/``rsp_spa`` pick the host pages (default: two
    free pages, the response page made FIRMWARE with RMPUPDATE).
    """

    def __init__(
        self,
        platform: Platform,
        gctx: int,
        *,
        certs: CertMap | None = None,
        req_spa: int | None = None,
        rsp_spa: int | None = None,
    ) -> None:
        self.platform = platform
        self.gctx = gctx
        self.certs: dict[uuid.UUID, bytes] = {
            to_guid(g): bytes(v) for g, v in (certs or {}).items()
        }
        if req_spa is None or rsp_spa is None:
            free = free_host_pages(platform, 2)
            req_spa = free[0] if req_spa is None else req_spa
            rsp_spa = free[1] if rsp_spa is None else rsp_spa
        self.req_spa = req_spa
        self.rsp_spa = rsp_spa
        rc = platform.cpu.rmpupdate(rsp_spa, assigned=True, immutable=True)
        if rc is not RmpResult.SUCCESS:
            raise RuntimeError(f"RMPUPDATE of the response page {rsp_spa:#x}: {rc.name}")

    def certificate_buffer(self) -> bytes:
        """The table and certificates as the guest's pages receive them (unpadded)."""
        return build_cert_table(self.certs)

    def pages_needed(self) -> int:
        return -(-len(self.certificate_buffer()) // PAGE)

    # --- NAE events ---------------------------------------------------------------------------
    def guest_request(self, request: bytes) -> GhcbResult:
        """NAE 0x8000_0011: copy the request in, run SNP_GUEST_REQUEST, copy the response
        out; a firmware failure goes back as SW_EXITINFO2[31:0]."""
        if len(request) > PAGE:
            raise ValueError("a guest message is one page")
        p = self.platform
        p.cpu.host_write(self.req_spa, bytes(request).ljust(PAGE, b"\0"))
        result = p.run(
            C.SNP_GUEST_REQUEST,
            gctx_paddr=self.gctx,
            req_paddr=self.req_spa,
            res_paddr=self.rsp_spa,
        )
        if not result.ok:
            return GhcbResult(fw_status=int(result.status))
        return GhcbResult(response=p.cpu.host_read(self.rsp_spa, PAGE))

    def ext_guest_request(self, request: bytes, npages: int) -> GhcbResult:
        """NAE 0x8000_0012 with ``npages`` guest certificate pages (RBX)."""
        if npages == 0:
            return self.guest_request(request)
        buffer = self.certificate_buffer()
        needed = -(-len(buffer) // PAGE)
        if npages < needed:
            return GhcbResult(vmm_error=VMM_ERR_INVALID_LEN, npages=needed)
        certs = buffer.ljust(npages * PAGE, b"\0")
        result = self.guest_request(request)
        return GhcbResult(
            fw_status=result.fw_status,
            response=result.response,
            certs=certs,
            npages=npages,
        )

    def close(self) -> None:
        """Give the response page back: SNP_PAGE_RECLAIM, then RMPUPDATE to HYPERVISOR."""
        p = self.platform
        p.run(C.SNP_PAGE_RECLAIM, page_paddr=self.rsp_spa)
        p.cpu.rmpupdate(self.rsp_spa)
