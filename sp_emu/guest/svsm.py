"""An SVSM-style VMPL0 component that runs the guest OS at a lower VMPL.

A Secure VM Service Module (COCONUT-SVSM, ``kernel/src/cpu/vmsa.rs``, ``sev/utils.rs``)
runs at VMPL0 and starts the guest OS at VMPL1-3 (rmp-and-instructions.md §5.4):

1. it grants the lower VMPL the permissions it needs on the OS's memory (RMPADJUST, one
   VMPL at a time; VMPL0 keeps full access);
2. it builds the lower VMPL's VMSA (VMPL field = the target VMPL) in one of its own pages,
   revokes every lower VMPL's access to that page and sets its VMSA bit
   (``rmp_set_guest_vmsa``: revoke, then RMPADJUST(VMPL1 | VMSA)), so the OS can neither
   read nor write its own register state;
3. it asks the hypervisor to run the VMSA with the AP Creation event, the target VMPL in
   SW_EXITINFO1[19:16] (this needs a multi-VMPL hypervisor; upstream KVM rejects it);
4. later it reads and edits the lower VMSA through its GPA (VMPL0 may access every page).
"""

from __future__ import annotations

from rmp import PAGE_4K as PAGE
from rmp import PERM_ALL, RmpResult
from sp_emu.guest.ghcb import ApRequest
from sp_emu.guest.software import GhcbProtocolError, GuestSoftware, NaeResult
from sp_emu.guest.vmrun import RunningVcpu
from vmsa import Vmsa

LOWER_VMPLS = (1, 2, 3)


class SvsmError(Exception):
    """An RMPADJUST the SVSM needed was refused."""


class Svsm(GuestSoftware):
    """VMPL0 software that manages lower VMPLs (see the module docstring)."""

    def __init__(self, vcpu: RunningVcpu, *, ghcb_gpa: int | None = None) -> None:
        if vcpu.vmpl != 0:
            raise ValueError(f"an SVSM runs at VMPL0, this vCPU runs at VMPL{vcpu.vmpl}")
        super().__init__(vcpu, ghcb_gpa=ghcb_gpa)

    def _adjust(self, gpa: int, vmpl: int, perms: int, *, vmsa: bool = False) -> None:
        rc = self.rmpadjust(gpa, target_vmpl=vmpl, perms=perms, vmsa=vmsa)
        if rc is not RmpResult.SUCCESS:
            raise SvsmError(f"RMPADJUST({gpa:#x}, VMPL{vmpl}, {perms:#x}): {rc.name}")

    def grant(self, gpa: int, count: int, vmpl: int, perms: int = PERM_ALL) -> None:
        """Give ``vmpl`` the permission mask ``perms`` on ``count`` pages at ``gpa``."""
        for i in range(count):
            self._adjust(gpa + i * PAGE, vmpl, perms)

    def revoke(self, gpa: int, vmpls: tuple[int, ...] = LOWER_VMPLS) -> None:
        """Take every permission on the page at ``gpa`` away from ``vmpls``."""
        for vmpl in vmpls:
            self._adjust(gpa, vmpl, 0)

    def make_lower_vmsa(self, gpa: int, vmsa: Vmsa) -> None:
        """Write ``vmsa`` at ``gpa``, revoke the lower VMPLs' access to the page, and make it
        a VMSA (CSVSM ``rmp_set_guest_vmsa``)."""
        if not 1 <= vmsa.vmpl <= 3:
            raise ValueError(f"a lower-VMPL VMSA names VMPL1-3, this one VMPL{vmsa.vmpl}")
        self.revoke(gpa)
        rc = self.make_vmsa(gpa, vmsa)
        if rc is not RmpResult.SUCCESS:
            raise SvsmError(f"RMPADJUST({gpa:#x}, VMPL1, 0x0): {rc.name}")

    def clear_lower_vmsa(self, gpa: int, vmpl: int, perms: int = PERM_ALL) -> None:
        """Turn the VMSA page at ``gpa`` back into an ordinary page that ``vmpl`` may use
        (CSVSM ``rmp_clear_guest_vmsa``: revoke, then grant)."""
        self.revoke(gpa)
        self._adjust(gpa, vmpl, perms, vmsa=False)

    def launch_lower(
        self,
        apic_id: int,
        gpa: int,
        vmsa: Vmsa,
        *,
        request: ApRequest = ApRequest.CREATE,
    ) -> NaeResult | None:
        """Create the lower VMSA at ``gpa`` and ask the hypervisor to run it on ``apic_id`` at
        the VMPL the VMSA names. None when ``apic_id`` is this vCPU: it now runs the lower
        VMPL, and this context has stopped."""
        self.make_lower_vmsa(gpa, vmsa)
        result = self.ap_creation(
            request, apic_id, gpa, sev_features=vmsa.sev_features, vmpl=vmsa.vmpl
        )
        if result is not None and not result.ok:
            raise GhcbProtocolError(
                f"AP creation refused: {result.exit_info1:#x}/{result.exit_info2:#x}"
            )
        return result

    def write_vmsa(self, gpa: int, vmsa: Vmsa) -> None:
        """Replace the lower VMSA at ``gpa`` (while that vCPU is not running)."""
        self.write(gpa, vmsa.to_bytes())
