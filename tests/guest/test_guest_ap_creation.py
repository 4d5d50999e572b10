"""APs: the guest's AP Creation NAE event with KVM's checks, and INIT-SIPI onto the VMSAs
KVM measured at launch (rmp-and-instructions.md §7.4, vmsa-layout.md §5.2)."""

from __future__ import annotations

import functools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rmp import RmpResult
from sp_emu.guest import GuestSoftware, PscOp
from sp_emu.hypervisors.kvm_runtime import (
    KVM_SNP,
    KVM_SNP_6_11,
    KvmError,
    KvmRuntimePolicy,
    KvmVm,
    MpState,
    VcpuNotRunnable,
)
from tests.guest.helpers import (
    ALTERNATE_INJECTION,
    AP_CREATION,
    AP_EIP,
    CREATE,
    CREATE_ON_INIT,
    DEBUG_SWAP,
    DESTROY,
    GHCB2_GPA,
    GHCB_GPA,
    HV_FEATURES,
    INVALID_EVENT,
    INVALID_INPUT,
    INVALID_USAGE,
    KVM_VMSA_GPA,
    MALFORMED,
    MISSING_INPUT,
    PAGE,
    RESTRICTED_INJECTION,
    SNP_ACTIVE,
    VMSA_GPA,
    ap_vmsa,
    boot,
    launch_vm,
)


def _bsp_with_vmsa(vm: KvmVm, gpa: int = VMSA_GPA, **changes: Any) -> GuestSoftware:
    """The BSP, booted, with a VMSA made at ``gpa`` (accepted first)."""
    guest = boot(vm)
    guest.accept(gpa)
    assert guest.make_vmsa(gpa, ap_vmsa(**changes)) is RmpResult.SUCCESS
    return guest


# --- success -----------------------------------------------------------------------------------
def test_ap_create_starts_the_ap_from_the_guest_page() -> None:
    vm = launch_vm(2)
    guest = boot(vm)
    guest.accept(VMSA_GPA)
    assert vm.vcpu(1).mp_state is MpState.UNINITIALIZED
    result = guest.start_ap(1, VMSA_GPA, ap_vmsa(eip=0x0012_3456))
    assert result is not None
    assert (result.exit_info1, result.exit_info2) == (0, 0)
    assert guest.vcpu.active  # the BSP carries on
    ap = vm.run(1)
    assert ap.vmcb.vmsa_pa == vm.private_spa(VMSA_GPA)
    assert (ap.regs.cs.base, ap.rip) == (0x0012_0000, 0x3456)
    assert ap.cpu.vmpl == 0
    # The RMP entry is an ordinary guest page turned VMSA, at its real GPA.
    rc, readout = vm.p.cpu.rmpread(ap.vmcb.vmsa_pa)
    assert rc is RmpResult.SUCCESS and readout is not None
    assert readout.entry.vmsa and readout.entry.gpa == VMSA_GPA
    # The new AP speaks the GHCB protocol with its own GHCB.
    ap_guest = GuestSoftware(ap)
    assert ap_guest.page_state_change(GHCB2_GPA, PscOp.SHARED) == 0
    ap_guest.register_ghcb(GHCB2_GPA)
    result = ap_guest.nae(HV_FEATURES, 0, 0)
    assert result is not None and result.exit_info2 & 0b11 == 0b11


def test_ghcb_bytes_are_as_specified() -> None:
    vm = launch_vm(2)
    guest = _bsp_with_vmsa(vm)
    steps = vm.p.start_recording()
    result = guest.ap_creation(CREATE, 1, VMSA_GPA, sev_features=SNP_ACTIVE)
    assert result is not None and result.ok
    writes = [s for s in steps if s["op"] == "guest_write" and s["gpa"] == GHCB_GPA]
    assert len(writes) == 1 and writes[0]["private"] is False
    request = bytes.fromhex(writes[0]["data"])

    def q(page: bytes, off: int) -> int:
        return int.from_bytes(page[off : off + 8], "little")

    assert q(request, 0x390) == AP_CREATION
    assert q(request, 0x398) == (1 << 32) | CREATE
    assert q(request, 0x3A0) == VMSA_GPA
    assert q(request, 0x1F8) == SNP_ACTIVE
    valid = int.from_bytes(request[0x3F0:0x400], "little")
    assert valid == (1 << (0x1F8 // 8)) | (0b111 << (0x390 // 8))
    # KVM answered in place: cleared the valid bitmap, then set SW_EXITINFO1/2 (0, 0).
    answer = vm.p.cpu.host_read(vm.map_shared(GHCB_GPA)[0], PAGE)
    assert (q(answer, 0x398), q(answer, 0x3A0)) == (0, 0)
    assert int.from_bytes(answer[0x3F0:0x400], "little") == 0b11 << (0x398 // 8)


def test_ap_create_on_init_waits_for_init_sipi() -> None:
    vm = launch_vm(2)
    guest = _bsp_with_vmsa(vm)
    result = guest.ap_creation(CREATE_ON_INIT, 1, VMSA_GPA, sev_features=SNP_ACTIVE)
    assert result is not None and result.ok
    assert not vm.vcpu(1).update_requested
    with pytest.raises(VcpuNotRunnable):
        vm.run(1)
    vm.init_sipi(1)
    ap = vm.run(1)
    assert ap.vmcb.vmsa_pa == vm.private_spa(VMSA_GPA)
    assert ap.rip == 0x5678


def test_ap_destroy_halts_the_target_without_rax() -> None:
    vm = launch_vm(2)
    guest = _bsp_with_vmsa(vm)
    assert guest.ap_creation(CREATE, 1, VMSA_GPA, sev_features=SNP_ACTIVE)
    vm.run(1)
    result = guest.ap_creation(DESTROY, 1, sev_features=None)
    assert result is not None and result.ok
    with pytest.raises(VcpuNotRunnable):
        vm.run(1)
    assert vm.vcpu(1).mp_state is MpState.HALTED
    vm.init_sipi(1)  # an INIT-SIPI does not bring a VMSA back
    with pytest.raises(KvmError):
        vm.run(1)


def test_ap_create_targeting_itself_switches_the_vmsa() -> None:
    vm = launch_vm(1)
    guest = _bsp_with_vmsa(vm)
    assert guest.ap_creation(CREATE, 0, VMSA_GPA, sev_features=SNP_ACTIVE) is None
    assert not guest.vcpu.active
    again = GuestSoftware(vm.run(0), ghcb_gpa=GHCB_GPA)
    assert again.vcpu.rip == 0x5678
    assert again.ghcb_answer().ok


def test_vmsa_gpa_that_is_not_private_leaves_the_target_halted() -> None:
    """KVM accepts any well-formed GPA; finding no private page for it on reload, it leaves
    the target HALTED without a VMSA."""
    vm = launch_vm(2)
    guest = boot(vm)
    result = guest.ap_creation(CREATE, 1, VMSA_GPA, sev_features=SNP_ACTIVE)
    assert result is not None and result.ok
    with pytest.raises(VcpuNotRunnable):
        vm.run(1)
    assert vm.vcpu(1).mp_state is MpState.HALTED


# --- INIT-SIPI onto the host-made VMSAs ------------------------------------------------------
def test_aps_start_on_init_sipi_from_their_measured_vmsa() -> None:
    vm = launch_vm(3)
    for apic in (1, 2):
        with pytest.raises(VcpuNotRunnable):
            vm.run(apic)
    vm.init_sipi(2)
    ap = vm.run(2)
    assert ap.vmcb.vmsa_pa == vm.vcpu(2).initial_vmsa_pa
    assert ap.vmcb.vmsa_pa != vm.vcpu(0).initial_vmsa_pa
    assert (ap.regs.cs.base, ap.rip) == (AP_EIP & 0xFFFF_0000, AP_EIP & 0xFFFF)
    rc, readout = vm.p.cpu.rmpread(vm.vcpu(2).initial_vmsa_pa)
    assert rc is RmpResult.SUCCESS and readout is not None
    assert readout.entry.gpa == KVM_VMSA_GPA and readout.entry.vmsa
    assert len({vm.vcpu(i).initial_vmsa_pa for i in range(3)}) == 3
    with pytest.raises(VcpuNotRunnable):
        vm.run(1)


def test_sipi_without_init_does_nothing() -> None:
    vm = launch_vm(2)
    vm.sipi(1)
    with pytest.raises(VcpuNotRunnable):
        vm.run(1)


# --- KVM's checks: the guest sees SW_EXITINFO1 = 2, SW_EXITINFO2 = reason ---------------------
def _refused(
    guest: GuestSoftware, request: int, apic: int, gpa: int, *, sev_features: int | None
) -> int:
    result = guest.ap_creation(request, apic, gpa, sev_features=sev_features)
    assert result is not None
    assert result.exit_info1 == MALFORMED
    return result.exit_info2


def _target_untouched(vm: KvmVm) -> None:
    target = vm.vcpu(1)
    assert not target.update_requested
    assert target.mp_state is MpState.UNINITIALIZED
    assert target.slots[0].pending_gpa is None and not target.slots[0].waiting_for_reset
    assert target.slots[0].vmsa_pa == target.initial_vmsa_pa


REFUSALS = [
    ("bad APIC ID", CREATE, 7, VMSA_GPA, SNP_ACTIVE),
    ("restricted injection differs", CREATE, 1, VMSA_GPA, 0x9),
    ("alternate injection differs", CREATE_ON_INIT, 1, VMSA_GPA, 0x11),
    ("2 MiB aligned GPA", CREATE, 1, 0x200000, SNP_ACTIVE),
    ("GPA 0 (2 MiB aligned)", CREATE_ON_INIT, 1, 0, SNP_ACTIVE),
    ("unaligned GPA", CREATE, 1, VMSA_GPA + 8, SNP_ACTIVE),
    ("GPA beyond MAXPHYADDR", CREATE, 1, (1 << 48) + PAGE, SNP_ACTIVE),
    ("unknown request 3", 3, 1, VMSA_GPA, SNP_ACTIVE),
    ("VMPL bits on upstream KVM", CREATE | (2 << 16), 1, VMSA_GPA, 1),
]


@pytest.mark.parametrize(
    ("request_", "apic", "gpa", "features"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_kvm_refuses_with_invalid_input(request_: int, apic: int, gpa: int, features: int) -> None:
    vm = launch_vm(2)
    guest = _bsp_with_vmsa(vm)
    assert _refused(guest, request_, apic, gpa, sev_features=features) == INVALID_INPUT
    _target_untouched(vm)
    assert guest.vcpu.active


@pytest.mark.parametrize("request_", [CREATE, CREATE_ON_INIT])
def test_missing_rax_is_missing_input(request_: int) -> None:
    vm = launch_vm(2)
    guest = _bsp_with_vmsa(vm)
    assert _refused(guest, request_, 1, VMSA_GPA, sev_features=None) == MISSING_INPUT
    _target_untouched(vm)


@pytest.mark.parametrize(
    ("policy", "features", "accepted"),
    [
        (KVM_SNP, SNP_ACTIVE | DEBUG_SWAP, False),
        (KVM_SNP_6_11, SNP_ACTIVE | DEBUG_SWAP, True),
        (KVM_SNP_6_11, SNP_ACTIVE | RESTRICTED_INJECTION, False),
        (KVM_SNP_6_11, SNP_ACTIVE | ALTERNATE_INJECTION, False),
        (KVM_SNP_6_11, 0, True),  # SNPActive is not an injection bit
    ],
)
def test_sev_features_rule_is_a_policy(
    policy: KvmRuntimePolicy, features: int, accepted: bool
) -> None:
    vm = launch_vm(2, policy=policy)
    guest = _bsp_with_vmsa(vm)
    result = guest.ap_creation(CREATE, 1, VMSA_GPA, sev_features=features)
    assert result is not None and result.ok is accepted


def test_pre_2025_kvm_kicks_the_target_even_on_error() -> None:
    """Linux 6.11 invalidated the target's pending VMSA before checking and kicked it anyway:
    a refused CREATE leaves the target HALTED with no VMSA."""
    vm = launch_vm(2, policy=KVM_SNP_6_11)
    guest = _bsp_with_vmsa(vm)
    assert _refused(guest, CREATE, 1, 0x200000, sev_features=SNP_ACTIVE) == INVALID_INPUT
    with pytest.raises(VcpuNotRunnable):
        vm.run(1)
    assert vm.vcpu(1).mp_state is MpState.HALTED
    # CREATE_ON_INIT with a bad GPA is not kicked (the kick was cleared before the GPA check).
    vm2 = launch_vm(2, policy=KVM_SNP_6_11)
    guest2 = _bsp_with_vmsa(vm2)
    assert _refused(guest2, CREATE_ON_INIT, 1, 0x200000, sev_features=1) == INVALID_INPUT
    assert not vm2.vcpu(1).update_requested


# --- GHCB handling around the event ----------------------------------------------------------
def test_unregistered_ghcb_stops_the_vm() -> None:
    vm = launch_vm(2)
    guest = boot(vm)
    vm.map_shared(GHCB2_GPA)
    guest.ghcb_gpa = GHCB2_GPA  # never registered
    with pytest.raises(KvmError, match="not registered"):
        guest.ap_creation(CREATE, 1, VMSA_GPA, sev_features=SNP_ACTIVE)


def test_ghcb_msr_at_a_private_page_cannot_be_mapped() -> None:
    vm = launch_vm(1)
    guest = boot(vm)
    guest.accept(VMSA_GPA)
    guest.register_ghcb(VMSA_GPA)  # KVM records any GFN
    guest.vcpu.wrmsr_ghcb(VMSA_GPA)
    with pytest.raises(KvmError, match="cannot be mapped"):
        guest.vcpu.vmgexit()


def test_ghcb_usage_and_unknown_events() -> None:
    vm = launch_vm(1)
    guest = boot(vm)
    result = guest.nae(AP_CREATION, 1 << 32, VMSA_GPA, rax=1, usage=1)
    assert result is not None and (result.exit_info1, result.exit_info2) == (
        MALFORMED,
        INVALID_USAGE,
    )
    result = guest.nae(0x8000_0123, 0, 0)
    assert result is not None and (result.exit_info1, result.exit_info2) == (
        MALFORMED,
        INVALID_EVENT,
    )
    result = guest.nae(HV_FEATURES, 0, 0)
    assert result is not None and result.ok and result.exit_info2 == 0b11


def test_msr_protocol_basics() -> None:
    vm = launch_vm(1)
    guest = GuestSoftware(vm.run(0))
    # At reset the GHCB MSR holds SEV_INFO: versions 2..1, C-bit 51.
    assert guest.vcpu.rdmsr_ghcb() == (2 << 48) | (1 << 32) | (51 << 24) | 0x001
    assert guest.msr_protocol(0x002) == (2 << 48) | (1 << 32) | (51 << 24) | 0x001
    assert guest.msr_protocol(0x080) == (0b11 << 12) | 0x081
    assert guest.msr_protocol((0x4321 << 12) | 0x012) == (0x4321 << 12) | 0x013
    assert guest.msr_protocol(0x0FF) == 0x0FF  # unknown: left as it is
    assert guest.sev_features == SNP_ACTIVE


# --- properties of KVM's rules -----------------------------------------------------------------
@functools.cache
def _shared_guest(policy_name: str) -> GuestSoftware:
    """One booted BSP per policy, reused across examples (requests only touch vCPU 1)."""
    policy = {p.name: p for p in (KVM_SNP, KVM_SNP_6_11)}[policy_name]
    return boot(launch_vm(2, policy=policy))


@settings(max_examples=200, deadline=None)
@given(
    gpa=st.one_of(
        st.integers(0, (1 << 52) - 1),
        st.integers(0, (1 << 40) - 1).map(lambda pfn: pfn << 12),
        st.integers(0, (1 << 27) - 1).map(lambda n: n << 21),
    ),
    request=st.sampled_from([CREATE_ON_INIT, CREATE]),
)
def test_vmsa_gpa_rule(gpa: int, request: int) -> None:
    guest = _shared_guest("kvm")
    result = guest.ap_creation(request, 1, gpa, sev_features=SNP_ACTIVE)
    expected = gpa % PAGE == 0 and gpa % 0x200000 != 0 and gpa < 1 << 48
    assert result is not None and result.ok is expected


@settings(max_examples=200, deadline=None)
@given(
    rax=st.one_of(
        st.integers(0, (1 << 64) - 1),
        st.integers(0, 0x3F).map(lambda bits: SNP_ACTIVE ^ (bits << 1)),
    ),
    policy_name=st.sampled_from(["kvm", "kvm-6.11"]),
)
def test_sev_features_rule(rax: int, policy_name: str) -> None:
    guest = _shared_guest(policy_name)
    result = guest.ap_creation(CREATE, 1, VMSA_GPA, sev_features=rax)
    mask = (1 << 64) - 1 if policy_name == "kvm" else RESTRICTED_INJECTION | ALTERNATE_INJECTION
    assert result is not None and result.ok is ((rax ^ SNP_ACTIVE) & mask == 0)
