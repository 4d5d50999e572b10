"""Every SNP command buffer and firmware output structure, declared once.

Field names are the ones ``shared/specs/trace-v1.md`` fixes (lower case, one name per
concept); offsets and widths are from the SNP Firmware ABI as restated in
``shared/reference/firmware-commands.md`` §2 and §6.  Gaps are reserved and must be zero.
"""

from __future__ import annotations

from binlayout import Bits, BufferLayout, bits, blob, u8, u16, u32, u64
from sp_emu.abi.commands import CommandId

C = CommandId

SNP_INIT_EX = BufferLayout(
    "SNP_INIT_EX",
    0x40,
    (
        bits(
            0x00,
            4,
            Bits("init_rmp", 0),
            Bits("list_paddr_en", 1),
            Bits("rapl_dis", 2),
            Bits("ciphertext_hiding_en", 3),
            Bits("tio_en", 4),
        ),
        u64(0x08, "list_paddr"),
        u16(0x10, "max_snp_asid"),
    ),
)
SNP_SHUTDOWN_EX = BufferLayout(
    "SNP_SHUTDOWN_EX",
    0x08,
    (
        u32(0x00, "length"),
        bits(0x04, 4, Bits("iommu_snp_shutdown", 0), Bits("x86_snp_shutdown", 1)),
    ),
)
SNP_PLATFORM_STATUS = BufferLayout("SNP_PLATFORM_STATUS", 0x08, (u64(0x00, "status_paddr"),))
SNP_DECOMMISSION = BufferLayout("SNP_DECOMMISSION", 0x08, (u64(0x00, "gctx_paddr"),))
SNP_GCTX_CREATE = BufferLayout("SNP_GCTX_CREATE", 0x08, (u64(0x00, "gctx_paddr"),))
SNP_ACTIVATE = BufferLayout("SNP_ACTIVATE", 0x0C, (u64(0x00, "gctx_paddr"), u32(0x08, "asid")))
SNP_GUEST_STATUS = BufferLayout(
    "SNP_GUEST_STATUS", 0x10, (u64(0x00, "gctx_paddr"), u64(0x08, "status_paddr"))
)
SNP_GUEST_REQUEST = BufferLayout(
    "SNP_GUEST_REQUEST",
    0x18,
    (u64(0x00, "gctx_paddr"), u64(0x08, "req_paddr"), u64(0x10, "res_paddr")),
)
SNP_ACTIVATE_EX = BufferLayout(
    "SNP_ACTIVATE_EX",
    0x20,
    (
        u32(0x00, "length"),
        u64(0x08, "gctx_paddr"),
        u32(0x10, "asid"),
        u32(0x14, "numids"),
        u64(0x18, "ids_paddr"),
    ),
)
SNP_LAUNCH_START = BufferLayout(
    "SNP_LAUNCH_START",
    0x30,
    (
        u64(0x00, "gctx_paddr"),
        u64(0x08, "policy"),
        u64(0x10, "ma_gctx_paddr"),
        bits(0x18, 4, Bits("ma_en", 0), Bits("imi_en", 1)),
        u32(0x1C, "desired_tsc_freq"),
        blob(0x20, 16, "gosvw"),
    ),
)
SNP_LAUNCH_UPDATE = BufferLayout(
    "SNP_LAUNCH_UPDATE",
    0x20,
    (
        u64(0x00, "gctx_paddr"),
        bits(0x08, 4, Bits("page_size", 0), Bits("page_type", 1, 3), Bits("imi_page", 4)),
        u64(0x10, "page_paddr"),
        bits(
            0x18,
            4,
            Bits("vmpl1_perms", 8, 8),
            Bits("vmpl2_perms", 16, 8),
            Bits("vmpl3_perms", 24, 8),
        ),
    ),
)
SNP_LAUNCH_FINISH = BufferLayout(
    "SNP_LAUNCH_FINISH",
    0x40,
    (
        u64(0x00, "gctx_paddr"),
        u64(0x08, "id_block_paddr"),
        u64(0x10, "id_auth_paddr"),
        bits(0x18, 8, Bits("id_block_en", 0), Bits("auth_key_en", 1), Bits("vcek_disabled", 2)),
        blob(0x20, 32, "host_data"),
    ),
)
_DBG = (u64(0x00, "gctx_paddr"), u64(0x08, "src_paddr"), u64(0x10, "dst_paddr"))
SNP_DBG_DECRYPT = BufferLayout("SNP_DBG_DECRYPT", 0x18, _DBG)
SNP_DBG_ENCRYPT = BufferLayout("SNP_DBG_ENCRYPT", 0x18, _DBG)
_SWAP_COMMON = (
    u64(0x00, "gctx_paddr"),
    u64(0x08, "src_paddr"),
    u64(0x10, "dst_paddr"),
    u64(0x18, "mdata_paddr"),
)
SNP_PAGE_SWAP_OUT = BufferLayout(
    "SNP_PAGE_SWAP_OUT",
    0x30,
    (
        *_SWAP_COMMON,
        u64(0x20, "software_data"),
        bits(0x28, 8, Bits("page_size", 0), Bits("swap_page_type", 1, 2), Bits("root_mdata_en", 4)),
    ),
)
SNP_PAGE_SWAP_IN = BufferLayout(
    "SNP_PAGE_SWAP_IN",
    0x30,
    (
        *_SWAP_COMMON,
        bits(
            0x28,
            8,
            Bits("page_size", 0),
            Bits("swap_page_type", 1, 2),
            Bits("swap_in_place", 3),
            Bits("root_mdata_en", 4),
        ),
    ),
)
SNP_PAGE_MOVE = BufferLayout(
    "SNP_PAGE_MOVE",
    0x20,
    (
        u64(0x00, "gctx_paddr"),
        bits(0x08, 4, Bits("page_size", 0)),
        u64(0x10, "src_paddr"),
        u64(0x18, "dst_paddr"),
    ),
)
SNP_PAGE_MD_INIT = BufferLayout(
    "SNP_PAGE_MD_INIT", 0x10, (u64(0x00, "gctx_paddr"), u64(0x08, "page_paddr"))
)
SNP_PAGE_SET_STATE = BufferLayout(
    "SNP_PAGE_SET_STATE", 0x10, (u32(0x00, "length"), u64(0x08, "list_paddr"))
)
_RECLAIM = (bits(0x00, 8, Bits("page_size", 0), Bits("page_paddr", 12, 52, address=True)),)
SNP_PAGE_RECLAIM = BufferLayout("SNP_PAGE_RECLAIM", 0x08, _RECLAIM)
SNP_PAGE_UNSMASH = BufferLayout("SNP_PAGE_UNSMASH", 0x08, _RECLAIM)
SNP_CONFIG = BufferLayout(
    "SNP_CONFIG",
    0x40,
    (
        u64(0x00, "reported_tcb"),
        bits(0x08, 4, Bits("mask_chip_id", 0), Bits("mask_chip_key", 1)),
    ),
)
SNP_DOWNLOAD_FIRMWARE_EX = BufferLayout(
    "SNP_DOWNLOAD_FIRMWARE_EX",
    0x18,
    (
        u32(0x00, "length"),
        u64(0x08, "fw_paddr"),
        u32(0x10, "fw_len"),
        bits(0x14, 4, Bits("commit", 0)),
    ),
)
SNP_COMMIT = BufferLayout("SNP_COMMIT", 0x04, (u32(0x00, "length"),))
SNP_VLEK_LOAD = BufferLayout(
    "SNP_VLEK_LOAD",
    0x10,
    (u32(0x00, "length"), u8(0x04, "vlek_wrapped_version"), u64(0x08, "vlek_wrapped_paddr")),
)
SNP_FEATURE_INFO = BufferLayout(
    "SNP_FEATURE_INFO",
    0x10,
    (u32(0x00, "length"), u32(0x04, "ecx_in"), u64(0x08, "feature_info_paddr")),
)
NO_BUFFER = BufferLayout("NO_BUFFER", 0, ())

BUFFERS: dict[CommandId, BufferLayout] = {
    C.SNP_INIT: NO_BUFFER,
    C.SNP_SHUTDOWN: NO_BUFFER,
    C.SNP_DF_FLUSH: NO_BUFFER,
    C.SNP_INIT_EX: SNP_INIT_EX,
    C.SNP_SHUTDOWN_EX: SNP_SHUTDOWN_EX,
    C.SNP_PLATFORM_STATUS: SNP_PLATFORM_STATUS,
    C.SNP_DECOMMISSION: SNP_DECOMMISSION,
    C.SNP_ACTIVATE: SNP_ACTIVATE,
    C.SNP_GUEST_STATUS: SNP_GUEST_STATUS,
    C.SNP_GCTX_CREATE: SNP_GCTX_CREATE,
    C.SNP_GUEST_REQUEST: SNP_GUEST_REQUEST,
    C.SNP_ACTIVATE_EX: SNP_ACTIVATE_EX,
    C.SNP_LAUNCH_START: SNP_LAUNCH_START,
    C.SNP_LAUNCH_UPDATE: SNP_LAUNCH_UPDATE,
    C.SNP_LAUNCH_FINISH: SNP_LAUNCH_FINISH,
    C.SNP_DBG_DECRYPT: SNP_DBG_DECRYPT,
    C.SNP_DBG_ENCRYPT: SNP_DBG_ENCRYPT,
    C.SNP_PAGE_SWAP_OUT: SNP_PAGE_SWAP_OUT,
    C.SNP_PAGE_SWAP_IN: SNP_PAGE_SWAP_IN,
    C.SNP_PAGE_MOVE: SNP_PAGE_MOVE,
    C.SNP_PAGE_MD_INIT: SNP_PAGE_MD_INIT,
    C.SNP_PAGE_SET_STATE: SNP_PAGE_SET_STATE,
    C.SNP_PAGE_RECLAIM: SNP_PAGE_RECLAIM,
    C.SNP_PAGE_UNSMASH: SNP_PAGE_UNSMASH,
    C.SNP_CONFIG: SNP_CONFIG,
    C.SNP_DOWNLOAD_FIRMWARE_EX: SNP_DOWNLOAD_FIRMWARE_EX,
    C.SNP_COMMIT: SNP_COMMIT,
    C.SNP_VLEK_LOAD: SNP_VLEK_LOAD,
    C.SNP_FEATURE_INFO: SNP_FEATURE_INFO,
}
"""The buffer layout of every SNP command id."""
