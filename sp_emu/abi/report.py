"""ATTESTATION_REPORT: the 0x4A0-byte signed report, in each version the firmware writes
(attestation.md §4).

The versions share one layout and differ only in which reserved bytes became fields:

=======  ==========================================================================
version  adds
=======  ==========================================================================
2        (FW 1.55) the base layout; 0x188..0x19F and 0x1F8..0x29F reserved
3, 4     CPUID_FAM_ID / CPUID_MOD_ID / CPUID_STEP at 0x188..0x18A (4 has the v3
         layout: go-sev-guest ``abi.go``, virtee/sev ``snp.rs`` parse 3 and 4 alike)
5        LAUNCH_MIT_VECTOR at 0x1F8 and CURRENT_MIT_VECTOR at 0x200
=======  ==========================================================================

Each version's layout is declared once below from the shared members, so a field is
reserved exactly until the version that defines it.  The signature block at 0x2A0 holds R
and S (72 bytes each, little endian); the rest of the block is reserved.
"""

from __future__ import annotations

from binlayout import Bits, BufferLayout, Member, bits, blob, u8, u32, u64

REPORT_SIZE = 0x4A0
SIGNED_SIZE = 0x2A0
"""The signature covers bytes 0x000..0x29F."""
SIGNATURE_OFFSET = 0x2A0
SIGNATURE_SIZE = 0x200
SIGNATURE_ALGO_ECDSA_P384_SHA384 = 1

# SIGNING_KEY values (report 0x48 bits 4:2).
SIGNING_KEY_VCEK = 0
SIGNING_KEY_VLEK = 1
SIGNING_KEY_NONE = 7

# PLATFORM_INFO bits (§4.1).
PLATFORM_SMT_EN = 1 << 0
PLATFORM_TSME_EN = 1 << 1
PLATFORM_ECC_EN = 1 << 2
PLATFORM_RAPL_DIS = 1 << 3
PLATFORM_CIPHERTEXT_HIDING_EN = 1 << 4
PLATFORM_ALIAS_CHECK_COMPLETE = 1 << 5
PLATFORM_TIO_EN = 1 << 7

_COMMON: tuple[Member, ...] = (
    u32(0x000, "version"),
    u32(0x004, "guest_svn"),
    u64(0x008, "policy"),
    blob(0x010, 16, "family_id"),
    blob(0x020, 16, "image_id"),
    u32(0x030, "vmpl"),
    u32(0x034, "signature_algo"),
    u64(0x038, "current_tcb"),
    u64(0x040, "platform_info"),
    bits(0x048, 4, Bits("author_key_en", 0), Bits("mask_chip_key", 1), Bits("signing_key", 2, 3)),
    blob(0x050, 64, "report_data"),
    blob(0x090, 48, "measurement"),
    blob(0x0C0, 32, "host_data"),
    blob(0x0E0, 48, "id_key_digest"),
    blob(0x110, 48, "author_key_digest"),
    blob(0x140, 32, "report_id"),
    blob(0x160, 32, "report_id_ma"),
    u64(0x180, "reported_tcb"),
    blob(0x1A0, 64, "chip_id"),
    u64(0x1E0, "committed_tcb"),
    u8(0x1E8, "current_build"),
    u8(0x1E9, "current_minor"),
    u8(0x1EA, "current_major"),
    u8(0x1EC, "committed_build"),
    u8(0x1ED, "committed_minor"),
    u8(0x1EE, "committed_major"),
    u64(0x1F0, "launch_tcb"),
    blob(0x2A0, 72, "signature_r"),
    blob(0x2E8, 72, "signature_s"),
)
_CPUID: tuple[Member, ...] = (
    u8(0x188, "cpuid_fam_id"),
    u8(0x189, "cpuid_mod_id"),
    u8(0x18A, "cpuid_step"),
)
_MIT_VECTORS: tuple[Member, ...] = (
    u64(0x1F8, "launch_mit_vector"),
    u64(0x200, "current_mit_vector"),
)

REPORT_V2 = BufferLayout("ATTESTATION_REPORT v2", REPORT_SIZE, _COMMON)
REPORT_V3 = BufferLayout("ATTESTATION_REPORT v3", REPORT_SIZE, _COMMON + _CPUID)
REPORT_V5 = BufferLayout("ATTESTATION_REPORT v5", REPORT_SIZE, _COMMON + _CPUID + _MIT_VECTORS)

REPORT_LAYOUTS: dict[int, BufferLayout] = {2: REPORT_V2, 3: REPORT_V3, 4: REPORT_V3, 5: REPORT_V5}
"""The layout of each report version the emulator writes or reads."""


class UnsupportedReportVersion(ValueError):
    """A report VERSION with no known layout."""


def report_layout(version: int) -> BufferLayout:
    """The layout of report ``version`` (UnsupportedReportVersion if unknown)."""
    layout = REPORT_LAYOUTS.get(version)
    if layout is None:
        raise UnsupportedReportVersion(f"no attestation report version {version}")
    return layout
