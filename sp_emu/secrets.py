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
