"""VMPL permission masks on every kind of guest access: read, write, and instruction fetch at
CPL3 and CPL0 (rmp-and-instructions.md §2.4, §6). VMPL0 (an SVSM on vCPU 0) sets a lower
VMPL's mask with RMPADJUST while that VMPL runs on vCPU 1 and tries each access."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from rmp import FaultVector, RmpCheck, RmpFault
from sp_emu.guest import GuestSoftware, PscOp, Svsm
from sp_emu.hypervisors.kvm_runtime import KVM_SNP_MULTI_VMPL
from tests.guest.helpers import GHCB_GPA, boot, boot_svsm, launch_vm, lower_vmsa

CODE = 0x201000
PAGE_UNDER_TEST = 0x202000
LOWER_VMSA = 0x203000
UNVALIDATED = 0x205000

READ, WRITE, EXEC_USER, EXEC_SUPERVISOR = 0x1, 0x2, 0x4, 0x8
PF_PRESENT = 1 << 0
PF_WRITE = 1 << 1
PF_FETCH = 1 << 4
PF_RMP = 1 << 31
PF_ENC = 1 << 34
PF_VMPL = 1 << 36

Access = Callable[[GuestSoftware], object]
ACCESSES: dict[str, tuple[int, int, Access]] = {
    "read": (READ, 0, lambda g: g.read(PAGE_UNDER_TEST, 16)),
    "write": (WRITE, PF_WRITE, lambda g: g.write(PAGE_UNDER_TEST + 8, b"lower")),
    "fetch CPL3": (EXEC_USER, PF_FETCH, lambda g: g.fetch(PAGE_UNDER_TEST, 4, user=True)),
    "fetch CPL0": (EXEC_SUPERVISOR, PF_FETCH, lambda g: g.fetch(PAGE_UNDER_TEST, 4)),
}


def _two_vmpls(vmpl: int) -> tuple[Svsm, GuestSoftware]:
    """VMPL0 on vCPU 0 and a VMSA at ``vmpl`` running on vCPU 1."""
    vm = launch_vm(2, policy=KVM_SNP_MULTI_VMPL)
    svsm = boot_svsm(vm)
    svsm.accept(CODE, 3)
    svsm.grant(CODE, 1, vmpl)
    svsm.write(PAGE_UNDER_TEST, b"\xf4" * 32)
    assert svsm.launch_lower(1, LOWER_VMSA, lower_vmsa(vmpl, eip=CODE)) is not None
    lower = GuestSoftware(vm.run(1))
    assert lower.vmpl == vmpl
    return svsm, lower


@pytest.mark.parametrize("vmpl", [1, 2, 3])
def test_every_access_kind_needs_its_permission_bit(vmpl: int) -> None:
    svsm, lower = _two_vmpls(vmpl)
    for mask in range(16):
        svsm.grant(PAGE_UNDER_TEST, 1, vmpl, mask)
        for name, (bit, kind, access) in ACCESSES.items():
            if mask & bit:
                access(lower)
                continue
            with pytest.raises(RmpFault) as fault:
                access(lower)
            f = fault.value
            assert f.vector is FaultVector.NPF, (mask, name)
            assert f.check is RmpCheck.VMPL_PERMISSION, (mask, name)
            assert f.error_code == PF_PRESENT | PF_RMP | PF_ENC | PF_VMPL | kind, (mask, name)
    # VMPL0 keeps every permission whatever the lower masks say.
    svsm.grant(PAGE_UNDER_TEST, 1, vmpl, 0)
    for _bit, _kind, access in ACCESSES.values():
        access(svsm)


def test_the_written_bytes_are_what_vmpl0_reads() -> None:
    svsm, lower = _two_vmpls(2)
    svsm.grant(PAGE_UNDER_TEST, 1, 2, READ | WRITE)
    lower.write(PAGE_UNDER_TEST, b"from VMPL2")
    assert svsm.read(PAGE_UNDER_TEST, 10) == b"from VMPL2"
    svsm.grant(PAGE_UNDER_TEST, 1, 2, READ)
    with pytest.raises(RmpFault):
        lower.write(PAGE_UNDER_TEST, b"again")
    assert lower.read(PAGE_UNDER_TEST, 10) == b"from VMPL2"


def test_a_lower_vmpl_may_hand_on_a_subset_of_its_own_permissions() -> None:
    svsm, vmpl1 = _two_vmpls(1)
    svsm.grant(PAGE_UNDER_TEST, 1, 1, READ | WRITE)
    assert vmpl1.rmpadjust(PAGE_UNDER_TEST, target_vmpl=2, perms=READ).name == "SUCCESS"
    assert vmpl1.rmpadjust(PAGE_UNDER_TEST, target_vmpl=2, perms=EXEC_USER).name == (
        "FAIL_PERMISSION"
    )


def test_fetches_are_always_private() -> None:
    """Code is fetched with the C-bit set: from a shared (hypervisor) page the fetch faults
    although a shared read of the same page works."""
    vm = launch_vm(1)
    guest = boot(vm)
    assert guest.read(GHCB_GPA, 8, private=False) is not None
    with pytest.raises(RmpFault) as fault:
        guest.fetch(GHCB_GPA, 4)
    assert fault.value.vector is FaultVector.NPF
    assert fault.value.check is RmpCheck.NOT_ASSIGNED
    assert fault.value.error_code & PF_FETCH


def test_fetch_from_an_unvalidated_page_raises_vc() -> None:
    vm = launch_vm(1)
    guest = boot(vm)
    assert guest.page_state_change(UNVALIDATED, PscOp.PRIVATE) == 0
    with pytest.raises(RmpFault) as fault:
        guest.fetch(UNVALIDATED, 4)
    assert fault.value.vector is FaultVector.VC
    assert fault.value.error_code == 0x404
