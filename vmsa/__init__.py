"""The VMSA: the encrypted 4 KiB page that holds an SEV-ES/SEV-SNP vCPU's registers.

For an SEV-ES or SEV-SNP guest the CPU does not keep guest registers in the
host-visible VMCB.  On every #VMEXIT it saves them into the vCPU's VMSA page, which is
encrypted with the guest's key, and VMRUN restores them from it.  Under SNP the page is
marked in the RMP (RMP.VMSA = 1) so that only the CPU may use it as a VMSA.  The
initial VMSAs are written by the hypervisor and measured by the firmware at launch
(SNP_LAUNCH_UPDATE, page type VMSA), so their exact bytes are part of the guest's
launch digest; later VMSAs (APs, lower VMPLs) are created by the guest itself.

This package is a leaf: it depends only on the standard library and :mod:`binlayout`
(``construct`` is imported only when a tool asks for ``VMSA_LAYOUT.struct``).

* :data:`VMSA_LAYOUT`, :data:`FIELD_OFFSETS` - the byte layout, declared once.
* :class:`Vmsa`, :class:`Segment` - typed, immutable view; ``from_bytes``/``to_bytes``.
* :class:`SevFeatures` - the SEV_FEATURES bits at offset 0x3B0.
* :class:`VmsaProfile`, :data:`PROFILES` - each hypervisor's RESET register state.
* :func:`build_bsp`, :func:`build_ap`, :func:`build_lower_vmpl`, :func:`build_vcpus`.
* :func:`cpu_signature`, :func:`vcpu_signature` - CPUID signatures that land in RDX.
* :func:`check_vmsa`, :class:`VmsaInvalid` - consistency checks.
"""

from __future__ import annotations

from binlayout.lazy import lazy_exports

from .builders import build_ap, build_bsp, build_lower_vmpl, build_vcpus
from .cpu_types import VCPU_SIGNATURES, cpu_signature, decode_cpu_signature, vcpu_signature
from .errors import VmsaError, VmsaInvalid
from .layout import FIELD_OFFSETS, VMSA_LAYOUT, VMSA_SIZE
from .model import FieldValue, Segment, Vmsa
from .profiles import EC2, GCE, PROFILES, QEMU, QEMU_SVSM, RESET_EIP, VmsaProfile

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .features import INT_INJ_MODES, RESERVED_SEV_FEATURES, SevFeatures
    from .validate import CHECKED_RESERVED_FIELDS, RESERVED_RANGES, ReservedRange, check_vmsa

_LAZY = {
    "INT_INJ_MODES": "features",
    "RESERVED_SEV_FEATURES": "features",
    "SevFeatures": "features",
    "CHECKED_RESERVED_FIELDS": "validate",
    "RESERVED_RANGES": "validate",
    "ReservedRange": "validate",
    "check_vmsa": "validate",
}
"""Names of the modules a launch does not need, imported on first use (start-up time)."""


__getattr__ = lazy_exports(__name__, {k: f".{v}" for k, v in _LAZY.items()}, globals())


__all__ = [
    "CHECKED_RESERVED_FIELDS",
    "EC2",
    "FIELD_OFFSETS",
    "GCE",
    "INT_INJ_MODES",
    "PROFILES",
    "QEMU",
    "QEMU_SVSM",
    "RESERVED_RANGES",
    "RESERVED_SEV_FEATURES",
    "RESET_EIP",
    "VCPU_SIGNATURES",
    "VMSA_LAYOUT",
    "VMSA_SIZE",
    "FieldValue",
    "ReservedRange",
    "Segment",
    "SevFeatures",
    "Vmsa",
    "VmsaError",
    "VmsaInvalid",
    "VmsaProfile",
    "build_ap",
    "build_bsp",
    "build_lower_vmpl",
    "build_vcpus",
    "check_vmsa",
    "cpu_signature",
    "decode_cpu_signature",
    "vcpu_signature",
]
