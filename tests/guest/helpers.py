"""Shared setup for the guest runtime tests: a KVM-launched sample guest, its BSP booted with
a registered GHCB, and VMSAs to start.

Protocol constants the tests compare with are typed by hand from
``shared/reference/rmp-and-instructions.md`` §7 and ``vmsa-layout.md`` §3.1, not taken from
the model's enums.
"""

from __future__ import annotations

from typing import Any

import vmsa
from sp_emu.guest import GuestSoftware, PscOp, Svsm
from sp_emu.hypervisors import LaunchOptions
from sp_emu.hypervisors.kvm_runtime import KVM_SNP, KvmRuntimePolicy, KvmVm
from sp_emu.images import build_sample_ovmf, snp_launch_plan
from sp_emu.platform import Platform

MEM = 64 << 20
PAGE = 0x1000
CPU_SIG = 0x00800F12
AP_EIP = 0x80B004
"""The sample OVMF's SEV-ES AP reset address."""
GHCB_GPA = 0x100000
VMSA_GPA = 0x101000
"""A page-aligned GPA that is not 2 MiB aligned."""
DATA_GPA = 0x102000
GHCB2_GPA = 0x104000
"""A second GHCB, for another vCPU."""
KVM_VMSA_GPA = 0xFFFFFFFFF000

# GHCB protocol values (rmp-and-instructions.md §7).
AP_CREATION = 0x8000_0013
HV_FEATURES = 0x8000_FFFD
CREATE_ON_INIT, CREATE, DESTROY = 0, 1, 2
MALFORMED = 2
MISSING_INPUT, INVALID_INPUT, INVALID_EVENT = 4, 5, 6
INVALID_USAGE = 2

# SEV_FEATURES bits (vmsa-layout.md §3.1).
SNP_ACTIVE = 1 << 0
RESTRICTED_INJECTION = 1 << 3
ALTERNATE_INJECTION = 1 << 4
DEBUG_SWAP = 1 << 5
VMSA_REG_PROT = 1 << 14

PLAN = snp_launch_plan(build_sample_ovmf())


def launch_vm(
    vcpus: int = 2,
    *,
    policy: KvmRuntimePolicy = KVM_SNP,
    sev_features: int = SNP_ACTIVE,
    asid: int = 1,
    platform: Platform | None = None,
) -> KvmVm:
    """The sample OVMF guest launched by KVM on a 64 MiB machine."""
    p = platform or Platform(memory=MEM)
    opts = LaunchOptions(vcpus=vcpus, sev_features=sev_features, asid=asid)
    return KvmVm.launch(p, PLAN, opts, policy=policy)


def boot(vm: KvmVm, apic_id: int = 0) -> GuestSoftware:
    """Run ``apic_id`` and give it a shared, registered GHCB at GHCB_GPA."""
    guest = GuestSoftware(vm.run(apic_id))
    assert guest.page_state_change(GHCB_GPA, PscOp.SHARED) == 0
    guest.register_ghcb(GHCB_GPA)
    return guest


def boot_svsm(vm: KvmVm, apic_id: int = 0) -> Svsm:
    svsm = Svsm(vm.run(apic_id))
    assert svsm.page_state_change(GHCB_GPA, PscOp.SHARED) == 0
    svsm.register_ghcb(GHCB_GPA)
    return svsm


def ap_vmsa(eip: int = 0x1234_5678, **changes: Any) -> vmsa.Vmsa:
    """An AP VMSA starting at ``eip`` with the VM's default features."""
    v = vmsa.build_ap(vmsa.QEMU, eip=eip, sev_features=SNP_ACTIVE, cpu_sig=CPU_SIG)
    return v.replace(**changes) if changes else v


def lower_vmsa(vmpl: int, eip: int = 0x20_1000, **changes: Any) -> vmsa.Vmsa:
    v = vmsa.build_lower_vmpl(
        vmsa.QEMU, vmpl=vmpl, sev_features=SNP_ACTIVE, cpu_sig=CPU_SIG, eip=eip
    )
    return v.replace(**changes) if changes else v


def second_vm(vm: KvmVm, asid: int = 2, vcpus: int = 1) -> KvmVm:
    """Another guest on ``vm``'s host, sharing its page allocator."""
    opts = LaunchOptions(vcpus=vcpus, asid=asid)
    return KvmVm.launch(vm.p, PLAN, opts, alloc=vm.alloc)
