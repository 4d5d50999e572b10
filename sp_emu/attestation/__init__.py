"""Attestation: guest messages, reports, derived keys and the guest-request protocol.

Firmware-side pieces (used by ``sp_emu.commands.guest_request``):

* :mod:`~sp_emu.attestation.aead` -- AES-256-GCM wrapping of guest messages under a VMPCK;
* :mod:`~sp_emu.attestation.report` -- building, signing, parsing and verifying reports;
* :mod:`~sp_emu.attestation.kdf` -- the MSG_KEY_REQ key derivation.

Guest and hypervisor models above the firmware:

* :class:`GuestMessenger` -- a guest driver holding one VMPCK and its sequence counter;
* :class:`GuestRequestHost` -- the hypervisor's handling of GHCB guest requests, including
  the extended request's certificate table.

A guest sends a request like this::

    host = GuestRequestHost(platform, result.gctx, certs={"ark": ark, "ask": ask, "vcek": vcek})
    guest = GuestMessenger.from_guest_memory(platform, result.asid, secrets_gpa, vmpck_id=0)
    rsp = guest.get_report(host, b"nonce")            # ReportResponse(status, report)
    verify_report_signature(rsp.report, chip.vcek_private_key(tcb).public_key())
"""

from sp_emu.attestation.aead import MessageAuthError, MessageHeader, open_payload, seal_message
from sp_emu.attestation.cert_table import (
    ARK_GUID,
    ASK_GUID,
    CERT_GUIDS,
    CRL_GUID,
    VCEK_GUID,
    VLEK_GUID,
    CertEntry,
    CertTableError,
    build_cert_table,
    parse_cert_table,
)
from sp_emu.attestation.extended import GuestRequestHost, free_host_pages
from sp_emu.attestation.ghcb import (
    VMM_ERR_BUSY,
    VMM_ERR_INVALID_LEN,
    GhcbResult,
    GuestRequestChannel,
)
from sp_emu.attestation.kdf import derive_key, key_mix_data
from sp_emu.attestation.messenger import (
    DerivedKeyResponse,
    GuestMessenger,
    GuestRequestError,
    ReportResponse,
    TscInfoResponse,
)
from sp_emu.attestation.report import (
    ReportFormatError,
    ReportSignatureError,
    build_report,
    parse_report,
    verify_report_signature,
)
from sp_emu.kdf import nist_kdf

__all__ = [
    "ARK_GUID",
    "ASK_GUID",
    "CERT_GUIDS",
    "CRL_GUID",
    "VCEK_GUID",
    "VLEK_GUID",
    "VMM_ERR_BUSY",
    "VMM_ERR_INVALID_LEN",
    "CertEntry",
    "CertTableError",
    "DerivedKeyResponse",
    "GhcbResult",
    "GuestMessenger",
    "GuestRequestChannel",
    "GuestRequestError",
    "GuestRequestHost",
    "MessageAuthError",
    "MessageHeader",
    "ReportFormatError",
    "ReportResponse",
    "ReportSignatureError",
    "TscInfoResponse",
    "build_cert_table",
    "build_report",
    "derive_key",
    "free_host_pages",
    "key_mix_data",
    "nist_kdf",
    "open_payload",
    "parse_cert_table",
    "parse_report",
    "seal_message",
    "verify_report_signature",
]
