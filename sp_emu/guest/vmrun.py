"""VMRUN of an SEV-SNP vCPU: the checks the CPU makes on the VMSA page, and the running vCPU.

For an SNP guest the hypervisor's VMCB names only the ASID and the system address of the
VMSA page (``vmsa_pa``); the registers live in that page, encrypted with the guest's key. On
VMRUN the CPU (this module) checks the page through the RMP and the VMSA's own fields, then
loads the registers from it. A failed check makes VMRUN fail at once with exit code
VMEXIT_INVALID (-1), which KVM reports to userspace as a failed entry
(``KVM_EXIT_FAIL_ENTRY``; QEMU prints "entry failed, hardware error 0xffffffffffffffff").

Checks, in this order (the first failure is raised as :class:`VmrunError` naming it):

=====================  ===================================================================
``NOT_ACTIVATED``      no key is installed for the ASID (the guest was never activated)
``VMSA_ADDRESS``       ``vmsa_pa`` is not page aligned or not in DRAM covered by the RMP
``NOT_ASSIGNED``       the RMP entry is not assigned (hypervisor page)
``OWNER``              the RMP entry is assigned to another ASID (or to the firmware)
``IMMUTABLE``          the RMP entry is immutable (firmware, pre-guest or pre-swap page)
``NOT_VALIDATED``      the RMP entry's Validated bit is clear
``NOT_VMSA``           the RMP entry's VMSA bit is clear
``VMPL_INVALID``       the VMSA's VMPL field (0xCA) is not 0-3
``VMPL_MISMATCH``      the VMSA's VMPL differs from the VMPL the hypervisor meant to run
``SNP_INACTIVE``       SEV_FEATURES (0x3B0) lacks SNPActive (bit 0)
``FEATURES_MISMATCH``  SEV_FEATURES differs from the guest's (the VMCB's ``sev_features``)
=====================  ===================================================================

What is confirmed and what is this model's reading (vmsa-layout.md §4 says the hardware's
checks are "not in the stored sources"):

* That VMRUN uses only pages whose RMP entry is assigned to the guest's ASID with the VMSA
  bit set is confirmed in substance: KVM does not check the VMSA bit of a guest-created VMSA
  and relies on "VMRUN fails if the page is not a proper VMSA" (L-KVM comment, §7.4). That the
  entry must also be validated and not immutable, the order of the checks, and that each of
  them gives VMEXIT_INVALID (rather than e.g. a #NPF with the RMP bit) are unconfirmed. A
  VMSA inside a 2 MiB RMP page is judged by the 2 MiB entry; whether VMRUN accepts such a
  page at all is unconfirmed. There is no GPA check: VMRUN reaches the page by its system
  address (KVM's initial VMSAs are RMP-recorded at GPA 0xFFFFFFFFF000).
* The VMPL field selects the VMPL the vCPU runs at (CSVSM, Linux Hyper-V AP code); that
  VMRUN rejects values above 3 is unconfirmed. ``VMPL_MISMATCH`` is model policy: the
  hardware has no other source of a VMPL to compare with; the hypervisor's expectation
  (``Vmcb.vmpl``, set by a multi-VMPL KVM for the slot it runs) stands in for it.
* SNPActive being required is consistent with KVM forcing it into every SNP VMSA; the exact
  SEV_FEATURES rule is unconfirmed. The model requires equality with the VMCB's
  ``sev_features`` (KVM's per-VM ``vmsa_features``); CPUs with the VMCB field
  ALLOWED_SEV_FEATURES would check a subset rule instead.
* Registers are read through the guest's key; with VmsaRegProt (SEV_FEATURES bit 14) the
  tweaked quadwords are XORed back with REG_PROT_NONCE, as SNP_DBG_DECRYPT does. That a
  guest-created VMSA with VmsaRegProt is untweaked the same way is unconfirmed.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from rmp import PAGE_4K as PAGE
from rmp import layout as RL
from sp_emu.cpu import GuestCpu, VmrunFailed
from sp_emu.secrets import apply_vmsa_tweak
from vmsa import FIELD_OFFSETS, SevFeatures, Vmsa

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

    from sp_emu.platform import Platform

VMEXIT_INVALID: Final = (1 << 64) - 1
"""The exit code of a VMRUN that fails its consistency checks (SVM_EXIT_ERR, -1)."""
VMEXIT_VMGEXIT: Final = 0x403
"""The exit code of VMGEXIT (SVM_EXIT_VMGEXIT)."""
MAX_VMPL: Final = 3
_VMPL_OFFSET: Final = FIELD_OFFSETS["vmpl"][0]
_FEATURES_OFFSET: Final = FIELD_OFFSETS["sev_features"][0]
_NONCE_OFFSET: Final = FIELD_OFFSETS["reg_prot_nonce"][0]


class VmrunCheck(enum.Enum):
    """Which VMRUN check failed (see the module docstring for their order)."""

    NOT_ACTIVATED = "no key is installed for the ASID"
    VMSA_ADDRESS = "VMSA address not page aligned or not covered by the RMP"
    NOT_ASSIGNED = "VMSA page not assigned"
    OWNER = "VMSA page assigned to another ASID"
    IMMUTABLE = "VMSA page immutable"
    NOT_VALIDATED = "VMSA page not validated"
    NOT_VMSA = "RMP VMSA bit clear"
    VMPL_INVALID = "VMSA VMPL field not 0-3"
    VMPL_MISMATCH = "VMSA VMPL field differs from the VMPL to run"
    SNP_INACTIVE = "SEV_FEATURES lacks SNPActive"
    FEATURES_MISMATCH = "SEV_FEATURES differs from the guest's"


class VmrunError(VmrunFailed):
    """VMRUN failed (exit code VMEXIT_INVALID) because of ``check``."""

    def __init__(self, check: VmrunCheck, detail: str = "") -> None:
        text = f"VMRUN failed (VMEXIT_INVALID): {check.value}"
        super().__init__(f"{text}; {detail}" if detail else text)
        self.check = check
        self.exit_code = VMEXIT_INVALID


@dataclass
class Vmcb:
    """The parts of a VMCB an SNP VMRUN reads and a VMGEXIT writes (hypervisor-owned)."""

    asid: int
    vmsa_pa: int
    """System address of the VMSA page (KVM: ``control.vmsa_pa``)."""
    sev_features: int
    """The guest's SEV_FEATURES as the hypervisor set them up (KVM: ``vmsa_features``)."""
    vmpl: int | None = None
    """The VMPL the hypervisor means to run (multi-VMPL KVM); None: whatever the VMSA says."""
    ghcb_gpa: int = 0
    """The GHCB MSR as the guest last wrote it (VMCB ``ghcb_gpa``; the MSR is virtualised
    through this field)."""
    exit_code: int = 0


ExitHandler = Callable[["RunningVcpu"], bool]
"""What the hypervisor does on a VMGEXIT: handle it and return True to resume the same
VMSA (VMRUN again), False to stop running this context."""


def _untweak(page: bytearray) -> None:
    apply_vmsa_tweak(page, int.from_bytes(page[_NONCE_OFFSET : _NONCE_OFFSET + 8], "little"))


def check_vmrun(platform: Platform, vmcb: Vmcb) -> Vmsa:
    """Make VMRUN's checks for ``vmcb`` and return the registers it would load.

    Raises :class:`VmrunError` naming the first failed check.
    """
    key = platform.fw.asid_keys.get(vmcb.asid)
    if key is None:
        raise VmrunError(VmrunCheck.NOT_ACTIVATED, f"ASID {vmcb.asid}")
    spa = vmcb.vmsa_pa
    pfn = spa >> 12
    table = platform.rmp
    if spa & (PAGE - 1) or not platform.memory.contains(spa, PAGE) or not table.covers(pfn):
        raise VmrunError(VmrunCheck.VMSA_ADDRESS, f"{spa:#x}")
    q0, _q1 = table.read(table.effective_pfn(pfn))
    if not q0 & RL.ASSIGNED.mask:
        raise VmrunError(VmrunCheck.NOT_ASSIGNED, f"page {pfn:#x}")
    owner = RL.ASID.get(q0)
    if owner != vmcb.asid:
        raise VmrunError(VmrunCheck.OWNER, f"page {pfn:#x} belongs to ASID {owner}")
    if q0 & RL.IMMUTABLE.mask:
        raise VmrunError(VmrunCheck.IMMUTABLE, f"page {pfn:#x}")
    if not q0 & RL.VALIDATED.mask:
        raise VmrunError(VmrunCheck.NOT_VALIDATED, f"page {pfn:#x}")
    if not q0 & RL.VMSA.mask:
        raise VmrunError(VmrunCheck.NOT_VMSA, f"page {pfn:#x}")

    page = bytearray(platform.memory.read(spa, PAGE, key))
    vmpl = page[_VMPL_OFFSET]
    if vmpl > MAX_VMPL:
        raise VmrunError(VmrunCheck.VMPL_INVALID, f"VMPL {vmpl}")
    if vmcb.vmpl is not None and vmpl != vmcb.vmpl:
        raise VmrunError(VmrunCheck.VMPL_MISMATCH, f"VMSA says {vmpl}, expected {vmcb.vmpl}")
    features = int.from_bytes(page[_FEATURES_OFFSET : _FEATURES_OFFSET + 8], "little")
    if not features & SevFeatures.SNP_ACTIVE:
        raise VmrunError(VmrunCheck.SNP_INACTIVE, f"SEV_FEATURES {features:#x}")
    if features != vmcb.sev_features:
        raise VmrunError(
            VmrunCheck.FEATURES_MISMATCH,
            f"VMSA {features:#x}, guest {vmcb.sev_features:#x}",
        )
    if features & SevFeatures.VMSA_REG_PROT:
        _untweak(page)
    return Vmsa.from_bytes(page)


def vmrun(platform: Platform, vmcb: Vmcb, exit_handler: ExitHandler | None = None) -> RunningVcpu:
    """VMRUN: check the VMSA page of ``vmcb`` and enter the guest (see :class:`RunningVcpu`)."""
    return RunningVcpu(platform, vmcb, check_vmrun(platform, vmcb), exit_handler)


class RunningVcpu:
    """A vCPU inside the guest after a successful VMRUN: its registers as loaded from the
    VMSA, and the identity (ASID, VMPL) every instruction and access it makes carries.

    ``active`` turns False when the vCPU leaves the guest for good (a VMGEXIT the hypervisor
    does not resume, e.g. one that replaced this vCPU's VMSA).
    """

    def __init__(
        self, platform: Platform, vmcb: Vmcb, regs: Vmsa, exit_handler: ExitHandler | None
    ) -> None:
        self.platform = platform
        self.vmcb = vmcb
        self.regs = regs
        self.exit_handler = exit_handler
        self.active = True

    @property
    def cpu(self) -> GuestCpu:
        """The identity the CPU attaches to this vCPU's accesses: ASID and VMPL."""
        return GuestCpu(self.vmcb.asid, self.regs.vmpl)

    @property
    def vmpl(self) -> int:
        return self.regs.vmpl

    @property
    def rip(self) -> int:
        return self.regs.rip

    @property
    def sev_status(self) -> int:
        """MSR SEV_STATUS as this vCPU reads it: SEV, SEV-ES, SNP, then SEV_FEATURES << 2."""
        return 0b11 | (self.regs.sev_features << 2)

    def rdmsr_ghcb(self) -> int:
        return self.vmcb.ghcb_gpa

    def wrmsr_ghcb(self, value: int) -> None:
        self._require_active()
        self.vmcb.ghcb_gpa = value

    def vmgexit(self) -> None:
        """VMGEXIT: exit to the hypervisor, which handles the request and (normally) resumes
        this vCPU with a new VMRUN of the same VMSA, whose checks are made again."""
        self._require_active()
        self.vmcb.exit_code = VMEXIT_VMGEXIT
        self.active = False
        if self.exit_handler is None or not self.exit_handler(self):
            return
        self.regs = check_vmrun(self.platform, self.vmcb)
        self.active = True

    def _require_active(self) -> None:
        if not self.active:
            raise RuntimeError("this vCPU context is no longer running")
