"""The initial vCPU register state each hypervisor hands to an SEV-SNP guest, as data.

Before launch the hypervisor writes each vCPU's RESET state into its VMSA page and
the firmware measures the page (SNP_LAUNCH_UPDATE, page type VMSA).  Hypervisors do
not agree on every register, so a verifier must know which one launched the guest.
Each difference is a field of :class:`VmsaProfile`; :mod:`vmsa.builders` turns a
profile into VMSA pages without ever asking *which* hypervisor it is.

Sources (see ``/work/shared/reference``): vmsa-layout.md §5.1 (KVM/QEMU RESET state:
sev-snp-measure ``vmsa.py`` and the ``sev`` crate ``measurement/vmsa.rs``) and
launch-measurement.md §9.4 (EC2 and GCE deltas) and §9.6 (COCONUT-SVSM entry state).
The EC2 and GCE values are known only through sev-snp-measure (single source).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from binlayout.records import fields, record, replace

from .layout import U64_MASK
from .model import Segment

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final

RESET_EIP: Final = 0xFFFF_FFF0
"""Architectural reset vector: where the BSP starts (CS base 0xFFFF0000 + IP 0xFFF0)."""

# Values shared by every profile below (vmsa-layout.md §5.1, launch-measurement.md §9.4).
_DATA_SEGMENT: Final = Segment(selector=0, attrib=0x93, limit=0xFFFF, base=0)
"""Real-mode data segment: present, ring 0, read/write, accessed, 64 KiB."""
_TABLE_REGISTER: Final = Segment(selector=0, attrib=0, limit=0xFFFF, base=0)
"""GDTR/IDTR at RESET: base 0, limit 0xFFFF."""
_LDTR: Final = Segment(selector=0, attrib=0x82, limit=0xFFFF, base=0)
"""LDTR at RESET: present LDT descriptor type."""
_TR_BUSY_TSS32: Final = Segment(selector=0, attrib=0x8B, limit=0xFFFF, base=0)
"""TR at RESET: present busy 32-bit TSS."""

EFER_SVME: Final = 1 << 12
"""KVM keeps EFER.SVME set in the VMCB/VMSA of every SVM guest."""
CR0_ET: Final = 1 << 4
CR0_PE: Final = 1 << 0
CR4_MCE: Final = 1 << 6
"""KVM sets CR4.MCE in the initial guest state."""
DR7_RESET: Final = 0x400
DR6_RESET: Final = 0xFFFF_0FF0
RFLAGS_RESET: Final = 0x2
G_PAT_RESET: Final = 0x0007_0406_0007_0406
"""Architectural PAT MSR value at RESET (WB, WT, UC-, UC repeated)."""
XCR0_X87: Final = 0x1
MXCSR_RESET: Final = 0x1F80
"""All SSE exceptions masked, round to nearest."""
FCW_FNINIT: Final = 0x37F
"""x87 control word after FNINIT: all exceptions masked, 64-bit precision."""


@record(kw_only=True)
class VmsaProfile:
    """The RESET register state one hypervisor gives its vCPUs.

    Every register not named here is zero in the VMSA.  CS and RIP depend on where a
    vCPU starts (its EIP): CS.base = ``eip & cs_base_mask`` and
    RIP = ``eip & rip_mask``; for the usual real-mode start this is
    CS.base = EIP & 0xFFFF0000 and RIP = EIP & 0xFFFF.  RDX is the vCPU model's CPUID
    signature unless ``rdx`` fixes another value.
    """

    name: str
    """Short identifier, e.g. ``"qemu"``; the key in :data:`PROFILES`."""
    description: str
    """One sentence on where these values come from."""

    cs_selector: int = 0xF000
    cs_limit: int = 0xFFFF
    cs_attrib_bsp: int = 0x9B
    """CS attributes of the bootstrap processor."""
    cs_attrib_ap: int = 0x9B
    """CS attributes of application processors."""
    cs_base_mask: int = 0xFFFF_0000
    rip_mask: int = 0xFFFF

    es: Segment = _DATA_SEGMENT
    ss: Segment = _DATA_SEGMENT
    ds: Segment = _DATA_SEGMENT
    fs: Segment = _DATA_SEGMENT
    gs: Segment = _DATA_SEGMENT
    gdtr: Segment = _TABLE_REGISTER
    ldtr: Segment = _LDTR
    idtr: Segment = _TABLE_REGISTER
    tr: Segment = _TR_BUSY_TSS32

    efer: int = EFER_SVME
    cr0: int = CR0_ET
    cr3: int = 0
    cr4: int = CR4_MCE
    dr6: int = DR6_RESET
    dr7: int = DR7_RESET
    rflags: int = RFLAGS_RESET
    g_pat: int = G_PAT_RESET
    xcr0: int = XCR0_X87

    rdx: int | None = None
    """Fixed RDX value, or ``None`` for the vCPU model's CPUID signature."""

    mxcsr: int = MXCSR_RESET
    x87_fcw: int = FCW_FNINIT
    x87_ftw: int = 0
    """Abridged (FXSAVE-format) tag word: 0 = all registers empty."""
    x87_fsw: int = 0

    def __post_init__(self) -> None:
        """Reject integer settings that do not fit a 64-bit register."""
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, int) and not 0 <= value <= U64_MASK:
                raise ValueError(f"VmsaProfile.{f.name} = {value:#x} is not a 64-bit value")

    def derive(self, **changes: Any) -> VmsaProfile:
        """A new profile that overrides only ``changes`` (the way variants are declared)."""
        return replace(self, **changes)


QEMU: Final = VmsaProfile(
    name="qemu",
    description=(
        "QEMU/KVM vCPU RESET state as KVM writes it (vmsa-layout.md §5.1; sev-snp-measure "
        "QEMU mode, sev crate): RDX = vCPU signature, FNINIT x87 and SSE control words."
    ),
)
"""QEMU/KVM.  The x87/SSE values are KVM's FPU init state, synced into the VMSA for
VMs created with KVM_SEV_INIT2 (all SNP VMs)."""

EC2: Final = QEMU.derive(
    name="ec2",
    description=(
        "AWS EC2 (launch-measurement.md §9.4; sev-snp-measure only): BSP CS and SS without "
        "the accessed bit (0x9A/0x92), TR a busy 16-bit TSS (0x83), RDX 0x600, zero MXCSR "
        "and FCW."
    ),
    cs_attrib_bsp=0x9A,
    ss=replace(_DATA_SEGMENT, attrib=0x92),
    tr=replace(_TR_BUSY_TSS32, attrib=0x83),
    rdx=0x600,
    mxcsr=0,
    x87_fcw=0,
)
"""AWS EC2.  sev-snp-measure keys the 0x9A CS attribute on EIP == 0xFFFFFFF0; here it
is keyed on the BSP role, which coincides for every real OVMF reset block.  RDX was 0
before sev-snp-measure commit 4a02bf0 (the ``sev`` crate still uses 0)."""

GCE: Final = QEMU.derive(
    name="gce",
    description=(
        "Google Compute Engine (launch-measurement.md §9.4; sev-snp-measure only): "
        "G_PAT 0x00070106, RDX 0x600, zero MXCSR and FCW."
    ),
    g_pat=0x0007_0106,
    rdx=0x600,
    mxcsr=0,
    x87_fcw=0,
)
"""Google Compute Engine."""

_FLAT_CODE32: Final = Segment(selector=8, attrib=0xC9B, limit=0xFFFF_FFFF, base=0)
_FLAT_DATA32: Final = Segment(selector=16, attrib=0xC93, limit=0xFFFF_FFFF, base=0)

QEMU_SVSM: Final = QEMU.derive(
    name="qemu-svsm",
    description=(
        "QEMU/KVM starting COCONUT-SVSM in 32-bit protected mode (launch-measurement.md "
        "§9.6): flat CS/DS/ES/FS/SS, CR0 = PE|ET, RIP = the full SVSM entry EIP."
    ),
    cs_selector=_FLAT_CODE32.selector,
    cs_limit=_FLAT_CODE32.limit,
    cs_attrib_bsp=_FLAT_CODE32.attrib,
    cs_attrib_ap=_FLAT_CODE32.attrib,
    cs_base_mask=0,
    rip_mask=U64_MASK,
    es=_FLAT_DATA32,
    ss=_FLAT_DATA32,
    ds=_FLAT_DATA32,
    fs=_FLAT_DATA32,
    cr0=CR0_PE | CR0_ET,
)
"""QEMU/KVM + COCONUT-SVSM.  Keeps KVM's FNINIT FCW (0x37F).  sev-snp-measure 0.0.13
measures FCW = 0 in this mode because it passes the value under a misspelt field name;
reproduce it with ``QEMU_SVSM.derive(x87_fcw=0)`` if byte-equality with that tool is
needed.  Which one real KVM produces is unconfirmed against hardware."""

PROFILES: Final[Mapping[str, VmsaProfile]] = MappingProxyType(
    {p.name: p for p in (QEMU, EC2, GCE, QEMU_SVSM)}
)
"""Every built-in profile by :attr:`VmsaProfile.name`."""
