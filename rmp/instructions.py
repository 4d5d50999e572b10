"""The SNP instructions as functions over an :class:`RmpTable`.

Host instructions (executed by the hypervisor, ASID 0): RMPUPDATE, PSMASH, RMPREAD.
Guest instructions (executed by a vCPU at some VMPL): PVALIDATE, RMPADJUST.

Guest instructions are given the system page their guest address translates to (the
caller walks the nested page table) as well as the GPA, since the RMP check compares the two.
Return codes come back as :class:`RmpResult`; faults are raised as :class:`RmpFault`.
"""

from __future__ import annotations

from binlayout.records import record
from rmp import layout as L
from rmp.entry import RmpEntry
from rmp.errors import (
    PF_ENC,
    PF_PRESENT,
    PF_RMP,
    PF_SIZEM,
    VC_PAGE_NOT_VALIDATED,
    FaultVector,
    RmpCheck,
    RmpFault,
    RmpResult,
)
from rmp.table import RmpTable

_SUCCESS = RmpResult.SUCCESS
_FAIL_INPUT = RmpResult.FAIL_INPUT
_FAIL_PERMISSION = RmpResult.FAIL_PERMISSION
_FAIL_OVERLAP = RmpResult.FAIL_OVERLAP

_ASSIGNED = L.ASSIGNED.mask
_SIZE = L.PAGE_SIZE.mask
_IMM = L.IMMUTABLE.mask
_VALIDATED = L.VALIDATED.mask
_VMSA = L.VMSA.mask
_LOCK = L.LOCK.mask
_COUNT = L.SUBPAGE_COUNT.mask
_OWNER = _ASSIGNED | _SIZE | L.GPA.mask | L.ASID.mask
_GPA_LIMIT = 1 << 51
_VMPL0_FULL = L.PERM_ALL
_2M_PAGES = 512


def rmpupdate(
    table: RmpTable,
    spa: int,
    *,
    gpa: int = 0,
    assigned: bool = False,
    page_size: int = 0,
    immutable: bool = False,
    asid: int = 0,
    flags_reserved: int = 0,
    current_asid: int = 0,
) -> RmpResult:
    """RMPUPDATE: write the ownership fields of the entry of system page ``spa``.

    The hypervisor writes Assigned, Page_Size, Immutable, ASID and GPA.  When the owner
    (assignment, size, ASID or GPA) changes, the page is unassigned, or the new ASID is 0
    (VMO ``rmpupdate``), the CPU clears Validated and VMSA and resets the VMPL masks (VMPL0
    full, VMPL1-3 none); otherwise they are kept, so a validated page can be made immutable for
    swap-out (PRE_SWAP).

    * FAIL_PERMISSION: executed by a guest (``current_asid`` != 0) or the entry is Immutable.
    * FAIL_INPUT: reserved bits, a page outside the RMP, an ASID wider than the entry's
      field, a GPA that is not page aligned, or a 2 MiB update of a page that is not 2 MiB
      aligned (the last three are plausible readings of "invalid input"; unconfirmed).
    * FAIL_OVERLAP: a 2 MiB update while one of the region's 4 KiB entries is assigned, or a
      4 KiB update inside a page the RMP holds as an assigned 2 MiB page.
    """
    if current_asid:
        return _FAIL_PERMISSION
    pfn = spa >> 12
    align = 0x1FFFFF if page_size else 0xFFF
    if (
        flags_reserved
        or spa & 0xFFF
        or not table.covers(pfn)
        or page_size not in (0, 1)
        or not 0 <= asid < L.ASID_LIMIT
        or not 0 <= gpa < _GPA_LIMIT
        or (assigned and gpa & align)
        or (page_size and pfn & 511)
    ):
        return _FAIL_INPUT
    q0, q1 = table.read(pfn)
    if q0 & _IMM:
        return _FAIL_PERMISSION
    base = pfn & ~511
    if page_size:
        if q0 & _COUNT:
            return _FAIL_OVERLAP
    elif base != pfn:
        if table.read_q0(base) & (_ASSIGNED | _SIZE) == _ASSIGNED | _SIZE:
            return _FAIL_OVERLAP
    elif q0 & (_ASSIGNED | _SIZE) == _ASSIGNED | _SIZE:
        return _FAIL_OVERLAP

    new_q0 = (
        (_ASSIGNED if assigned else 0)
        | (_SIZE if page_size else 0)
        | ((_IMM | _LOCK) if immutable else 0)
        | (q0 & _COUNT)
        | (gpa & L.GPA.mask)
        | (asid << L.ASID.lsb)
    )
    if assigned and asid and (new_q0 & _OWNER) == (q0 & _OWNER):
        new_q0 |= q0 & (_VALIDATED | _VMSA)
        new_q1 = q1
    else:
        new_q1 = _VMPL0_FULL if assigned else 0
    table.write_counted(pfn, q0, new_q0, new_q1)
    return _SUCCESS


def psmash(table: RmpTable, spa: int, *, current_asid: int = 0) -> RmpResult:
    """PSMASH: split the 2 MiB entry at ``spa`` into 512 4 KiB entries.

    Every new entry carries the 2 MiB entry's ownership, Validated bit and permissions, with
    consecutive GPAs.  FAIL_BADADDR when the entry is not an assigned 2 MiB entry (inferred
    from KVM's handling; unconfirmed), FAIL_INPUT for an address that is not 2 MiB aligned or
    outside the RMP, FAIL_PERMISSION from a guest.
    """
    if current_asid:
        return _FAIL_PERMISSION
    pfn = spa >> 12
    if spa & 0x1FFFFF or not table.covers(pfn):
        return _FAIL_INPUT
    q0, q1 = table.read(pfn)
    if q0 & (_ASSIGNED | _SIZE) != _ASSIGNED | _SIZE:
        # Only an assigned 2 MiB entry governs its region: under an unassigned one the 4 KiB
        # entries are independent (and may be assigned or immutable), so it is not expanded.
        return RmpResult.FAIL_BADADDR
    sub_q0 = q0 & ~(_SIZE | _COUNT)
    count = (_2M_PAGES - 1) if q0 & _ASSIGNED else 0
    table.write(pfn, sub_q0 | (count << L.SUBPAGE_COUNT.lsb), q1)
    for i in range(1, _2M_PAGES):
        table.write(pfn + i, sub_q0 + (i << 12), q1)
    return _SUCCESS


@record
class RmpReadout:
    """What RMPREAD reports: the entry governing the page and 2MB_REGION_STATUS."""

    entry: RmpEntry
    region_status: bool
    """Some 4 KiB entry of the page's 2 MiB region is assigned."""


def rmpread(
    table: RmpTable, spa: int, *, current_asid: int = 0
) -> tuple[RmpResult, RmpReadout | None]:
    """RMPREAD: report the entry that governs system page ``spa``.

    Inside an assigned 2 MiB page that is the 2 MiB entry.  FAIL_PERMISSION from a guest,
    FAIL_INPUT for a page outside the RMP.
    """
    if current_asid:
        return _FAIL_PERMISSION, None
    pfn = spa >> 12
    if not table.covers(pfn):
        return _FAIL_INPUT, None
    eff = table.effective_pfn(pfn)
    base_q0 = table.read_q0(pfn & ~511)
    region = bool(base_q0 & _COUNT) or bool(base_q0 & _ASSIGNED)
    return _SUCCESS, RmpReadout(table.entry(eff), region)


# --- guest side -------------------------------------------------------------------------------
def _npf(check: RmpCheck, pfn: int, extra: int = 0) -> RmpFault:
    return RmpFault(FaultVector.NPF, check, pfn, PF_PRESENT | PF_RMP | PF_ENC | extra)


def guest_entry(table: RmpTable, pfn: int, gpa: int, asid: int) -> tuple[int, int, int]:
    """The entry governing a private guest access to ``pfn`` at ``gpa``, after the ownership
    checks every private access makes: ``(entry_pfn, q0, q1)``.

    Raises #NPF (RMP) when the page is not assigned to ``asid``, the RMP's GPA differs from
    ``gpa`` (for a 4 KiB page inside a 2 MiB page, from the 2 MiB entry's GPA plus the page's
    offset), or the page is immutable.
    """
    if not table.covers(pfn):
        raise _npf(RmpCheck.NOT_COVERED, pfn)
    eff = table.effective_pfn(pfn)
    q0, q1 = table.read(eff)
    if not q0 & _ASSIGNED:
        raise _npf(RmpCheck.NOT_ASSIGNED, pfn)
    if L.ASID.get(q0) != asid:
        raise _npf(RmpCheck.OWNER, pfn)
    # Page i of a 2 MiB page is mapped at the 2 MiB entry's GPA + i * 4 KiB (as PSMASH shows).
    if gpa >= _GPA_LIMIT or (q0 & L.GPA.mask) + ((pfn - eff) << 12) != gpa & ~0xFFF:
        raise _npf(RmpCheck.GPA, pfn)
    if q0 & _IMM:
        raise _npf(RmpCheck.IMMUTABLE, pfn)
    return eff, q0, q1


@record
class PvalidateOutcome:
    """PVALIDATE's result: the return code and whether the Validated bit changed (CF=0)."""

    result: RmpResult
    changed: bool = True


def pvalidate(
    table: RmpTable,
    spa: int,
    *,
    gpa: int,
    asid: int,
    vmpl: int,
    page_size: int,
    validate: bool,
) -> PvalidateOutcome:
    """PVALIDATE: set or clear the Validated bit of the guest page at ``gpa``.

    Order (VMO ``op_pvalidate``; MSDOC): not at VMPL0 -> #GP; a 2 MiB request whose address is
    not 2 MiB aligned -> FAIL_INPUT; the ownership checks -> #NPF(RMP); a 4 KiB request on a
    2 MiB RMP page -> #NPF(RMP, size mismatch), which the hypervisor answers with PSMASH; a
    2 MiB request on a 4 KiB RMP page -> FAIL_SIZEMISMATCH; Validated already as requested ->
    SUCCESS with ``changed`` False (carry flag set).
    """
    pfn = spa >> 12
    if vmpl != 0:
        raise RmpFault(FaultVector.GP, RmpCheck.VMPL_PRIVILEGE, pfn)
    if page_size and gpa & 0x1FFFFF:
        return PvalidateOutcome(_FAIL_INPUT)
    eff, q0, q1 = guest_entry(table, pfn, gpa, asid)
    entry_2m = bool(q0 & _SIZE)
    if not page_size and entry_2m:
        raise _npf(RmpCheck.PAGE_SIZE, pfn, PF_SIZEM)
    if page_size and not entry_2m:
        return PvalidateOutcome(RmpResult.FAIL_SIZEMISMATCH)
    if bool(q0 & _VALIDATED) == validate:
        return PvalidateOutcome(_SUCCESS, changed=False)
    table.write(eff, q0 ^ _VALIDATED, q1)
    return PvalidateOutcome(_SUCCESS)


RMPADJUST_VMSA = 1 << 16
"""RDX bit 16 of RMPADJUST: make the page a VMSA (honoured only at VMPL0)."""


def rmpadjust(
    table: RmpTable,
    spa: int,
    *,
    gpa: int,
    asid: int,
    vmpl: int,
    page_size: int,
    target_vmpl: int,
    perms: int,
    vmsa: bool = False,
    reserved: int = 0,
) -> RmpResult:
    """RMPADJUST: set the permission mask of a less privileged VMPL (and, from VMPL0, the
    VMSA bit) on a validated guest page.

    Order (VMO ``op_rmpadjust``; MSDOC): a misaligned 2 MiB address or reserved input bits ->
    FAIL_INPUT; a target VMPL not numerically greater than the current one -> FAIL_PERMISSION;
    the ownership checks and a 4 KiB request on a 2 MiB page (as for PVALIDATE; VMO
    ``fault_rmp_update``) -> #NPF(RMP); not validated -> #VC; a 2 MiB request on a 4 KiB page
    -> FAIL_SIZEMISMATCH; permissions not a subset of the current VMPL's own -> FAIL_PERMISSION.
    """
    pfn = spa >> 12
    if (
        (page_size and gpa & 0x1FFFFF)
        or reserved
        or perms & ~L.PERM_ALL
        or not 0 <= target_vmpl <= 3
        or not 0 <= vmpl <= 3
    ):
        return _FAIL_INPUT
    if target_vmpl <= vmpl:
        return _FAIL_PERMISSION
    eff, q0, q1 = guest_entry(table, pfn, gpa, asid)
    entry_2m = bool(q0 & _SIZE)
    if not page_size and entry_2m:
        raise _npf(RmpCheck.PAGE_SIZE, pfn, PF_SIZEM)
    if not q0 & _VALIDATED:
        raise RmpFault(FaultVector.VC, RmpCheck.NOT_VALIDATED, pfn, VC_PAGE_NOT_VALIDATED)
    if page_size and not entry_2m:
        return RmpResult.FAIL_SIZEMISMATCH
    own = L.PERM_ALL if vmpl == 0 else (q1 >> (8 * vmpl)) & 0xFF
    if perms & ~own:
        return _FAIL_PERMISSION
    shift = 8 * target_vmpl
    new_q1 = (q1 & ~(0xFF << shift)) | (perms << shift)
    new_q0 = q0
    if vmpl == 0:
        new_q0 = (q0 | _VMSA) if vmsa else (q0 & ~_VMSA)
    table.write(eff, new_q0, new_q1)
    return _SUCCESS
