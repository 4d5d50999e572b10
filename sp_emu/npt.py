"""Nested page tables: the hypervisor's GPA -> SPA mapping for each guest ASID."""

from __future__ import annotations

from binlayout.records import record


@record
class Translation:
    """Where a guest address lands: the system address and the nested mapping's size."""

    spa: int
    page_size: int  # 0 = 4 KiB mapping, 1 = 2 MiB mapping


class NestedPageTables:
    """Per-ASID GPA -> SPA mappings of 4 KiB and 2 MiB pages."""

    __slots__ = ("_2m", "_4k")

    def __init__(self) -> None:
        self._4k: dict[int, dict[int, int]] = {}
        self._2m: dict[int, dict[int, int]] = {}

    def map(self, asid: int, gpa: int, spa: int, page_size: int = 0, count: int = 1) -> None:
        """Map ``count`` consecutive pages of ``page_size`` at ``gpa`` onto ``spa``."""
        step = 0x200000 if page_size else 0x1000
        if gpa % step or spa % step:
            raise ValueError(f"npt mapping must be {step:#x}-aligned")
        table = (self._2m if page_size else self._4k).setdefault(asid, {})
        for i in range(count):
            table[(gpa + i * step) // step] = (spa + i * step) // step

    def translate(self, asid: int, gpa: int) -> Translation | None:
        """The system address of ``gpa`` for the guest ``asid``, or None (a #NPF)."""
        pfn = self._4k.get(asid, {}).get(gpa >> 12)
        if pfn is not None:
            return Translation((pfn << 12) | (gpa & 0xFFF), 0)
        base = self._2m.get(asid, {}).get(gpa >> 21)
        if base is not None:
            return Translation((base << 21) | (gpa & 0x1FFFFF), 1)
        return None

    def mappings(self, asid: int) -> int:
        return len(self._4k.get(asid, {})) + len(self._2m.get(asid, {}))
