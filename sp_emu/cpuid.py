"""The CPUID page check of LAUNCH_UPDATE type CPUID (launch-measurement.md §4).

The firmware checks each entry of the host-supplied table against the processor's CPUID
policy; if any entry breaks it, the firmware corrects the offending registers, writes the
corrected page back to the host in plaintext, and fails with INVALID_PARAM.

AMD's per-leaf policy tables (PPR "CPUID policy enforcement") are not public, so the emulator
enforces the documented rules below and nothing it cannot source.  It may therefore accept a
table real firmware refuses, never the reverse:

=================  ========  ===========================================================
leaf (EAX_IN)      register  rule
=================  ========  ===========================================================
0x0000_0000        EAX       at most ``max_standard_leaf`` (0x10)
0x0000_0000        EBX-EDX   exactly "AuthenticAMD"
0x8000_0000        EAX       at most ``max_extended_leaf`` (0x8000_0028)
0x8000_0000        EBX-EDX   exactly "AuthenticAMD"
0x8000_001F        EBX 5:0   exactly 51, the C-bit position
every entry        0x28      the reserved quadword is zero
=================  ========  ===========================================================

The header's reserved words must be zero and COUNT at most 64, else INVALID_PARAM with
nothing written back.
"""

from __future__ import annotations

from binlayout.records import record
from sp_emu.abi.launch import CPUID_ENTRY, CPUID_MAX_ENTRIES, CPUID_PAGE_HEADER
from sp_emu.products import C_BIT_POSITION

VENDOR = {"ebx": 0x68747541, "edx": 0x69746E65, "ecx": 0x444D4163}  # "Auth" "enti" "cAMD"
MAX_STANDARD_LEAF = 0x10
MAX_EXTENDED_LEAF = 0x8000_0028


@record
class CpuidCheck:
    """The outcome: ``problems`` lists each broken rule; ``corrected`` is the page with the
    offending fields replaced by permitted values."""

    problems: tuple[str, ...]
    corrected: bytes
    header_ok: bool

    @property
    def ok(self) -> bool:
        return self.header_ok and not self.problems


def _fix_entry(entry: dict[str, int], index: int, problems: list[str]) -> dict[str, int]:
    fixed = dict(entry)
    leaf = entry["eax_in"]

    def want(reg: str, value: int, why: str) -> None:
        if fixed[reg] != value:
            problems.append(f"entry {index} leaf {leaf:#x} {reg.upper()}: {why}")
            fixed[reg] = value

    if leaf in (0x0, 0x8000_0000):
        limit = MAX_STANDARD_LEAF if leaf == 0 else MAX_EXTENDED_LEAF
        if fixed["eax"] > limit:
            want("eax", limit, f"above the highest leaf {limit:#x}")
        for reg, value in VENDOR.items():
            want(reg, value, "vendor must be AuthenticAMD")
    elif leaf == 0x8000_001F and fixed["ebx"] & 0x3F != C_BIT_POSITION:
        want("ebx", (fixed["ebx"] & ~0x3F) | C_BIT_POSITION, "C-bit position must be 51")
    return fixed


def check_cpuid_page(page: bytes) -> CpuidCheck:
    """Check a 4 KiB CPUID page; see the module docstring for the rules."""
    header = page[: CPUID_PAGE_HEADER.size]
    count = CPUID_PAGE_HEADER.parse(header)["count"]
    if CPUID_PAGE_HEADER.first_reserved_violation(header) is not None:
        return CpuidCheck(("header reserved words are not zero",), page, False)
    if count > CPUID_MAX_ENTRIES:
        return CpuidCheck((f"COUNT {count} is above {CPUID_MAX_ENTRIES}",), page, False)
    problems: list[str] = []
    out = bytearray(page)
    for i in range(count):
        off = CPUID_PAGE_HEADER.size + i * CPUID_ENTRY.size
        raw = page[off : off + CPUID_ENTRY.size]
        entry = CPUID_ENTRY.parse(raw)
        if CPUID_ENTRY.first_reserved_violation(raw) is not None:
            problems.append(f"entry {i} reserved quadword is not zero")
        fixed = _fix_entry(entry, i, problems)
        out[off : off + CPUID_ENTRY.size] = CPUID_ENTRY.build(fixed)
    return CpuidCheck(tuple(problems), bytes(out), True)


def build_cpuid_page(entries: list[dict[str, int]]) -> bytes:
    """A CPUID page holding ``entries`` (dicts of CPUID_ENTRY fields), zero padded."""
    if len(entries) > CPUID_MAX_ENTRIES:
        raise ValueError(f"a CPUID page holds at most {CPUID_MAX_ENTRIES} entries")
    body = CPUID_PAGE_HEADER.build({"count": len(entries)})
    body += b"".join(CPUID_ENTRY.build(e) for e in entries)
    return body + bytes(0x1000 - len(body))
