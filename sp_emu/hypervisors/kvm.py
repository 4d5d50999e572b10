"""Upstream KVM with QEMU, and the cloud VMMs whose launches sev-snp-measure reproduces.

KVM (arch/x86/kvm/svm/sev.c): every launch page is a 4 KiB LAUNCH_UPDATE after an RMPUPDATE
to pre-guest at its GPA; the vCPUs' VMSAs are measured last, in vCPU order, inside
KVM_SEV_SNP_LAUNCH_FINISH, each RMPUPDATEd at GPA 0xFFFFFFFFF000 (``INITIAL_VMSA_GPA``)
because the initial VMSA lives in a hypervisor page with no guest address.
QEMU (target/i386/sev.c) supplies the pages in OVMF's order: the image, then the metadata
sections.  EC2 and GCE differ in their vCPU reset state and section handling (sev-snp-measure
``vmsa.py``, ``guest.py``).
"""

from __future__ import annotations

import vmsa as vmsa_pkg
from sp_emu.hypervisors.base import HypervisorPolicy
from sp_emu.images import VmmType

KVM_INITIAL_VMSA_GPA = 0xFFFF_FFFF_F000

KVM_QEMU = HypervisorPolicy(
    name="kvm-upstream",
    description="upstream KVM + QEMU (OVMF)",
    vmsa_profile=vmsa_pkg.QEMU,
    vmm_type=VmmType.QEMU,
    vmsa_gpa=KVM_INITIAL_VMSA_GPA,
    source="linux arch/x86/kvm/svm/sev.c; qemu target/i386/sev.c",
)
EC2 = HypervisorPolicy(
    name="ec2",
    description="Amazon EC2 (KVM-based; reset state and section order per sev-snp-measure)",
    vmsa_profile=vmsa_pkg.EC2,
    vmm_type=VmmType.EC2,
    vmsa_gpa=KVM_INITIAL_VMSA_GPA,
    source="sev-snp-measure vmsa.py / guest.py (ec2)",
)
GCE = HypervisorPolicy(
    name="gce",
    description="Google Compute Engine (reset state and section types per sev-snp-measure)",
    vmsa_profile=vmsa_pkg.GCE,
    vmm_type=VmmType.GCE,
    vmsa_gpa=KVM_INITIAL_VMSA_GPA,
    source="sev-snp-measure vmsa.py / guest.py (gce)",
)
KVM_QEMU_SVSM = HypervisorPolicy(
    name="kvm-svsm",
    description="upstream KVM + QEMU booting COCONUT-SVSM with OVMF",
    vmsa_profile=vmsa_pkg.QEMU_SVSM,
    vmm_type=VmmType.QEMU,
    vmsa_gpa=KVM_INITIAL_VMSA_GPA,
    source="sev-snp-measure guest.py (snp:svsm)",
)
