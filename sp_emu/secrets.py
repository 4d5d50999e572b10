"""The secrets page the firmware writes for LAUNCH_UPDATE type SECRETS (version 3;
launch-measurement.md §5)."""

from __future__ import annotations

from sp_emu.abi.launch import SECRETS_PAGE
from sp_emu.products import Product
from sp_emu.state import GuestContext

SECRETS_VERSION = 3
VMSA_TWEAK_BITMAP = bytes.fromhex(
    "0000000000800088"
    "00000000eeff0000"
    "f0ffffffffffffff"
    "ff3f000000000000"
    "000000000000ffff"
    "ffffffffffffffff"
    "ffffffffffffffff"
    "ffffffffffffff00"
)
"""Quadwords of a VMSA the register-protection tweak covers (bit k: quadword k), FW 1.55:
RIP, RSP, RAX, RCX-R15, the x87/XMM/YMM area and the AVX-512 areas."""


def apply_vmsa_tweak(page: bytearray, nonce: int) -> None:
    """XOR every quadword of a VMSA that the register-protection bitmap covers with
    ``nonce`` (VmsaRegProt).  The firmware does it after measuring a VMSA; the CPU undoes it
    when loading one; XOR makes the two the same operation."""
    bitmap = int.from_bytes(VMSA_TWEAK_BITMAP, "little")
    for q in range(len(page) // 8):
        if bitmap >> q & 1:
            value = int.from_bytes(page[8 * q : 8 * q + 8], "little") ^ nonce
            page[8 * q : 8 * q + 8] = value.to_bytes(8, "little")


def secrets_page(guest: GuestContext, product: Product) -> bytes:
    """The 4 KiB page: version, IMI_EN, the platform's FMS, GOSVW, the guest's four VMPCKs,
    the VMSA tweak bitmap and the TSC factor; everything else zero."""
    return SECRETS_PAGE.build(
        {
            "version": SECRETS_VERSION,
            "imi_en": int(guest.imi_en),
            "fms": product.fms,
            "gosvw": guest.gosvw,
            "vmpck0": guest.vmpck[0],
            "vmpck1": guest.vmpck[1],
            "vmpck2": guest.vmpck[2],
            "vmpck3": guest.vmpck[3],
            "vmsa_tweak_bitmap": VMSA_TWEAK_BITMAP,
            "tsc_factor": product.tsc_factor,
        }
    )
