"""The guest at run time: vCPUs entered with VMRUN from VMSA pages, and the software inside.

* :mod:`.vmrun` - the CPU's side: :class:`Vmcb`, :func:`vmrun` (also ``platform.cpu.vmrun``)
  with its checks on the VMSA page (:class:`VmrunCheck`, :class:`VmrunError`), and
  :class:`RunningVcpu`, a vCPU inside the guest with its registers and VMGEXIT.
* :mod:`.ghcb` - the GHCB page and MSR protocol both sides speak.
* :mod:`.software` - :class:`GuestSoftware`: guest code on one vCPU (page acceptance,
  RMPADJUST, building VMSAs, AP Creation).
* :mod:`.svsm` - :class:`Svsm`: a VMPL0 component running the guest OS at a lower VMPL.

The hypervisor's half (KVM's vCPUs, VMRUN loop and GHCB handlers) lives in
:mod:`sp_emu.hypervisors.kvm_runtime`; nothing here imports it.
"""

from sp_emu.guest.ghcb import (
    AP_VMPL_MASK,
    AP_VMPL_SHIFT,
    HV_RESP_MALFORMED_INPUT,
    ApRequest,
    Ghcb,
    GhcbError,
    GhcbField,
    HvFeature,
    MsrCode,
    NaeExit,
    PscOp,
)
from sp_emu.guest.software import GhcbProtocolError, GuestSoftware, NaeResult
from sp_emu.guest.svsm import Svsm, SvsmError
from sp_emu.guest.vmrun import (
    VMEXIT_INVALID,
    VMEXIT_VMGEXIT,
    ExitHandler,
    RunningVcpu,
    Vmcb,
    VmrunCheck,
    VmrunError,
    check_vmrun,
    vmrun,
)

__all__ = [
    "AP_VMPL_MASK",
    "AP_VMPL_SHIFT",
    "HV_RESP_MALFORMED_INPUT",
    "VMEXIT_INVALID",
    "VMEXIT_VMGEXIT",
    "ApRequest",
    "ExitHandler",
    "Ghcb",
    "GhcbError",
    "GhcbField",
    "GhcbProtocolError",
    "GuestSoftware",
    "HvFeature",
    "MsrCode",
    "NaeExit",
    "NaeResult",
    "PscOp",
    "RunningVcpu",
    "Svsm",
    "SvsmError",
    "Vmcb",
    "VmrunCheck",
    "VmrunError",
    "check_vmrun",
    "vmrun",
]
