"""The RMP table: one raw 16-byte entry per 4 KiB system page, stored sparsely.

Entries are kept exactly as the hardware keeps them (two quadwords each), grouped by 2 MiB
region so that a region costs memory only once one of its entries is non-zero: an untouched
entry reads as all-zero, which is what SNP_INIT leaves in DRAM (the HYPERVISOR state).  A
region's 512 entries take 8 KiB, i.e. the hardware's 16 bytes per entry.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator

from rmp.entry import PageState, RmpEntry, classify

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType
    from typing import Any, Protocol

    class Journalled(Protocol):
        def begin(self) -> Any: ...
        def commit(self, outer: Any) -> None: ...
        def rollback(self, outer: Any) -> None: ...


ENTRIES_PER_REGION = 512
_OWNER_BITS = 1 | (0x3FF << 51)  # Assigned and ASID
_COUNT_SHIFT = 3
_COUNT_BITS = 0x1FF << _COUNT_SHIFT  # the 2 MiB sub-page count (raw bits 11:3)
_ZERO_REGION = bytes(ENTRIES_PER_REGION * 16)


class RmpTable:
    """The RMP entries covering system pages ``0 .. covered_pages - 1``.

    ``read``/``write`` work on raw quadword pairs; ``entry``/``set_entry`` on decoded
    :class:`RmpEntry` values.  ``transaction()`` records the old value of every entry written
    inside it and puts them back if the block raises, so a failed operation leaves no trace.
    """

    __slots__ = ("_asid_pages", "_journal", "_regions", "_shared", "covered_pages")

    def __init__(self, covered_pages: int) -> None:
        if covered_pages <= 0 or covered_pages % ENTRIES_PER_REGION:
            raise ValueError("the RMP covers a whole number of 2 MiB regions")
        self.covered_pages = covered_pages
        self._regions: dict[int, array[int]] = {}
        self._shared: set[int] = set()
        """Regions whose array is a shared fill pattern, copied before their first write."""
        self._asid_pages: dict[int, int] = {}
        self._journal: list[tuple[Any, ...]] | None = None

    # --- raw access ---------------------------------------------------------------------------
    def covers(self, pfn: int) -> bool:
        """Whether system page ``pfn`` has an RMP entry (else its state is DEFAULT)."""
        return 0 <= pfn < self.covered_pages

    def read(self, pfn: int) -> tuple[int, int]:
        """The raw quadwords of ``pfn``'s entry."""
        region = self._regions.get(pfn >> 9)
        if region is None:
            return 0, 0
        i = (pfn & 511) << 1
        return region[i], region[i + 1]

    def read_q0(self, pfn: int) -> int:
        """The first raw quadword of ``pfn``'s entry (ownership, GPA and state bits)."""
        region = self._regions.get(pfn >> 9)
        return 0 if region is None else region[(pfn & 511) << 1]

    def write(self, pfn: int, q0: int, q1: int) -> None:
        """Store the raw quadwords of ``pfn``'s entry."""
        key = pfn >> 9
        region = self._regions.get(key)
        if region is None:
            if not (q0 or q1):
                return
            region = array("Q", _ZERO_REGION)
            self._regions[key] = region
        elif key in self._shared:
            region = array("Q", region)
            self._regions[key] = region
            self._shared.discard(key)
        i = (pfn & 511) << 1
        old = region[i]
        if self._journal is not None:
            self._journal.append((pfn, old, region[i + 1]))
        if (old ^ q0) & _OWNER_BITS:
            # The CPU counts each ASID's assigned entries in the RMP's bookkeeping area.
            if old & 1:
                a = (old >> 51) & 0x3FF
                self._asid_pages[a] -= 1
            if q0 & 1:
                a = (q0 >> 51) & 0x3FF
                self._asid_pages[a] = self._asid_pages.get(a, 0) + 1
        region[i] = q0
        region[i + 1] = q1

    def write_counted(self, pfn: int, old_q0: int, q0: int, q1: int) -> None:
        """:meth:`write` for an instruction that replaces one entry whose first quadword was
        ``old_q0``: when a 4 KiB entry's Assigned bit changes, its 2 MiB region's entry
        counts it (the sub-page count RMPUPDATE's overlap check reads)."""
        self.write(pfn, q0, q1)
        if pfn & 511 and (old_q0 ^ q0) & 1:
            region = self._regions[pfn >> 9]  # write() made it (the entry is not zero)
            if self._journal is not None:
                self._journal.append((pfn & ~511, region[0], region[1]))
            region[0] += 1 << _COUNT_SHIFT if q0 & 1 else -(1 << _COUNT_SHIFT)

    def asid_pages(self, asid: int) -> int:
        """How many entries are assigned to ``asid`` (the per-ASID count the CPU keeps)."""
        return self._asid_pages.get(asid, 0)

    def clear(self) -> None:
        """Zero every entry (every page HYPERVISOR), as RMP initialisation does for DRAM."""
        self._save_whole()
        self._regions.clear()
        self._shared.clear()
        self._asid_pages.clear()

    def fill(self, first_pfn: int, count: int, q0: int, q1: int) -> None:
        """Set ``count`` entries from ``first_pfn`` to the same raw value.

        Whole 2 MiB regions share one pattern array until written, so filling gigabytes of
        firmware-owned pages (the RMP's own) costs almost nothing.

        The 2 MiB sub-page counts stay right (RMPUPDATE's overlap check relies on them): a
        whole region's 2 MiB-aligned entry counts the other 511 when ``q0`` is assigned, and
        a partly filled region's count follows each of its entries that changes Assigned.
        """
        if q0 & 1 and (q0 >> 51) & 0x3FF:
            raise ValueError("fill() is for hypervisor and firmware entries (ASID 0)")
        q0 &= ~_COUNT_BITS
        pfn, end = first_pfn, first_pfn + count
        pattern: array[int] | None = None
        if -(-first_pfn // ENTRIES_PER_REGION) * ENTRIES_PER_REGION + ENTRIES_PER_REGION <= end:
            self._save_whole()  # whole regions will be replaced
        while pfn < end:
            if pfn & 511 == 0 and end - pfn >= ENTRIES_PER_REGION:
                if pattern is None:
                    pattern = array("Q", [q0, q1] * ENTRIES_PER_REGION)
                    if q0 & 1:
                        pattern[0] = q0 | (ENTRIES_PER_REGION - 1) << _COUNT_SHIFT
                key = pfn >> 9
                old = self._regions.get(key)
                if old is not None:
                    self._uncount(old)
                self._regions[key] = pattern
                self._shared.add(key)
                if q0 & 1:
                    self._asid_pages[0] = self._asid_pages.get(0, 0) + ENTRIES_PER_REGION
                pfn += ENTRIES_PER_REGION
            else:
                stop = min(end, (pfn | 511) + 1)
                self._fill_part(pfn, stop, q0, q1)
                pfn = stop

    def _fill_part(self, first: int, stop: int, q0: int, q1: int) -> None:
        """:meth:`fill` of the entries ``first`` to ``stop - 1`` of one 2 MiB region, at
        once: the region's array is replaced by an updated copy (an enclosing transaction's
        snapshot keeps the old one), its sub-page count and the per-ASID counts follow."""
        key = first >> 9
        old = self._regions.get(key)
        if old is None and not (q0 or q1):
            return  # all-zero entries set to zero
        self._save_whole()
        region = array("Q", _ZERO_REGION if old is None else old)
        lo, hi = first & 511, ((stop - 1) & 511) + 1
        counts = self._asid_pages
        olds = region[2 * lo : 2 * hi : 2]
        for v in olds:
            if (v ^ q0) & _OWNER_BITS:
                if v & 1:
                    counts[(v >> 51) & 0x3FF] -= 1
                if q0 & 1:
                    counts[0] = counts.get(0, 0) + 1
        # The 2 MiB-aligned entry counts the assigned entries among the other 511.
        others = olds[1:] if lo == 0 else olds
        delta = (len(others) if q0 & 1 else 0) - sum(v & 1 for v in others)
        count = (region[0] & _COUNT_BITS) >> _COUNT_SHIFT
        region[2 * lo : 2 * hi : 2] = array("Q", [q0]) * (hi - lo)
        region[2 * lo + 1 : 2 * hi : 2] = array("Q", [q1]) * (hi - lo)
        region[0] = (region[0] & ~_COUNT_BITS) | (count + delta) << _COUNT_SHIFT
        self._regions[key] = region
        self._shared.discard(key)

    def _save_whole(self) -> None:
        # Inside a transaction, record the table's dictionaries before a wholesale change.
        # Later per-entry writes are journaled too and are undone first, so a shallow copy
        # is enough to put everything back.
        if self._journal is not None:
            snap = (-1, dict(self._regions), set(self._shared), dict(self._asid_pages))
            self._journal.append(snap)

    def _uncount(self, region: array[int]) -> None:
        for i in range(0, 2 * ENTRIES_PER_REGION, 2):
            if region[i] & 1:
                self._asid_pages[(region[i] >> 51) & 0x3FF] -= 1

    # --- decoded access -----------------------------------------------------------------------
    def entry(self, pfn: int) -> RmpEntry:
        """The decoded entry of ``pfn`` (exactly that entry, not the 2 MiB page covering it)."""
        return RmpEntry.from_raw(*self.read(pfn))

    def set_entry(self, pfn: int, entry: RmpEntry) -> None:
        """Store a decoded entry (used by the firmware model and tests, not by the CPU)."""
        self.write(pfn, *entry.to_raw())

    def state(self, pfn: int) -> PageState:
        """The firmware's page state of ``pfn``'s own entry (DEFAULT outside the RMP)."""
        if not self.covers(pfn):
            return PageState.DEFAULT
        return classify(self.read_q0(pfn))

    def any_assigned(self, first_pfn: int, count: int) -> bool:
        """Whether any entry of pages ``first_pfn .. first_pfn + count - 1``, or the 2 MiB
        entry of a region they lie in, is assigned: a quick test before a host write (False:
        no page of the range can fault; True: look page by page)."""
        pfn, end = first_pfn, first_pfn + count
        while pfn < end:
            stop = min(end, (pfn | 511) + 1)
            region = self._regions.get(pfn >> 9)
            if region is not None and (
                region[0] & 1
                or any(v & 1 for v in region[2 * (pfn & 511) : 2 * (stop - (pfn & ~511)) : 2])
            ):
                return True
            pfn = stop
        return False

    def effective_pfn(self, pfn: int) -> int:
        """The entry that governs ``pfn``: its 2 MiB-aligned entry when that is an assigned
        2 MiB page, else its own."""
        base = pfn & ~511
        q0 = self.read_q0(base)
        return base if (q0 & 3) == 3 else pfn

    def touched(self) -> Iterator[int]:
        """The PFNs of every non-zero entry, in order (for dumps and comparisons)."""
        for key in sorted(self._regions):
            region = self._regions[key]
            for i in range(ENTRIES_PER_REGION):
                if region[2 * i] or region[2 * i + 1]:
                    yield (key << 9) | i

    def snapshot(self) -> dict[int, tuple[int, int]]:
        """Every non-zero entry as ``{pfn: (q0, q1)}``: compare two to see what changed."""
        return {pfn: self.read(pfn) for pfn in self.touched()}

    # --- transactions -------------------------------------------------------------------------
    def transaction(self) -> Transaction:
        """Undo every entry written in the block if it raises; nest freely
        (``with rmp.transaction():``)."""
        return Transaction(self)

    # The transaction's three steps, for a caller that cannot use ``with``: ``outer =
    # begin()``, then ``commit(outer)`` or ``rollback(outer)``.
    def begin(self) -> list[tuple[Any, ...]] | None:
        """Start recording writes; returns the enclosing transaction's record."""
        outer = self._journal
        self._journal = []
        return outer

    def commit(self, outer: list[tuple[Any, ...]] | None) -> None:
        """Keep the writes since :meth:`begin` (the enclosing transaction may still undo)."""
        journal = self._journal
        if outer is not None and journal:
            outer.extend(journal)
        self._journal = outer

    def rollback(self, outer: list[tuple[Any, ...]] | None) -> None:
        """Undo the writes since :meth:`begin`."""
        journal = self._journal
        if journal is not None:
            self._undo(journal)
        self._journal = outer

    def _undo(self, journal: list[tuple[Any, ...]]) -> None:
        self._journal = None
        for record in reversed(journal):
            if record[0] == -1:
                _, regions, shared, counts = record
                self._regions, self._shared, self._asid_pages = regions, shared, counts
            else:
                self.write(*record)


class Transaction:
    """``with`` over anything journalled by ``begin``/``commit``/``rollback`` (the RMP table
    here, host memory in ``sp_emu.memory``): undo the block's writes if it raises.  A class,
    not a ``contextlib`` generator: the firmware opens one per command, and ``contextlib``
    costs start-up time."""

    __slots__ = ("_outer", "_target")

    def __init__(self, target: Journalled) -> None:
        self._target = target
        self._outer: Any = None

    def __enter__(self) -> None:
        self._outer = self._target.begin()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self._target.rollback(self._outer)
        else:
            self._target.commit(self._outer)
