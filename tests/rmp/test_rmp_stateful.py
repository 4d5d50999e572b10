"""``rmp`` against the reference model under random sequences of RMP operations.

A Hypothesis state machine applies the same random RMPUPDATE / PSMASH / RMPREAD / PVALIDATE /
RMPADJUST (and host and guest accesses) to an :class:`rmp.RmpTable`, through
``rmp.instructions`` and ``rmp.access``, and to :class:`ReferenceRmp`.  After every step the two
must have returned the same code or raised the same fault, and every entry either model wrote
must decode to the same fields and page state, with the CPU's 2 MiB sub-page count equal to the
number the reference counts, and the per-ASID counts of assigned entries must agree.  At the
end of each run every entry is compared.

Besides single random operations, some rules play the sequences that reach the interesting
states (a host assigning a page and the guest validating it, a 2 MiB private page, a VMSA,
VMPL0 delegating to VMPL1, the host rewriting a page for swap-out) and the firmware's bulk
``fill()``.  One rule runs operations inside ``table.transaction()`` and aborts it: the
table's ``snapshot()`` and ASID counts must come back exactly as they were.

Run with ``--hypothesis-show-statistics`` to see how often each outcome was reached.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from hypothesis import HealthCheck, event, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from rmp.entry import RmpEntry
from rmp.table import RmpTable
from sp_emu.testing.rmp_reference import RefEntry, ReferenceRmp, comparable
from sp_emu.testing.strategies import (
    Owned,
    Psmash,
    Pvalidate,
    RmpAdjust,
    RmpOp,
    RmpSpace,
    RmpUpdate,
    guest_access_ops,
    host_write_ops,
    psmash_ops,
    pvalidate_ops,
    rmpadjust_ops,
    rmpread_ops,
    rmpupdate_ops,
    run_on_reference,
    run_on_table,
)

SPACE = RmpSpace(regions=3)
ASIDS = (0, 1, 2)  # every ASID an entry in SPACE can carry (ASID 1 also when unassigned)

Fill = tuple[int, int, RmpEntry]
FILLS: st.SearchStrategy[Fill] = st.tuples(
    # A run of entries, often whole 2 MiB regions (which the table stores as one shared
    # pattern until written), set to HYPERVISOR, HV_FIXED, FIRMWARE or RECLAIM.
    st.sampled_from((0, 1, 510, 512, 1024)),
    st.sampled_from((1, 3, 512, 1024)),
    st.sampled_from(
        (
            RmpEntry(),
            RmpEntry(immutable=True),
            RmpEntry(assigned=True, immutable=True, perms=(0x1F, 0, 0, 0)),
            RmpEntry(assigned=True, perms=(0x1F, 0, 0, 0)),
        )
    ),
).filter(lambda f: f[0] + f[1] <= SPACE.covered_pages)


class RecordingTable(RmpTable):
    """An :class:`RmpTable` that remembers which entries were written."""

    def __init__(self, covered_pages: int) -> None:
        super().__init__(covered_pages)
        self.written: set[int] = set()

    def write(self, pfn: int, q0: int, q1: int) -> None:
        self.written.add(pfn)
        super().write(pfn, q0, q1)


class RecordingDict(dict[int, RefEntry]):
    """The reference model's entry dict, remembering every PFN it handed out for writing."""

    def __init__(self) -> None:
        super().__init__()
        self.touched: set[int] = set()

    def __setitem__(self, pfn: int, entry: RefEntry) -> None:
        self.touched.add(pfn)
        super().__setitem__(pfn, entry)

    def __getitem__(self, pfn: int) -> RefEntry:
        self.touched.add(pfn)  # ReferenceRmp mutates entries it fetches this way
        return super().__getitem__(pfn)


class _Abort(Exception):
    """Raised inside a transaction to roll it back."""


class RmpComparison(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.table = RecordingTable(SPACE.covered_pages)
        self.model = ReferenceRmp(SPACE.covered_pages)
        self.entries = RecordingDict()
        self.model.entries = self.entries

    # .. helpers ..
    def owned(self, *, validated: bool = False) -> list[Owned]:
        """Guest pages the reference says exist (only validated ones if ``validated``), as
        (spa, gpa, asid) at the space's offsets."""
        out: list[Owned] = []
        for pfn, e in sorted(self.entries.items()):
            if not e.assigned or e.asid == 0 or (validated and not e.validated):
                continue
            offsets = SPACE.offsets if e.page_size else (0,)
            out.extend(((pfn + off) * 0x1000, e.gpa + off * 0x1000, e.asid) for off in offsets)
        return out

    def apply(self, op: RmpOp) -> None:
        got = run_on_table(self.table, op)
        want = run_on_reference(self.model, op)
        note(f"{op!r} -> {got!r}")
        event(f"{type(op).__name__} -> {got[1] if got[0] != 'ok' else 'ok'}")
        assert got == want, f"{op!r}: rmp gave {got!r}, the reference {want!r}"

    def compare(self, pfns: set[int]) -> None:
        for pfn in sorted(pfns):
            if not self.table.covers(pfn):
                continue
            if pfn not in self.entries and self.table.read(pfn) == (0, 0):
                continue  # never written by either: HYPERVISOR in both
            got, want = self.table.entry(pfn), self.model.get(pfn)
            assert comparable(got) == comparable(want), f"entry {pfn:#x}: {got} vs {want}"
            if pfn % 512 == 0:
                assert got.subpage_count == self.model.subpage_count(pfn), f"count at {pfn:#x}"
            else:
                assert got.subpage_count == 0, f"count bits set at {pfn:#x}"

    # .. rules ..
    @rule(op=rmpupdate_ops(SPACE))
    def rmpupdate(self, op: RmpOp) -> None:
        self.apply(op)

    @rule(op=rmpupdate_ops(SPACE, well_formed=True))
    def convert_page(self, op: RmpOp) -> None:
        self.apply(op)

    @initialize(ops=st.lists(rmpupdate_ops(SPACE, well_formed=True), max_size=4))
    def private_pages(self, ops: list[RmpUpdate]) -> None:
        """Start with a few validated guest pages, so guest rules find pages to work on."""
        for op in ops:
            self.private_page(op)

    @rule(op=rmpupdate_ops(SPACE, well_formed=True))
    def private_page(self, op: RmpUpdate) -> None:
        """The usual pair: the host assigns a page, the guest validates it at VMPL0."""
        assign = replace(op, assigned=True, immutable=False, asid=op.asid or 1)
        self.apply(assign)
        self.apply(Pvalidate(op.spa, op.gpa, assign.asid, page_size=op.page_size))

    @rule(region=st.integers(0, SPACE.regions - 1), asid=st.sampled_from(SPACE.guest_asids))
    def huge_page(self, region: int, asid: int) -> None:
        """The host gives back the region's 4 KiB pages, then makes it one 2 MiB private page
        which the guest validates (KVM backing a guest with a huge page)."""
        base = region * 512
        for pfn in range(base + 1, base + 512):
            if self.model.get(pfn).assigned:
                self.apply(RmpUpdate(pfn * 0x1000))
        gpa = SPACE.gpa_regions[region % len(SPACE.gpa_regions)]
        self.apply(RmpUpdate(base * 0x1000, gpa, True, 1, False, asid))
        self.apply(Pvalidate(base * 0x1000, gpa, asid, page_size=1))

    @rule(data=st.data())
    def psmash(self, data: st.DataObject) -> None:
        heads = [pfn for pfn, e in sorted(self.entries.items()) if e.assigned and e.page_size]
        if heads and data.draw(st.booleans(), label="existing 2M page"):
            op: RmpOp = Psmash(data.draw(st.sampled_from(heads), label="pfn") * 0x1000)
        else:
            op = data.draw(psmash_ops(SPACE), label="op")
        self.apply(op)

    @rule(data=st.data())
    def reupdate(self, data: st.DataObject) -> None:
        """The host rewrites a guest page's entry with the same owner fields (e.g. making it
        immutable for swap-out) or with another ASID."""
        pages = [(pfn, e) for pfn, e in sorted(self.entries.items()) if e.assigned and e.asid]
        if not pages:
            return
        # Mostly a page with something to keep: VMSA, else Validated or granted permissions.
        vmsa = [(pfn, e) for pfn, e in pages if e.vmsa]
        rich = [(pfn, e) for pfn, e in pages if e.validated or any(e.perms[1:])]
        for better in (vmsa, rich):
            if better and data.draw(st.integers(0, 3), label="prefer") != 0:
                pages = better
                break
        pfn, e = data.draw(st.sampled_from(pages), label="page")
        asid = data.draw(st.sampled_from((e.asid,) * 3 + SPACE.guest_asids), label="asid")
        immutable = data.draw(st.booleans(), label="immutable")
        self.apply(RmpUpdate(pfn * 0x1000, e.gpa, True, e.page_size, immutable, asid))

    @rule(op=rmpread_ops(SPACE))
    def rmpread(self, op: RmpOp) -> None:
        self.apply(op)

    @rule(data=st.data())
    def pvalidate(self, data: st.DataObject) -> None:
        self.apply(data.draw(pvalidate_ops(SPACE, self.owned()), label="op"))

    @rule(data=st.data())
    def rmpadjust(self, data: st.DataObject) -> None:
        self.apply(data.draw(rmpadjust_ops(SPACE, self.owned(validated=True)), label="op"))

    @rule(data=st.data())
    def make_vmsa(self, data: st.DataObject) -> None:
        """The guest turns a validated page into a VMSA from VMPL0, the Linux idiom of §5.2:
        RMPADJUST(4K, target VMPL1, no permissions, VMSA)."""
        owned = self.owned(validated=True)
        if owned:
            spa, gpa, asid = data.draw(st.sampled_from(owned), label="page")
            self.apply(RmpAdjust(spa, gpa, asid, target_vmpl=1, vmsa=True))

    @rule(data=st.data())
    def delegate(self, data: st.DataObject) -> None:
        """VMPL0 grants VMPL1 some permissions on a validated page, and VMPL1 passes some on
        to VMPL2 or VMPL3 (an SVSM and its guest), each asking for the VMSA bit or not."""
        owned = self.owned(validated=True)
        if not owned:
            return
        spa, gpa, asid = data.draw(st.sampled_from(owned), label="page")
        mask = data.draw(st.sampled_from((0x01, 0x03, 0x0F, 0x1F)), label="VMPL1 mask")
        vmsa = st.booleans()
        self.apply(RmpAdjust(spa, gpa, asid, 0, 0, 1, mask, data.draw(vmsa, label="vmsa")))
        target = data.draw(st.sampled_from((2, 3)), label="target")
        sub = data.draw(st.sampled_from((0, 0x01, mask, 0x1F)), label="mask")
        self.apply(RmpAdjust(spa, gpa, asid, 1, 0, target, sub, data.draw(vmsa, label="vmsa")))

    @rule(data=st.data())
    def access(self, data: st.DataObject) -> None:
        ops = st.one_of(guest_access_ops(SPACE, self.owned()), host_write_ops(SPACE))
        self.apply(data.draw(ops, label="op"))

    @rule(fill=FILLS)
    def firmware_fill(self, fill: Fill) -> None:
        """The firmware sets a run of entries to one hypervisor or firmware value (as at RMP
        initialisation); the reference gets the same entries one by one."""
        first, count, entry = fill
        self.table.fill(first, count, *entry.to_raw())
        for pfn in range(first, first + count):
            self.entries[pfn] = RefEntry.from_fields(entry)

    @rule(data=st.data(), nested=st.booleans())
    def aborted_transaction(self, data: st.DataObject, nested: bool) -> None:
        """Anything done inside an aborted transaction leaves no trace: ``snapshot()`` and the
        per-ASID counts come back exactly as they were."""
        owned = self.owned()
        changes = st.one_of(
            rmpupdate_ops(SPACE),
            rmpupdate_ops(SPACE, well_formed=True),
            psmash_ops(SPACE),
            pvalidate_ops(SPACE, owned),
            rmpadjust_ops(SPACE, owned),
            FILLS,
            st.just("clear"),
        )
        steps = data.draw(st.lists(changes, min_size=1, max_size=4), label="steps")
        before = self.table.snapshot()
        counts = {a: self.table.asid_pages(a) for a in ASIDS}

        def run() -> None:
            for step in steps:
                if step == "clear":
                    self.table.clear()
                elif isinstance(step, tuple):
                    first, count, entry = step
                    self.table.fill(first, count, *entry.to_raw())
                else:
                    run_on_table(self.table, step)

        try:
            with self.table.transaction():
                if nested:
                    # An inner transaction that completes, inside the one that aborts.
                    with self.table.transaction():
                        run()
                else:
                    run()
                raise _Abort
        except _Abort:
            pass
        assert self.table.snapshot() == before
        assert {a: self.table.asid_pages(a) for a in ASIDS} == counts

    # .. invariants ..
    @invariant()
    def written_entries_agree(self) -> None:
        dirty = self.table.written | self.entries.touched
        dirty |= {pfn & ~511 for pfn in dirty}  # the sub-page counts of their regions
        self.compare(dirty)
        self.table.written.clear()
        self.entries.touched.clear()

    @invariant()
    def asid_counts_agree(self) -> None:
        # The per-ASID count of assigned entries the CPU keeps in the RMP's bookkeeping area.
        want = Counter(e.asid for e in self.entries.values() if e.assigned)
        for asid in ASIDS:
            assert self.table.asid_pages(asid) == want[asid], f"ASID {asid} page count"

    def teardown(self) -> None:
        self.compare(set(range(SPACE.covered_pages)))


# max_examples comes from the profile tests/conftest.py loads (100 in "ci").
RmpComparison.TestCase.settings = settings(
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestRmpComparison = RmpComparison.TestCase
