"""VMRUN from a VMSA page: registers come from the guest-encrypted page, and each check on
the page's RMP entry and on its VMPL and SEV_FEATURES fields makes VMRUN fail with
VMEXIT_INVALID, naming the check."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from rmp import RmpResult
from sp_emu.cpu import GuestCpu, VmrunFailed
from sp_emu.guest import GuestSoftware, Vmcb, VmrunCheck, VmrunError
from sp_emu.hypervisors.kvm_runtime import KVM_SNP_MULTI_VMPL, KvmVm
from tests.guest.helpers import (
    CPU_SIG,
    DEBUG_SWAP,
    KVM_VMSA_GPA,
    PAGE,
    SNP_ACTIVE,
    VMSA_GPA,
    VMSA_REG_PROT,
    ap_vmsa,
    boot,
    launch_vm,
    second_vm,
)

RIP_OFFSET = 0x178
NONCE_OFFSET = 0x300


def test_bsp_runs_from_its_measured_vmsa() -> None:
    vm = launch_vm(1)
    spa = vm.vcpu(0).initial_vmsa_pa
    running = vm.run(0)
    assert running.rip == 0xFFF0
    assert running.regs.cs.base == 0xFFFF0000
    assert running.regs.rdx == CPU_SIG
    assert running.cpu == GuestCpu(vm.asid, 0)
    assert running.vmcb.vmsa_pa == spa
    rc, readout = vm.p.cpu.rmpread(spa)
    assert rc is RmpResult.SUCCESS and readout is not None
    assert readout.entry.vmsa and readout.entry.validated
    assert readout.entry.gpa == KVM_VMSA_GPA and readout.entry.asid == vm.asid


def test_registers_are_read_through_the_guest_key() -> None:
    vm = launch_vm(1)
    host_view = vm.p.cpu.host_read(vm.vcpu(0).initial_vmsa_pa + RIP_OFFSET, 8)
    assert int.from_bytes(host_view, "little") != 0xFFF0  # the host sees ciphertext
    assert vm.run(0).rip == 0xFFF0


def test_register_protection_is_removed_on_entry() -> None:
    vm = launch_vm(1, sev_features=SNP_ACTIVE | VMSA_REG_PROT)
    spa = vm.vcpu(0).initial_vmsa_pa
    plain = vm.p.memory.read(spa, PAGE, vm.p.fw.asid_keys[vm.asid])  # test-only peek
    nonce = int.from_bytes(plain[NONCE_OFFSET : NONCE_OFFSET + 8], "little")
    assert nonce
    assert int.from_bytes(plain[RIP_OFFSET : RIP_OFFSET + 8], "little") == 0xFFF0 ^ nonce
    running = vm.run(0)
    assert running.rip == 0xFFF0
    assert running.regs.sev_features == SNP_ACTIVE | VMSA_REG_PROT


# --- each check, with a VMCB the (possibly malicious) hypervisor builds ----------------------
def _guest_page(vm: KvmVm, vmsa_bit: bool, **changes: Any) -> int:
    """A guest page holding an AP VMSA (with ``changes``), VMSA bit per ``vmsa_bit``."""
    guest = GuestSoftware(vm.run(0))
    vm.map_private(VMSA_GPA)
    assert guest.pvalidate(VMSA_GPA).result is RmpResult.SUCCESS
    if vmsa_bit:
        assert guest.make_vmsa(VMSA_GPA, ap_vmsa(**changes)) is RmpResult.SUCCESS
    else:
        guest.write(VMSA_GPA, ap_vmsa(**changes).to_bytes())
    spa = vm.private_spa(VMSA_GPA)
    assert spa is not None
    return spa


def _not_activated(vm: KvmVm) -> Vmcb:
    return Vmcb(vm.asid + 5, vm.vcpu(0).initial_vmsa_pa, vm.sev_features)


def _misaligned(vm: KvmVm) -> Vmcb:
    return Vmcb(vm.asid, vm.vcpu(0).initial_vmsa_pa + 0x10, vm.sev_features)


def _beyond_memory(vm: KvmVm) -> Vmcb:
    return Vmcb(vm.asid, vm.p.config.memory, vm.sev_features)


def _hypervisor_page(vm: KvmVm) -> Vmcb:
    return Vmcb(vm.asid, vm.alloc.page(), vm.sev_features)


def _firmware_page(vm: KvmVm) -> Vmcb:
    return Vmcb(vm.asid, vm.result.gctx, vm.sev_features)


def _other_guests_vmsa(vm: KvmVm) -> Vmcb:
    other = second_vm(vm)
    return Vmcb(vm.asid, other.vcpu(0).initial_vmsa_pa, vm.sev_features)


def _immutable(vm: KvmVm) -> Vmcb:
    spa = vm.vcpu(0).initial_vmsa_pa
    rc = vm.p.cpu.rmpupdate(spa, assigned=True, immutable=True, asid=vm.asid, gpa=KVM_VMSA_GPA)
    assert rc is RmpResult.SUCCESS
    return Vmcb(vm.asid, spa, vm.sev_features)


def _rescinded(vm: KvmVm) -> Vmcb:
    spa = _guest_page(vm, True)
    guest = GuestSoftware(vm.run(0))
    assert guest.pvalidate(VMSA_GPA, validate=False).result is RmpResult.SUCCESS
    return Vmcb(vm.asid, spa, vm.sev_features)


def _no_vmsa_bit(vm: KvmVm) -> Vmcb:
    return Vmcb(vm.asid, _guest_page(vm, False), vm.sev_features)


def _vmpl_4(vm: KvmVm) -> Vmcb:
    return Vmcb(vm.asid, _guest_page(vm, True, vmpl=4), vm.sev_features)


def _vmpl_mismatch(vm: KvmVm) -> Vmcb:
    return Vmcb(vm.asid, vm.vcpu(0).initial_vmsa_pa, vm.sev_features, vmpl=1)


def _snp_inactive(vm: KvmVm) -> Vmcb:
    return Vmcb(vm.asid, _guest_page(vm, True, sev_features=0), vm.sev_features)


def _features_differ(vm: KvmVm) -> Vmcb:
    features = SNP_ACTIVE | DEBUG_SWAP
    return Vmcb(vm.asid, _guest_page(vm, True, sev_features=features), vm.sev_features)


def _vmcb_features_differ(vm: KvmVm) -> Vmcb:
    return Vmcb(vm.asid, vm.vcpu(0).initial_vmsa_pa, vm.sev_features | DEBUG_SWAP)


CASES: list[tuple[str, Callable[[KvmVm], Vmcb], VmrunCheck]] = [
    ("not activated", _not_activated, VmrunCheck.NOT_ACTIVATED),
    ("misaligned", _misaligned, VmrunCheck.VMSA_ADDRESS),
    ("beyond memory", _beyond_memory, VmrunCheck.VMSA_ADDRESS),
    ("hypervisor page", _hypervisor_page, VmrunCheck.NOT_ASSIGNED),
    ("firmware page", _firmware_page, VmrunCheck.OWNER),
    ("another guest's VMSA", _other_guests_vmsa, VmrunCheck.OWNER),
    ("immutable", _immutable, VmrunCheck.IMMUTABLE),
    ("not validated", _rescinded, VmrunCheck.NOT_VALIDATED),
    ("no VMSA bit", _no_vmsa_bit, VmrunCheck.NOT_VMSA),
    ("VMPL field 4", _vmpl_4, VmrunCheck.VMPL_INVALID),
    ("VMPL field mismatch", _vmpl_mismatch, VmrunCheck.VMPL_MISMATCH),
    ("no SNPActive", _snp_inactive, VmrunCheck.SNP_INACTIVE),
    ("VMSA features differ", _features_differ, VmrunCheck.FEATURES_MISMATCH),
    ("VMCB features differ", _vmcb_features_differ, VmrunCheck.FEATURES_MISMATCH),
]


@pytest.mark.parametrize(("setup", "check"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_vmrun_check_fails_with_vmexit_invalid(
    setup: Callable[[KvmVm], Vmcb], check: VmrunCheck
) -> None:
    vm = launch_vm(1)
    vmcb = setup(vm)
    with pytest.raises(VmrunError) as err:
        vm.p.cpu.vmrun(vmcb)
    assert err.value.check is check
    assert err.value.exit_code == 0xFFFF_FFFF_FFFF_FFFF
    assert isinstance(err.value, VmrunFailed)


def test_a_proper_guest_made_vmsa_passes() -> None:
    vm = launch_vm(1)
    spa = _guest_page(vm, True)
    running = vm.p.cpu.vmrun(Vmcb(vm.asid, spa, vm.sev_features))
    assert running.rip == 0x5678 and running.regs.cs.base == 0x12340000


# --- through KVM: KVM checks nothing about the page, VMRUN does ------------------------------
def _ap_create_then_run(vm: KvmVm, vmsa_bit: bool, **changes: Any) -> None:
    guest = boot(vm)
    guest.accept(VMSA_GPA)
    v = ap_vmsa(**changes)
    if vmsa_bit:
        assert guest.make_vmsa(VMSA_GPA, v) is RmpResult.SUCCESS
    else:
        guest.write(VMSA_GPA, v.to_bytes())
    result = guest.ap_creation(1, 1, VMSA_GPA, sev_features=vm.sev_features)
    assert result is not None and result.ok  # KVM accepted it
    vm.run(1)


def test_kvm_runs_a_page_without_the_vmsa_bit_and_vmrun_fails() -> None:
    with pytest.raises(VmrunError) as err:
        _ap_create_then_run(launch_vm(), False)
    assert err.value.check is VmrunCheck.NOT_VMSA


def test_kvm_cannot_see_the_vmsas_features_but_vmrun_can() -> None:
    with pytest.raises(VmrunError) as err:
        _ap_create_then_run(launch_vm(), True, sev_features=SNP_ACTIVE | DEBUG_SWAP)
    assert err.value.check is VmrunCheck.FEATURES_MISMATCH


def test_kvm_runs_an_invalid_vmpl_field_and_vmrun_fails() -> None:
    with pytest.raises(VmrunError) as err:
        _ap_create_then_run(launch_vm(), True, vmpl=7)
    assert err.value.check is VmrunCheck.VMPL_INVALID


def test_multi_vmpl_kvm_expects_the_requested_vmpl() -> None:
    vm = launch_vm(policy=KVM_SNP_MULTI_VMPL)
    guest = boot(vm)
    guest.accept(VMSA_GPA)
    assert guest.make_vmsa(VMSA_GPA, ap_vmsa(vmpl=1)) is RmpResult.SUCCESS
    result = guest.ap_creation(1, 1, VMSA_GPA, sev_features=vm.sev_features, vmpl=2)
    assert result is not None and result.ok
    with pytest.raises(VmrunError) as err:
        vm.run(1)
    assert err.value.check is VmrunCheck.VMPL_MISMATCH


def test_vmgexit_resumes_through_the_checks_again() -> None:
    """After a VMGEXIT the hypervisor VMRUNs the same VMSA again: if the page stopped being
    a proper VMSA meanwhile (here the host made it immutable), the resume fails."""
    vm = launch_vm(1)
    guest = boot(vm)
    spa = vm.vcpu(0).initial_vmsa_pa
    rc = vm.p.cpu.rmpupdate(spa, assigned=True, immutable=True, asid=vm.asid, gpa=KVM_VMSA_GPA)
    assert rc is RmpResult.SUCCESS
    with pytest.raises(VmrunError) as err:
        guest.hv_features()
    assert err.value.check is VmrunCheck.IMMUTABLE


def test_launch_vmsas_are_not_mapped_into_guest_memory() -> None:
    """KVM's launch VMSAs live in hypervisor pages with no guest address: the RMP records
    them at 0xFFFFFFFFF000, but the nested page table has no mapping there."""
    from sp_emu import Platform
    from sp_emu.hypervisors import KVM_INITIAL_VMSA_GPA, KVM_QEMU, LaunchOptions, launch
    from sp_emu.images import build_sample_ovmf, snp_launch_plan

    p = Platform()
    result = launch(p, snp_launch_plan(build_sample_ovmf()), KVM_QEMU, LaunchOptions(vcpus=2))
    assert len(result.vmsa_spas) == 2
    assert p.npt.translate(result.asid, KVM_INITIAL_VMSA_GPA) is None
    for spa in result.vmsa_spas:
        entry = p.rmp.entry(spa >> 12)
        assert entry.vmsa and entry.gpa == KVM_INITIAL_VMSA_GPA
