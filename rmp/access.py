"""The RMP checks the CPU makes on ordinary memory accesses by the host and by guests."""

from __future__ import annotations

from enum import Enum

from binlayout.enums import EnumBase, fast_enum
from rmp import layout as L
from rmp.errors import (
    PF_ENC,
    PF_FETCH,
    PF_PRESENT,
    PF_RMP,
    PF_SIZEM,
    PF_VMPL,
    PF_WRITE,
    VC_PAGE_NOT_VALIDATED,
    FaultVector,
    RmpCheck,
    RmpFault,
)
from rmp.instructions import guest_entry
from rmp.table import RmpTable


@fast_enum(Enum)
class Access(EnumBase):
    """Kind of guest access, each needing its own VMPL permission bit."""

    READ = L.PERM_READ
    WRITE = L.PERM_WRITE
    EXECUTE_USER = L.PERM_EXEC_USER
    EXECUTE_SUPERVISOR = L.PERM_EXEC_SUPERVISOR


def _access_bits(access: Access) -> int:
    if access is Access.WRITE:
        return PF_WRITE
    if access in (Access.EXECUTE_USER, Access.EXECUTE_SUPERVISOR):
        return PF_FETCH
    return 0


def check_host_write(table: RmpTable, spa: int) -> None:
    """A hypervisor write to ``spa``: the page (or the 2 MiB page holding it) must not be
    assigned, else the host takes an RMP #PF.  Pages outside the RMP are not checked."""
    pfn = spa >> 12
    if not table.covers(pfn):
        return
    if table.read_q0(table.effective_pfn(pfn)) & 1:
        raise RmpFault(FaultVector.PF, RmpCheck.ASSIGNED, pfn, PF_PRESENT | PF_WRITE | PF_RMP)


def check_guest_access(
    table: RmpTable,
    spa: int,
    *,
    gpa: int,
    asid: int,
    vmpl: int,
    access: Access,
    private: bool,
    npt_page_size: int = 0,
) -> None:
    """A guest access to ``gpa``, translated by the nested page table to system page ``spa``.

    Private (C-bit set): the entry must be assigned to ``asid`` at ``gpa`` and not immutable,
    and the RMP page must be at least as large as the nested mapping (else #NPF with the RMP
    bit, plus SIZEM for the size); the page must be validated (else #VC); the current VMPL
    must hold the permission for the access (else #NPF with the VMPL bit).  VMPL0 always
    holds every permission.  Shared (C-bit clear): the page must not be assigned (#NPF RMP).
    """
    pfn = spa >> 12
    kind = _access_bits(access)
    if not private:
        if table.covers(pfn) and table.read_q0(table.effective_pfn(pfn)) & 1:
            raise RmpFault(FaultVector.NPF, RmpCheck.ASSIGNED, pfn, PF_PRESENT | PF_RMP | kind)
        return
    try:
        _eff, q0, q1 = guest_entry(table, pfn, gpa, asid)
    except RmpFault as fault:
        fault.error_code |= kind
        raise
    if npt_page_size and not q0 & L.PAGE_SIZE.mask:
        raise RmpFault(
            FaultVector.NPF, RmpCheck.PAGE_SIZE, pfn, PF_PRESENT | PF_RMP | PF_ENC | PF_SIZEM | kind
        )
    if not q0 & L.VALIDATED.mask:
        raise RmpFault(FaultVector.VC, RmpCheck.NOT_VALIDATED, pfn, VC_PAGE_NOT_VALIDATED)
    if vmpl and not (q1 >> (8 * vmpl)) & access.value:
        code = PF_PRESENT | PF_RMP | PF_ENC | PF_VMPL | kind
        raise RmpFault(FaultVector.NPF, RmpCheck.VMPL_PERMISSION, pfn, code)
