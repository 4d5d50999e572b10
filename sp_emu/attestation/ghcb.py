"""The GHCB guest-request protocol between a guest and its hypervisor (GHCB specification
NAE events 0x8000_0011 / 0x8000_0012), as data both sides share.

The guest puts its encrypted request in a shared page and exits; the hypervisor runs
SNP_GUEST_REQUEST and hands back the response page, or an error in SW_EXITINFO2: the
firmware's status in bits 31:0 and a hypervisor (VMM) error in bits 63:32.  The extended
request also names guest pages for certificates (RAX, RBX = page count); when they are too
few the hypervisor answers VMM error INVALID_LEN with the pages it needs in RBX.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

SVM_VMGEXIT_GUEST_REQUEST = 0x8000_0011
SVM_VMGEXIT_EXT_GUEST_REQUEST = 0x8000_0012
VMM_ERR_INVALID_LEN = 1
"""The certificate buffer is too small (RBX holds the pages needed)."""
VMM_ERR_BUSY = 2
"""The hypervisor throttled the request; the guest resends the same message."""


@dataclass(frozen=True)
class GhcbResult:
    """What the hypervisor returns for one guest request."""

    fw_status: int = 0
    """The firmware's SNP_GUEST_REQUEST status (0 on success)."""
    vmm_error: int = 0
    response: bytes = b""
    """The response page (header + encrypted payload) when the request succeeded."""
    certs: bytes = b""
    """Extended request: the certificate pages the hypervisor filled (table, then blobs)."""
    npages: int = 0
    """Extended request: RBX on return (pages needed when ``vmm_error`` is INVALID_LEN)."""

    @property
    def exitinfo2(self) -> int:
        return (self.vmm_error << 32) | self.fw_status

    @property
    def ok(self) -> bool:
        return self.exitinfo2 == 0


class GuestRequestChannel(Protocol):
    """The hypervisor as the guest sees it: something that takes a request page and answers."""

    def guest_request(self, request: bytes) -> GhcbResult:
        """NAE 0x8000_0011: run the request in ``request`` (header + encrypted payload)."""
        ...

    def ext_guest_request(self, request: bytes, npages: int) -> GhcbResult:
        """NAE 0x8000_0012: the same, with ``npages`` guest pages for certificates."""
        ...
