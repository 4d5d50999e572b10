"""A host write over many pages faults exactly as page-by-page RMP checks say: at the first
page that is assigned (or lies in an assigned 2 MiB page), leaving memory untouched."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

import rmp
from rmp import RmpFault, RmpResult
from sp_emu.platform import Platform

BASE = 64 << 20  # 2 MiB aligned, away from the firmware's own pages
PAGES = 1536  # three 2 MiB regions


@st.composite
def states_and_writes(draw: st.DrawFn) -> tuple[list[tuple[int, int]], int, int]:
    assigned = draw(
        st.lists(
            st.tuples(st.integers(0, PAGES - 1), st.sampled_from([0, 0, 0, 1])),
            max_size=4,
        )
    )
    first = draw(st.integers(0, PAGES - 1))
    length = draw(st.integers(1, min(PAGES - first, 700) * 0x1000 - 1))
    offset = draw(st.integers(0, 0xFFF))
    return assigned, BASE + first * 0x1000 + offset, max(1, length - offset)


@settings(max_examples=60, deadline=None)
@given(states_and_writes())
def test_range_write_faults_like_page_by_page_checks(
    case: tuple[list[tuple[int, int]], int, int],
) -> None:
    assigned, spa, length = case
    p = Platform()
    for page, size in assigned:
        gpa_page = page & ~511 if size else page
        rc = p.cpu.rmpupdate(
            BASE + gpa_page * 0x1000, assigned=True, page_size=size, asid=1, gpa=gpa_page << 12
        )
        assert rc in (RmpResult.SUCCESS, RmpResult.FAIL_OVERLAP)
    expected = None
    page = spa & ~0xFFF
    while page < spa + length:
        try:
            rmp.check_host_write(p.rmp, page)
        except RmpFault as fault:
            expected = fault.pfn
            break
        page += 0x1000
    before = p.memory.fingerprint()
    try:
        p.cpu.host_write(spa, b"\xa5" * length)
    except RmpFault as fault:
        assert fault.pfn == expected
        assert p.memory.fingerprint() == before
    else:
        assert expected is None
        assert p.memory.read(spa, length) == b"\xa5" * length
