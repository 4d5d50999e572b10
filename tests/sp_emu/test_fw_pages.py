"""Page commands, table driven: SNP_PAGE_RECLAIM, SNP_PAGE_UNSMASH and SNP_PAGE_SET_STATE.

Statuses, their order and the state transitions: firmware-commands.md §6 (SNP_PAGE_RECLAIM
check table and transitions, SNP_PAGE_UNSMASH requirements, SNP_PAGE_SET_STATE check order)
and rmp-and-instructions.md §3 (page states)."""

from __future__ import annotations

import pytest

from rmp import PageState, RmpResult
from rmp import layout as RL
from sp_emu.abi.commands import CommandId as C
from sp_emu.abi.status import SnpStatus as S
from sp_emu.cpu import GuestCpu
from sp_emu.firmware import CommandResult
from sp_emu.platform import Platform
from tests.sp_emu.helpers import (
    ASID,
    BEYOND,
    FW_PAGE,
    GCTX,
    GUEST_PAGE,
    HV_PAGE,
    LIST_PAGE,
    MEM,
    METADATA_Q0,
    REGION,
    REGION2,
    Check,
    Row,
    Step,
    activated,
    created,
    flushed,
    fw_page,
    guest_invalid,
    ok,
    platform,
    pre_guest,
    raw_entry,
    rmpupdate_ok,
    row_params,
    run_row,
    set_raw_entry,
    setup,
    state_of,
    write_range_list,
)

IPS = S.INVALID_PLATFORM_STATE
_2M = 0x200000
RUN_ASID = 5
RUN_GPA = 0x800000


def _fw(spa: int, page_size: int = 0) -> Step:
    return lambda p: fw_page(p, spa, page_size)


def _pre_guest(spa: int = GUEST_PAGE, asid: int = 5, gpa: int = 0x1000, size: int = 0) -> Step:
    return lambda p: pre_guest(p, spa, asid, gpa, size)


def _metadata(spa: int = FW_PAGE) -> Step:
    """A METADATA page (firmware-owned, marker 1 + the owning GCTX's PFN), its entry written
    directly so that these rows need no launched guest (SNP_PAGE_MD_INIT's own tests are in
    test_fw_page_swap.py)."""

    def step(p: Platform) -> None:
        fw_page(p, spa)  # assigned through RMPUPDATE, so the CPU's counts stay right
        q0, q1 = raw_entry(p, spa)
        set_raw_entry(p, spa, q0 | METADATA_Q0 | GCTX, q1)
        assert state_of(p, spa) is PageState.METADATA

    return step


def _pre_swap(p: Platform) -> None:
    """GUEST_VALID made immutable: the guest validates its page, the host RMPUPDATEs it with
    immutable=1 and the same owner (Validated kept) -> PRE_SWAP."""
    activated(p, GCTX, ASID)
    guest_invalid(p, GUEST_PAGE, ASID, 0x5000)
    p.cpu.npt_map(ASID, 0x5000, GUEST_PAGE)
    outcome = p.cpu.pvalidate(GuestCpu(ASID), 0x5000, validate=True)
    assert outcome.result is RmpResult.SUCCESS
    rmpupdate_ok(p, GUEST_PAGE, assigned=True, immutable=True, asid=ASID, gpa=0x5000)
    assert state_of(p, GUEST_PAGE) is PageState.PRE_SWAP


def _run_reclaim(spa: int) -> Step:
    return lambda p: ok(p.run(C.SNP_PAGE_RECLAIM, page_paddr=spa))


def _created() -> Step:
    return lambda p: created(p, GCTX)


def becomes(spa: int, state: PageState, *, size: int = 0) -> Check:
    def check(p: Platform, r: CommandResult) -> None:
        assert state_of(p, spa) is state
        q0, _q1 = raw_entry(p, spa)
        assert bool(q0 & RL.PAGE_SIZE.mask) == bool(size)
        assert not q0 & RL.LOCK.mask  # the lock bit follows Immutable
        if state is PageState.RECLAIM:
            # ... and the host can now give it back to the hypervisor.
            rmpupdate_ok(p, spa, page_size=size)
            assert state_of(p, spa) is PageState.HYPERVISOR

    return check


def metadata_reclaimed(p: Platform, r: CommandResult) -> None:
    becomes(FW_PAGE, PageState.RECLAIM)(p, r)


def marker_cleared(p: Platform, r: CommandResult) -> None:
    q0, _ = raw_entry(p, FW_PAGE)
    assert state_of(p, FW_PAGE) is PageState.RECLAIM
    assert q0 & RL.FW_MARKER.mask == 0  # "GPA marker cleared"


# --- SNP_PAGE_RECLAIM ----------------------------------------------------------------------------
_R = C.SNP_PAGE_RECLAIM


def rc(spa: int, size: int = 0) -> dict[str, int]:
    return {"page_paddr": spa, "page_size": size}


RECLAIM_ROWS = [
    Row(
        "FIRMWARE -> RECLAIM",
        setup(_fw(FW_PAGE)),
        _R,
        rc(FW_PAGE),
        check=becomes(FW_PAGE, PageState.RECLAIM),
    ),
    Row(
        "2 MiB FIRMWARE -> RECLAIM",
        setup(_fw(REGION, 1)),
        _R,
        rc(REGION, 1),
        check=becomes(REGION, PageState.RECLAIM, size=1),
    ),
    Row("METADATA -> RECLAIM", setup(_metadata()), _R, rc(FW_PAGE), check=metadata_reclaimed),
    Row(
        "METADATA -> RECLAIM clears the marker",
        setup(_metadata()),
        _R,
        rc(FW_PAGE),
        check=marker_cleared,
    ),
    Row(
        "C-bit set in PAGE_PADDR",
        setup(_fw(FW_PAGE)),
        _R,
        rc(FW_PAGE | 1 << 51),
        check=becomes(FW_PAGE, PageState.RECLAIM),
    ),
    Row(
        "PRE_GUEST -> GUEST_INVALID",
        setup(_pre_guest()),
        _R,
        rc(GUEST_PAGE),
        check=becomes(GUEST_PAGE, PageState.GUEST_INVALID),
    ),
    Row(
        "2 MiB PRE_GUEST -> GUEST_INVALID",
        setup(_pre_guest(REGION, gpa=_2M, size=1)),
        _R,
        rc(REGION, 1),
        check=becomes(REGION, PageState.GUEST_INVALID, size=1),
    ),
    Row(
        "PRE_SWAP -> GUEST_VALID",
        setup(_pre_swap),
        _R,
        rc(GUEST_PAGE),
        check=becomes(GUEST_PAGE, PageState.GUEST_VALID),
    ),
    Row("HYPERVISOR: already mutable, success", flushed, _R, rc(HV_PAGE), same=True),
    Row(
        "RECLAIM: already mutable, success",
        setup(_fw(FW_PAGE), _run_reclaim(FW_PAGE)),
        _R,
        rc(FW_PAGE),
        same=True,
    ),
    Row(
        "GUEST_INVALID: already mutable, success",
        setup(lambda p: guest_invalid(p, GUEST_PAGE, 5, 0x1000)),
        _R,
        rc(GUEST_PAGE),
        same=True,
    ),
    Row(
        "reserved bit 1", setup(_fw(FW_PAGE)), _R, rc(FW_PAGE), S.INVALID_PARAM, patch={0x00: 0x02}
    ),
    Row(
        "reserved bit 11", setup(_fw(FW_PAGE)), _R, rc(FW_PAGE), S.INVALID_PARAM, patch={0x01: 0x08}
    ),
    Row(
        "reserved bits before platform state",
        platform,
        _R,
        rc(FW_PAGE),
        S.INVALID_PARAM,
        patch={0x00: 0x10},
    ),
    Row("uninit", platform, _R, rc(FW_PAGE), IPS),
    Row(
        "uninit, FIRMWARE page from an earlier init",
        setup(_fw(FW_PAGE), lambda p: p.run(C.SNP_SHUTDOWN)),
        _R,
        rc(FW_PAGE),
        IPS,
    ),
    Row("inside the RMP", flushed, _R, rc(MEM - 0x1000), S.INVALID_PARAM),
    Row("past system memory", flushed, _R, rc(BEYOND), S.INVALID_ADDRESS),
    Row("4K page, PAGE_SIZE 2M", setup(_fw(REGION)), _R, rc(REGION, 1), S.INVALID_PAGE_SIZE),
    Row("2M page, PAGE_SIZE 4K", setup(_fw(REGION, 1)), _R, rc(REGION, 0), S.INVALID_PAGE_SIZE),
    Row("page size before state", setup(_created()), _R, rc(GCTX, 1), S.INVALID_PAGE_SIZE),
    Row("CONTEXT page", setup(_created()), _R, rc(GCTX), S.INVALID_PAGE_STATE),
    Row("HV_FIXED page", flushed, _R, rc(0xA0000), S.INVALID_PAGE_STATE),
    Row("FIRMWARE_IOMMU page", flushed, _R, lambda p: rc(p.map.iommu_base), S.INVALID_PAGE_STATE),
]


# --- SNP_PAGE_UNSMASH ----------------------------------------------------------------------------
_U = C.SNP_PAGE_UNSMASH


def run_2m_psmash(base: int = REGION, asid: int = RUN_ASID, gpa: int = RUN_GPA) -> Step:
    """RMPUPDATE 2M (immutable, guest ASID) then PSMASH: 512 PRE_GUEST 4K entries."""

    def step(p: Platform) -> None:
        pre_guest(p, base, asid, gpa, page_size=1)
        assert p.cpu.psmash(base) is RmpResult.SUCCESS

    return step


def run_4k(
    base: int = REGION,
    asid: int = RUN_ASID,
    gpa: int = RUN_GPA,
    odd: tuple[int, dict[str, object]] | None = None,
) -> Step:
    """512 4K RMPUPDATEs of consecutive GPAs; entry ``odd[0]`` gets ``odd[1]`` changed."""

    def step(p: Platform) -> None:
        for i in range(512):
            kw: dict[str, object] = {
                "assigned": True,
                "immutable": True,
                "asid": asid,
                "gpa": gpa + i * 0x1000,
            }
            if odd is not None and i == odd[0]:
                kw.update(odd[1])
            rmpupdate_ok(p, base + i * 0x1000, **kw)

    return step


def _edit(index: int, q0_or: int = 0, q0_clear: int = 0, q1: int | None = None) -> Step:
    """Change one entry of a run directly (for VMSA / permission differences)."""

    def step(p: Platform) -> None:
        spa = REGION + index * 0x1000
        e0, e1 = raw_entry(p, spa)
        set_raw_entry(p, spa, (e0 | q0_or) & ~q0_clear, e1 if q1 is None else q1)

    return step


def _validate_all(p: Platform) -> None:
    for i in range(512):
        _edit(i, RL.VALIDATED.mask)(p)


RECLAIMED = {
    PageState.PRE_GUEST: PageState.GUEST_INVALID,
    PageState.PRE_SWAP: PageState.GUEST_VALID,
}


def merged(
    base: int = REGION,
    asid: int = RUN_ASID,
    gpa: int = RUN_GPA,
    state: PageState = PageState.PRE_GUEST,
) -> Check:
    def check(p: Platform, r: CommandResult) -> None:
        e = p.rmp.entry(base >> 12)
        assert e.page_size == 1 and e.assigned and e.immutable
        assert (e.asid, e.gpa) == (asid, gpa)
        assert state_of(p, base) is state
        # The 2 MiB entry now governs every 4K page of the region.
        for i in (1, 255, 511):
            pfn = (base >> 12) + i
            assert p.rmp.effective_pfn(pfn) == base >> 12
            assert p.rmp.entry(pfn).asid == 0  # sub-entries no longer carry the guest
        # And the result is one 2 MiB page: SNP_PAGE_RECLAIM takes it with PAGE_SIZE 2M.
        ok(p.run(C.SNP_PAGE_RECLAIM, page_paddr=base, page_size=1))
        assert state_of(p, base) is RECLAIMED[state]

    return check


UNSMASH_ROWS = [
    Row(
        "after RMPUPDATE 2M + PSMASH",
        setup(run_2m_psmash()),
        _U,
        {"page_paddr": REGION},
        check=merged(),
    ),
    Row("512 4K RMPUPDATEs", setup(run_4k()), _U, {"page_paddr": REGION}, check=merged()),
    Row(
        "every entry validated (PRE_SWAP)",
        setup(run_4k(), _validate_all),
        _U,
        {"page_paddr": REGION},
        check=merged(state=PageState.PRE_SWAP),
    ),
    Row(
        "PAGE_SIZE 1 (FW 1.55 accepts only 0)",
        setup(run_4k()),
        _U,
        {"page_paddr": REGION, "page_size": 1},
        S.INVALID_PARAM,
    ),
    Row(
        "reserved bit 5",
        setup(run_4k()),
        _U,
        {"page_paddr": REGION},
        S.INVALID_PARAM,
        patch={0x00: 0x20},
    ),
    Row(
        "reserved bits before platform state",
        platform,
        _U,
        {"page_paddr": REGION},
        S.INVALID_PARAM,
        patch={0x01: 0x01},
    ),
    Row("uninit", platform, _U, {"page_paddr": REGION}, IPS),
    Row(
        "not 2 MiB aligned", setup(run_4k()), _U, {"page_paddr": REGION + 0x1000}, S.INVALID_ADDRESS
    ),
    Row(
        "range overlapping the RMP",
        flushed,
        _U,
        lambda p: {"page_paddr": p.map.rmp_base & ~(_2M - 1)},
        S.INVALID_ADDRESS,
    ),
    Row("past system memory", flushed, _U, {"page_paddr": BEYOND}, S.INVALID_ADDRESS),
    Row("HYPERVISOR region", flushed, _U, {"page_paddr": REGION2}, S.INVALID_PAGE_STATE),
    Row(
        "already a 2 MiB entry",
        setup(_pre_guest(REGION, RUN_ASID, RUN_GPA, 1)),
        _U,
        {"page_paddr": REGION},
        S.INVALID_PAGE_STATE,
    ),
    Row(
        "one entry mutable (GUEST_INVALID)",
        setup(run_4k(odd=(100, {"immutable": False}))),
        _U,
        {"page_paddr": REGION},
        S.INVALID_PAGE_STATE,
    ),
    Row(
        "one entry of another ASID",
        setup(run_4k(odd=(511, {"asid": 6}))),
        _U,
        {"page_paddr": REGION},
        S.INVALID_PAGE_STATE,
    ),
    Row(
        "GPAs not consecutive",
        setup(run_4k(odd=(7, {"gpa": 0x10000000}))),
        _U,
        {"page_paddr": REGION},
        S.INVALID_PAGE_STATE,
    ),
    Row(
        "first GPA not 2 MiB aligned",
        setup(run_4k(gpa=RUN_GPA + 0x1000)),
        _U,
        {"page_paddr": REGION},
        S.INVALID_PAGE_STATE,
    ),
    Row(
        "firmware pages (ASID 0)",
        setup(run_4k(asid=0, gpa=0)),
        _U,
        {"page_paddr": REGION},
        S.INVALID_PAGE_STATE,
    ),
    Row(
        "one entry validated, the rest not",
        setup(run_4k(), _edit(3, RL.VALIDATED.mask)),
        _U,
        {"page_paddr": REGION},
        S.INVALID_PAGE_STATE,
    ),
    Row(
        "a VMSA page in the run",
        setup(run_4k(), _edit(9, RL.VMSA.mask)),
        _U,
        {"page_paddr": REGION},
        S.INVALID_PAGE_STATE,
    ),
    Row(
        "a VMSA first entry",
        setup(run_4k(), _edit(0, RL.VMSA.mask)),
        _U,
        {"page_paddr": REGION},
        S.INVALID_PAGE_STATE,
    ),
    Row(
        "different VMPL permissions",
        setup(run_4k(), _edit(200, q1=RL.PERM_ALL | 0x0100)),
        _U,
        {"page_paddr": REGION},
        S.INVALID_PAGE_STATE,
    ),
]

# --- SNP_PAGE_SET_STATE --------------------------------------------------------------------------
_SS = C.SNP_PAGE_SET_STATE
_SSF = {"length": 0x10, "list_paddr": LIST_PAGE}


def _list(*ranges: tuple[int, int], count: int | None = None) -> Step:
    return lambda p: write_range_list(p, list(ranges), count=count)


def _fw_run(base: int, pages: int) -> Step:
    def step(p: Platform) -> None:
        for i in range(pages):
            fw_page(p, base + i * 0x1000)

    return step


def _raw_list(data: bytes) -> Step:
    return lambda p: p.cpu.host_write(LIST_PAGE, data)


def _list_into_rmp(p: Platform) -> None:
    """A 2 MiB-aligned range that runs from below the RMP into it."""
    base = p.map.rmp_base & ~(_2M - 1)
    assert base < p.map.rmp_base
    write_range_list(p, [(base, (p.map.rmp_base - base) // 0x1000 + 1)])


def hv_fixed(*ranges: tuple[int, int]) -> Check:
    def check(p: Platform, r: CommandResult) -> None:
        for base, pages in ranges:
            for i in range(pages):
                spa = base + i * 0x1000
                assert state_of(p, spa) is PageState.HV_FIXED, hex(spa)
                assert p.cpu.rmpupdate(spa) is RmpResult.FAIL_PERMISSION
            assert state_of(p, base + pages * 0x1000) is not PageState.HV_FIXED

    return check


SET_STATE_ROWS = [
    Row(
        "one FIRMWARE page",
        setup(_fw_run(REGION, 1), _list((REGION, 1))),
        _SS,
        _SSF,
        check=hv_fixed((REGION, 1)),
    ),
    Row(
        "two ranges",
        setup(_fw_run(REGION, 3), _fw_run(REGION2, 2), _list((REGION, 3), (REGION2, 2))),
        _SS,
        _SSF,
        check=hv_fixed((REGION, 3), (REGION2, 2)),
    ),
    Row("empty list", setup(_list()), _SS, _SSF, same=True),
    Row("zero-page range", setup(_list((REGION, 0))), _SS, _SSF, same=True),
    Row(
        "LENGTH 0",
        setup(_fw_run(REGION, 1), _list((REGION, 1))),
        _SS,
        {**_SSF, "length": 0},
        S.INVALID_LENGTH,
    ),
    Row(
        "LENGTH 0x18",
        setup(_fw_run(REGION, 1), _list((REGION, 1))),
        _SS,
        {**_SSF, "length": 0x18},
        S.INVALID_LENGTH,
    ),
    Row("LENGTH before platform state", platform, _SS, {**_SSF, "length": 8}, S.INVALID_LENGTH),
    Row(
        "LENGTH before MBZ", flushed, _SS, {**_SSF, "length": 8}, S.INVALID_LENGTH, patch={0x04: 1}
    ),
    Row(
        "reserved word 0x04",
        setup(_fw_run(REGION, 1), _list((REGION, 1))),
        _SS,
        _SSF,
        S.INVALID_PARAM,
        patch={0x07: 0x80},
    ),
    Row(
        "LIST_PADDR not page aligned",
        setup(_fw_run(REGION, 1), _list((REGION, 1))),
        _SS,
        {**_SSF, "list_paddr": LIST_PAGE + 0x10},
        S.INVALID_PARAM,
    ),
    Row(
        "LIST_PADDR bits before platform state",
        platform,
        _SS,
        {**_SSF, "list_paddr": LIST_PAGE + 1},
        S.INVALID_PARAM,
    ),
    Row("uninit", setup(_list((REGION, 1)), base=platform), _SS, _SSF, IPS),
    Row("256 ranges", setup(_list(count=256)), _SS, _SSF, S.INVALID_PARAM),
    Row(
        "list header MBZ",
        setup(_raw_list((0).to_bytes(4, "little") + b"\0\0\0\x10")),
        _SS,
        _SSF,
        S.INVALID_PARAM,
    ),
    Row(
        "range MBZ",
        setup(
            _fw_run(REGION, 1),
            _raw_list(
                (1).to_bytes(4, "little")
                + bytes(4)
                + REGION.to_bytes(8, "little")
                + (1).to_bytes(4, "little")
                + b"\x01\0\0\0"
            ),
        ),
        _SS,
        _SSF,
        S.INVALID_PARAM,
    ),
    Row(
        "base 4K but not 2 MiB aligned",
        setup(_fw_run(REGION + 0x1000, 1), _list((REGION + 0x1000, 1))),
        _SS,
        _SSF,
        S.INVALID_PARAM,
    ),
    Row(
        "range overlapping the RMP",
        setup(_list_into_rmp),
        _SS,
        _SSF,
        S.INVALID_ADDRESS,
    ),
    Row(
        "a HYPERVISOR page in the range: nothing changes",
        setup(_fw_run(REGION, 2), _list((REGION, 3))),
        _SS,
        _SSF,
        S.INVALID_PAGE_STATE,
    ),
    Row(
        "second range not FIRMWARE: the first is untouched",
        setup(_fw_run(REGION, 2), _list((REGION, 2), (REGION2, 1))),
        _SS,
        _SSF,
        S.INVALID_PAGE_STATE,
    ),
    Row(
        "a CONTEXT page",
        setup(_fw_run(REGION, 1), lambda p: created(p, REGION + 0x1000), _list((REGION, 2))),
        _SS,
        _SSF,
        S.INVALID_PAGE_STATE,
    ),
    Row(
        "a RECLAIM page",
        setup(_fw_run(REGION, 1), _run_reclaim(REGION), _list((REGION, 1))),
        _SS,
        _SSF,
        S.INVALID_PAGE_STATE,
    ),
    Row(
        "a 2 MiB FIRMWARE page (its 4K entries are not FIRMWARE)",
        setup(_fw(REGION, 1), _list((REGION, 2))),
        _SS,
        _SSF,
        S.INVALID_PAGE_STATE,
    ),
    Row("range past system memory", setup(_list((BEYOND, 1))), _SS, _SSF, S.INVALID_ADDRESS),
]

ROWS = RECLAIM_ROWS + UNSMASH_ROWS + SET_STATE_ROWS


@pytest.mark.parametrize(("row", "path"), row_params(ROWS))
def test_page_command(row: Row, path: str) -> None:
    run_row(row, path)
