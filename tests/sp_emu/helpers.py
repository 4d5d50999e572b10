"""Shared builders for the firmware command tests: small platforms, fixed page addresses,
the usual host set-up steps, a before/after state probe and the table-driven row runner.

Expected statuses in the row tables are typed by hand from
``shared/reference/firmware-commands.md``; nothing here derives them from the emulator.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from rmp import PageState, RmpResult
from rmp import layout as RL
from sp_emu.abi.buffers import BUFFERS
from sp_emu.abi.commands import CommandId as C
from sp_emu.abi.status import SnpStatus as S
from sp_emu.firmware import CommandResult
from sp_emu.platform import Platform
from sp_emu.state import PlatformState

MEM = 64 << 20
"""Every test platform: 64 MiB (DRAM 1-32 MiB; RMP and IOMMU pages near the top)."""

# --- fixed page addresses (all ordinary DRAM) ----------------------------------------------------
GCTX = 0x101000
GCTX2 = 0x102000
GCTX3 = 0x103000
FW_PAGE = 0x110000
"""A page the tests make FIRMWARE to receive status structures."""
FW_PAGE2 = 0x111000
HV_PAGE = 0x120000
"""A page that stays HYPERVISOR (host memory)."""
LIST_PAGE = 0x121000
"""Where a RANGE_LIST or APIC ID list is written by the host."""
IMAGE = 0x123000
"""Where a firmware image is written for SNP_DOWNLOAD_FIRMWARE_EX."""
SRC_PAGE = 0x124000
GUEST_PAGE = 0x130000
GUEST_PAGE2 = 0x131000
REGION = 0x400000
"""A 2 MiB-aligned region for 2 MiB pages and UNSMASH runs."""
REGION2 = 0x600000
BEYOND = MEM
"""The first address past system memory."""

POLICY = 0x30000
"""SMT | RSVD_MBO, ABI 0.0 (QEMU's default)."""
POLICY_DEBUG = 0x80000 | 0x30000
ASID = 1
ASID2 = 2

GENOA_TCB = (7 << 0) | (0 << 8) | (15 << 48) | (62 << 56)
"""Genoa's shipped TCB_VERSION (bootloader 7, TEE 0, SNP 15, microcode 62), packed by hand."""


# --- platforms -----------------------------------------------------------------------------------
def platform(**kw: Any) -> Platform:
    """A fresh 64 MiB platform, SNP UNINIT, RMP never initialised."""
    return Platform(memory=MEM, **kw)


def ok(result: CommandResult) -> CommandResult:
    assert result.status == S.SUCCESS, f"{result.status!r}: {result.detail}"
    return result


def initialised(**kw: Any) -> Platform:
    """SNP_INIT done (every ASID dirty, WBINVD not yet done)."""
    p = platform(**kw)
    ok(p.run(C.SNP_INIT))
    return p


def flushed(**kw: Any) -> Platform:
    """SNP_INIT, WBINVD and SNP_DF_FLUSH done: every ASID clean."""
    p = initialised(**kw)
    flush(p)
    return p


def flush(p: Platform) -> None:
    p.cpu.wbinvd()
    ok(p.run(C.SNP_DF_FLUSH))


def with_product(p: Platform, **changes: Any) -> Platform:
    """Change a product trait (e.g. ``sockets=2``) of a built platform."""
    p.fw.state.product = dataclasses.replace(p.fw.state.product, **changes)
    return p


def rmpupdate_ok(p: Platform, spa: int, **kw: Any) -> None:
    result = p.cpu.rmpupdate(spa, **kw)
    assert result is RmpResult.SUCCESS, f"RMPUPDATE {spa:#x} {kw}: {result!r}"


def fw_page(p: Platform, spa: int, page_size: int = 0) -> int:
    """HYPERVISOR -> FIRMWARE (assigned, ASID 0, immutable, GPA 0)."""
    rmpupdate_ok(p, spa, assigned=True, immutable=True, page_size=page_size)
    return spa


def pre_guest(p: Platform, spa: int, asid: int, gpa: int, page_size: int = 0) -> int:
    """HYPERVISOR -> PRE_GUEST (assigned to ``asid`` at ``gpa``, immutable)."""
    rmpupdate_ok(p, spa, assigned=True, immutable=True, asid=asid, gpa=gpa, page_size=page_size)
    return spa


def guest_invalid(p: Platform, spa: int, asid: int, gpa: int) -> int:
    """HYPERVISOR -> GUEST_INVALID (assigned, not immutable)."""
    rmpupdate_ok(p, spa, assigned=True, asid=asid, gpa=gpa)
    return spa


def state_of(p: Platform, spa: int) -> PageState:
    return p.rmp.state(spa >> 12)


def created(p: Platform, gctx: int = GCTX) -> Platform:
    """A guest context page made and SNP_GCTX_CREATE done (guest INIT)."""
    fw_page(p, gctx)
    ok(p.run(C.SNP_GCTX_CREATE, gctx_paddr=gctx))
    return p


def launched(p: Platform, gctx: int = GCTX, policy: int = POLICY, **fields: Any) -> Platform:
    """SNP_GCTX_CREATE then SNP_LAUNCH_START (guest LAUNCH)."""
    created(p, gctx)
    ok(p.run(C.SNP_LAUNCH_START, gctx_paddr=gctx, policy=policy, **fields))
    return p


def activated(p: Platform, gctx: int = GCTX, asid: int = ASID, policy: int = POLICY) -> Platform:
    """A launched guest bound (pending) to ``asid``; the platform must be flushed."""
    launched(p, gctx, policy)
    ok(p.run(C.SNP_ACTIVATE, gctx_paddr=gctx, asid=asid))
    return p


def guest_status(p: Platform, gctx: int = GCTX, out: int = FW_PAGE2) -> dict[str, Any]:
    """SNP_GUEST_STATUS into FIRMWARE page ``out`` (made FIRMWARE if it is not)."""
    if state_of(p, out) is not PageState.FIRMWARE:
        fw_page(p, out)
    result = ok(p.run(C.SNP_GUEST_STATUS, gctx_paddr=gctx, status_paddr=out))
    assert result.out is not None
    return dict(result.out)


def platform_status(p: Platform, out: int = FW_PAGE2) -> dict[str, Any]:
    """SNP_PLATFORM_STATUS into ``out`` (made FIRMWARE first when SNP is INIT)."""
    if p.fw.state.state and state_of(p, out) is not PageState.FIRMWARE:
        fw_page(p, out)
    result = ok(p.run(C.SNP_PLATFORM_STATUS, status_paddr=out))
    assert result.out is not None
    return dict(result.out)


def write_range_list(
    p: Platform, ranges: list[tuple[int, int]], at: int = LIST_PAGE, *, count: int | None = None
) -> int:
    """Write a RANGE_LIST (u32 N, u32 MBZ, N x {u64 base, u32 pages, u32 MBZ}) by hand."""
    n = len(ranges) if count is None else count
    data = n.to_bytes(4, "little") + bytes(4)
    for base, pages in ranges:
        data += base.to_bytes(8, "little") + pages.to_bytes(4, "little") + bytes(4)
    p.cpu.host_write(at, data)
    return at


def raw_entry(p: Platform, spa: int) -> tuple[int, int]:
    return p.rmp.read(spa >> 12)


def set_raw_entry(p: Platform, spa: int, q0: int, q1: int) -> None:
    """Write an RMP entry directly (for states no implemented command can reach)."""
    p.rmp.write(spa >> 12, q0, q1)


def tcb(bootloader: int = 7, tee: int = 0, snp: int = 15, microcode: int = 62) -> int:
    """A Milan/Genoa TCB_VERSION packed by hand (bytes 0, 1, 6, 7); defaults are Genoa's."""
    return bootloader | tee << 8 | snp << 48 | microcode << 56


def shutdown(p: Platform) -> None:
    """WBINVD, SNP_DF_FLUSH and SNP_SHUTDOWN."""
    flush(p)
    ok(p.run(C.SNP_SHUTDOWN))


def download(
    p: Platform,
    *,
    api: tuple[int, int, int] = (1, 55, 26),
    tcb_value: int = GENOA_TCB,
    product: str = "Genoa",
    commit: int = 0,
    want: int = S.SUCCESS,
) -> CommandResult:
    """Write an emulated firmware image at IMAGE and SNP_DOWNLOAD_FIRMWARE_EX it."""
    from sp_emu.fwimage import FirmwareImage

    image = FirmwareImage(product, api[0], api[1], api[2], tcb_value).to_bytes()
    p.cpu.host_write(IMAGE, image)
    result = p.run(
        C.SNP_DOWNLOAD_FIRMWARE_EX,
        length=0x18,
        fw_paddr=IMAGE,
        fw_len=len(image),
        commit=commit,
    )
    assert result.status == want, result
    return result


METADATA_Q0 = RL.ASSIGNED.mask | RL.IMMUTABLE.mask | RL.LOCK.mask | (1 << RL.FW_MARKER.lsb)


# --- state probe ---------------------------------------------------------------------------------
@dataclass
class Snapshot:
    """Everything a command may change: the RMP, memory, firmware records, key slots."""

    rmp: dict[int, tuple[int, int]]
    memory: dict[int, tuple[bytes, str | None]]
    state: PlatformState
    keys: dict[int, bytes]


def capture(p: Platform) -> Snapshot:
    return Snapshot(
        p.rmp.snapshot(),
        p.memory.fingerprint(),
        copy.deepcopy(p.fw.state),
        {asid: k.key for asid, k in p.fw.asid_keys.items()},
    )


def assert_unchanged(p: Platform, before: Snapshot, what: str = "") -> None:
    after = capture(p)
    if after.rmp != before.rmp:
        changed = sorted(
            pfn
            for pfn in set(after.rmp) | set(before.rmp)
            if after.rmp.get(pfn) != before.rmp.get(pfn)
        )
        raise AssertionError(f"{what}: RMP entries changed at pfns {changed[:8]}")
    if after.memory != before.memory:
        changed = sorted(
            pfn
            for pfn in set(after.memory) | set(before.memory)
            if after.memory.get(pfn) != before.memory.get(pfn)
        )
        raise AssertionError(f"{what}: memory changed at pfns {changed[:8]}")
    if after.state != before.state:
        diff = [
            f.name
            for f in dataclasses.fields(PlatformState)
            if getattr(after.state, f.name) != getattr(before.state, f.name)
        ]
        raise AssertionError(f"{what}: firmware state changed in {diff}")
    assert after.keys == before.keys, f"{what}: key slots changed"


# --- table-driven rows ---------------------------------------------------------------------------
Fields = Mapping[str, Any] | Callable[[Platform], Mapping[str, Any]]
Check = Callable[[Platform, CommandResult], None]
Step = Callable[[Platform], object]


@dataclass(frozen=True)
class Row:
    """One case: build a platform, send one command, expect a status and (on success) an
    effect.  A failing row must leave the platform exactly as it was.

    ``patch`` ORs bytes into the built buffer (offset -> value), for reserved bits and
    misaligned bit-field addresses the typed path cannot express; such rows run only on the
    byte path.  ``command`` may be any integer (unknown ids).
    """

    name: str
    setup: Callable[[], Platform]
    command: int
    fields: Fields = field(default_factory=dict)
    want: int = S.SUCCESS
    check: Check | None = None
    patch: Mapping[int, int] = field(default_factory=dict)
    same: bool = False
    """A success that must change nothing either (e.g. SHUTDOWN when already UNINIT)."""

    def __str__(self) -> str:
        return self.name


def row_params(rows: list[Row]) -> list[Any]:
    """``pytest.param`` (row, path) for every row and path, ids ``name[bytes|typed]``."""
    names = [row_id(r) for r in rows]
    dupes = {n for n in names if names.count(n) > 1}
    assert not dupes, f"duplicate row names {dupes}"
    params = []
    for r in rows:
        paths = ("bytes",) if r.patch or r.command not in BUFFERS else ("bytes", "typed")
        for path in paths:
            params.append(pytest.param(r, path, id=f"{row_id(r)}[{path}]"))
    return params


def row_id(row: Row) -> str:
    try:
        cmd = C(row.command).name
    except ValueError:
        cmd = f"{row.command:#x}"
    return f"{cmd}: {row.name}"


def build_buffer(p: Platform, row: Row) -> bytes:
    fields = row.fields(p) if callable(row.fields) else row.fields
    known = row.command in BUFFERS
    raw = bytearray(BUFFERS[C(row.command)].build(fields) if known else b"")
    for offset, value in row.patch.items():
        raw[offset] |= value
    return bytes(raw)


def run_row(row: Row, path: str) -> tuple[Platform, CommandResult]:
    """Run one row on one path and make the common assertions."""
    p = row.setup()
    before = capture(p)
    if path == "bytes":
        result = p.execute(row.command, build_buffer(p, row))
    else:
        fields = row.fields(p) if callable(row.fields) else row.fields
        result = p.run(C(row.command), **fields)
    assert result.status == row.want, (
        f"{row.name}: got {S(result.status).name}, want {S(row.want).name} ({result.detail})"
    )
    if row.want != S.SUCCESS:
        assert result.out is None
    if row.want != S.SUCCESS or row.same:
        assert_unchanged(p, before, row.name)
    if row.check is not None:
        row.check(p, result)
    return p, result


def setup(
    *steps: Callable[[Platform], object], base: Callable[[], Platform] = flushed
) -> Callable[[], Platform]:
    """A setup function: ``base()`` then each step applied to the platform in turn."""

    def build() -> Platform:
        p = base()
        for step in steps:
            step(p)
        return p

    return build
