"""The RMP table itself: bulk fills, the counts the CPU keeps, and transactions."""

from __future__ import annotations

import pytest

from rmp.entry import PageState, RmpEntry
from rmp.errors import RmpResult
from rmp.instructions import rmpupdate
from rmp.table import RmpTable

FIRMWARE = RmpEntry(assigned=True, immutable=True, perms=(0x1F, 0, 0, 0))
HV_FIXED = RmpEntry(immutable=True)
R1 = 512


class _Abort(Exception):
    pass


def test_untouched_entries_are_hypervisor() -> None:
    table = RmpTable(1024)
    assert table.read(700) == (0, 0)
    assert table.state(700) is PageState.HYPERVISOR
    assert table.state(1024) is PageState.DEFAULT  # §3: not covered by the RMP
    assert table.snapshot() == {}
    with pytest.raises(ValueError):
        RmpTable(100)  # the RMP covers whole 2 MiB regions


def test_partial_fill_counts_sub_pages() -> None:
    # Firmware pages inside a region whose 2 MiB-aligned page is still the hypervisor's (an RMP
    # that starts 1 MiB into a region, say): a 2 MiB RMPUPDATE of that region must see them
    # and fail with FAIL_OVERLAP (§4.1), so the region's count must include them.
    table = RmpTable(1024)
    table.fill(R1 + 256, 256, *FIRMWARE.to_raw())
    assert table.entry(R1).subpage_count == 256
    assert table.state(R1 + 300) is PageState.FIRMWARE
    got = rmpupdate(table, R1 << 12, gpa=0, assigned=True, page_size=1, asid=1)
    assert got is RmpResult.FAIL_OVERLAP
    # Filling them back to HYPERVISOR counts them out again.
    table.fill(R1 + 256, 256, 0, 0)
    assert table.entry(R1).subpage_count == 0
    got = rmpupdate(table, R1 << 12, gpa=0, assigned=True, page_size=1, asid=1)
    assert got is RmpResult.SUCCESS


def test_whole_region_fill_counts_sub_pages() -> None:
    table = RmpTable(3 * 512)
    table.fill(R1, 1024, *FIRMWARE.to_raw())
    for base in (R1, 2 * R1):
        assert table.entry(base).subpage_count == 511
        assert table.entry(base + 7).subpage_count == 0
        assert table.state(base + 7) is PageState.FIRMWARE
    # Writing the 2 MiB-aligned entry alone keeps the region's count.
    table.fill(R1, 1, 0, 0)
    assert table.entry(R1).subpage_count == 511
    assert table.state(R1) is PageState.HYPERVISOR
    # Unassigned fills count nothing.
    table.fill(0, 512, *HV_FIXED.to_raw())
    assert table.entry(0).subpage_count == 0
    assert table.state(3) is PageState.HV_FIXED


def test_asid_page_counts() -> None:
    table = RmpTable(1024)
    table.fill(R1, 512, *FIRMWARE.to_raw())
    table.fill(3, 2, *FIRMWARE.to_raw())
    assert table.asid_pages(0) == 514
    assert rmpupdate(table, 10 << 12, gpa=0x5000, assigned=True, asid=7) is RmpResult.SUCCESS
    assert table.asid_pages(7) == 1
    assert rmpupdate(table, 10 << 12, gpa=0x5000, assigned=True, asid=8) is RmpResult.SUCCESS
    assert (table.asid_pages(7), table.asid_pages(8)) == (0, 1)
    table.clear()
    assert (table.asid_pages(0), table.asid_pages(8)) == (0, 0)
    assert table.snapshot() == {}


@pytest.mark.parametrize("nested", [False, True])
def test_aborted_transaction_restores_everything(nested: bool) -> None:
    table = RmpTable(1024)
    table.fill(R1 + 1, 3, *FIRMWARE.to_raw())
    rmpupdate(table, 5 << 12, gpa=0x5000, assigned=True, asid=1)
    before = table.snapshot()
    counts = (table.asid_pages(0), table.asid_pages(1))

    def changes() -> None:
        rmpupdate(table, 5 << 12, gpa=0x6000, assigned=True, asid=2)
        rmpupdate(table, 5 << 12)  # the same entry twice: undo must go newest first
        table.fill(0, 1024, *FIRMWARE.to_raw())
        table.fill(R1 + 2, 1, 0, 0)
        table.clear()
        rmpupdate(table, 9 << 12, gpa=0x9000, assigned=True, asid=1)

    with pytest.raises(_Abort), table.transaction():
        if nested:
            with table.transaction():
                changes()
        else:
            changes()
        raise _Abort
    assert table.snapshot() == before
    assert (table.asid_pages(0), table.asid_pages(1)) == counts


def test_completed_transaction_keeps_changes() -> None:
    table = RmpTable(1024)
    with table.transaction():
        rmpupdate(table, 5 << 12, gpa=0x5000, assigned=True, asid=1)
    assert table.state(5) is PageState.GUEST_INVALID
    with pytest.raises(_Abort), table.transaction():
        with table.transaction():
            rmpupdate(table, 6 << 12, gpa=0x6000, assigned=True, asid=1)
        raise _Abort  # the outer block aborts: the inner one's change goes too
    assert table.state(6) is PageState.HYPERVISOR
    assert table.state(5) is PageState.GUEST_INVALID


def test_page_set_state_keeps_sub_page_counts() -> None:
    """SNP_PAGE_SET_STATE unassigns FIRMWARE pages; afterwards a 2 MiB RMPUPDATE at the
    region head must see no assigned 4 KiB entries (sub-page count 0)."""
    from sp_emu import CommandId, Platform
    from sp_emu.abi.structures import RANGE, RANGE_LIST_HEADER

    p = Platform(memory=64 << 20)
    assert p.run(CommandId.SNP_INIT).ok
    head = 0x200000
    for i in range(1, 4):  # three FIRMWARE pages in the region, not its head
        assert p.cpu.rmpupdate(head + i * 0x1000, assigned=True, immutable=True) == 0
    assert p.rmp.entry(head >> 12).subpage_count == 3
    # SET_STATE ranges start 2 MiB aligned: make the head FIRMWARE too, then list all four.
    assert p.cpu.rmpupdate(head, assigned=True, immutable=True) == 0
    lst = 0x400000
    p.cpu.host_write(lst, RANGE_LIST_HEADER.build({"count": 1}))
    p.cpu.host_write(lst + 8, RANGE.build({"base": head, "page_count": 4}))
    assert p.run(CommandId.SNP_PAGE_SET_STATE, length=0x10, list_paddr=lst).ok
    assert p.rmp.entry(head >> 12).subpage_count == 0
    assert p.rmp.state((head >> 12) + 2).name == "HV_FIXED"
