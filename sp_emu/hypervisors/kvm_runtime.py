"""KVM's runtime half for an SNP guest: vCPUs, the VMRUN loop, guest memory conversions and
the GHCB handlers, above the launch driver of :mod:`sp_emu.hypervisors.base`.

Modelled on ``arch/x86/kvm/svm/sev.c`` (Linux 6.11 onwards; L-KVM) and uses only what KVM
has: CPU instructions and accesses through ``platform.cpu`` (RMPUPDATE, NPT mappings, host
reads and writes of shared pages, VMRUN) and its own bookkeeping. It never reads firmware
state.

* Launch (:meth:`KvmVm.launch`): the shared launch driver; KVM keeps the system address of
  every vCPU's initial VMSA (its own page, measured and RMP-recorded at GPA 0xFFFFFFFFF000)
  and of every launched page (guest_memfd).
* vCPUs: vCPU *i* has APIC ID *i*; the BSP starts RUNNABLE, APs UNINITIALIZED until an INIT-SIPI
  (:meth:`KvmVm.init_sipi`), after which they run from their initial VMSA, or until an AP
  Creation event targets them.
* Memory: :meth:`KvmVm.map_private` / :meth:`KvmVm.map_shared` do what KVM does when a guest
  page becomes private (a guest_memfd page RMPUPDATEd to the guest's ASID, not immutable:
  GUEST_INVALID, and mapped in the NPT) or shared (the private page RMPUPDATEd back to the
  hypervisor, a separate shared page mapped). Page State Change requests of the GHCB MSR
  protocol call them; KVM really exits to userspace and faults pages in lazily - the model
  converts eagerly.
* VMGEXIT: the MSR protocol (SEV_INFO, HV_FEATURES, REGISTER_GHCB_GPA, PSC) and, through the
  registered GHCB page, the AP Creation and HV Features NAE events, with KVM's GHCB
  validation (``sev_es_validate_vmgexit``). Other events KVM handles raise NotImplementedError.
* AP Creation (``sev_snp_ap_creation``) with KVM's checks; the target's pending VMSA GPA is
  applied (``__sev_snp_update_protected_guest_state``) when the kicked vCPU next runs
  (CREATE, DESTROY) or on its next INIT (CREATE_ON_INIT). KVM checks nothing about the page
  itself: VMRUN does (:mod:`sp_emu.guest.vmrun`).

What differs between KVM versions is a :class:`KvmRuntimePolicy`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial

from rmp import PAGE_2M as PMD_SIZE
from rmp import PAGE_4K as PAGE
from rmp import RmpResult
from sp_emu.guest.ghcb import (
    AP_VMPL_MASK,
    AP_VMPL_SHIFT,
    GHCB_SIZE,
    HV_RESP_MALFORMED_INPUT,
    MSR_INFO_MASK,
    ApRequest,
    Ghcb,
    GhcbError,
    GhcbField,
    HvFeature,
    MsrCode,
    NaeExit,
    PscOp,
    msr_psc_decode,
    msr_sev_info,
)
from sp_emu.guest.vmrun import RunningVcpu, Vmcb
from sp_emu.hypervisors.base import (
    HostAllocator,
    HypervisorPolicy,
    Launcher,
    LaunchOptions,
    LaunchResult,
)
from sp_emu.hypervisors.kvm import KVM_QEMU
from sp_emu.images import LaunchPlan
from sp_emu.platform import Platform
from vmsa import INT_INJ_MODES, SevFeatures

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

    from sp_emu.attestation import GuestRequestHost

U64_MASK: Final = (1 << 64) - 1
VMPLS: Final = 4
GHCB_VERSION_MIN: Final = 1
GHCB_VERSION_MAX: Final = 2
CBIT: Final = 51
PSC_RESP_ERROR: Final = 1 << 31
"""PSC_RESP error field KVM returns for a refused request (MSR bit 63)."""

_MODELLED_EVENTS: Final = frozenset(
    {NaeExit.AP_CREATION, NaeExit.HV_FEATURES, NaeExit.GUEST_REQUEST, NaeExit.EXT_GUEST_REQUEST}
)
_KVM_EVENTS_NOT_MODELLED: Final = frozenset(
    {
        NaeExit.MMIO_READ,
        NaeExit.MMIO_WRITE,
        NaeExit.NMI_COMPLETE,
        NaeExit.AP_HLT_LOOP,
        NaeExit.AP_JUMP_TABLE,
        NaeExit.PSC,
        NaeExit.GUEST_REQUEST,
        NaeExit.EXT_GUEST_REQUEST,
        NaeExit.TERMINATE,
        NaeExit.UNSUPPORTED,
    }
)


@dataclass(frozen=True)
class KvmRuntimePolicy:
    """How one KVM version handles SNP vCPUs at run time."""

    name: str
    description: str
    ap_features_mask: int
    """Bits in which the AP Creation RAX (SEV_FEATURES) must equal the VM's features: all of
    them since "KVM: SVM: Require AP's requested SEV_FEATURES to match KVM's view" (Feb
    2025), only the interrupt-injection bits 3-4 before."""
    kick_on_error: bool
    """Before the Feb 2025 rework, KVM cleared the target's pending VMSA before its checks and
    kicked the target even when a later check failed, leaving it HALTED without a VMSA."""
    multi_vmpl: bool = False
    """Multi-VMPL support (T. Lendacky's RFC, Aug 2024; not upstream): SW_EXITINFO1[19:16]
    names the VMPL, each vCPU holds one VMSA per VMPL, an AP Creation switches the target to
    the new VMPL, and a VMPL0 VMSA may only be replaced by another vCPU running at VMPL0."""
    guest_maxphyaddr: int = 48
    """``page_address_valid``: a VMSA GPA must be below 2^MAXPHYADDR (QEMU's value varies
    with the host; 48 is an assumption)."""
    source: str = "linux arch/x86/kvm/svm/sev.c"


KVM_SNP: Final = KvmRuntimePolicy(
    name="kvm",
    description="upstream KVM after the Feb 2025 AP Creation rework",
    ap_features_mask=U64_MASK,
    kick_on_error=False,
    source="linux arch/x86/kvm/svm/sev.c (sev_snp_ap_creation, 2025)",
)
KVM_SNP_6_11: Final = KvmRuntimePolicy(
    name="kvm-6.11",
    description="KVM as SNP support was merged (Linux 6.11)",
    ap_features_mask=int(INT_INJ_MODES),
    kick_on_error=True,
    source="linux 6.11 arch/x86/kvm/svm/sev.c (sev_snp_ap_creation)",
)
KVM_SNP_MULTI_VMPL: Final = KvmRuntimePolicy(
    name="kvm-multi-vmpl",
    description="KVM with the multi-VMPL (SVSM) RFC patches",
    ap_features_mask=U64_MASK,
    kick_on_error=False,
    multi_vmpl=True,
    source="[RFC PATCH] KVM: SVM: multi-VMPL support, T. Lendacky, kvm@vger, Aug 2024",
)
RUNTIME_POLICIES: Final = {p.name: p for p in (KVM_SNP, KVM_SNP_6_11, KVM_SNP_MULTI_VMPL)}


class MpState(enum.Enum):
    """KVM's vCPU multiprocessing states (``KVM_MP_STATE_*``) that matter here."""

    UNINITIALIZED = "uninitialized"
    INIT_RECEIVED = "init-received"
    RUNNABLE = "runnable"
    HALTED = "halted"


class KvmError(Exception):
    """KVM_RUN failed (KVM returned -EINVAL to userspace, which stops the VM)."""


class VcpuNotRunnable(Exception):
    """The vCPU is not RUNNABLE (waiting for INIT-SIPI, or halted without a VMSA)."""


@dataclass
class VmplSlot:
    """KVM's per-VMPL state of a vCPU (upstream KVM uses only slot 0)."""

    vmsa_pa: int | None = None
    pending_gpa: int | None = None
    """The VMSA GPA of an accepted AP Creation (None: INVALID_PAGE, i.e. destroy)."""
    waiting_for_reset: bool = False
    ghcb_msr: int = 0
    ghcb_registered: int | None = None


@dataclass
class KvmVcpu:
    """One vCPU: its APIC ID, MP state, VMCB, and VMSA slots."""

    vcpu_id: int
    mp_state: MpState
    initial_vmsa_pa: int
    """KVM's own VMSA page of this vCPU (``svm->sev_es.vmsa``), measured at launch."""
    vmcb: Vmcb
    slots: list[VmplSlot] = field(default_factory=lambda: [VmplSlot() for _ in range(VMPLS)])
    current_vmpl: int = 0
    target_vmpl: int = 0
    update_requested: bool = False
    """KVM_REQ_UPDATE_PROTECTED_GUEST_STATE is pending (the vCPU was kicked)."""
    running: RunningVcpu | None = None


class KvmVm:
    """A launched SNP VM as KVM runs it (see the module docstring)."""

    def __init__(
        self,
        platform: Platform,
        result: LaunchResult,
        *,
        vmsa_pages: list[int],
        private: dict[int, int],
        sev_features: int,
        alloc: HostAllocator,
        policy: KvmRuntimePolicy = KVM_SNP,
    ) -> None:
        self.p = platform
        self.result = result
        self.asid = result.asid
        self.policy = policy
        self.alloc = alloc
        self.sev_features = sev_features | SevFeatures.SNP_ACTIVE
        """KVM's ``vmsa_features`` (SNPActive forced for SNP VMs)."""
        self._gmem: dict[int, int] = dict(private)
        self._shared: dict[int, int] = {}
        self._certs: dict[str, bytes] = {}
        self._requests: GuestRequestHost | None = None
        sev_info = msr_sev_info(GHCB_VERSION_MAX, GHCB_VERSION_MIN, CBIT)
        self.vcpus: dict[int, KvmVcpu] = {}
        for i, spa in enumerate(vmsa_pages):
            vmcb = Vmcb(self.asid, spa, self.sev_features, ghcb_gpa=sev_info)
            state = MpState.RUNNABLE if i == 0 else MpState.UNINITIALIZED
            vcpu = KvmVcpu(i, state, spa, vmcb)
            for slot in vcpu.slots:
                slot.ghcb_msr = sev_info
            vcpu.slots[0].vmsa_pa = spa
            self.vcpus[i] = vcpu

    @classmethod
    def launch(
        cls,
        platform: Platform,
        plan: LaunchPlan,
        opts: LaunchOptions | None = None,
        *,
        hypervisor: HypervisorPolicy = KVM_QEMU,
        policy: KvmRuntimePolicy = KVM_SNP,
        alloc: HostAllocator | None = None,
    ) -> KvmVm:
        """Launch ``plan`` with the shared driver and keep the VM for running. Pass the
        ``alloc`` of a VM already on ``platform`` to run several VMs on one host."""
        opts = opts or LaunchOptions()
        launcher = Launcher(platform, hypervisor)
        if alloc is not None:
            launcher.alloc = alloc
        result = launcher.run(plan, opts)
        return cls(
            platform,
            result,
            vmsa_pages=result.vmsa_spas,
            private=result.private_pages,
            sev_features=opts.sev_features,
            alloc=launcher.alloc,
            policy=policy,
        )

    # --- memory ---------------------------------------------------------------------------------
    def private_spa(self, gpa: int) -> int | None:
        """The guest_memfd page backing private ``gpa`` (KVM's ``kvm_gmem_get_pfn``)."""
        return self._gmem.get(gpa & ~(PAGE - 1))

    def map_private(self, gpa: int, count: int = 1) -> list[int]:
        """Make ``count`` pages at ``gpa`` private: a guest_memfd page RMPUPDATEd to the guest
        (GUEST_INVALID: the guest must PVALIDATE it) and mapped in the NPT."""
        out = []
        for i in range(count):
            g = (gpa & ~(PAGE - 1)) + i * PAGE
            spa = self._gmem.get(g)
            if spa is None:
                spa = self.alloc.page()
                rc = self.p.cpu.rmpupdate(spa, assigned=True, asid=self.asid, gpa=g)
                if rc is not RmpResult.SUCCESS:
                    raise KvmError(f"RMPUPDATE of GPA {g:#x} to private: {rc.name}")
                self._gmem[g] = spa
            self.p.cpu.npt_map(self.asid, g, spa)
            out.append(spa)
        return out

    def map_shared(self, gpa: int, count: int = 1) -> list[int]:
        """Make ``count`` pages at ``gpa`` shared: the private page (if any) goes back to the
        hypervisor (``rmp_make_shared``) and a hypervisor page is mapped instead."""
        out = []
        for i in range(count):
            g = (gpa & ~(PAGE - 1)) + i * PAGE
            private = self._gmem.pop(g, None)
            if private is not None:
                rc = self.p.cpu.rmpupdate(private)
                if rc is not RmpResult.SUCCESS:
                    raise KvmError(f"RMPUPDATE of GPA {g:#x} to shared: {rc.name}")
            spa = self._shared.get(g)
            if spa is None:
                spa = self._shared[g] = self.alloc.page()
            self.p.cpu.npt_map(self.asid, g, spa)
            out.append(spa)
        return out

    # --- vCPU life cycle ------------------------------------------------------------------------
    def vcpu(self, apic_id: int) -> KvmVcpu:
        return self.vcpus[apic_id]

    def run(self, apic_id: int) -> RunningVcpu:
        """KVM_RUN: apply a pending state update, then VMRUN from the vCPU's VMSA.

        Raises :class:`VcpuNotRunnable` for a vCPU that is not RUNNABLE, :class:`KvmError`
        when it has no VMSA, and :class:`sp_emu.guest.VmrunError` when VMRUN fails.
        """
        vcpu = self.vcpus[apic_id]
        self._stop(vcpu)  # a context still marked running has exited
        if vcpu.update_requested:
            # vcpu_enter_guest: KVM_REQ_UPDATE_PROTECTED_GUEST_STATE -> kvm_vcpu_reset(init)
            vcpu.update_requested = False
            self._init_protected_state(vcpu)
        if vcpu.mp_state is not MpState.RUNNABLE:
            raise VcpuNotRunnable(f"vCPU {apic_id} is {vcpu.mp_state.value}")
        spa = vcpu.slots[vcpu.current_vmpl].vmsa_pa
        if spa is None:
            raise KvmError(f"vCPU {apic_id} has no VMSA (-EINVAL)")
        vmcb = vcpu.vmcb
        vmcb.vmsa_pa = spa
        vmcb.vmpl = vcpu.current_vmpl if self.policy.multi_vmpl else None
        vcpu.running = self.p.cpu.vmrun(vmcb, partial(self._on_vmgexit, vcpu))
        return vcpu.running

    def init(self, apic_id: int) -> None:
        """Deliver INIT: the vCPU is reset (applying an AP Creation that waits for it) and,
        unless it is the BSP, waits for a SIPI."""
        vcpu = self.vcpus[apic_id]
        self._stop(vcpu)
        self._init_protected_state(vcpu)
        vcpu.mp_state = MpState.RUNNABLE if apic_id == 0 else MpState.INIT_RECEIVED

    def sipi(self, apic_id: int) -> None:
        """Deliver a SIPI: an AP that received INIT becomes RUNNABLE. Its registers (RIP, CS)
        come from its VMSA; the SIPI vector cannot change protected state."""
        vcpu = self.vcpus[apic_id]
        if vcpu.mp_state is MpState.INIT_RECEIVED:
            vcpu.mp_state = MpState.RUNNABLE

    def init_sipi(self, apic_id: int) -> None:
        self.init(apic_id)
        self.sipi(apic_id)

    def _stop(self, vcpu: KvmVcpu) -> None:
        if vcpu.running is not None:
            vcpu.running.active = False
            vcpu.running = None

    def _init_protected_state(self, vcpu: KvmVcpu) -> bool:
        """``sev_snp_init_protected_guest_state``: apply the AP Creation waiting for reset."""
        slot = vcpu.slots[vcpu.target_vmpl]
        if not slot.waiting_for_reset:
            return False
        slot.waiting_for_reset = False
        self._update_protected_state(vcpu)
        return True

    def _update_protected_state(self, vcpu: KvmVcpu) -> None:
        """``__sev_snp_update_protected_guest_state``: drop the current VMSA; with a pending
        GPA whose private page exists, run from that page."""
        vmpl = vcpu.target_vmpl
        slot = vcpu.slots[vmpl]
        vcpu.mp_state = MpState.HALTED
        slot.vmsa_pa = None
        gpa, slot.pending_gpa = slot.pending_gpa, None
        if gpa is not None:
            spa = self.private_spa(gpa)
            if spa is not None:
                slot.vmsa_pa = spa
                vcpu.mp_state = MpState.RUNNABLE
        self._switch_vmpl(vcpu, vmpl)

    def _switch_vmpl(self, vcpu: KvmVcpu, vmpl: int) -> None:
        """Multi-VMPL: make ``vmpl`` the one that runs, with its own GHCB MSR."""
        if vcpu.current_vmpl != vmpl:
            vcpu.slots[vcpu.current_vmpl].ghcb_msr = vcpu.vmcb.ghcb_gpa
            vcpu.vmcb.ghcb_gpa = vcpu.slots[vmpl].ghcb_msr
            vcpu.current_vmpl = vmpl

    def _run_vmpl(self, vcpu: KvmVcpu, vmpl: int) -> bool:
        """``__sev_run_vmpl_vmsa`` (multi-VMPL RFC): run the vCPU's VMSA at ``vmpl`` next."""
        if vmpl >= VMPLS:
            return False
        vcpu.target_vmpl = vmpl
        if vmpl == vcpu.current_vmpl or self._init_protected_state(vcpu):
            return True
        if vcpu.slots[vmpl].vmsa_pa is None:
            return False
        self._switch_vmpl(vcpu, vmpl)
        return True

    # --- VMGEXIT --------------------------------------------------------------------------------
    def _on_vmgexit(self, vcpu: KvmVcpu, running: RunningVcpu) -> bool:
        """``sev_handle_vmgexit``; returns whether the vCPU resumes the same VMSA."""
        value = running.vmcb.ghcb_gpa
        vmpl = vcpu.current_vmpl
        if value & MSR_INFO_MASK:
            self._msr_protocol(vcpu, running.vmcb)
        elif value:
            self._ghcb_event(vcpu, value)
        # value == 0: "Without a GHCB, just return right back to the guest".
        return not (
            vcpu.update_requested or vcpu.running is not running or vcpu.current_vmpl != vmpl
        )

    def hv_features(self) -> int:
        features = HvFeature.SNP | HvFeature.SNP_AP_CREATION
        if self.policy.multi_vmpl:
            features |= HvFeature.SNP_MULTI_VMPL
        return int(features)

    def _msr_protocol(self, vcpu: KvmVcpu, vmcb: Vmcb) -> None:
        """``sev_handle_vmgexit_msr_protocol``; unknown requests leave the MSR as it is."""
        value = vmcb.ghcb_gpa
        info = value & MSR_INFO_MASK
        if info == MsrCode.SEV_INFO_REQ:
            vmcb.ghcb_gpa = msr_sev_info(GHCB_VERSION_MAX, GHCB_VERSION_MIN, CBIT)
        elif info == MsrCode.HV_FEATURES_REQ:
            vmcb.ghcb_gpa = (self.hv_features() << 12) | MsrCode.HV_FEATURES_RESP
        elif info == MsrCode.REGISTER_GHCB_GPA_REQ:
            gfn = value >> 12
            vcpu.slots[vcpu.current_vmpl].ghcb_registered = gfn << 12
            vmcb.ghcb_gpa = (gfn << 12) | MsrCode.REGISTER_GHCB_GPA_RESP
        elif info == MsrCode.PSC_REQ:
            gpa, op = msr_psc_decode(value)
            error = 0
            if op == PscOp.PRIVATE and gpa >> self.policy.guest_maxphyaddr == 0:
                self.map_private(gpa)
            elif op == PscOp.SHARED and gpa >> self.policy.guest_maxphyaddr == 0:
                self.map_shared(gpa)
            else:
                error = PSC_RESP_ERROR
            vmcb.ghcb_gpa = (error << 32) | MsrCode.PSC_RESP
        elif info == MsrCode.RUN_AT_VMPL_REQ and self.policy.multi_vmpl:
            # Success is set first: it is saved with this VMPL's MSR if the switch happens.
            vmcb.ghcb_gpa = MsrCode.RUN_AT_VMPL_RESP
            if not self._run_vmpl(vcpu, (value >> 32) & 0xFF):
                vmcb.ghcb_gpa = (1 << 32) | MsrCode.RUN_AT_VMPL_RESP
        elif info == MsrCode.TERMINATE_REQ:
            self._stop(vcpu)
            raise KvmError(f"guest requested termination ({value:#x})")

    def _ghcb_event(self, vcpu: KvmVcpu, gpa: int) -> None:
        """An NAE event through the GHCB page at ``gpa``."""
        spa = self._shared.get(gpa)
        if spa is None:  # kvm_vcpu_map fails: not a shared page of the guest
            raise KvmError(f"GHCB GPA {gpa:#x} cannot be mapped (-EINVAL)")
        ghcb = Ghcb(self.p.cpu.host_read(spa, GHCB_SIZE))
        if vcpu.slots[vcpu.current_vmpl].ghcb_registered != gpa:
            raise KvmError(f"GHCB GPA {gpa:#x} is not registered (-EINVAL)")
        valid = {f: ghcb.is_valid(f) for f in GhcbField}
        ghcb.clear_valid()  # sev_es_sync_from_ghcb
        exit_code = ghcb.get(GhcbField.SW_EXITCODE)
        info1, info2 = ghcb.get(GhcbField.SW_EXITINFO1), ghcb.get(GhcbField.SW_EXITINFO2)
        reason = self._validate(ghcb, valid, exit_code, info1)
        if reason is not None:
            self._answer(spa, ghcb, HV_RESP_MALFORMED_INPUT, reason)
            return
        if exit_code not in _MODELLED_EVENTS:
            raise NotImplementedError(f"NAE event {exit_code:#x} is not modelled")
        if exit_code == NaeExit.HV_FEATURES:
            self._answer(spa, ghcb, 0, self.hv_features())
            return
        if exit_code in (NaeExit.GUEST_REQUEST, NaeExit.EXT_GUEST_REQUEST):
            self._guest_request(spa, ghcb, exit_code == NaeExit.EXT_GUEST_REQUEST, info1, info2)
            return
        if self._ap_creation(vcpu, info1, info2, ghcb.get(GhcbField.RAX)):
            self._answer(spa, ghcb, 0, 0)
        else:
            self._answer(spa, ghcb, HV_RESP_MALFORMED_INPUT, GhcbError.INVALID_INPUT)

    def _validate(
        self, ghcb: Ghcb, valid: dict[GhcbField, bool], exit_code: int, info1: int
    ) -> GhcbError | None:
        """``sev_es_validate_vmgexit`` for the events modelled here."""
        if ghcb.usage != 0:
            return GhcbError.INVALID_USAGE
        if not (
            valid[GhcbField.SW_EXITCODE]
            and valid[GhcbField.SW_EXITINFO1]
            and valid[GhcbField.SW_EXITINFO2]
        ):
            return GhcbError.MISSING_INPUT
        if exit_code == NaeExit.AP_CREATION:
            request = info1 & 0xFFFF_FFFF
            if self.policy.multi_vmpl:
                request &= ~AP_VMPL_MASK
            if request != ApRequest.DESTROY and not valid[GhcbField.RAX]:
                return GhcbError.MISSING_INPUT
            return None
        if exit_code == NaeExit.EXT_GUEST_REQUEST and not (
            valid[GhcbField.RAX] and valid[GhcbField.RBX]
        ):
            return GhcbError.MISSING_INPUT
        if exit_code in _MODELLED_EVENTS or exit_code in _KVM_EVENTS_NOT_MODELLED:
            return None
        if exit_code < 0x8000_0000:  # an ordinary #VC exit (CPUID, MSR, IOIO, ...)
            raise NotImplementedError(f"#VC exit {exit_code:#x} is not modelled")
        return GhcbError.INVALID_EVENT

    def attach_certificates(self, certs: Mapping[str, bytes]) -> None:
        """The certificates the host hands to extended guest requests (names ``ark``,
        ``ask``, ``vcek``, ... or GUIDs, in table order), as a cloud host configures them."""
        self._certs = dict(certs)
        self._requests = None

    def _guest_request(
        self, spa: int, ghcb: Ghcb, extended: bool, req_gpa: int, rsp_gpa: int
    ) -> None:
        """``snp_handle_guest_req`` / ``snp_handle_ext_guest_req``: copy the request page out
        of guest memory, run SNP_GUEST_REQUEST with a firmware-owned response page, copy the
        response back; SW_EXITINFO2 = (VMM error << 32) | firmware status."""
        from sp_emu.attestation import GuestRequestHost

        req_spa, rsp_spa = self._shared.get(req_gpa), self._shared.get(rsp_gpa)
        if req_gpa & 0xFFF or rsp_gpa & 0xFFF or req_gpa == rsp_gpa or not (req_spa and rsp_spa):
            self._answer(spa, ghcb, HV_RESP_MALFORMED_INPUT, GhcbError.INVALID_INPUT)
            return
        if self._requests is None:
            self._requests = GuestRequestHost(self.p, self.result.gctx, certs=self._certs)
        request = self.p.cpu.host_read(req_spa, PAGE)
        if extended:
            certs_gpa, npages = ghcb.get(GhcbField.RAX), ghcb.get(GhcbField.RBX)
            pages = [self._shared.get(certs_gpa + i * PAGE) for i in range(npages)]
            if certs_gpa & 0xFFF or not all(pages):
                self._answer(spa, ghcb, HV_RESP_MALFORMED_INPUT, GhcbError.INVALID_INPUT)
                return
            result = self._requests.ext_guest_request(request, npages)
            ghcb.set(GhcbField.RBX, result.npages)
            for i, page in enumerate(pages):
                chunk = result.certs[i * PAGE : (i + 1) * PAGE]
                if chunk and page is not None:
                    self.p.cpu.host_write(page, chunk)
        else:
            result = self._requests.guest_request(request)
        if result.response:
            self.p.cpu.host_write(rsp_spa, result.response)
        self._answer(spa, ghcb, 0, result.exitinfo2)

    def _answer(self, spa: int, ghcb: Ghcb, info1: int, info2: int) -> None:
        ghcb.set(GhcbField.SW_EXITINFO1, info1)
        ghcb.set(GhcbField.SW_EXITINFO2, info2)
        self.p.cpu.host_write(spa, ghcb.to_bytes())

    def _ap_creation(self, vcpu: KvmVcpu, info1: int, vmsa_gpa: int, rax: int) -> bool:
        """``sev_snp_ap_creation``: True on success (the guest sees 0), False for -EINVAL."""
        request = info1 & 0xFFFF_FFFF
        apic_id = info1 >> 32
        vmpl = 0
        if self.policy.multi_vmpl:
            vmpl = (request & AP_VMPL_MASK) >> AP_VMPL_SHIFT
            request &= ~AP_VMPL_MASK
            if vmpl >= VMPLS:
                return False
        target = self.vcpus.get(apic_id)
        if target is None:
            return False
        slot = target.slots[vmpl]
        kick = True
        if self.policy.kick_on_error:
            slot.pending_gpa = None
            slot.waiting_for_reset = True
        ok = self._ap_checks(vcpu, target, request, vmpl, vmsa_gpa, rax)
        if request == ApRequest.CREATE_ON_INIT and (ok or self._features_ok(rax)):
            kick = False  # set in the switch, after the (pre-2025) SEV_FEATURES check
        if ok:
            slot.pending_gpa = None if request == ApRequest.DESTROY else vmsa_gpa
            slot.waiting_for_reset = True
            target.target_vmpl = vmpl
        if kick and (ok or self.policy.kick_on_error):
            target.update_requested = True  # kvm_make_request_and_kick
            if target.running is not None and target is not vcpu:
                self._stop(target)
        return ok

    def _features_ok(self, rax: int) -> bool:
        return not (rax ^ self.sev_features) & self.policy.ap_features_mask

    def _ap_checks(
        self, vcpu: KvmVcpu, target: KvmVcpu, request: int, vmpl: int, gpa: int, rax: int
    ) -> bool:
        if self.policy.multi_vmpl and vmpl == 0 and (target is vcpu or vcpu.current_vmpl != 0):
            return False  # "VMPL0 can only be replaced by another vCPU running VMPL0"
        if request in (ApRequest.CREATE_ON_INIT, ApRequest.CREATE):
            if not self._features_ok(rax):
                return False
            if gpa & (PAGE - 1) or gpa >> self.policy.guest_maxphyaddr:
                return False  # page_address_valid
            # Erratum: an RMP #PF on a 2 MiB page colliding with a VMSA's RMP entry.
            return bool(gpa & (PMD_SIZE - 1))
        return request == ApRequest.DESTROY
