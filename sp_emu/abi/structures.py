"""Structures the firmware reads from or writes to memory pages named in a command buffer."""

from __future__ import annotations

from binlayout import Bits, BufferLayout, bits, u8, u32, u64

PLATFORM_STATUS_OUT = BufferLayout(
    "SNP_PLATFORM_STATUS output",
    0x20,
    (
        u8(0x00, "api_major"),
        u8(0x01, "api_minor"),
        u8(0x02, "state"),
        bits(0x03, 1, Bits("is_rmp_initialized", 0)),
        u32(0x04, "build_id"),
        bits(
            0x08,
            4,
            Bits("mask_chip_id", 0),
            Bits("mask_chip_key", 1),
            Bits("vlek_en", 2),
            Bits("feature_info", 3),
            Bits("rapl_dis", 4),
            Bits("ciphertext_hiding_cap", 5),
            Bits("ciphertext_hiding_en", 6),
        ),
        u32(0x0C, "guest_count"),
        u64(0x10, "current_tcb"),
        u64(0x18, "reported_tcb"),
    ),
)
"""SNP_PLATFORM_STATUS output (0x20 bytes at STATUS_PADDR)."""

GUEST_STATUS_OUT = BufferLayout(
    "SNP_GUEST_STATUS output",
    0x20,
    (
        u64(0x00, "policy"),
        u32(0x08, "asid"),
        u8(0x0C, "state"),
        bits(0x10, 4, Bits("vcek_disabled", 0)),
    ),
)
"""SNP_GUEST_STATUS output (0x20 bytes at STATUS_PADDR)."""

FEATURE_INFO_OUT = BufferLayout(
    "SNP_FEATURE_INFO output",
    0x10,
    (u32(0x00, "eax"), u32(0x04, "ebx"), u32(0x08, "ecx"), u32(0x0C, "edx")),
)
"""SNP_FEATURE_INFO output: the four CPUID-style registers."""

RANGE_LIST_HEADER = BufferLayout("RANGE_LIST header", 0x08, (u32(0x00, "count"),))
RANGE = BufferLayout("RANGE", 0x10, (u64(0x00, "base"), u32(0x08, "page_count")))
"""RANGE_LIST: a u32 count and u32 MBZ, then ``count`` 16-byte ranges, all in one page."""
RANGE_LIST_MAX = 255
