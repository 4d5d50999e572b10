"""Page commands: SNP_PAGE_RECLAIM, SNP_PAGE_UNSMASH and SNP_PAGE_SET_STATE
(firmware-commands.md §6)."""

from __future__ import annotations

from rmp import PAGE_2M as _2M
from rmp import PageState
from rmp import layout as RL
from sp_emu.abi.commands import CommandId as C
from sp_emu.abi.status import SnpStatus as S
from sp_emu.commands.platform import read_range_list
from sp_emu.errors import SnpError
from sp_emu.firmware import Firmware, Request, command

_IMM = RL.IMMUTABLE.mask | RL.LOCK.mask

# What SNP_PAGE_RECLAIM makes of an immutable page: only Immutable is cleared (AFW).
_RECLAIMABLE = {
    PageState.FIRMWARE: PageState.RECLAIM,
    PageState.METADATA: PageState.RECLAIM,
    PageState.PRE_GUEST: PageState.GUEST_INVALID,
    PageState.PRE_SWAP: PageState.GUEST_VALID,
}


@command(C.SNP_PAGE_RECLAIM, "SNP_PAGE_RECLAIM; firmware-commands.md §6")
def snp_page_reclaim(fw: Firmware, req: Request) -> None:
    """Give an immutable firmware, metadata or pre-guest page back: clear its Immutable bit
    (FIRMWARE/METADATA -> RECLAIM, PRE_GUEST -> GUEST_INVALID, PRE_SWAP -> GUEST_VALID) so
    the host can RMPUPDATE it."""
    f = req.f
    spa = f["page_paddr"]
    size = f["page_size"]
    # CHECKS
    req.check_reserved()
    fw.require_init()
    state = fw.page_state(spa)
    if state is PageState.DEFAULT:
        raise SnpError(S.INVALID_ADDRESS, f"{spa:#x} is not covered by the RMP")
    q0, q1 = fw.rmp.read(spa >> 12)
    if bool(q0 & RL.PAGE_SIZE.mask) != bool(size):
        raise SnpError(S.INVALID_PAGE_SIZE, "RMP page size differs from PAGE_SIZE")
    if size and spa % _2M:
        raise SnpError(S.INVALID_ADDRESS, "a 2 MiB page must be 2 MiB aligned")
    if not q0 & RL.IMMUTABLE.mask:
        return  # already mutable: success, nothing to do
    if state not in _RECLAIMABLE:
        raise SnpError(S.INVALID_PAGE_STATE, f"a {state.name} page cannot be reclaimed")
    # COMMIT
    if state is PageState.METADATA:
        q0 &= ~RL.FW_MARKER.mask  # METADATA -> RECLAIM also clears the GPA marker (AFW)
    fw.rmp.write(spa >> 12, q0 & ~_IMM, q1)


@command(C.SNP_PAGE_UNSMASH, "SNP_PAGE_UNSMASH; firmware-commands.md §6")
def snp_page_unsmash(fw: Firmware, req: Request) -> None:
    """Merge 512 immutable 4 KiB guest entries back into one 2 MiB entry (the reverse of
    PSMASH).  Every entry must be 4 KiB, immutable, not a VMSA, owned by one ASID, in one
    state, with one permission word and consecutive GPAs from a 2 MiB-aligned one."""
    f = req.f
    spa = f["page_paddr"]
    # CHECKS
    req.check_reserved()
    if f["page_size"]:
        raise SnpError(S.INVALID_PARAM, "PAGE_SIZE must be 0")
    fw.require_init()
    if spa % _2M:
        raise SnpError(S.INVALID_ADDRESS, "PAGE_PADDR must be 2 MiB aligned")
    if spa <= fw.rmp_end and spa + _2M > fw.rmp_base:
        raise SnpError(S.INVALID_ADDRESS, "the range overlaps the RMP")
    if fw.page_state(spa) is PageState.DEFAULT:
        raise SnpError(S.INVALID_ADDRESS, f"{spa:#x} is not covered by the RMP")
    # PAGES
    base = spa >> 12
    q0, q1 = fw.rmp.read(base)
    same = q0 & (RL.ASSIGNED.mask | RL.IMMUTABLE.mask | RL.ASID.mask | RL.VALIDATED.mask)
    ok = (
        q0 & RL.ASSIGNED.mask
        and q0 & RL.IMMUTABLE.mask
        and RL.ASID.get(q0)
        and not q0 & (RL.VMSA.mask | RL.PAGE_SIZE.mask)
        and (q0 & RL.GPA.mask) % _2M == 0
    )
    gpa0 = q0 & RL.GPA.mask
    for i in range(1, 512):
        e0, e1 = fw.rmp.read(base + i)
        if not ok:
            break
        ok = (
            e1 == q1
            and not e0 & (RL.VMSA.mask | RL.PAGE_SIZE.mask)
            and e0 & (RL.ASSIGNED.mask | RL.IMMUTABLE.mask | RL.ASID.mask | RL.VALIDATED.mask)
            == same
            and (e0 & RL.GPA.mask) == gpa0 + (i << 12)
        )
    if not ok:
        raise SnpError(S.INVALID_PAGE_STATE, "the 512 entries do not form one 2 MiB page")
    # COMMIT: entry 0 becomes the 2 MiB entry; the others return to the all-zero form a
    # 2 MiB RMPUPDATE leaves them in (AFW instead writes "assigned, ASID 0" placeholders).
    for i in range(1, 512):
        fw.rmp.write(base + i, 0, 0)
    fw.rmp.write(base, (q0 & ~RL.SUBPAGE_COUNT.mask) | RL.PAGE_SIZE.mask, q1)


SNP_PAGE_SET_STATE_LENGTH = 0x10


@command(C.SNP_PAGE_SET_STATE, "SNP_PAGE_SET_STATE; firmware-commands.md §6")
def snp_page_set_state(fw: Firmware, req: Request) -> None:
    """Make every page of a RANGE_LIST (2 MiB-aligned bases) HV_FIXED; each must be
    FIRMWARE.  Nothing changes unless every page qualifies."""
    f = req.f
    # CHECKS (AFW snp_mcmd_page_set_state order)
    if f["length"] != SNP_PAGE_SET_STATE_LENGTH:
        raise SnpError(S.INVALID_LENGTH, "LENGTH must be 0x10")
    req.check_reserved()
    if f["list_paddr"] & 0xFFF:
        raise SnpError(S.INVALID_PARAM, "LIST_PADDR is not page aligned")
    fw.require_init()
    ranges = read_range_list(fw, f["list_paddr"], align=_2M)
    for base, pages in ranges:
        end = base + pages * 0x1000 - 1
        if pages and base <= fw.rmp_end and end >= fw.rmp_base:
            raise SnpError(S.INVALID_ADDRESS, f"range at {base:#x} overlaps the RMP")
    # PAGES
    for base, pages in ranges:
        for pfn in range(base >> 12, (base >> 12) + pages):
            state = fw.page_state(pfn << 12)
            if state is not PageState.FIRMWARE:
                raise SnpError(S.INVALID_PAGE_STATE, f"page {pfn << 12:#x} is {state.name}")
    # COMMIT: FIRMWARE -> HV_FIXED (unassigned, immutable); fill() keeps the CPU's 2 MiB
    # sub-page counts in step as pages stop being assigned.
    for base, pages in ranges:
        fw.rmp.fill(base >> 12, pages, RL.IMMUTABLE.mask | RL.LOCK.mask, 0)
