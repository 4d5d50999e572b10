"""SEV_FEATURES: the per-vCPU feature word at VMSA offset 0x3B0.

The hypervisor (or, for VMSAs the guest creates, the guest) writes SEV_FEATURES into
the VMSA before the page becomes a VMSA; the CPU enforces the selected features for
that vCPU on every VMRUN.  Inside the guest, MSR SEV_STATUS (0xC001_0131) reports
SEV_FEATURES bit *n* as its bit *n + 2* (SEV_STATUS bit 0 = SEV, 1 = SEV-ES,
2 = SNP), see :func:`features_from_sev_status`.

Bit assignments: vmsa-layout.md §3.1 (the ``sev`` crate, COCONUT-SVSM, Linux
``SVM_SEV_FEAT_*``).  Bits 10, 12, 16 and 21 come from a single source each.
"""

from __future__ import annotations

from enum import IntFlag

from binlayout.enums import IntFlagBase, fast_enum

from .layout import U64_MASK

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final


@fast_enum(IntFlag)
class SevFeatures(IntFlagBase):
    """SEV_FEATURES bits, each with its explicit bit position."""

    SNP_ACTIVE = 1 << 0
    """The vCPU runs as an SEV-SNP guest; required for every SNP VMSA (KVM forces it)."""
    VTOM = 1 << 1
    """Virtual top-of-memory: addresses below VIRTUAL_TOM (0x3C8) are private."""
    REFLECT_VC = 1 << 2
    """#VC exceptions are reflected to the hypervisor as automatic exits."""
    RESTRICTED_INJECTION = 1 << 3
    """The hypervisor may inject only #HV (restricted interrupt injection)."""
    ALTERNATE_INJECTION = 1 << 4
    """Interrupts are injected through a VMPL0-owned VMSA (alternate injection)."""
    DEBUG_SWAP = 1 << 5
    """The CPU swaps the debug registers (DR0-DR3, masks, DR6/DR7) on world switch."""
    PREVENT_HOST_IBS = 1 << 6
    """The host may not use IBS while this guest runs."""
    BTB_ISOLATION = 1 << 7
    """Branch-target-buffer isolation between host and guest."""
    VMPL_SSS = 1 << 8
    """VMPL supervisor shadow stacks."""
    SECURE_TSC = 1 << 9
    """Secure TSC; the firmware fills GUEST_TSC_SCALE/OFFSET at LAUNCH_UPDATE."""
    VMGEXIT_PARAMETER = 1 << 10
    """VMGEXIT parameter support (single source: the ``sev`` crate)."""
    IBS_VIRTUALIZATION = 1 << 12
    """IBS virtualisation (single source: the ``sev`` crate)."""
    VMSA_REG_PROT = 1 << 14
    """Register protection: the firmware XORs selected quadwords with REG_PROT_NONCE."""
    SMT_PROTECTION = 1 << 15
    """SMT protection: the sibling thread is idled while the guest runs."""
    SECURE_AVIC = 1 << 16
    """Secure AVIC (single source: a QEMU patch)."""
    IBPB_ON_ENTRY = 1 << 21
    """IBPB on every VMRUN into this guest (single source: a Linux patch)."""


INT_INJ_MODES: Final = SevFeatures.RESTRICTED_INJECTION | SevFeatures.ALTERNATE_INJECTION
"""The interrupt-injection-mode bits (Linux ``SVM_SEV_FEAT_INT_INJ_MODES``)."""

DEFINED_SEV_FEATURES: Final = SevFeatures(sum(int(m) for m in SevFeatures))
"""Every bit this package knows a meaning for."""

RESERVED_SEV_FEATURES: Final[int] = U64_MASK & ~int(DEFINED_SEV_FEATURES)
"""Bits with no known meaning: 11, 13, 17-20 and 22-63.

Bit 63 is the "valid" bit of the VMCB ALLOWED_SEV_FEATURES control field, not a
VMSA feature, so it is reserved here too (Linux ``svm.h``).
"""


def features_from_sev_status(sev_status: int) -> SevFeatures:
    """SEV_FEATURES as a guest sees it in MSR SEV_STATUS (0xC001_0131): bits 63:2 >> 2."""
    if not 0 <= sev_status <= U64_MASK:
        raise ValueError(f"SEV_STATUS {sev_status:#x} is not a 64-bit value")
    return SevFeatures(sev_status >> 2)
