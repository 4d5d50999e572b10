"""Property: any sequence of NORMAL / ZERO / UNMEASURED pages, 4 KiB or 2 MiB, at any GPAs
with any VMPL1-3 permissions and IMI flags, launched through the firmware, leaves the launch
digest (and the IMD) that a tiny reference chain computes (launch-measurement.md §1).

The reference below is deliberately written out again with ``hashlib`` and ``struct`` from
the §1.1 table, sharing no code with the emulator or the other launch tests."""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from sp_emu.abi.commands import CommandId as C
from sp_emu.abi.status import SnpStatus as S
from sp_emu.platform import Platform

NORMAL, ZERO, UNMEASURED = 1, 3, 4
SMALL_BASE, SMALL_END = 0x0020_0000, 0x0040_0000  # 512 4 KiB host pages
LARGE_BASE = 0x0040_0000  # then 2 MiB host regions up to 32 MiB
GCTX = 0x101000


def reference_chain(pages: list[Page]) -> tuple[bytes, bytes]:
    """(LD, IMD) after measuring ``pages`` from 48 zero bytes: one PAGE_INFO per 4 KiB unit =
    LD || CONTENTS || u16 0x70 || u8 type || u8 IMI || u8 0 || u8 VMPL1 || VMPL2 || VMPL3 ||
    u64 GPA; LD := SHA-384(PAGE_INFO); IMI units also extend IMD the same way."""
    ld = imd = bytes(48)
    for page in pages:
        data = page.data
        for i in range(512 if page.large else 1):
            unit = data[i * 4096 : (i + 1) * 4096]
            contents = hashlib.sha384(unit).digest() if page.kind == NORMAL else bytes(48)
            tail = struct.pack(
                "<HBBBBBBQ", 0x70, page.kind, page.imi, 0, *page.perms, page.gpa + i * 4096
            )
            ld = hashlib.sha384(ld + contents + tail).digest()
            if page.imi:
                imd = hashlib.sha384(imd + contents + tail).digest()
    return ld, imd


@dataclass(frozen=True)
class Page:
    kind: int
    large: bool
    gpa: int
    perms: tuple[int, int, int]
    imi: int
    seed: int

    @property
    def data(self) -> bytes:
        size = 0x200000 if self.large else 0x1000
        block = bytes((self.seed + i) & 0xFF for i in range(256))
        return block * (size // 256)


perm = st.integers(0, 0x1F)
pages = st.builds(
    Page,
    kind=st.sampled_from([NORMAL, ZERO, UNMEASURED]),
    large=st.booleans(),
    gpa=st.integers(0, (1 << 39) - 1),
    perms=st.tuples(perm, perm, perm),
    imi=st.integers(0, 1),
    seed=st.integers(0, 255),
).map(
    lambda p: Page(
        p.kind, p.large, p.gpa << 12 & ~(0x1FFFFF if p.large else 0), p.perms, p.imi, p.seed
    )
)


def _platform() -> Platform:
    p = Platform(memory=64 << 20)
    assert p.run(C.SNP_INIT).ok
    p.cpu.wbinvd()
    assert p.run(C.SNP_DF_FLUSH).ok
    assert p.cpu.rmpupdate(GCTX, assigned=True, immutable=True).value == 0
    assert p.run(C.SNP_GCTX_CREATE, gctx_paddr=GCTX).ok
    assert p.run(C.SNP_LAUNCH_START, gctx_paddr=GCTX, policy=0x30000).ok
    assert p.run(C.SNP_ACTIVATE, gctx_paddr=GCTX, asid=1).ok
    return p


@given(st.lists(pages, min_size=1, max_size=10).filter(lambda ps: sum(p.large for p in ps) <= 3))
def test_firmware_digest_equals_the_reference_chain(seq: list[Page]) -> None:
    p = _platform()
    small, large = SMALL_BASE, LARGE_BASE
    for page in seq:
        if page.large:
            spa, large = large, large + 0x200000
        else:
            spa, small = small, small + 0x1000
        assert spa < (SMALL_END if not page.large else 32 << 20)
        p.cpu.host_write(spa, page.data)
        rc = p.cpu.rmpupdate(
            spa, assigned=True, immutable=True, asid=1, gpa=page.gpa, page_size=int(page.large)
        )
        assert rc.value == 0
        result = p.run(
            C.SNP_LAUNCH_UPDATE,
            gctx_paddr=GCTX,
            page_paddr=spa,
            page_type=page.kind,
            page_size=int(page.large),
            imi_page=page.imi,
            vmpl1_perms=page.perms[0],
            vmpl2_perms=page.perms[1],
            vmpl3_perms=page.perms[2],
        )
        assert result.status == S.SUCCESS, result.detail
    ld, imd = reference_chain(seq)
    g = p.fw.state.guests[GCTX]
    assert g.ld == ld
    assert g.imd == imd
    # sev-snp-measure agrees when it can express the sequence (zero perms, no IMI)
    if all(pg.perms == (0, 0, 0) and not pg.imi for pg in seq):
        from sevsnpmeasure.gctx import GCTX as SsmGctx

        ssm = SsmGctx()
        for pg in seq:
            if pg.kind == NORMAL:
                ssm.update_normal_pages(pg.gpa, pg.data)
            elif pg.kind == ZERO:
                ssm.update_zero_pages(pg.gpa, len(pg.data))
            else:
                ssm.update_unmeasured_pages(pg.gpa, len(pg.data))
        assert ssm.ld() == ld
