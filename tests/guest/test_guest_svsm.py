"""An SVSM-style run: VMPL0 software starts the guest OS at VMPL2 from a VMSA it built, the OS
cannot touch its own VMSA, and VMPL0 reads and edits it (rmp-and-instructions.md §5.4)."""

from __future__ import annotations

import pytest

from rmp import FaultVector, RmpCheck, RmpFault, RmpResult
from sp_emu.guest import (
    GhcbProtocolError,
    GuestSoftware,
    Svsm,
    SvsmError,
    VmrunCheck,
    VmrunError,
)
from sp_emu.hypervisors.kvm_runtime import KVM_SNP, KVM_SNP_MULTI_VMPL, KvmVm
from tests.guest.helpers import (
    CREATE,
    GHCB_GPA,
    INVALID_INPUT,
    MALFORMED,
    SNP_ACTIVE,
    ap_vmsa,
    boot_svsm,
    launch_vm,
    lower_vmsa,
)

OS_CODE = 0x201000
OS_DATA = 0x202000
OS_VMSA = 0x203000
"""Not 2 MiB aligned, as KVM requires."""
SVSM_PRIVATE = 0x204000
"""An SVSM page the OS is never granted."""

PF_WRITE = 1 << 1
PF_RMP = 1 << 31
PF_VMPL = 1 << 36
RW = 0b0011
RWX = 0b1111


def _svsm_starts_os(vm: KvmVm, apic: int = 0) -> Svsm:
    """The SVSM on vCPU 0 prepares memory and a VMPL2 VMSA and runs it on ``apic``."""
    svsm = boot_svsm(vm)
    svsm.accept(OS_CODE, 4)  # code, data, the VMSA page and the SVSM's own page
    svsm.grant(OS_CODE, 1, 2, RWX)
    svsm.grant(OS_DATA, 1, 2, RW)
    svsm.grant(OS_VMSA, 1, 2, RWX)  # even if once granted, make_lower_vmsa revokes it
    svsm.write(OS_CODE, b"\x90\x90\xf4")
    result = svsm.launch_lower(apic, OS_VMSA, lower_vmsa(2, eip=OS_CODE))
    assert (result is None) == (apic == 0)
    return svsm


def test_svsm_runs_the_os_at_vmpl2_end_to_end() -> None:
    vm = launch_vm(1, policy=KVM_SNP_MULTI_VMPL)
    svsm = _svsm_starts_os(vm)
    assert not svsm.vcpu.active  # vCPU 0 now runs the VMPL2 VMSA

    # The OS runs at VMPL2: VMRUN's checks passed with VMPL field 2 where KVM expected 2.
    os_vcpu = vm.run(0)
    assert os_vcpu.vmpl == 2 and os_vcpu.vmcb.vmpl == 2
    assert os_vcpu.cpu.vmpl == 2
    assert os_vcpu.vmcb.vmsa_pa == vm.private_spa(OS_VMSA)
    assert (os_vcpu.regs.cs.base + os_vcpu.rip) == OS_CODE
    guest_os = GuestSoftware(os_vcpu)
    assert guest_os.fetch(OS_CODE, 3) == b"\x90\x90\xf4"
    guest_os.write(OS_DATA, b"os data")
    assert guest_os.read(OS_DATA, 7) == b"os data"

    # Its own VMSA is out of reach: reads and writes fault with the VMPL bit.
    for attempt in (
        lambda: guest_os.read(OS_VMSA, 8),
        lambda: guest_os.write(OS_VMSA + 0x178, bytes(8)),
    ):
        with pytest.raises(RmpFault) as fault:
            attempt()
        assert fault.value.vector is FaultVector.NPF
        assert fault.value.check is RmpCheck.VMPL_PERMISSION
        assert fault.value.error_code & (PF_RMP | PF_VMPL) == PF_RMP | PF_VMPL
    with pytest.raises(RmpFault):
        guest_os.read(SVSM_PRIVATE, 8)

    # VMPL2 can neither validate pages nor make VMSAs.
    with pytest.raises(RmpFault) as fault:
        guest_os.pvalidate(OS_DATA, validate=False)
    assert fault.value.vector is FaultVector.GP
    assert guest_os.rmpadjust(OS_DATA, target_vmpl=3, perms=0, vmsa=True) is RmpResult.SUCCESS
    rc, readout = vm.p.cpu.rmpread(vm.private_spa(OS_DATA) or 0)
    assert rc is RmpResult.SUCCESS and readout is not None and not readout.entry.vmsa

    # The OS calls the SVSM (RUN_AT_VMPL 0); VMPL0 reads and edits the VMPL2 VMSA by GPA.
    assert guest_os.run_at_vmpl(0) is None
    svsm = Svsm(vm.run(0), ghcb_gpa=GHCB_GPA)
    assert svsm.vmpl == 0 and svsm.vcpu.vmcb.vmsa_pa == vm.vcpu(0).initial_vmsa_pa
    lower = svsm.read_vmsa(OS_VMSA)
    assert lower.vmpl == 2 and lower.cs.base + lower.rip == OS_CODE
    svsm.write_vmsa(OS_VMSA, lower.replace(rip=lower.rip + 2, rax=0x5EC))
    assert svsm.run_at_vmpl(2) is None

    # The OS resumes with the registers VMPL0 wrote, and RUN_AT_VMPL's answer (0) in its MSR.
    resumed = GuestSoftware(vm.run(0))
    assert resumed.vmpl == 2
    assert resumed.vcpu.rip == lower.rip + 2 and resumed.vcpu.regs.rax == 0x5EC
    assert resumed.vcpu.rdmsr_ghcb() == 0x017


def test_the_vmsa_page_is_revoked_before_the_vmsa_bit_is_set() -> None:
    vm = launch_vm(1, policy=KVM_SNP_MULTI_VMPL)
    svsm = boot_svsm(vm)
    svsm.accept(OS_VMSA)
    svsm.grant(OS_VMSA, 1, 2, RWX)
    svsm.make_lower_vmsa(OS_VMSA, lower_vmsa(2))
    rc, readout = vm.p.cpu.rmpread(vm.private_spa(OS_VMSA) or 0)
    assert rc is RmpResult.SUCCESS and readout is not None
    assert readout.entry.vmsa
    assert readout.entry.perms[1:] == (0, 0, 0)
    # ... and undone: an ordinary page VMPL2 may use again.
    svsm.clear_lower_vmsa(OS_VMSA, 2, RW)
    rc, readout = vm.p.cpu.rmpread(vm.private_spa(OS_VMSA) or 0)
    assert readout is not None and not readout.entry.vmsa and readout.entry.perms[2] == RW


def test_svsm_runs_the_os_on_another_vcpu() -> None:
    """VMPL0 keeps vCPU 0 and starts the OS at VMPL2 on vCPU 1, then looks at its VMSA while
    it runs elsewhere."""
    vm = launch_vm(2, policy=KVM_SNP_MULTI_VMPL)
    svsm = _svsm_starts_os(vm, apic=1)
    assert svsm.vcpu.active
    os_vcpu = vm.run(1)
    assert os_vcpu.vmpl == 2 and vm.vcpu(1).current_vmpl == 2
    assert svsm.read_vmsa(OS_VMSA).vmpl == 2


def test_upstream_kvm_refuses_a_vmpl_target() -> None:
    vm = launch_vm(1, policy=KVM_SNP)
    svsm = boot_svsm(vm)
    svsm.accept(OS_VMSA)
    with pytest.raises(GhcbProtocolError, match="refused"):
        svsm.launch_lower(0, OS_VMSA, lower_vmsa(2))
    answer = svsm.ghcb_answer()
    assert (answer.exit_info1, answer.exit_info2) == (MALFORMED, INVALID_INPUT)


def test_vmpl0_vmsa_is_replaced_only_from_another_vcpu_at_vmpl0() -> None:
    vm = launch_vm(1, policy=KVM_SNP_MULTI_VMPL)
    svsm = boot_svsm(vm)
    svsm.accept(OS_VMSA)
    assert svsm.make_vmsa(OS_VMSA, ap_vmsa()) is RmpResult.SUCCESS
    result = svsm.ap_creation(CREATE, 0, OS_VMSA, sev_features=SNP_ACTIVE, vmpl=0)
    assert result is not None and (result.exit_info1, result.exit_info2) == (
        MALFORMED,
        INVALID_INPUT,
    )


def test_vmsa_vmpl_field_must_match_the_requested_vmpl() -> None:
    vm = launch_vm(2, policy=KVM_SNP_MULTI_VMPL)
    svsm = boot_svsm(vm)
    svsm.accept(OS_VMSA)
    svsm.make_lower_vmsa(OS_VMSA, lower_vmsa(1))
    result = svsm.ap_creation(CREATE, 1, OS_VMSA, sev_features=SNP_ACTIVE, vmpl=2)
    assert result is not None and result.ok
    with pytest.raises(VmrunError) as err:
        vm.run(1)
    assert err.value.check is VmrunCheck.VMPL_MISMATCH


def test_only_vmpl0_can_be_an_svsm_and_lower_vmpls_cannot_grant_upwards() -> None:
    vm = launch_vm(1, policy=KVM_SNP_MULTI_VMPL)
    _svsm_starts_os(vm)
    os_vcpu = vm.run(0)
    with pytest.raises(ValueError, match="VMPL0"):
        Svsm(os_vcpu)
    guest_os = GuestSoftware(os_vcpu)
    # VMPL2 cannot change VMPL1's (more privileged) permissions, nor give VMPL3 more than it has.
    assert guest_os.rmpadjust(OS_DATA, target_vmpl=1, perms=RW) is RmpResult.FAIL_PERMISSION
    assert guest_os.rmpadjust(OS_DATA, target_vmpl=3, perms=RWX) is RmpResult.FAIL_PERMISSION
    assert guest_os.rmpadjust(OS_DATA, target_vmpl=3, perms=RW) is RmpResult.SUCCESS


def test_a_refused_rmpadjust_is_an_svsm_error() -> None:
    vm = launch_vm(1, policy=KVM_SNP_MULTI_VMPL)
    svsm = boot_svsm(vm)
    svsm.accept(OS_DATA)
    with pytest.raises(SvsmError, match="FAIL_INPUT"):
        svsm.grant(OS_DATA, 1, 2, 0x20)  # a reserved permission bit
    with pytest.raises(SvsmError, match="FAIL_PERMISSION"):
        svsm.grant(OS_DATA, 1, 0)  # VMPL0's own mask cannot be adjusted
