"""Foundation speed and scale figures (issue: Foundation), each against a baseline measured
in the same run.  Run: ``python3 benchmarks/bench_foundation.py``.  Figures, not assertions.

* 1 TiB platform: build + SNP_INIT time, and traced memory, vs building an empty dict of the
  RMP's regions (the least any sparse table must do).
* RMP entry cost: tracemalloc bytes per assigned 4 KiB entry over 1M RMPUPDATEs.
* RMPUPDATE rate vs a bare Python loop that packs the same 16-byte state with struct.
* SNP_GUEST_STATUS rate through the byte-level entry point vs struct-unpacking the same
  buffer in a loop.
"""

from __future__ import annotations

import gc
import struct
import time
import tracemalloc
from collections.abc import Callable

from rmp import RmpTable, rmpupdate
from sp_emu import CommandId, Platform, PlatformConfig


def rate(fn: Callable[[], None], n: int) -> float:
    gc.collect()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - start)


def bench_platform_start() -> None:
    gc.collect()
    tracemalloc.start()
    t0 = time.perf_counter()
    p = Platform(PlatformConfig(memory=1 << 40))
    result = p.run(CommandId.SNP_INIT)
    elapsed = time.perf_counter() - t0
    current, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert result.ok
    t1 = time.perf_counter()
    baseline = {i: None for i in range((1 << 40) >> 21)}  # one slot per 2 MiB region
    base_elapsed = time.perf_counter() - t1
    del baseline
    print(
        f"1 TiB platform + SNP_INIT: {elapsed * 1e3:.1f} ms, {current / 2**20:.2f} MiB traced; "
        f"baseline dict of its 524288 regions: {base_elapsed * 1e3:.1f} ms "
        f"(ratio {elapsed / base_elapsed:.2f}x)"
    )


def bench_rmp_entry_cost(n: int = 1 << 20) -> None:
    table = RmpTable(n * 2)
    gc.collect()
    tracemalloc.start()
    for i in range(n):
        rmpupdate(table, i << 12, gpa=i << 12, assigned=True, asid=1)
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    raw = 16  # the hardware's own entry size
    print(
        f"assigned RMP entry: {current / n:.1f} bytes each over {n} entries "
        f"(target <= 64; hardware {raw}: ratio {current / n / raw:.2f}x)"
    )


def bench_rmpupdate(n: int = 300_000) -> None:
    table = RmpTable(1 << 20)
    state = struct.Struct("<QII")
    i = 0

    def one() -> None:
        nonlocal i
        rmpupdate(table, (i & 0xFFFFF) << 12, gpa=i << 12 & 0xFFFFFFFFF, assigned=True, asid=1)
        i += 1

    def baseline() -> None:
        state.pack(i << 12, 1, 1)

    ours = rate(one, n)
    base = rate(baseline, n)
    print(
        f"RMPUPDATE: {ours:,.0f}/s (target >= 200,000); bare struct.pack of the 16-byte "
        f"state: {base:,.0f}/s (ratio {ours / base:.3f})"
    )


def bench_guest_status(n: int = 50_000) -> None:
    p = Platform()
    p.run(CommandId.SNP_INIT)
    gctx, status = 0x1000000, 0x1001000
    p.cpu.rmpupdate(gctx, assigned=True, immutable=True)
    p.cpu.rmpupdate(status, assigned=True, immutable=True)
    assert p.run(CommandId.SNP_GCTX_CREATE, gctx_paddr=gctx).ok
    buf = struct.pack("<QQ", gctx, status)
    assert p.execute(CommandId.SNP_GUEST_STATUS, buf).ok
    unpack = struct.Struct("<QQ").unpack_from

    ours = rate(lambda: p.execute(0x92, buf), n)  # type: ignore[func-returns-value]
    base = rate(lambda: unpack(buf), n)  # type: ignore[func-returns-value]
    print(
        f"SNP_GUEST_STATUS (bytes in): {ours:,.0f}/s (target >= 20,000); bare struct "
        f"unpack of the buffer: {base:,.0f}/s (ratio {ours / base:.3f})"
    )


def main() -> None:
    bench_platform_start()
    bench_rmp_entry_cost()
    bench_rmpupdate()
    bench_guest_status()


if __name__ == "__main__":
    main()
