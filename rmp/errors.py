"""What the RMP instructions return, and the faults the CPU raises on RMP violations."""

from __future__ import annotations

from enum import Enum, IntEnum

from binlayout.enums import EnumBase, IntEnumBase, fast_enum


@fast_enum(IntEnum)
class RmpResult(IntEnumBase):
    """Return codes the SNP instructions leave in RAX (MSDOC; Linux ``asm/sev.h``)."""

    SUCCESS = 0
    FAIL_INPUT = 1
    FAIL_PERMISSION = 2
    FAIL_INUSE = 3
    FAIL_OVERLAP = 4
    FAIL_SIZEMISMATCH = 6
    FAIL_BADADDR = 7


@fast_enum(Enum)
class FaultVector(EnumBase):
    """The exception an RMP violation raises, by the name the trace format uses."""

    NPF = "#NPF"  # nested page fault, delivered to the hypervisor
    VC = "#VC"  # VMM communication exception, delivered to the guest
    GP = "#GP"
    PF = "#PF"  # host page fault (RMP violation by the hypervisor)


@fast_enum(Enum)
class RmpCheck(EnumBase):
    """Which RMP rule an access or instruction broke."""

    NOT_ASSIGNED = "not assigned"
    ASSIGNED = "assigned to a guest or the firmware"
    OWNER = "owned by another ASID"
    GPA = "RMP GPA differs from the accessed GPA"
    IMMUTABLE = "immutable"
    PAGE_SIZE = "page size mismatch"
    NOT_VALIDATED = "not validated"
    VMPL_PERMISSION = "VMPL lacks the permission"
    VMPL_PRIVILEGE = "instruction needs VMPL0"
    NOT_COVERED = "not covered by the RMP"


# #NPF / #PF error-code bits that matter for RMP faults (Linux ``kvm_host.h`` PFERR_*).
PF_PRESENT = 1 << 0
PF_WRITE = 1 << 1
PF_FETCH = 1 << 4
PF_RMP = 1 << 31
PF_ENC = 1 << 34
PF_SIZEM = 1 << 35
PF_VMPL = 1 << 36
VC_PAGE_NOT_VALIDATED = 0x404
"""#VC exit code for a private access to a page whose Validated bit is clear (unconfirmed)."""


class RmpFault(Exception):
    """An RMP violation: the access or instruction did not complete and raised ``vector``."""

    def __init__(self, vector: FaultVector, check: RmpCheck, pfn: int, error_code: int = 0):
        super().__init__(f"{vector.value} at page {pfn:#x}: {check.value}")
        self.vector = vector
        self.check = check
        self.pfn = pfn
        self.error_code = error_code
