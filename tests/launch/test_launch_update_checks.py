"""SNP_LAUNCH_UPDATE's checks in their documented order (firmware-commands.md §6, the
12-row table), table driven.

Each row describes a launch with one or two things wrong.  Rows with one defect pin the
status of each check; rows with two defects (``+`` in the name) prove the order: the earlier
check's status wins.  Every failing row must leave the RMP, memory and every firmware record
(the guest's launch digest included) exactly as they were.  Rows run through the mailbox
(the buffer packed by hand with ``struct``) and, unless they set reserved bits, through the
typed entry point too."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import pytest

from rmp import PageSize, PageState, RmpEntry
from sp_emu.abi.commands import CommandId as C
from sp_emu.abi.status import SnpStatus as S
from sp_emu.cpuid import build_cpuid_page
from sp_emu.platform import Platform
from tests.launch.helpers import (
    ASID,
    ASID2,
    CPUID,
    DATA,
    GCTX,
    NORMAL,
    PAGE,
    REGION,
    SECRETS,
    VECTOR_ZERO_800000,
    VMSA,
    ZERO,
    assert_unchanged,
    capture,
    created,
    digest,
    finish,
    flushed,
    fw_page,
    launch_page,
    ok,
    pre_guest,
    state_of,
    status_name,
)

GPA = 0x7000
GPA_2M = 0x20_0000
OTHER = DATA + 0x10000
"""Where a GUEST_VALID page is made for the rows that need one launched earlier."""


def bad_cpuid_page() -> bytes:
    """A table breaking the documented policy: leaf 0 with a non-AMD vendor."""
    leaf0 = {"eax_in": 0, "eax": 0x10, "ebx": 0x756E6547, "ecx": 0x6C65746E, "edx": 0x49656E69}
    return build_cpuid_page([leaf0])


@dataclass(frozen=True)
class Case:
    """A launch set up to pass every check, except where a field says otherwise."""

    name: str
    want: S
    # platform and guest
    uninit: bool = False
    """SNP_SHUTDOWN after the set-up (the guest must then be inactive)."""
    gctx: str = "context"  # "context" | "firmware" | "hypervisor"
    gstate: str = "launch"  # "init" | "launch" | "running"
    active: bool = True
    imi_en: bool = False
    # the target page
    page: str = "pre_guest"  # "pre_guest" | "hypervisor" | "firmware" | "guest_valid" | "in_rmp"
    rmp_2m: bool = False
    page_asid: int = ASID
    misaligned_2m: bool = False
    """PAGE_PADDR 4 KiB inside a 2 MiB region whose own RMP entry claims a 2 MiB PRE_GUEST
    page (written directly: RMPUPDATE cannot make a misaligned 2 MiB entry)."""
    cpuid_bad: bool = False
    # the command
    page_type: int = NORMAL
    page_size: int = 0
    imi_page: int = 0
    gctx_off: int = 0
    page_off: int = 0
    patch: dict[int, int] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.name


def build(case: Case) -> tuple[Platform, int, int]:
    """The platform, the GCTX_PADDR and the PAGE_PADDR the command will carry."""
    p = flushed()
    if case.gctx == "context":
        created(p)
        if case.gstate != "init":
            ok(p.run(C.SNP_LAUNCH_START, gctx_paddr=GCTX, policy=0x30000, imi_en=case.imi_en))
            if case.active:
                ok(p.run(C.SNP_ACTIVATE, gctx_paddr=GCTX, asid=ASID))
    elif case.gctx == "firmware":
        fw_page(p, GCTX)
    data = bad_cpuid_page() if case.cpuid_bad else b"\x5a" * PAGE
    spa = REGION if case.rmp_2m else DATA
    if case.page == "pre_guest":
        gpa = GPA_2M if case.rmp_2m else GPA
        pre_guest(p, spa, gpa, asid=case.page_asid, page_size=int(case.rmp_2m), data=data)
    elif case.page == "hypervisor":
        p.cpu.host_write(spa, data)
    elif case.page == "firmware":
        fw_page(p, spa)
    elif case.page == "guest_valid":
        launch_page(p, spa, GPA, NORMAL, data)
        assert state_of(p, spa) is PageState.GUEST_VALID
    elif case.page == "in_rmp":
        spa = p.map.rmp_base
    if case.misaligned_2m:
        spa = REGION + PAGE
        raw = RmpEntry(
            True, PageSize.SIZE_2M, True, asid=case.page_asid, gpa=GPA_2M, perms=(0x1F, 0, 0, 0)
        )
        p.rmp.write(spa >> 12, *raw.to_raw())
        assert state_of(p, spa) is PageState.PRE_GUEST
    if case.gstate == "running":
        ok(finish(p))
    if case.uninit:
        ok(p.run(C.SNP_SHUTDOWN))
    return p, GCTX + case.gctx_off, spa + case.page_off


def pack_buffer(case: Case, gctx: int, spa: int) -> bytes:
    """The 0x20-byte buffer at the §6 offsets: GCTX_PADDR, {PAGE_SIZE, PAGE_TYPE, IMI_PAGE},
    MBZ, PAGE_PADDR, {VMPL1..3 perms in bits 15:8, 23:16, 31:24}, MBZ."""
    word = case.page_size | case.page_type << 1 | case.imi_page << 4
    raw = bytearray(struct.pack("<QIIQII", gctx, word, 0, spa, 0, 0))
    for off, value in case.patch.items():
        raw[off] |= value
    return bytes(raw)


IPARAM, IPS, IG = S.INVALID_PARAM, S.INVALID_PLATFORM_STATE, S.INVALID_GUEST
IPST, ISIZE, IADDR = S.INVALID_PAGE_STATE, S.INVALID_PAGE_SIZE, S.INVALID_ADDRESS
IGS, OWNER = S.INVALID_GUEST_STATE, S.INVALID_PAGE_OWNER

CASES = [
    Case("baseline NORMAL", S.SUCCESS),
    Case("baseline ZERO 2 MiB", S.SUCCESS, rmp_2m=True, page_size=1, page_type=ZERO),
    # 1. MBZ fields and address low bits
    Case("1 reserved 0x08 bit 5", IPARAM, patch={0x08: 0x20}),
    Case("1 reserved 0x0B", IPARAM, patch={0x0B: 0x80}),
    Case("1 reserved 0x0C", IPARAM, patch={0x0C: 0x01}),
    Case("1 reserved 0x18 bits 7:0", IPARAM, patch={0x18: 0x01}),
    Case("1 reserved 0x1C", IPARAM, patch={0x1F: 0x80}),
    Case("1 GCTX_PADDR bits 11:0", IPARAM, gctx_off=0x10),
    Case("1 PAGE_PADDR bits 11:0", IPARAM, page_off=0x8),
    Case("1 reserved + 2 SNP UNINIT", IPARAM, patch={0x0C: 1}, uninit=True, active=False),
    Case("1 PAGE_PADDR bits + 3 GCTX not CONTEXT", IPARAM, page_off=0x800, gctx="firmware"),
    # 2. platform INIT
    Case("2 SNP UNINIT", IPS, uninit=True, active=False),
    Case("2 SNP UNINIT + 3 GCTX HYPERVISOR", IPS, uninit=True, gctx="hypervisor"),
    # 3. GCTX is CONTEXT
    Case("3 GCTX FIRMWARE", IG, gctx="firmware"),
    Case("3 GCTX HYPERVISOR", IG, gctx="hypervisor"),
    Case("3 GCTX FIRMWARE + 4 page HYPERVISOR", IG, gctx="firmware", page="hypervisor"),
    # 4. page PRE_GUEST (the RMP lookup refuses an address inside the RMP: INVALID_PARAM)
    Case("4 page HYPERVISOR", IPST, page="hypervisor"),
    Case("4 page FIRMWARE", IPST, page="firmware"),
    Case("4 page GUEST_VALID (launched twice)", IPST, page="guest_valid"),
    Case("4 page inside the RMP", IPARAM, page="in_rmp"),
    Case("4 page HYPERVISOR + 5 PAGE_SIZE=1", IPST, page="hypervisor", page_size=1),
    Case("4 page GUEST_VALID + 8 guest RUNNING", IPST, page="guest_valid", gstate="running"),
    # 5. RMP page size == PAGE_SIZE
    Case("5 RMP 4K, PAGE_SIZE 2M", ISIZE, page_size=1),
    Case("5 RMP 2M, PAGE_SIZE 4K", ISIZE, rmp_2m=True),
    Case("5 RMP 2M, PAGE_SIZE 4K + 7 type 0", ISIZE, rmp_2m=True, page_type=0),
    Case("5 RMP 4K, PAGE_SIZE 2M + 9 inactive", ISIZE, page_size=1, active=False),
    # 6. a 2 MiB page is 2 MiB aligned
    Case("6 misaligned 2 MiB", IADDR, misaligned_2m=True, page_size=1),
    Case("6 misaligned 2 MiB + 7 type 7", IADDR, misaligned_2m=True, page_size=1, page_type=7),
    # 7. page type 1..6; VMSA, SECRETS, CPUID only 4 KiB
    Case("7 page type 0", IPARAM, page_type=0),
    Case("7 page type 7", IPARAM, page_type=7),
    Case("7 VMSA at 2 MiB", ISIZE, rmp_2m=True, page_size=1, page_type=VMSA),
    Case("7 SECRETS at 2 MiB", ISIZE, rmp_2m=True, page_size=1, page_type=SECRETS),
    Case("7 CPUID at 2 MiB", ISIZE, rmp_2m=True, page_size=1, page_type=CPUID),
    Case("7 type 0 + 8 guest INIT", IPARAM, page_type=0, gstate="init", active=False),
    Case(
        "7 SECRETS 2M + 8 guest RUNNING",
        ISIZE,
        rmp_2m=True,
        page_size=1,
        page_type=SECRETS,
        gstate="running",
    ),
    # 8. guest state LAUNCH
    Case("8 guest INIT (so also inactive)", IGS, gstate="init", active=False),
    Case("8 guest RUNNING", IGS, gstate="running"),
    Case("8 guest RUNNING + 10 page of ASID 2", IGS, gstate="running", page_asid=ASID2),
    Case("8 guest INIT + 10 page of ASID 2", IGS, gstate="init", active=False, page_asid=ASID2),
    # 9. guest activated
    Case("9 inactive", S.INACTIVE, active=False),
    Case("9 inactive + 10 page of ASID 2", S.INACTIVE, active=False, page_asid=ASID2),
    # 10. RMP.ASID == guest ASID
    Case("10 page of ASID 2", OWNER, page_asid=ASID2),
    Case("10 page of ASID 2 + 11 IMI guest, IMI_PAGE=0", OWNER, page_asid=ASID2, imi_en=True),
    # 11. IMI_EN guest => IMI_PAGE
    Case("11 IMI guest, IMI_PAGE=0", IPARAM, imi_en=True),
    Case("11 IMI guest, IMI_PAGE=0, ZERO 2 MiB", IPARAM, imi_en=True, rmp_2m=True, page_size=1),
    # 11 before 12: no corrected CPUID page is written back (nothing changes at all)
    Case("11 IMI guest + 12 bad CPUID table", IPARAM, imi_en=True, page_type=CPUID, cpuid_bad=True),
    Case("11 IMI guest, IMI_PAGE=1", S.SUCCESS, imi_en=True, imi_page=1),
]


def _params() -> list[object]:
    out: list[object] = []
    for case in CASES:
        for path in ("bytes",) if case.patch else ("bytes", "typed"):
            out.append(pytest.param(case, path, id=f"{case.name}[{path}]"))
    return out


@pytest.mark.parametrize(("case", "path"), _params())
def test_launch_update_check_order(case: Case, path: str) -> None:
    p, gctx, spa = build(case)
    before = capture(p)
    if path == "bytes":
        result = p.execute(C.SNP_LAUNCH_UPDATE, pack_buffer(case, gctx, spa))
    else:
        result = p.run(
            C.SNP_LAUNCH_UPDATE,
            gctx_paddr=gctx,
            page_paddr=spa,
            page_type=case.page_type,
            page_size=case.page_size,
            imi_page=case.imi_page,
        )
    assert result.status == case.want, (
        f"{case.name}: got {status_name(result.status)}, want {case.want.name} ({result.detail})"
    )
    if case.want != S.SUCCESS:
        assert_unchanged(p, before, case.name)
    else:
        assert state_of(p, spa) is PageState.GUEST_VALID
        assert digest(p) != before.state.guests[GCTX].ld


def test_every_documented_status_has_a_row() -> None:
    """The table covers each status of the §6 check list."""
    wanted = {c.want for c in CASES}
    assert {IPARAM, IPS, IG, IPST, ISIZE, IADDR, IGS, S.INACTIVE, OWNER} <= wanted


def test_c_bit_in_page_paddr_is_ignored() -> None:
    """The C-bit (bit 51) may be set in PAGE_PADDR; the RMP index ignores it
    (firmware-commands.md §1 "Address fields").  KVM sets it when SME is active."""
    p = flushed()
    created(p)
    ok(p.run(C.SNP_LAUNCH_START, gctx_paddr=GCTX, policy=0x30000))
    ok(p.run(C.SNP_ACTIVATE, gctx_paddr=GCTX, asid=ASID))
    pre_guest(p, DATA, 0x800000)
    ok(p.run(C.SNP_LAUNCH_UPDATE, gctx_paddr=GCTX, page_paddr=DATA | 1 << 51, page_type=ZERO))
    assert state_of(p, DATA) is PageState.GUEST_VALID
    assert digest(p) == VECTOR_ZERO_800000
