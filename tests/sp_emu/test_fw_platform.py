"""Platform commands, table driven: SNP_INIT, SNP_INIT_EX, SNP_SHUTDOWN(_EX),
SNP_PLATFORM_STATUS, SNP_DF_FLUSH, SNP_FEATURE_INFO, SNP_CONFIG and unknown command ids.

Expected statuses and effects: firmware-commands.md §1 (dispatch), §4.1 (platform state
machine) and §6 (per-command check order)."""

from __future__ import annotations

import pytest

from rmp import PageState, RmpResult
from sp_emu.abi.commands import CommandId as C
from sp_emu.abi.status import SnpStatus as S
from sp_emu.firmware import CommandResult
from sp_emu.platform import Platform
from sp_emu.state import PlatformStateName
from tests.sp_emu.helpers import (
    BEYOND,
    FW_PAGE,
    GCTX,
    GCTX2,
    GCTX3,
    GENOA_TCB,
    HV_PAGE,
    LIST_PAGE,
    MEM,
    REGION,
    Check,
    Row,
    Step,
    activated,
    assert_unchanged,
    capture,
    created,
    download,
    flush,
    flushed,
    fw_page,
    initialised,
    launched,
    ok,
    platform,
    platform_status,
    row_params,
    run_row,
    setup,
    shutdown,
    state_of,
    tcb,
    with_product,
    write_range_list,
)

IPS = S.INVALID_PLATFORM_STATE


def legacy(p: Platform) -> None:
    p.fw.state.legacy_sev_state = 1


def turin() -> Platform:
    return platform(product="Turin")


def _fw(spa: int) -> Step:
    return lambda p: fw_page(p, spa)


def _run(cmd: C, **fields: object) -> Step:
    return lambda p: ok(p.run(cmd, **fields))


# --- shared checks -------------------------------------------------------------------------------
def is_init(p: Platform, _r: CommandResult | None = None) -> None:
    assert p.fw.state.state is PlatformStateName.INIT
    assert p.fw.state.rmp_initialized


def fresh_rmp(p: Platform, r: CommandResult | None = None) -> None:
    """What RMP initialisation leaves (§6 SNP_INIT "RMP initialisation")."""
    is_init(p)
    rmp_base, rmp_end, iommu = p.map.rmp_base, p.map.rmp_end, p.map.iommu_base
    assert state_of(p, HV_PAGE) is PageState.HYPERVISOR
    assert state_of(p, FW_PAGE) is PageState.HYPERVISOR
    assert state_of(p, 0x100000) is PageState.HYPERVISOR
    assert state_of(p, rmp_base) is PageState.FIRMWARE
    assert state_of(p, rmp_end & ~0xFFF) is PageState.FIRMWARE
    assert state_of(p, iommu) is PageState.FIRMWARE_IOMMU
    assert state_of(p, rmp_base - 0x1000) is not PageState.FIRMWARE
    assert state_of(p, 0xA0000) is PageState.HV_FIXED  # legacy VGA window: not DRAM
    assert state_of(p, 0xFF000) is PageState.HV_FIXED
    st = platform_status(p)
    assert (st["state"], st["is_rmp_initialized"], st["guest_count"]) == (1, 1, 0)
    # Every ASID is dirty and WBINVD_DONE is clear after (re)initialisation.
    assert p.run(C.SNP_DF_FLUSH).status == S.WBINVD_REQUIRED


def rapl_disabled(p: Platform, r: CommandResult) -> None:
    is_init(p)
    assert platform_status(p)["rapl_dis"] == 1


def kept_rmp(p: Platform, _r: CommandResult) -> None:
    is_init(p)
    assert state_of(p, FW_PAGE) is PageState.FIRMWARE


def is_uninit(p: Platform, _r: CommandResult | None = None) -> None:
    assert p.fw.state.state is PlatformStateName.UNINIT
    assert p.fw.state.guests == {}
    assert platform_status(p)["state"] == 0


def rmp_init_required_next(p: Platform, r: CommandResult) -> None:
    is_uninit(p)
    assert platform_status(p)["is_rmp_initialized"] == 0
    assert state_of(p, p.map.iommu_base) is PageState.RECLAIM
    assert p.run(C.SNP_INIT_EX, init_rmp=0).status == S.RMP_INIT_REQUIRED


def iommu_untouched(p: Platform, r: CommandResult) -> None:
    is_uninit(p)
    assert platform_status(p)["is_rmp_initialized"] == 1
    assert state_of(p, p.map.iommu_base) is PageState.FIRMWARE_IOMMU
    ok(p.run(C.SNP_INIT_EX, init_rmp=0))


def hv_fixed_ranges(p: Platform, r: CommandResult) -> None:
    is_init(p)
    for i in range(4):
        assert state_of(p, REGION + i * 0x1000) is PageState.HV_FIXED
    assert state_of(p, REGION + 4 * 0x1000) is PageState.HYPERVISOR
    assert state_of(p, HV_PAGE) is PageState.HV_FIXED
    assert p.cpu.rmpupdate(REGION, assigned=True, immutable=True) is RmpResult.FAIL_PERMISSION


# --- SNP_INIT ------------------------------------------------------------------------------------
INIT_ROWS = [
    Row("uninit -> init", platform, C.SNP_INIT, check=fresh_rmp),
    Row("already init", initialised, C.SNP_INIT, want=IPS),
    Row("already init and flushed", flushed, C.SNP_INIT, want=IPS),
    Row("legacy SEV initialised", setup(legacy, base=platform), C.SNP_INIT, want=IPS),
    Row(
        "re-init after shutdown wipes the RMP",
        setup(_fw(FW_PAGE), shutdown),
        C.SNP_INIT,
        check=fresh_rmp,
    ),
]

# --- SNP_INIT_EX ---------------------------------------------------------------------------------
_LIST = {"init_rmp": 1, "list_paddr_en": 1, "list_paddr": LIST_PAGE}


def _list(*ranges: tuple[int, int]) -> Step:
    return lambda p: write_range_list(p, list(ranges))


def _raw_list(data: bytes) -> Step:
    return lambda p: p.cpu.host_write(LIST_PAGE, data)


def _range(base: int, pages: int, mbz: int = 0) -> bytes:
    return base.to_bytes(8, "little") + pages.to_bytes(4, "little") + mbz.to_bytes(4, "little")


INIT_EX_ROWS = [
    Row("init_rmp=1", platform, C.SNP_INIT_EX, {"init_rmp": 1}, check=fresh_rmp),
    Row(
        "reserved word 0x04",
        platform,
        C.SNP_INIT_EX,
        {"init_rmp": 1},
        S.INVALID_PARAM,
        patch={0x04: 0x01},
    ),
    Row(
        "reserved flag bit 5",
        platform,
        C.SNP_INIT_EX,
        {"init_rmp": 1},
        S.INVALID_PARAM,
        patch={0x00: 0x20},
    ),
    Row(
        "reserved flag bit 31",
        platform,
        C.SNP_INIT_EX,
        {"init_rmp": 1},
        S.INVALID_PARAM,
        patch={0x03: 0x80},
    ),
    Row(
        "reserved byte 0x3F",
        platform,
        C.SNP_INIT_EX,
        {"init_rmp": 1},
        S.INVALID_PARAM,
        patch={0x3F: 0x01},
    ),
    Row(
        "MBZ before platform state",
        initialised,
        C.SNP_INIT_EX,
        {"init_rmp": 1},
        S.INVALID_PARAM,
        patch={0x12: 0x01},
    ),
    Row(
        "RAPL_DIS is MBZ on FW 1.55 (Genoa)",
        platform,
        C.SNP_INIT_EX,
        {"init_rmp": 1, "rapl_dis": 1},
        S.INVALID_PARAM,
    ),
    Row(
        "CIPHERTEXT_HIDING_EN is MBZ on FW 1.55",
        platform,
        C.SNP_INIT_EX,
        {"init_rmp": 1, "ciphertext_hiding_en": 1},
        S.INVALID_PARAM,
    ),
    Row(
        "TIO_EN is MBZ on FW 1.55",
        platform,
        C.SNP_INIT_EX,
        {"init_rmp": 1, "tio_en": 1},
        S.INVALID_PARAM,
    ),
    Row(
        "MAX_SNP_ASID is MBZ on FW 1.55",
        platform,
        C.SNP_INIT_EX,
        {"init_rmp": 1, "max_snp_asid": 100},
        S.INVALID_PARAM,
    ),
    Row(
        "unsupported flag before platform state",
        initialised,
        C.SNP_INIT_EX,
        {"init_rmp": 1, "rapl_dis": 1},
        S.INVALID_PARAM,
    ),
    Row(
        "RAPL_DIS where supported (Turin)",
        turin,
        C.SNP_INIT_EX,
        {"init_rmp": 1, "rapl_dis": 1},
        check=rapl_disabled,
    ),
    Row("already init", initialised, C.SNP_INIT_EX, {"init_rmp": 1}, IPS),
    Row("already init, init_rmp=0", flushed, C.SNP_INIT_EX, {}, IPS),
    Row(
        "legacy SEV initialised", setup(legacy, base=platform), C.SNP_INIT_EX, {"init_rmp": 1}, IPS
    ),
    Row("init_rmp=0, RMP never initialised", platform, C.SNP_INIT_EX, {}, S.RMP_INIT_REQUIRED),
    Row(
        "init_rmp=0 + LIST_PADDR_EN, RMP never initialised",
        setup(_list(), base=platform),
        C.SNP_INIT_EX,
        {"list_paddr_en": 1, "list_paddr": LIST_PAGE},
        S.RMP_INIT_REQUIRED,
    ),
    Row(
        "init_rmp=0 + LIST_PADDR_EN, RMP initialised",
        setup(shutdown, _list()),
        C.SNP_INIT_EX,
        {"list_paddr_en": 1, "list_paddr": LIST_PAGE},
        S.INVALID_PARAM,
    ),
    Row(
        "init_rmp=0 keeps the RMP of an earlier SNP_INIT",
        setup(_fw(FW_PAGE), shutdown),
        C.SNP_INIT_EX,
        {},
        check=kept_rmp,
    ),
    Row(
        "init_rmp=0 after SHUTDOWN_EX with IOMMU_SNP_SHUTDOWN",
        setup(flush, _run(C.SNP_SHUTDOWN_EX, length=8, iommu_snp_shutdown=1)),
        C.SNP_INIT_EX,
        {},
        S.RMP_INIT_REQUIRED,
    ),
    Row(
        "init_rmp=0 after a commit changed the TCB",
        setup(shutdown, lambda p: download(p, tcb_value=tcb(snp=16), commit=1)),
        C.SNP_INIT_EX,
        {},
        S.RMP_INIT_REQUIRED,
    ),
    Row(
        "init_rmp=0 after a download without commit",
        setup(_fw(FW_PAGE), shutdown, lambda p: download(p, tcb_value=tcb(snp=16))),
        C.SNP_INIT_EX,
        {},
        check=kept_rmp,
    ),
    Row(
        "init_rmp=1 after SHUTDOWN_EX with IOMMU_SNP_SHUTDOWN",
        setup(flush, _run(C.SNP_SHUTDOWN_EX, length=8, iommu_snp_shutdown=1)),
        C.SNP_INIT_EX,
        {"init_rmp": 1},
        check=fresh_rmp,
    ),
    Row(
        "range list marks HV_FIXED",
        setup(_list((REGION, 4), (HV_PAGE, 1)), base=platform),
        C.SNP_INIT_EX,
        _LIST,
        check=hv_fixed_ranges,
    ),
    Row("empty range list", setup(_list(), base=platform), C.SNP_INIT_EX, _LIST, check=fresh_rmp),
    Row(
        "LIST_PADDR ignored without LIST_PADDR_EN",
        platform,
        C.SNP_INIT_EX,
        {"init_rmp": 1, "list_paddr": LIST_PAGE + 0x123},
        check=fresh_rmp,
    ),
    Row(
        "LIST_PADDR not page aligned",
        setup(_list(), base=platform),
        C.SNP_INIT_EX,
        {**_LIST, "list_paddr": LIST_PAGE + 8},
        S.INVALID_PARAM,
    ),
    Row(
        "range list with 256 ranges",
        setup(_raw_list((256).to_bytes(4, "little") + bytes(4)), base=platform),
        C.SNP_INIT_EX,
        _LIST,
        S.INVALID_PARAM,
    ),
    Row(
        "range list header MBZ",
        setup(_raw_list((0).to_bytes(4, "little") + b"\x01\0\0\0"), base=platform),
        C.SNP_INIT_EX,
        _LIST,
        S.INVALID_PARAM,
    ),
    Row(
        "range MBZ",
        setup(
            _raw_list((1).to_bytes(4, "little") + bytes(4) + _range(REGION, 1, mbz=1)),
            base=platform,
        ),
        C.SNP_INIT_EX,
        _LIST,
        S.INVALID_PARAM,
    ),
    Row(
        "range base not 4K aligned",
        setup(_list((REGION + 0x800, 1)), base=platform),
        C.SNP_INIT_EX,
        _LIST,
        S.INVALID_PARAM,
    ),
    Row(
        "bad second range: nothing applied",
        setup(_list((REGION, 1), (REGION + 1, 1)), base=platform),
        C.SNP_INIT_EX,
        _LIST,
        S.INVALID_PARAM,
    ),
    Row(
        "range overlapping the RMP",
        setup(lambda p: write_range_list(p, [(p.map.rmp_base - 0x1000, 2)]), base=platform),
        C.SNP_INIT_EX,
        _LIST,
        S.INVALID_ADDRESS,
    ),
    Row(
        "range past system memory",
        setup(_list((BEYOND, 1)), base=platform),
        C.SNP_INIT_EX,
        _LIST,
        S.INVALID_ADDRESS,
    ),
]


# --- SNP_SHUTDOWN / SNP_SHUTDOWN_EX --------------------------------------------------------------
def _vlek(p: Platform) -> None:
    p.fw.state.vlek = bytes(48)


def shut(p: Platform, r: CommandResult) -> None:
    is_uninit(p)
    assert p.fw.state.vlek is None
    assert p.fw.asid_keys == {}
    # The RMP is left as it was (plain shutdown); SNP_INIT_EX may reuse it.
    assert state_of(p, p.map.iommu_base) is PageState.FIRMWARE_IOMMU


SHUTDOWN_ROWS = [
    Row("already uninit: success, nothing done", platform, C.SNP_SHUTDOWN, same=True),
    Row(
        "legacy SEV initialised (checked before UNINIT)",
        setup(legacy, base=platform),
        C.SNP_SHUTDOWN,
        want=IPS,
    ),
    Row(
        "legacy SEV initialised, SNP init",
        setup(flush, legacy, base=initialised),
        C.SNP_SHUTDOWN,
        want=IPS,
    ),
    Row("right after SNP_INIT: ASIDs dirty", initialised, C.SNP_SHUTDOWN, want=S.DFFLUSH_REQUIRED),
    Row(
        "WBINVD without DF_FLUSH",
        setup(lambda p: p.cpu.wbinvd(), base=initialised),
        C.SNP_SHUTDOWN,
        want=S.DFFLUSH_REQUIRED,
    ),
    Row(
        "DF_FLUSH without WBINVD",
        setup(lambda p: p.run(C.SNP_DF_FLUSH), base=initialised),
        C.SNP_SHUTDOWN,
        want=S.DFFLUSH_REQUIRED,
    ),
    Row("after WBINVD + DF_FLUSH", flushed, C.SNP_SHUTDOWN, check=shut),
    Row("wipes the VLEK", setup(_vlek), C.SNP_SHUTDOWN, check=shut),
    Row("guest created but never activated", setup(created), C.SNP_SHUTDOWN, check=shut),
    Row("guest activated", setup(activated), C.SNP_SHUTDOWN, want=S.DFFLUSH_REQUIRED),
    Row(
        "guest decommissioned, ASID dirty",
        setup(activated, _run(C.SNP_DECOMMISSION, gctx_paddr=GCTX)),
        C.SNP_SHUTDOWN,
        want=S.DFFLUSH_REQUIRED,
    ),
    Row(
        "guest decommissioned and flushed",
        setup(activated, _run(C.SNP_DECOMMISSION, gctx_paddr=GCTX), flush),
        C.SNP_SHUTDOWN,
        check=shut,
    ),
]

_EX = {"length": 8}
SHUTDOWN_EX_ROWS = [
    Row("uninit: success, buffer not checked", platform, C.SNP_SHUTDOWN_EX, {}, same=True),
    Row(
        "uninit: X86 without IOMMU not checked",
        platform,
        C.SNP_SHUTDOWN_EX,
        {"length": 3, "x86_snp_shutdown": 1},
        same=True,
    ),
    Row(
        "uninit: reserved bits not checked",
        platform,
        C.SNP_SHUTDOWN_EX,
        _EX,
        patch={0x07: 0x80},
        same=True,
    ),
    Row("legacy SEV initialised", setup(legacy, base=platform), C.SNP_SHUTDOWN_EX, _EX, IPS),
    Row("dirty ASIDs before LENGTH", initialised, C.SNP_SHUTDOWN_EX, {}, S.DFFLUSH_REQUIRED),
    Row(
        "dirty ASIDs before MBZ",
        initialised,
        C.SNP_SHUTDOWN_EX,
        _EX,
        S.DFFLUSH_REQUIRED,
        patch={0x04: 0x04},
    ),
    Row("active guest", setup(activated), C.SNP_SHUTDOWN_EX, _EX, S.DFFLUSH_REQUIRED),
    Row("LENGTH 0", flushed, C.SNP_SHUTDOWN_EX, {}, S.INVALID_PARAM),
    Row("LENGTH 0x10", flushed, C.SNP_SHUTDOWN_EX, {"length": 0x10}, S.INVALID_PARAM),
    Row(
        "reserved flag bit 2", flushed, C.SNP_SHUTDOWN_EX, _EX, S.INVALID_PARAM, patch={0x04: 0x04}
    ),
    Row(
        "X86_SNP_SHUTDOWN without IOMMU_SNP_SHUTDOWN",
        flushed,
        C.SNP_SHUTDOWN_EX,
        {**_EX, "x86_snp_shutdown": 1},
        S.INVALID_PARAM,
    ),
    Row(
        "X86_SNP_SHUTDOWN unsupported",
        setup(lambda p: with_product(p, x86_snp_shutdown=False)),
        C.SNP_SHUTDOWN_EX,
        {**_EX, "iommu_snp_shutdown": 1, "x86_snp_shutdown": 1},
        S.INVALID_PARAM,
    ),
    Row("plain", flushed, C.SNP_SHUTDOWN_EX, _EX, check=iommu_untouched),
    Row(
        "IOMMU_SNP_SHUTDOWN",
        flushed,
        C.SNP_SHUTDOWN_EX,
        {**_EX, "iommu_snp_shutdown": 1},
        check=rmp_init_required_next,
    ),
    Row(
        "IOMMU + X86_SNP_SHUTDOWN",
        flushed,
        C.SNP_SHUTDOWN_EX,
        {**_EX, "iommu_snp_shutdown": 1, "x86_snp_shutdown": 1},
        check=rmp_init_required_next,
    ),
]


# --- SNP_PLATFORM_STATUS -------------------------------------------------------------------------
def status_bytes(spa: int, *, state: int, rmp: int, count: int = 0, flags: int = 0x08) -> Check:
    """The 0x20-byte output decoded by hand (§6 SNP_PLATFORM_STATUS)."""

    def check(p: Platform, r: CommandResult) -> None:
        raw = p.memory.read(spa, 0x20)
        assert raw[0x00] == 1  # API_MAJOR
        assert raw[0x01] == 55  # API_MINOR
        assert raw[0x02] == state
        assert raw[0x03] == rmp
        assert int.from_bytes(raw[0x04:0x08], "little") == 25  # BUILD_ID (Genoa default)
        assert int.from_bytes(raw[0x08:0x0C], "little") == flags  # bit 3: FEATURE_INFO
        assert int.from_bytes(raw[0x0C:0x10], "little") == count
        assert int.from_bytes(raw[0x10:0x18], "little") == GENOA_TCB
        assert int.from_bytes(raw[0x18:0x20], "little") == GENOA_TCB
        assert r.out is not None
        assert r.out["guest_count"] == count and r.out["state"] == state

    return check


_PS = C.SNP_PLATFORM_STATUS
PLATFORM_STATUS_ROWS = [
    Row(
        "uninit, hypervisor page",
        platform,
        _PS,
        {"status_paddr": HV_PAGE},
        check=status_bytes(HV_PAGE, state=0, rmp=0),
    ),
    Row(
        "uninit after SNP_INIT + SHUTDOWN",
        setup(shutdown),
        _PS,
        {"status_paddr": HV_PAGE},
        check=status_bytes(HV_PAGE, state=0, rmp=1),
    ),
    Row(
        "init, firmware page",
        setup(_fw(FW_PAGE)),
        _PS,
        {"status_paddr": FW_PAGE},
        check=status_bytes(FW_PAGE, state=1, rmp=1),
    ),
    Row(
        "init, end of a firmware page",
        setup(_fw(FW_PAGE)),
        _PS,
        {"status_paddr": FW_PAGE + 0xFE0},
        check=status_bytes(FW_PAGE + 0xFE0, state=1, rmp=1),
    ),
    Row(
        "C-bit set in STATUS_PADDR",
        setup(_fw(FW_PAGE)),
        _PS,
        {"status_paddr": FW_PAGE | 1 << 51},
        check=status_bytes(FW_PAGE, state=1, rmp=1),
    ),
    Row("init, hypervisor page", flushed, _PS, {"status_paddr": HV_PAGE}, S.INVALID_PAGE_STATE),
    Row("init, context page", setup(created), _PS, {"status_paddr": GCTX}, S.INVALID_PAGE_STATE),
    Row(
        "init, FIRMWARE_IOMMU page",
        flushed,
        _PS,
        lambda p: {"status_paddr": p.map.iommu_base},
        S.INVALID_PAGE_STATE,
    ),
    Row(
        "crosses a page (uninit)", platform, _PS, {"status_paddr": HV_PAGE + 0xFE1}, S.INVALID_PARAM
    ),
    Row(
        "crosses a page (init, firmware page)",
        setup(_fw(FW_PAGE)),
        _PS,
        {"status_paddr": FW_PAGE + 0xFF0},
        S.INVALID_PARAM,
    ),
    Row("inside the RMP", flushed, _PS, {"status_paddr": MEM - 0x1000}, S.INVALID_PARAM),
    Row("past system memory", platform, _PS, {"status_paddr": BEYOND}, S.INVALID_ADDRESS),
    Row(
        "counts launched guests only",
        setup(_fw(FW_PAGE), launched, lambda p: created(p, GCTX2)),
        _PS,
        {"status_paddr": FW_PAGE},
        check=status_bytes(FW_PAGE, state=1, rmp=1, count=1),
    ),
    Row(
        "after SNP_CONFIG masks",
        setup(_fw(FW_PAGE), _run(C.SNP_CONFIG, mask_chip_id=1, mask_chip_key=1)),
        _PS,
        {"status_paddr": FW_PAGE},
        check=status_bytes(FW_PAGE, state=1, rmp=1, flags=0x0B),
    ),
]


# --- SNP_DF_FLUSH --------------------------------------------------------------------------------
def asid_clean(p: Platform, r: CommandResult) -> None:
    assert p.fw.state.dirty_asids == set()
    launched(p, GCTX3)
    ok(p.run(C.SNP_ACTIVATE, gctx_paddr=GCTX3, asid=1))


DF_FLUSH_ROWS = [
    Row("right after SNP_INIT", initialised, C.SNP_DF_FLUSH, want=S.WBINVD_REQUIRED),
    Row(
        "after WBINVD",
        setup(lambda p: p.cpu.wbinvd(), base=initialised),
        C.SNP_DF_FLUSH,
        check=asid_clean,
    ),
    Row("twice: WBINVD_DONE stays", flushed, C.SNP_DF_FLUSH, check=asid_clean),
    Row("uninit, no WBINVD", platform, C.SNP_DF_FLUSH, want=S.WBINVD_REQUIRED),
    Row(
        "uninit after WBINVD (no state check)",
        setup(lambda p: p.cpu.wbinvd(), base=platform),
        C.SNP_DF_FLUSH,
    ),
    Row("after re-init", setup(shutdown, _run(C.SNP_INIT)), C.SNP_DF_FLUSH, want=S.WBINVD_REQUIRED),
    Row(
        "after decommission of a guest that never ran",
        setup(activated, _run(C.SNP_DECOMMISSION, gctx_paddr=GCTX)),
        C.SNP_DF_FLUSH,
        check=asid_clean,
    ),
]

# --- SNP_FEATURE_INFO ----------------------------------------------------------------------------
_FI = C.SNP_FEATURE_INFO


def fi(spa: int = HV_PAGE, ecx_in: int = 0, length: int = 0x10) -> dict[str, int]:
    return {"length": length, "ecx_in": ecx_in, "feature_info_paddr": spa}


def regs(spa: int, eax: int, ebx: int, ecx: int, edx: int) -> Check:
    def check(p: Platform, r: CommandResult) -> None:
        raw = p.memory.read(spa, 16)
        got = [int.from_bytes(raw[i : i + 4], "little") for i in range(0, 16, 4)]
        assert got == [eax, ebx, ecx, edx]
        assert r.out == {"eax": eax, "ebx": ebx, "ecx": ecx, "edx": edx}

    return check


FEATURE_INFO_ROWS = [
    # Genoa: EAX max sub-function 1; ECX bit0 VLEK, bit1 X86_SNP_SHUTDOWN.
    Row("ecx_in 0 (uninit, any page)", platform, _FI, fi(), check=regs(HV_PAGE, 1, 0, 0x3, 0)),
    Row(
        "ecx_in 1: guest message types",
        platform,
        _FI,
        fi(ecx_in=1),
        check=regs(HV_PAGE, 0x1FF, 0, 0, 0),
    ),
    Row("ecx_in 0 on Turin", turin, _FI, fi(), check=regs(HV_PAGE, 1, 0, 0x1F, 0)),
    Row(
        "init, firmware page",
        setup(_fw(FW_PAGE)),
        _FI,
        fi(FW_PAGE + 0xFF0),
        check=regs(FW_PAGE + 0xFF0, 1, 0, 0x3, 0),
    ),
    Row("LENGTH 0", platform, _FI, fi(length=0), S.INVALID_PARAM),
    Row("LENGTH 0x0F", platform, _FI, fi(length=0xF), S.INVALID_PARAM),
    Row("not 4-byte aligned", platform, _FI, fi(HV_PAGE + 2), S.INVALID_ADDRESS),
    Row("crosses a page", platform, _FI, fi(HV_PAGE + 0xFF4), S.INVALID_ADDRESS),
    Row("init, hypervisor page", flushed, _FI, fi(), S.INVALID_PAGE_STATE),
    Row("unknown sub-function", platform, _FI, fi(ecx_in=2), S.INVALID_PARAM),
    Row("LENGTH before address", platform, _FI, fi(HV_PAGE + 2, length=8), S.INVALID_PARAM),
    Row("address before sub-function", platform, _FI, fi(HV_PAGE + 2, ecx_in=7), S.INVALID_ADDRESS),
    Row("page state before sub-function", flushed, _FI, fi(ecx_in=7), S.INVALID_PAGE_STATE),
]


# --- SNP_CONFIG ----------------------------------------------------------------------------------
def reported(value: int, mask_id: int = 0, mask_key: int = 0) -> Check:
    def check(p: Platform, r: CommandResult) -> None:
        st = platform_status(p)
        assert st["reported_tcb"] == value
        assert st["current_tcb"] == p.fw.state.current_tcb.to_int()
        assert (st["mask_chip_id"], st["mask_chip_key"]) == (mask_id, mask_key)

    return check


CONFIG_ROWS = [
    Row("defaults (0 = committed TCB)", platform, C.SNP_CONFIG, {}, check=reported(GENOA_TCB)),
    Row(
        "lower reported TCB",
        platform,
        C.SNP_CONFIG,
        {"reported_tcb": tcb(snp=14)},
        check=reported(tcb(snp=14)),
    ),
    Row(
        "reported TCB = installed",
        flushed,
        C.SNP_CONFIG,
        {"reported_tcb": GENOA_TCB},
        check=reported(GENOA_TCB),
    ),
    Row(
        "SNP component above installed",
        platform,
        C.SNP_CONFIG,
        {"reported_tcb": tcb(snp=16)},
        S.INVALID_PARAM,
    ),
    Row(
        "microcode above installed",
        platform,
        C.SNP_CONFIG,
        {"reported_tcb": tcb(microcode=63)},
        S.INVALID_PARAM,
    ),
    Row(
        "reserved TCB byte",
        platform,
        C.SNP_CONFIG,
        {"reported_tcb": GENOA_TCB | 1 << 16},
        S.INVALID_PARAM,
    ),
    Row(
        "mask chip id and key",
        flushed,
        C.SNP_CONFIG,
        {"mask_chip_id": 1, "mask_chip_key": 1},
        check=reported(GENOA_TCB, 1, 1),
    ),
    Row("reserved flag bit 2", platform, C.SNP_CONFIG, {}, S.INVALID_PARAM, patch={0x08: 4}),
    Row("reserved byte 0x3F", flushed, C.SNP_CONFIG, {}, S.INVALID_PARAM, patch={0x3F: 1}),
    Row(
        "up to a downloaded, uncommitted TCB",
        setup(lambda p: download(p, tcb_value=tcb(snp=16)), base=platform),
        C.SNP_CONFIG,
        {"reported_tcb": tcb(snp=16)},
        check=reported(tcb(snp=16)),
    ),
]

# --- unknown ids ---------------------------------------------------------------------------------
UNKNOWN_ROWS = [
    Row(f"id {cid:#x} on {name}", base, cid, want=S.INVALID_COMMAND)
    for cid in (0x000, 0x001, 0x004, 0x080, 0x087, 0x0C4, 0x0C5, 0x0CC, 0x0D0, 0x1FF, 0xFFFF)
    for name, base in (("uninit", platform), ("init", flushed))
]

ROWS = (
    INIT_ROWS
    + INIT_EX_ROWS
    + SHUTDOWN_ROWS
    + SHUTDOWN_EX_ROWS
    + PLATFORM_STATUS_ROWS
    + DF_FLUSH_ROWS
    + FEATURE_INFO_ROWS
    + CONFIG_ROWS
    + UNKNOWN_ROWS
)


@pytest.mark.parametrize(("row", "path"), row_params(ROWS))
def test_platform_command(row: Row, path: str) -> None:
    run_row(row, path)


def test_unknown_id_with_a_buffer() -> None:
    p = flushed()
    before = capture(p)
    assert p.execute(0xC4, b"\xff" * 64).status == S.INVALID_COMMAND
    assert_unchanged(p, before)


def test_init_shutdown_cycle_keeps_the_committed_state() -> None:
    p = platform()
    for _ in range(3):
        ok(p.run(C.SNP_INIT))
        launched(p)
        ok(p.run(C.SNP_DECOMMISSION, gctx_paddr=GCTX))
        shutdown(p)
        assert platform_status(p)["state"] == 0
    assert p.run(C.SNP_INIT_EX, init_rmp=0).status == S.SUCCESS
    assert state_of(p, GCTX) is PageState.FIRMWARE  # the RMP of the last SNP_INIT, reused


def test_failed_init_leaves_the_platform_uninit() -> None:
    p = platform()
    assert p.run(C.SNP_INIT_EX, init_rmp=0).status == S.RMP_INIT_REQUIRED
    assert p.fw.state.state is PlatformStateName.UNINIT
    assert platform_status(p)["is_rmp_initialized"] == 0
    # ... and the RMP is untouched (all HYPERVISOR: never initialised).
    assert p.rmp.snapshot() == {}
