"""Pure functions that build initial VMSAs from a :class:`vmsa.profiles.VmsaProfile`.

What they model: right before SNP_LAUNCH_FINISH, KVM writes each vCPU's RESET state
into that vCPU's VMSA page and the firmware measures the pages in vCPU order
(launch-measurement.md §3, §9.1).  vCPU 0, the bootstrap processor (BSP), starts at the
reset vector 0xFFFFFFF0.  The application processors (APs) of an OVMF guest start at
the EIP published in OVMF's SEV-ES reset block: QEMU puts its upper 16 bits in the CS
base and its lower 16 bits in RIP, so the AP fetches its first instruction at
CS.base + RIP = EIP while still in real mode.

Every hypervisor difference lives in the profile; nothing here asks which hypervisor
it is.  The functions validate nothing about SEV_FEATURES (a builder must be able to
produce invalid pages for tests); use :func:`vmsa.validate.check_vmsa` for that.
"""

from __future__ import annotations

from .layout import U64_MASK
from .model import Segment, Vmsa
from .profiles import RESET_EIP, VmsaProfile

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

U32_MAX: Final = 0xFFFF_FFFF
MAX_VMPL: Final = 3


def _reset_state(
    profile: VmsaProfile,
    *,
    eip: int,
    cs_attrib: int,
    sev_features: int,
    cpu_sig: int,
    vmpl: int = 0,
) -> Vmsa:
    """The VMSA of a vCPU that leaves RESET (or INIT-SIPI) at ``eip``."""
    if not 0 <= eip <= U64_MASK:
        raise ValueError(f"eip {eip:#x} is not a valid address")
    if not 0 <= cpu_sig <= U32_MAX:
        raise ValueError(f"cpu_sig {cpu_sig:#x} is not a 32-bit CPUID signature")
    return Vmsa(
        es=profile.es,
        cs=Segment(
            selector=profile.cs_selector,
            attrib=cs_attrib,
            limit=profile.cs_limit,
            base=eip & profile.cs_base_mask,
        ),
        ss=profile.ss,
        ds=profile.ds,
        fs=profile.fs,
        gs=profile.gs,
        gdtr=profile.gdtr,
        ldtr=profile.ldtr,
        idtr=profile.idtr,
        tr=profile.tr,
        vmpl=vmpl,
        efer=profile.efer,
        cr4=profile.cr4,
        cr3=profile.cr3,
        cr0=profile.cr0,
        dr7=profile.dr7,
        dr6=profile.dr6,
        rflags=profile.rflags,
        rip=eip & profile.rip_mask,
        g_pat=profile.g_pat,
        rdx=cpu_sig if profile.rdx is None else profile.rdx,
        sev_features=sev_features,
        xcr0=profile.xcr0,
        mxcsr=profile.mxcsr,
        x87_ftw=profile.x87_ftw,
        x87_fsw=profile.x87_fsw,
        x87_fcw=profile.x87_fcw,
    )


def build_bsp(
    profile: VmsaProfile,
    *,
    sev_features: int,
    cpu_sig: int,
    eip: int = RESET_EIP,
) -> Vmsa:
    """The initial VMSA of the bootstrap processor (vCPU 0), at VMPL0.

    ``cpu_sig`` is the vCPU model's CPUID Fn0000_0001_EAX (see
    :mod:`vmsa.cpu_types`); it lands in RDX unless the profile fixes RDX.  ``eip``
    is the reset vector unless the profile starts somewhere else (e.g. an SVSM entry).
    """
    return _reset_state(
        profile,
        eip=eip,
        cs_attrib=profile.cs_attrib_bsp,
        sev_features=sev_features,
        cpu_sig=cpu_sig,
    )


def build_ap(profile: VmsaProfile, *, eip: int, sev_features: int, cpu_sig: int) -> Vmsa:
    """The initial VMSA of an application processor that starts at ``eip``, at VMPL0.

    For OVMF guests ``eip`` is the SEV-ES reset block value (launch-measurement.md
    §9.2); CS.base and RIP are derived from it through the profile's masks.
    """
    return _reset_state(
        profile,
        eip=eip,
        cs_attrib=profile.cs_attrib_ap,
        sev_features=sev_features,
        cpu_sig=cpu_sig,
    )


def build_lower_vmpl(
    profile: VmsaProfile,
    *,
    vmpl: int,
    sev_features: int,
    cpu_sig: int,
    eip: int | None = None,
) -> Vmsa:
    """A VMSA that runs at ``vmpl`` (1-3), in the profile's RESET state.

    Such VMSAs are created by VMPL0 software (e.g. an SVSM starting the guest OS at
    VMPL2), not by the hypervisor, and are never part of the launch measurement
    (vmsa-layout.md §5.2).  With ``eip=None`` the vCPU starts at the reset vector with
    the BSP's CS attributes, otherwise at ``eip`` with the AP's.  Register values other
    than VMPL follow the profile; what a given SVSM really writes is not modelled.
    """
    if not 1 <= vmpl <= MAX_VMPL:
        raise ValueError(f"a lower-VMPL VMSA needs VMPL 1..{MAX_VMPL}, got {vmpl}")
    return _reset_state(
        profile,
        eip=RESET_EIP if eip is None else eip,
        cs_attrib=profile.cs_attrib_bsp if eip is None else profile.cs_attrib_ap,
        sev_features=sev_features,
        cpu_sig=cpu_sig,
        vmpl=vmpl,
    )


def build_vcpus(
    profile: VmsaProfile,
    *,
    vcpus: int,
    sev_features: int,
    cpu_sig: int,
    ap_eip: int | None = None,
    bsp_eip: int = RESET_EIP,
) -> tuple[Vmsa, ...]:
    """The initial VMSAs of ``vcpus`` vCPUs in measurement order: the BSP, then the APs.

    ``ap_eip`` is required when there is more than one vCPU.
    """
    if vcpus < 1:
        raise ValueError(f"a guest needs at least one vCPU, got {vcpus}")
    bsp = build_bsp(profile, sev_features=sev_features, cpu_sig=cpu_sig, eip=bsp_eip)
    if vcpus == 1:
        return (bsp,)
    if ap_eip is None:
        raise ValueError("ap_eip is required for more than one vCPU")
    ap = build_ap(profile, eip=ap_eip, sev_features=sev_features, cpu_sig=cpu_sig)
    return (bsp, *([ap] * (vcpus - 1)))
