"""Guest software on one running vCPU: what code inside an SNP guest can do.

:class:`GuestSoftware` is the code of a guest kernel (or firmware, or SVSM) running at its
vCPU's VMPL. It has only what real guest code has: its instructions (PVALIDATE, RMPADJUST,
VMGEXIT, RDMSR/WRMSR of the GHCB and SEV_STATUS MSRs), its memory accesses, and the GHCB
protocols to ask the hypervisor for things. It never looks at the hypervisor's state.

The flows follow Linux (``arch/x86/coco/sev/``) and EDK2 ``MpLib``:

* page acceptance: Page State Change to private (MSR protocol), then PVALIDATE;
* starting an AP: write a VMSA into a validated private page, make it a VMSA with
  RMPADJUST(VMSA bit, target VMPL1, no permissions) at VMPL0 (``snp_set_vmsa``), then issue
  the AP Creation NAE event through the GHCB (``wakeup_cpu_via_vmgexit``).
"""

from __future__ import annotations

from dataclasses import dataclass

from rmp import PAGE_4K as PAGE
from rmp import PvalidateOutcome, RmpResult
from sp_emu.guest.ghcb import (
    GHCB_SIZE,
    ApRequest,
    Ghcb,
    GhcbField,
    MsrCode,
    NaeExit,
    PscOp,
    ap_creation_exit_info1,
    msr_data,
    msr_error,
    msr_info,
    msr_psc_req,
    msr_register_ghcb_req,
)
from sp_emu.guest.vmrun import RunningVcpu
from vmsa import Vmsa

GHCB_VERSION = 2


class GhcbProtocolError(Exception):
    """The hypervisor's answer does not follow the GHCB protocol (e.g. a wrong response code)."""


@dataclass(frozen=True)
class NaeResult:
    """What the hypervisor left in the GHCB after an NAE event."""

    exit_info1: int
    exit_info2: int
    ghcb: Ghcb

    @property
    def ok(self) -> bool:
        """Success, as Linux tests it: SW_EXITINFO1[31:0] == 0."""
        return self.exit_info1 & 0xFFFF_FFFF == 0


class GuestSoftware:
    """Code running on ``vcpu`` (at the VMPL its VMSA names)."""

    def __init__(self, vcpu: RunningVcpu, *, ghcb_gpa: int | None = None) -> None:
        self.vcpu = vcpu
        self.ghcb_gpa = ghcb_gpa

    @property
    def vmpl(self) -> int:
        return self.vcpu.vmpl

    @property
    def sev_features(self) -> int:
        """SEV_FEATURES from MSR SEV_STATUS (bits 63:2)."""
        return self.vcpu.sev_status >> 2

    # --- memory -----------------------------------------------------------------------------
    def read(self, gpa: int, length: int, *, private: bool = True) -> bytes:
        self._active()
        return bytes(self.vcpu.platform.cpu.guest_read(self.vcpu.cpu, gpa, length, private=private))

    def write(self, gpa: int, data: bytes, *, private: bool = True) -> None:
        self._active()
        self.vcpu.platform.cpu.guest_write(self.vcpu.cpu, gpa, data, private=private)

    def fetch(self, gpa: int, length: int, *, user: bool = False) -> bytes:
        """An instruction fetch at CPL3 (``user``) or CPL0."""
        self._active()
        return bytes(self.vcpu.platform.cpu.guest_fetch(self.vcpu.cpu, gpa, length, user=user))

    # --- instructions -----------------------------------------------------------------------
    def pvalidate(self, gpa: int, *, validate: bool = True, page_size: int = 0) -> PvalidateOutcome:
        self._active()
        cpu = self.vcpu.platform.cpu
        return cpu.pvalidate(self.vcpu.cpu, gpa, page_size=page_size, validate=validate)

    def rmpadjust(
        self, gpa: int, *, target_vmpl: int, perms: int, vmsa: bool = False, page_size: int = 0
    ) -> RmpResult:
        self._active()
        return self.vcpu.platform.cpu.rmpadjust(
            self.vcpu.cpu,
            gpa,
            page_size=page_size,
            target_vmpl=target_vmpl,
            perms=perms,
            vmsa=vmsa,
        )

    # --- GHCB MSR protocol ------------------------------------------------------------------
    def msr_protocol(self, request: int) -> int:
        """Write ``request`` to the GHCB MSR, VMGEXIT, and return the MSR's new value."""
        self._active()
        self.vcpu.wrmsr_ghcb(request)
        self.vcpu.vmgexit()
        return self.vcpu.rdmsr_ghcb()

    def _expect(self, value: int, code: MsrCode) -> int:
        if msr_info(value) != code:
            raise GhcbProtocolError(f"expected {code.name}, got GHCB MSR {value:#x}")
        return value

    def hv_features(self) -> int:
        """The hypervisor's feature bitmap (HV_FEATURES MSR request)."""
        value = self.msr_protocol(MsrCode.HV_FEATURES_REQ)
        return msr_data(self._expect(value, MsrCode.HV_FEATURES_RESP))

    def register_ghcb(self, gpa: int) -> None:
        """Register ``gpa`` as this vCPU's GHCB (an SNP guest must before using it). The page
        must be shared: the guest writes it with the C-bit clear."""
        value = self.msr_protocol(msr_register_ghcb_req(gpa))
        if msr_data(self._expect(value, MsrCode.REGISTER_GHCB_GPA_RESP)) != gpa >> 12:
            raise GhcbProtocolError(f"hypervisor refused GHCB GPA {gpa:#x}")
        self.ghcb_gpa = gpa

    def run_at_vmpl(self, vmpl: int) -> int | None:
        """Ask a multi-VMPL hypervisor to run this vCPU at ``vmpl`` instead (RUN_AT_VMPL MSR
        request, how an OS calls its SVSM). On success this context stops; the answer waits in
        the GHCB MSR for when this VMPL runs again. Returns the error field if refused."""
        value = self.msr_protocol((vmpl << 32) | MsrCode.RUN_AT_VMPL_REQ)
        if not self.vcpu.active:
            return None
        return msr_error(self._expect(value, MsrCode.RUN_AT_VMPL_RESP))

    def page_state_change(self, gpa: int, op: PscOp) -> int:
        """Ask for one 4 KiB page to become private or shared; returns the error field (0 =
        done). Conversions to shared must be preceded, and to private followed, by PVALIDATE."""
        value = self.msr_protocol(msr_psc_req(gpa, op))
        return msr_error(self._expect(value, MsrCode.PSC_RESP))

    def accept(self, gpa: int, count: int = 1) -> None:
        """Make ``count`` pages at ``gpa`` private and validated (Linux ``set_pages_state``
        then ``pvalidate_pages``)."""
        for i in range(count):
            page = gpa + i * PAGE
            err = self.page_state_change(page, PscOp.PRIVATE)
            if err:
                raise GhcbProtocolError(f"PSC to private of {page:#x} failed: {err:#x}")
            outcome = self.pvalidate(page)
            if outcome.result is not RmpResult.SUCCESS:
                raise GhcbProtocolError(f"PVALIDATE of {page:#x}: {outcome.result.name}")

    # --- GHCB page: NAE events -------------------------------------------------------------
    def nae(
        self,
        exit_code: int,
        exit_info1: int,
        exit_info2: int,
        *,
        rax: int | None = None,
        rbx: int | None = None,
        usage: int = 0,
    ) -> NaeResult | None:
        """Issue an NAE event through the registered GHCB: fill it (shared writes), point the
        GHCB MSR at it, VMGEXIT, and read the hypervisor's answer back. None when this vCPU
        context did not resume (e.g. an AP Creation that replaced its own VMSA); the answer
        then waits in the GHCB (:meth:`ghcb_answer`)."""
        if self.ghcb_gpa is None:
            raise GhcbProtocolError("no GHCB registered")
        ghcb = Ghcb()
        ghcb.version = GHCB_VERSION
        ghcb.usage = usage
        ghcb.set(GhcbField.SW_EXITCODE, exit_code)
        ghcb.set(GhcbField.SW_EXITINFO1, exit_info1)
        ghcb.set(GhcbField.SW_EXITINFO2, exit_info2)
        if rax is not None:
            ghcb.set(GhcbField.RAX, rax)
        if rbx is not None:
            ghcb.set(GhcbField.RBX, rbx)
        self.write(self.ghcb_gpa, ghcb.to_bytes(), private=False)
        self.vcpu.wrmsr_ghcb(self.ghcb_gpa)
        self.vcpu.vmgexit()
        return self.ghcb_answer() if self.vcpu.active else None

    def ghcb_answer(self) -> NaeResult:
        """What the hypervisor left in the GHCB (SW_EXITINFO1/2) after the last NAE event."""
        if self.ghcb_gpa is None:
            raise GhcbProtocolError("no GHCB registered")
        answer = Ghcb(self.read(self.ghcb_gpa, GHCB_SIZE, private=False))
        return NaeResult(
            answer.get(GhcbField.SW_EXITINFO1), answer.get(GhcbField.SW_EXITINFO2), answer
        )

    def ap_creation(
        self,
        request: int,
        apic_id: int,
        vmsa_gpa: int = 0,
        *,
        sev_features: int | None,
        vmpl: int = 0,
    ) -> NaeResult | None:
        """The AP Creation NAE event. ``sev_features`` goes in RAX (None: RAX left invalid);
        ``vmpl`` fills SW_EXITINFO1[19:16] (SVSMs only)."""
        return self.nae(
            NaeExit.AP_CREATION,
            ap_creation_exit_info1(request, apic_id, vmpl),
            vmsa_gpa,
            rax=sev_features,
        )

    # --- VMSAs --------------------------------------------------------------------------------
    def make_vmsa(self, gpa: int, vmsa: Vmsa) -> RmpResult:
        """Write ``vmsa`` into the validated private page at ``gpa`` and turn the page into a
        VMSA: RMPADJUST with the VMSA bit, target VMPL1, no permissions (Linux
        ``snp_set_vmsa``). Only VMPL0 can set the VMSA bit."""
        self.write(gpa, vmsa.to_bytes())
        return self.rmpadjust(gpa, target_vmpl=1, perms=0, vmsa=True)

    def start_ap(
        self,
        apic_id: int,
        gpa: int,
        vmsa: Vmsa,
        *,
        request: ApRequest = ApRequest.CREATE,
    ) -> NaeResult | None:
        """Make ``vmsa`` a VMSA at ``gpa`` and ask the hypervisor to run it on ``apic_id``
        (None: ``apic_id`` was this vCPU, which now runs the new VMSA)."""
        rc = self.make_vmsa(gpa, vmsa)
        if rc is not RmpResult.SUCCESS:
            raise GhcbProtocolError(f"RMPADJUST(VMSA) of {gpa:#x}: {rc.name}")
        return self.ap_creation(request, apic_id, gpa, sev_features=vmsa.sev_features)

    def read_vmsa(self, gpa: int) -> Vmsa:
        """Read a VMSA page through its GPA (a more privileged VMPL inspecting a lower one)."""
        return Vmsa.from_bytes(self.read(gpa, PAGE))

    def _active(self) -> None:
        if not self.vcpu.active:
            raise RuntimeError("the vCPU this code ran on is no longer running")
