"""The Reverse Map Table of AMD SEV-SNP and the CPU instructions that read and change it.

The RMP has one entry per 4 KiB page of system memory recording who owns the page (the
hypervisor, the firmware or a guest ASID), at which guest-physical address a guest may map it,
whether the guest has validated it, and what each VMPL may do with it.  The CPU consults it on
every access; the hypervisor changes it with RMPUPDATE and PSMASH, the guest with PVALIDATE
and RMPADJUST, and the firmware directly.

This package knows nothing of the firmware or of guests beyond their ASIDs.
"""

from rmp.access import Access, check_guest_access, check_host_write
from rmp.entry import FirmwareMarker, PageSize, PageState, RmpEntry, classify
from rmp.errors import FaultVector, RmpCheck, RmpFault, RmpResult
from rmp.instructions import (
    RMPADJUST_VMSA,
    PvalidateOutcome,
    RmpReadout,
    guest_entry,
    psmash,
    pvalidate,
    rmpadjust,
    rmpread,
    rmpupdate,
)
from rmp.layout import PAGE_2M, PAGE_4K, PERM_ALL, RAW_ENTRY_SIZE
from rmp.table import RmpTable

__all__ = [
    "PAGE_2M",
    "PAGE_4K",
    "PERM_ALL",
    "RAW_ENTRY_SIZE",
    "RMPADJUST_VMSA",
    "Access",
    "FaultVector",
    "FirmwareMarker",
    "PageSize",
    "PageState",
    "PvalidateOutcome",
    "RmpCheck",
    "RmpEntry",
    "RmpFault",
    "RmpReadout",
    "RmpResult",
    "RmpTable",
    "check_guest_access",
    "check_host_write",
    "classify",
    "guest_entry",
    "psmash",
    "pvalidate",
    "rmpadjust",
    "rmpread",
    "rmpupdate",
]
