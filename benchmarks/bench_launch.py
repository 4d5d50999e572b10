"""Launch digest throughput (issue: Launch), against a bare hashlib loop in the same run.

256 MiB of NORMAL pages go through the whole firmware path: RMPUPDATE of each 2 MiB page to
pre-guest, then SNP_LAUNCH_UPDATE, which checks the page, hashes every 4 KiB unit, chains
the PAGE_INFOs into the guest context's digest, encrypts and updates the RMP.  The baseline
computes the same chained SHA-384 over the same bytes with hashlib alone.  Copying the image
into host memory happens before the clock starts, for both.

Run: ``python3 benchmarks/bench_launch.py [MiB]``.  Prints figures; asserts only that both
digests agree.
"""

from __future__ import annotations

import gc
import hashlib
import os
import struct
import sys
import time

from sp_emu import CommandId, Platform, PlatformConfig
from sp_emu.measure import ContentHasher

MIB = 1 << 20
PAGE = 0x1000
BASE_SPA = 0x4000_0000  # 1 GiB: ordinary DRAM on an 8 GiB platform
BASE_GPA = 0x1_0000_0000


def make_image(size: int) -> bytes:
    return (hashlib.shake_256(b"bench").digest(64) * (size // 64))[:size]


def bare_chain(image: bytes) -> bytes:
    """The launch digest with nothing but hashlib and struct."""
    tail = struct.Struct("<HBBBBBBQ")
    ld = bytes(48)
    view = memoryview(image)
    for i in range(len(image) // PAGE):
        contents = hashlib.sha384(view[i * PAGE : (i + 1) * PAGE]).digest()
        info = ld + contents + tail.pack(0x70, 1, 0, 0, 0, 0, 0, BASE_GPA + i * PAGE)
        ld = hashlib.sha384(info).digest()
    return ld


def firmware_launch(image: bytes, threads: int) -> tuple[float, bytes]:
    p = Platform(PlatformConfig(memory=8 << 30))
    p.fw.content_hasher = ContentHasher(threads)
    C = CommandId
    assert p.run(C.SNP_INIT).ok
    p.cpu.wbinvd()
    assert p.run(C.SNP_DF_FLUSH).ok
    gctx = 0x100_0000
    p.cpu.rmpupdate(gctx, assigned=True, immutable=True)
    assert p.run(C.SNP_GCTX_CREATE, gctx_paddr=gctx).ok
    assert p.run(C.SNP_LAUNCH_START, gctx_paddr=gctx, policy=0x30000).ok
    assert p.run(C.SNP_ACTIVATE, gctx_paddr=gctx, asid=1).ok
    big = 0x20_0000
    for off in range(0, len(image), PAGE):  # the host copies the image in (not timed)
        p.memory.write_page(BASE_SPA + off, image[off : off + PAGE])
    gc.collect()
    start = time.perf_counter()
    for off in range(0, len(image), big):
        spa = BASE_SPA + off
        rc = p.cpu.rmpupdate(
            spa, assigned=True, page_size=1, immutable=True, asid=1, gpa=BASE_GPA + off
        )
        assert rc == 0
        r = p.run(C.SNP_LAUNCH_UPDATE, gctx_paddr=gctx, page_size=1, page_type=1, page_paddr=spa)
        assert r.ok, r
    elapsed = time.perf_counter() - start
    p.fw.content_hasher.close()
    return elapsed, p.fw.state.guests[gctx].ld


def main() -> None:
    size = (int(sys.argv[1]) if len(sys.argv) > 1 else 256) * MIB
    image = make_image(size)
    gc.collect()
    t0 = time.perf_counter()
    expected = bare_chain(image)
    bare = time.perf_counter() - t0
    print(
        f"bare hashlib chain over {size // MIB} MiB: {bare:.3f} s ({size / MIB / bare:.0f} MiB/s)"
    )
    for threads in (1, min(2, os.cpu_count() or 1)):
        elapsed, digest = firmware_launch(image, threads)
        assert digest == expected, "the firmware's digest differs from the bare chain"
        print(
            f"firmware path, {threads} hashing thread(s): {elapsed:.3f} s "
            f"({size / MIB / elapsed:.0f} MiB/s) = {bare / elapsed:.2f}x the bare loop "
            f"(target {'0.8' if threads == 1 else '1.0'}x)"
        )


if __name__ == "__main__":
    main()
