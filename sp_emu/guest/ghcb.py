"""The GHCB: the shared page and MSR through which an SEV-ES/SNP guest asks the hypervisor
for help (rmp-and-instructions.md §7).

Both halves use this module: the guest writes requests with it, the hypervisor decodes them.
Everything here is the wire format of the GHCB specification as Linux (``sev-common.h``,
``svm.h``) and COCONUT-SVSM (``ghcb.rs``) spell it; nothing here decides anything.

* :class:`Ghcb` - the 4 KiB page with its valid bitmap.
* :class:`NaeExit`, :class:`ApRequest`, :class:`GhcbError` - NAE event exit codes, AP
  Creation requests and the error reasons reported in SW_EXITINFO2.
* :class:`MsrCode` and the ``msr_*`` helpers - the GHCB MSR protocol (MSR 0xC001_0130).
"""

from __future__ import annotations

import enum

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

GHCB_SIZE: Final = 0x1000
GHCB_MSR: Final = 0xC001_0130
SEV_STATUS_MSR: Final = 0xC001_0131
U64_MASK: Final = (1 << 64) - 1


class GhcbField(enum.IntEnum):
    """Quadword fields of the GHCB save area by offset (they coincide with the VMSA's)."""

    XSS = 0x140
    DR7 = 0x160
    RAX = 0x1F8
    RCX = 0x308
    RDX = 0x310
    RBX = 0x318
    SW_EXITCODE = 0x390
    SW_EXITINFO1 = 0x398
    SW_EXITINFO2 = 0x3A0
    SW_SCRATCH = 0x3A8
    XCR0 = 0x3E8

    @property
    def valid_bit(self) -> int:
        """Bit n of the valid bitmap marks the quadword at offset 8·n."""
        return self.value // 8


VALID_BITMAP: Final = 0x3F0
SHARED_BUFFER: Final = 0x800
SHARED_BUFFER_SIZE: Final = 2032
PROTOCOL_VERSION: Final = 0xFFA
USAGE: Final = 0xFFC


class Ghcb:
    """One GHCB page's bytes. Setting a field marks it valid, as ``ghcb_set_*`` does."""

    __slots__ = ("data",)

    def __init__(self, data: bytes | bytearray | None = None) -> None:
        if data is not None and len(data) != GHCB_SIZE:
            raise ValueError(f"a GHCB is {GHCB_SIZE} bytes, got {len(data)}")
        self.data = bytearray(GHCB_SIZE if data is None else data)

    def get(self, field: GhcbField) -> int:
        return int.from_bytes(self.data[field : field + 8], "little")

    def set(self, field: GhcbField, value: int) -> None:
        self.data[field : field + 8] = (value & U64_MASK).to_bytes(8, "little")
        self.data[VALID_BITMAP + field.valid_bit // 8] |= 1 << (field.valid_bit % 8)

    def is_valid(self, field: GhcbField) -> bool:
        return bool(self.data[VALID_BITMAP + field.valid_bit // 8] >> (field.valid_bit % 8) & 1)

    def clear_valid(self) -> None:
        """Forget every valid bit (KVM does so after reading a request)."""
        self.data[VALID_BITMAP : VALID_BITMAP + 16] = bytes(16)

    @property
    def version(self) -> int:
        return int.from_bytes(self.data[PROTOCOL_VERSION : PROTOCOL_VERSION + 2], "little")

    @version.setter
    def version(self, value: int) -> None:
        self.data[PROTOCOL_VERSION : PROTOCOL_VERSION + 2] = value.to_bytes(2, "little")

    @property
    def usage(self) -> int:
        return int.from_bytes(self.data[USAGE : USAGE + 4], "little")

    @usage.setter
    def usage(self, value: int) -> None:
        self.data[USAGE : USAGE + 4] = value.to_bytes(4, "little")

    def to_bytes(self) -> bytes:
        return bytes(self.data)


class NaeExit(enum.IntEnum):
    """SW_EXITCODE values of the NAE events (rmp-and-instructions.md §7.3)."""

    MMIO_READ = 0x8000_0001
    MMIO_WRITE = 0x8000_0002
    NMI_COMPLETE = 0x8000_0003
    AP_HLT_LOOP = 0x8000_0004
    AP_JUMP_TABLE = 0x8000_0005
    PSC = 0x8000_0010
    GUEST_REQUEST = 0x8000_0011
    EXT_GUEST_REQUEST = 0x8000_0012
    AP_CREATION = 0x8000_0013
    HV_DOORBELL_PAGE = 0x8000_0014
    GET_APIC_IDS = 0x8000_0017
    RUN_VMPL = 0x8000_0018
    HV_FEATURES = 0x8000_FFFD
    TERMINATE = 0x8000_FFFE
    UNSUPPORTED = 0x8000_FFFF


class ApRequest(enum.IntEnum):
    """SW_EXITINFO1[31:0] of the AP Creation event (bits 19:16: target VMPL, SVSM use)."""

    CREATE_ON_INIT = 0
    CREATE = 1
    DESTROY = 2


AP_VMPL_SHIFT: Final = 16
AP_VMPL_MASK: Final = 0xF << AP_VMPL_SHIFT


def ap_creation_exit_info1(request: int, apic_id: int, vmpl: int = 0) -> int:
    """SW_EXITINFO1 of an AP Creation event: request, target VMPL (19:16), APIC ID (63:32)."""
    return (apic_id << 32) | (vmpl << AP_VMPL_SHIFT) | request


class GhcbError(enum.IntEnum):
    """SW_EXITINFO2 reasons when SW_EXITINFO1[31:0] = 2 (Linux ``GHCB_ERR_*``)."""

    NOT_REGISTERED = 1
    INVALID_USAGE = 2
    INVALID_SCRATCH_AREA = 3
    MISSING_INPUT = 4
    INVALID_INPUT = 5
    INVALID_EVENT = 6


HV_RESP_MALFORMED_INPUT: Final = 2
"""SW_EXITINFO1[31:0] for a request the hypervisor refused (``GHCB_HV_RESP_MALFORMED_INPUT``)."""


class HvFeature(enum.IntFlag):
    """Hypervisor features (HV_FEATURES response, bits 63:12 of the MSR)."""

    SNP = 1 << 0
    SNP_AP_CREATION = 1 << 1
    APIC_ID_LIST = 1 << 4
    SNP_MULTI_VMPL = 1 << 5


# --- MSR protocol ---------------------------------------------------------------------------
class MsrCode(enum.IntEnum):
    """GHCBInfo, the low 12 bits of the GHCB MSR (rmp-and-instructions.md §7.1)."""

    SEV_INFO_RESP = 0x001
    SEV_INFO_REQ = 0x002
    CPUID_REQ = 0x004
    CPUID_RESP = 0x005
    AP_RESET_HOLD_REQ = 0x006
    AP_RESET_HOLD_RESP = 0x007
    PREFERRED_GHCB_GPA_REQ = 0x010
    PREFERRED_GHCB_GPA_RESP = 0x011
    REGISTER_GHCB_GPA_REQ = 0x012
    REGISTER_GHCB_GPA_RESP = 0x013
    PSC_REQ = 0x014
    PSC_RESP = 0x015
    RUN_AT_VMPL_REQ = 0x016
    RUN_AT_VMPL_RESP = 0x017
    HV_FEATURES_REQ = 0x080
    HV_FEATURES_RESP = 0x081
    TERMINATE_REQ = 0x100


MSR_INFO_MASK: Final = 0xFFF
GFN_MASK: Final = (1 << 40) - 1  # GHCBData[51:12]


class PscOp(enum.IntEnum):
    """Page State Change operations (MSR bits 55:52; PSC buffer entry bits 55:52)."""

    PRIVATE = 1
    SHARED = 2
    PSMASH = 3
    UNSMASH = 4


def msr_info(value: int) -> int:
    """The request/response code of a GHCB MSR value."""
    return value & MSR_INFO_MASK


def msr_sev_info(max_version: int, min_version: int, cbit: int) -> int:
    return (max_version << 48) | (min_version << 32) | (cbit << 24) | MsrCode.SEV_INFO_RESP


def msr_register_ghcb_req(gpa: int) -> int:
    return ((gpa >> 12) << 12) | MsrCode.REGISTER_GHCB_GPA_REQ


def msr_psc_req(gpa: int, op: PscOp) -> int:
    return (int(op) << 52) | (((gpa >> 12) & GFN_MASK) << 12) | MsrCode.PSC_REQ


def msr_psc_decode(value: int) -> tuple[int, int]:
    """(GPA, operation) of a PSC_REQ."""
    return ((value >> 12) & GFN_MASK) << 12, (value >> 52) & 0xF


def msr_error(value: int) -> int:
    """GHCBData[63:32]: the error field of PSC_RESP and RUN_AT_VMPL_RESP (0 = success)."""
    return value >> 32


def msr_data(value: int) -> int:
    """GHCBData[63:12]: e.g. the GFN of REGISTER_GHCB_GPA_RESP or the HV feature bitmap."""
    return value >> 12
