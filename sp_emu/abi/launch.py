"""Layouts of the launch: PAGE_INFO, the secrets and CPUID pages, the ID block and the ID
authentication page with AMD's ECDSA public-key and signature formats
(launch-measurement.md §1, §4, §5, §8)."""

from __future__ import annotations

from enum import IntEnum, IntFlag

from binlayout import Bits, BufferLayout, bits, blob, u8, u16, u32, u64
from binlayout.enums import IntEnumBase, IntFlagBase, fast_enum


@fast_enum(IntEnum)
class PageType(IntEnumBase):
    """SNP_LAUNCH_UPDATE PAGE_TYPE values (SNP firmware ABI; launch-measurement.md §2)."""

    NORMAL = 1
    VMSA = 2
    ZERO = 3
    UNMEASURED = 4
    SECRETS = 5
    CPUID = 6


@fast_enum(IntFlag)
class GuestPolicy(IntFlagBase):
    """Guest policy bits (SNP_LAUNCH_START POLICY; launch-measurement.md §6).  Bits 7:0 and
    15:8 are the minimum ABI minor and major; bits 26 and up are reserved."""

    SMT = 1 << 16
    RSVD_MBO = 1 << 17
    MIGRATE_MA = 1 << 18
    DEBUG = 1 << 19
    SINGLE_SOCKET = 1 << 20
    CXL_ALLOW = 1 << 21
    MEM_AES_256_XTS = 1 << 22
    RAPL_DIS = 1 << 23
    CIPHERTEXT_HIDING = 1 << 24
    PAGE_SWAP_DISABLE = 1 << 25


POLICY_BASE_BITS = (1 << 21) - 1
"""Policy bits 0-20, which every SNP firmware knows; 21 and up are optional features."""


PAGE_INFO = BufferLayout(
    "PAGE_INFO",
    0x70,
    (
        blob(0x00, 48, "digest_cur"),
        blob(0x30, 48, "contents"),
        u16(0x60, "length"),
        u8(0x62, "page_type"),
        bits(0x63, 1, Bits("imi_page", 0)),
        u8(0x65, "vmpl1_perms"),
        u8(0x66, "vmpl2_perms"),
        u8(0x67, "vmpl3_perms"),
        u64(0x68, "gpa"),
    ),
)
"""What the firmware hashes into the launch digest for each 4 KiB unit (AFW, CSVSM, OAK
order of the permission bytes; sev-snp-measure reverses them, which only matters when they
are not zero)."""
PAGE_INFO_LENGTH = 0x70

SECRETS_PAGE = BufferLayout(
    "SECRETS_PAGE",
    0x1000,
    (
        u32(0x000, "version"),
        bits(0x004, 4, Bits("imi_en", 0)),
        u32(0x008, "fms"),
        blob(0x010, 16, "gosvw"),
        blob(0x020, 32, "vmpck0"),
        blob(0x040, 32, "vmpck1"),
        blob(0x060, 32, "vmpck2"),
        blob(0x080, 32, "vmpck3"),
        blob(0x0A0, 96, "guest_os_area"),
        blob(0x100, 64, "vmsa_tweak_bitmap"),
        blob(0x140, 32, "svsm_area"),
        u32(0x160, "tsc_factor"),
    ),
)
"""The secrets page the firmware writes at LAUNCH_UPDATE type SECRETS (version 3)."""

CPUID_PAGE_HEADER = BufferLayout("CPUID page header", 0x10, (u32(0x00, "count"),))
CPUID_ENTRY = BufferLayout(
    "CPUID entry",
    0x30,
    (
        u32(0x00, "eax_in"),
        u32(0x04, "ecx_in"),
        u64(0x08, "xcr0_in"),
        u64(0x10, "xss_in"),
        u32(0x18, "eax"),
        u32(0x1C, "ebx"),
        u32(0x20, "ecx"),
        u32(0x24, "edx"),
    ),
)
CPUID_MAX_ENTRIES = 64

ID_BLOCK = BufferLayout(
    "ID_BLOCK",
    0x60,
    (
        blob(0x00, 48, "ld"),
        blob(0x30, 16, "family_id"),
        blob(0x40, 16, "image_id"),
        u32(0x50, "version"),
        u32(0x54, "guest_svn"),
        u64(0x58, "policy"),
    ),
)
"""The guest owner's statement of the expected launch (LAUNCH_FINISH ID_BLOCK_PADDR)."""

ECDSA_PUBKEY = BufferLayout(
    "ECDSA public key",
    0x404,
    (u32(0x000, "curve"), blob(0x004, 72, "qx"), blob(0x04C, 72, "qy")),
)
"""AMD's ECDSA public key: curve (2 = P-384), X and Y little-endian, zero padded to 72."""
ECDSA_SIGNATURE = BufferLayout(
    "ECDSA signature", 0x200, (blob(0x000, 72, "r"), blob(0x048, 72, "s"))
)
"""AMD's ECDSA signature: R and S little-endian, zero padded to 72 bytes."""
CURVE_P384 = 2
ALGO_ECDSA_P384_SHA384 = 1

ID_AUTH = BufferLayout(
    "ID_AUTH",
    0x1000,
    (
        u32(0x000, "id_key_algo"),
        u32(0x004, "auth_key_algo"),
        blob(0x040, 0x200, "id_block_sig"),
        blob(0x240, 0x404, "id_key"),
        blob(0x680, 0x200, "id_key_sig"),
        blob(0x880, 0x404, "author_key"),
    ),
)
"""The ID authentication page (LAUNCH_FINISH ID_AUTH_PADDR)."""
