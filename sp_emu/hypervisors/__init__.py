"""Hypervisor models: how each hypervisor drives the SNP firmware (above the firmware; the
firmware never looks at them)."""

from sp_emu.hypervisors.base import (
    HostAllocator,
    HypervisorPolicy,
    Launcher,
    LaunchError,
    LaunchOptions,
    LaunchResult,
    MeasuredUnit,
    launch,
)
from sp_emu.hypervisors.kvm import EC2, GCE, KVM_INITIAL_VMSA_GPA, KVM_QEMU, KVM_QEMU_SVSM

POLICIES: dict[str, HypervisorPolicy] = {p.name: p for p in (KVM_QEMU, EC2, GCE, KVM_QEMU_SVSM)}
"""Every shipped policy by name."""

__all__ = [
    "EC2",
    "GCE",
    "KVM_INITIAL_VMSA_GPA",
    "KVM_QEMU",
    "KVM_QEMU_SVSM",
    "POLICIES",
    "HostAllocator",
    "HypervisorPolicy",
    "LaunchError",
    "LaunchOptions",
    "LaunchResult",
    "Launcher",
    "MeasuredUnit",
    "launch",
]
