"""Platform commands: SNP_INIT(_EX), SNP_SHUTDOWN(_EX), SNP_PLATFORM_STATUS, SNP_DF_FLUSH,
SNP_FEATURE_INFO and SNP_CONFIG (SNP Firmware ABI chapter 8.x; firmware-commands.md §6)."""

from __future__ import annotations

from rmp import FirmwareMarker, PageState
from rmp import layout as RL
from sp_emu.abi.commands import CommandId as C
from sp_emu.abi.status import SnpStatus as S
from sp_emu.abi.structures import (
    FEATURE_INFO_OUT,
    PLATFORM_STATUS_OUT,
    RANGE,
    RANGE_LIST_HEADER,
    RANGE_LIST_MAX,
)
from sp_emu.errors import SnpError
from sp_emu.firmware import Firmware, Request, command, crosses_page
from sp_emu.state import PlatformStateName
from sp_emu.tcb import TcbVersion

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_FIRMWARE_Q0 = RL.ASSIGNED.mask | RL.IMMUTABLE.mask | RL.LOCK.mask
# FIRMWARE_IOMMU: marker 2 in GPA bits 50:48 and 1 in the rest of the GPA field (AFW).
_IOMMU_Q0 = _FIRMWARE_Q0 | (FirmwareMarker.FIRMWARE_IOMMU << RL.FW_MARKER.lsb) | (1 << 12)
_HV_FIXED_Q0 = RL.IMMUTABLE.mask | RL.LOCK.mask


def read_range_list(fw: Firmware, list_paddr: int, *, align: int) -> list[tuple[int, int]]:
    """Read a RANGE_LIST from host memory: INVALID_PARAM if it has more than 255 ranges,
    runs past its page, has non-zero reserved words, or a base not ``align``-aligned."""
    if not fw.memory.contains(list_paddr, RANGE_LIST_HEADER.size):
        raise SnpError(S.INVALID_ADDRESS, "range list is not in system memory")
    header = fw.memory.read(list_paddr, RANGE_LIST_HEADER.size)
    if RANGE_LIST_HEADER.first_reserved_violation(header) is not None:
        raise SnpError(S.INVALID_PARAM, "range list header reserved word is not zero")
    count = RANGE_LIST_HEADER.parse(header)["count"]
    if count > RANGE_LIST_MAX:
        raise SnpError(S.INVALID_PARAM, f"range list has {count} ranges (at most 255)")
    if crosses_page(list_paddr, RANGE_LIST_HEADER.size + count * RANGE.size):
        raise SnpError(S.INVALID_PARAM, "range list runs past its page")
    ranges = []
    for i in range(count):
        raw = fw.memory.read(list_paddr + RANGE_LIST_HEADER.size + i * RANGE.size, RANGE.size)
        if RANGE.first_reserved_violation(raw) is not None:
            raise SnpError(S.INVALID_PARAM, f"range {i} reserved word is not zero")
        r = RANGE.parse(raw)
        if r["base"] % align:
            raise SnpError(S.INVALID_PARAM, f"range {i} base {r['base']:#x} is not aligned")
        ranges.append((r["base"], r["page_count"]))
    return ranges


def _check_ranges_outside_rmp(fw: Firmware, ranges: list[tuple[int, int]]) -> None:
    for base, pages in ranges:
        end = base + pages * 0x1000 - 1
        if pages and base <= fw.rmp_end and end >= fw.rmp_base:
            raise SnpError(S.INVALID_ADDRESS, f"range at {base:#x} overlaps the RMP")
        if pages and not fw.rmp.covers(end >> 12):
            raise SnpError(S.INVALID_ADDRESS, f"range at {base:#x} is not covered by the RMP")


def initialise_rmp(fw: Firmware, hv_fixed: list[tuple[int, int]]) -> None:
    """RMP initialisation (AFW ``configure_rmp``): DRAM HYPERVISOR, non-DRAM HV_FIXED, the
    RMP's own pages FIRMWARE, IOMMU pages FIRMWARE_IOMMU, listed ranges HV_FIXED."""
    fw.rmp.clear()
    for base, length in fw.hv_fixed_ranges:
        fw.rmp.fill(base >> 12, length >> 12, _HV_FIXED_Q0, 0)
    first = fw.rmp_base >> 12
    fw.rmp.fill(first, ((fw.rmp_end + 1) >> 12) - first, _FIRMWARE_Q0, 0)
    iommu_base, iommu_count = fw.iommu_pages
    fw.rmp.fill(iommu_base >> 12, iommu_count, _IOMMU_Q0, 0)
    for base, pages in hv_fixed:
        fw.rmp.fill(base >> 12, pages, _HV_FIXED_Q0, 0)


def _init_common(fw: Firmware, init_rmp: bool, ranges: list[tuple[int, int]]) -> None:
    # COMMIT
    st = fw.state
    if init_rmp:
        initialise_rmp(fw, ranges)
        st.rmp_initialized = True
        st.rmp_init_tcb = st.committed_tcb
    st.state = PlatformStateName.INIT
    st.wbinvd_done = False
    st.dirty_asids = set(range(1, st.max_asid + 1))
    st.asid_owner.clear()
    st.guests.clear()
    fw.asid_keys.clear()


def _rmp_trustworthy(fw: Firmware) -> bool:
    st = fw.state
    return st.rmp_initialized and st.rmp_init_tcb == st.committed_tcb


def _require_uninit(fw: Firmware) -> None:
    if fw.state.state is not PlatformStateName.UNINIT or fw.state.legacy_sev_state:
        raise SnpError(S.INVALID_PLATFORM_STATE, "SNP (or legacy SEV) is already initialised")


@command(C.SNP_INIT, "SNP_INIT; firmware-commands.md §6 SNP_INIT")
def snp_init(fw: Firmware, req: Request) -> None:
    """Initialise SNP: always (re)initialises the RMP."""
    # CHECKS
    _require_uninit(fw)
    _init_common(fw, True, [])


@command(C.SNP_INIT_EX, "SNP_INIT_EX; firmware-commands.md §6 SNP_INIT")
def snp_init_ex(fw: Firmware, req: Request) -> None:
    """Initialise SNP, optionally keeping an RMP a previous SNP_INIT left, and marking the
    ranges of a RANGE_LIST HV_FIXED."""
    f = req.f
    product = fw.state.product
    # CHECKS (AFW snp_mcmd_init_common order)
    req.check_reserved()
    optional = (
        (f["rapl_dis"] << 2) | (f["ciphertext_hiding_en"] << 3) | (f["tio_en"] << 4)
    ) & ~product.init_ex_optional_bits
    if optional or (f["max_snp_asid"] and not product.ciphertext_hiding):
        raise SnpError(S.INVALID_PARAM, "flags this firmware does not support are set")
    _require_uninit(fw)
    if not f["init_rmp"] and not _rmp_trustworthy(fw):
        raise SnpError(S.RMP_INIT_REQUIRED, "INIT_RMP=0 but no valid RMP from SNP_INIT")
    if f["list_paddr_en"] and not f["init_rmp"]:
        raise SnpError(S.INVALID_PARAM, "LIST_PADDR_EN needs INIT_RMP")
    ranges: list[tuple[int, int]] = []
    if f["list_paddr_en"]:
        if f["list_paddr"] & 0xFFF:
            raise SnpError(S.INVALID_PARAM, "LIST_PADDR is not page aligned")
        ranges = read_range_list(fw, f["list_paddr"], align=0x1000)
        _check_ranges_outside_rmp(fw, ranges)
    # COMMIT
    _init_common(fw, bool(f["init_rmp"]), ranges)
    fw.state.rapl_dis = bool(f["rapl_dis"])
    fw.state.ciphertext_hiding_en = bool(f["ciphertext_hiding_en"])


def _shutdown(fw: Firmware, req: Request | None) -> None:
    st = fw.state
    # CHECKS (AFW snp_mcmd_shutdown_common order)
    if st.legacy_sev_state:
        raise SnpError(S.INVALID_PLATFORM_STATE, "legacy SEV is initialised")
    if st.state is PlatformStateName.UNINIT:
        return  # already shut down: success, nothing checked
    if st.dirty_asids or st.asid_owner:
        raise SnpError(S.DFFLUSH_REQUIRED, "some ASID is in use or not flushed")
    iommu = False
    if req is not None:
        f = req.f
        if f["length"] != 8:
            raise SnpError(S.INVALID_PARAM, "LENGTH must be 8")
        req.check_reserved()
        if f["x86_snp_shutdown"] and (
            not f["iommu_snp_shutdown"] or not st.product.x86_snp_shutdown
        ):
            raise SnpError(S.INVALID_PARAM, "X86_SNP_SHUTDOWN needs IOMMU_SNP_SHUTDOWN")
        iommu = bool(f["iommu_snp_shutdown"])
    # COMMIT
    st.state = PlatformStateName.UNINIT
    st.vlek = None
    st.guests.clear()
    fw.asid_keys.clear()
    if iommu:
        st.rmp_initialized = False
        base, count = fw.iommu_pages
        for pfn in range(base >> 12, (base >> 12) + count):
            q0, q1 = fw.rmp.read(pfn)
            fw.rmp.write(pfn, q0 & ~(RL.IMMUTABLE.mask | RL.LOCK.mask), q1)  # -> RECLAIM


@command(C.SNP_SHUTDOWN, "SNP_SHUTDOWN; firmware-commands.md §6 SNP_SHUTDOWN")
def snp_shutdown(fw: Firmware, req: Request) -> None:
    """Shut SNP down (the platform returns to UNINIT; guest keys are wiped)."""
    _shutdown(fw, None)


@command(C.SNP_SHUTDOWN_EX, "SNP_SHUTDOWN_EX; firmware-commands.md §6 SNP_SHUTDOWN")
def snp_shutdown_ex(fw: Firmware, req: Request) -> None:
    """Shut SNP down; with IOMMU_SNP_SHUTDOWN the RMP must be initialised again."""
    _shutdown(fw, req)


@command(C.SNP_PLATFORM_STATUS, "SNP_PLATFORM_STATUS; firmware-commands.md §6")
def snp_platform_status(fw: Firmware, req: Request) -> dict[str, Any]:
    """Write the platform status structure (0x20 bytes) to STATUS_PADDR."""
    st = fw.state
    spa = req.f["status_paddr"]
    # CHECKS
    if crosses_page(spa, PLATFORM_STATUS_OUT.size):
        raise SnpError(S.INVALID_PARAM, "status structure crosses a page")
    # PAGES
    fw.require_output_page(spa, PLATFORM_STATUS_OUT.size, "status")
    # OUTPUT
    out = {
        "api_major": st.api_major,
        "api_minor": st.api_minor,
        "state": int(st.state),
        "is_rmp_initialized": int(st.rmp_initialized),
        "build_id": st.build,
        "mask_chip_id": int(st.mask_chip_id),
        "mask_chip_key": int(st.mask_chip_key),
        "vlek_en": int(st.vlek is not None),
        "feature_info": 1,
        "rapl_dis": int(st.rapl_dis),
        "ciphertext_hiding_cap": int(st.product.ciphertext_hiding),
        "ciphertext_hiding_en": int(st.ciphertext_hiding_en),
        "guest_count": st.guest_count,
        "current_tcb": st.current_tcb.to_int(),
        "reported_tcb": st.effective_reported_tcb().to_int(),
    }
    fw.memory.write(spa, PLATFORM_STATUS_OUT.build(out))
    return out


@command(C.SNP_DF_FLUSH, "SNP_DF_FLUSH; firmware-commands.md §6")
def snp_df_flush(fw: Firmware, req: Request) -> None:
    """Flush the data fabric so dirty ASIDs become clean; needs WBINVD on every core first."""
    st = fw.state
    # CHECKS
    if not st.wbinvd_done:
        raise SnpError(S.WBINVD_REQUIRED, "WBINVD has not run on every core")
    # COMMIT
    st.dirty_asids.clear()


@command(C.SNP_FEATURE_INFO, "SNP_FEATURE_INFO; firmware-commands.md §6")
def snp_feature_info(fw: Firmware, req: Request) -> dict[str, Any]:
    """Report the firmware's optional features, CPUID-style, for sub-function ECX_IN."""
    f = req.f
    p = fw.state.product
    spa = f["feature_info_paddr"]
    # CHECKS (AFW order: LENGTH, address, page state, ECX_IN)
    if f["length"] != SNP_FEATURE_INFO_LENGTH:
        raise SnpError(S.INVALID_PARAM, "LENGTH must be 0x10")
    if spa & 3 or crosses_page(spa, FEATURE_INFO_OUT.size):
        raise SnpError(S.INVALID_ADDRESS, "output must be 4-byte aligned within one page")
    fw.require_output_page(spa, FEATURE_INFO_OUT.size, "feature info")
    if f["ecx_in"] == 0:
        ecx = (
            int(p.vlek)
            | int(p.x86_snp_shutdown) << 1
            | int(p.rapl_disable) << 2
            | int(p.ciphertext_hiding) << 3
            | int(p.aes_256_xts) << 4
            | int(p.cxl_allow) << 5
        )
        # EBX bit 0 (legacy SEV commands) is clear: the emulator models SNP commands only.
        out = {"eax": 1, "ebx": 0, "ecx": ecx, "edx": 0}
    elif f["ecx_in"] == 1:
        out = {"eax": 0x1FF, "ebx": 0, "ecx": 0, "edx": 0}  # guest message types
    else:
        raise SnpError(S.INVALID_PARAM, f"no feature sub-function {f['ecx_in']}")
    # OUTPUT
    fw.memory.write(spa, FEATURE_INFO_OUT.build(out))
    return out


SNP_FEATURE_INFO_LENGTH = 0x10


@command(C.SNP_CONFIG, "SNP_CONFIG; firmware-commands.md §6")
def snp_config(fw: Firmware, req: Request) -> None:
    """Set the TCB reports carry (0: the committed TCB) and the chip-ID/chip-key masks."""
    f = req.f
    st = fw.state
    turin = st.product.turin_tcb_layout
    # CHECKS
    req.check_reserved()
    tcb = f["reported_tcb"]
    if tcb:
        if TcbVersion.reserved_bits(tcb, turin_layout=turin):
            raise SnpError(S.INVALID_PARAM, "REPORTED_TCB has reserved bytes set")
        if not TcbVersion.from_int(tcb, turin_layout=turin).le(st.current_tcb):
            raise SnpError(S.INVALID_PARAM, "REPORTED_TCB is above the installed TCB")
    # COMMIT
    st.reported_tcb = tcb
    st.mask_chip_id = bool(f["mask_chip_id"])
    st.mask_chip_key = bool(f["mask_chip_key"])


__all__ = ["PageState", "initialise_rmp", "read_range_list"]
