"""What to launch, in sev-snp-measure's terms, and launching it on the emulated firmware.

A :class:`LaunchSpec` holds what sev-snp-measure's SNP flags describe: the mode, the vCPUs
and their CPUID signature, the VMM, the OVMF image (the built-in sample by default), the
direct-boot kernel/initrd/command line, the VMSA SEV_FEATURES, a precomputed OVMF digest, and
for ``snp:svsm`` the SVSM image and the size of the OVMF variable store.  It also carries
what the guest owner passes to LAUNCH_START/LAUNCH_FINISH (guest policy, HOST_DATA, an ID
block).

:func:`run_launch` performs the launch through the emulated firmware with the hypervisor
model of :func:`policy_for`; the launch digest it returns is the one the firmware keeps in
the guest context, never one recomputed by a formula.  :func:`ovmf_hash` is the firmware's
digest after the OVMF image pages alone (sev-snp-measure's ``snp:ovmf-hash``).

Errors in a spec raise :class:`SpecError`; malformed images raise
:class:`~sp_emu.images.ImageError` (both ``ValueError``); a firmware refusal raises
:class:`~sp_emu.hypervisors.LaunchError`.
"""

from __future__ import annotations

from binlayout.records import field, record, replace
from sp_emu.hypervisors import (
    KVM_QEMU_SVSM,
    POLICIES,
    HypervisorPolicy,
    Launcher,
    LaunchOptions,
    LaunchResult,
    launch,
)
from sp_emu.images import (
    BSP_RESET_EIP,
    LaunchPlan,
    VmmType,
    image_launch_item,
    parse_ovmf,
    snp_launch_plan,
)
from sp_emu.platform import Platform

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

    from sp_emu.images import SevHashes

__all__ = [
    "DEFAULT_CPU_SIG",
    "DEFAULT_GUEST_FEATURES",
    "DEFAULT_GUEST_POLICY",
    "MODES",
    "SSM_SVSM_POLICY",
    "LaunchSpec",
    "SpecError",
    "image_step_digest",
    "options_for",
    "ovmf_hash",
    "plan_for",
    "policy_for",
    "run_launch",
]

MODES: Final = ("snp", "snp:ovmf-hash", "snp:svsm")
"""The sev-snp-measure modes the emulator models (``sev`` and ``seves`` are not SNP)."""
DEFAULT_CPU_SIG: Final = 0x00800F12
"""CPUID signature of QEMU's EPYC-v4 vCPU model (family 23, model 1, stepping 2)."""
DEFAULT_GUEST_FEATURES: Final = 0x1
"""SEV_FEATURES of the VMSAs: SNPActive only (sev-snp-measure's ``--guest-features``)."""
DEFAULT_GUEST_POLICY: Final = 0x30000
"""Guest policy QEMU and sev-snp-measure use by default: SMT allowed, RSVD_MBO, ABI 0.0."""

_U64: Final = (1 << 64) - 1
_DIGEST_SIZE: Final = 48
_POLICY_BY_VMM: Final = {VmmType.QEMU: "kvm-upstream", VmmType.EC2: "ec2", VmmType.GCE: "gce"}
_SVSM_POLICY: Final = "kvm-svsm"

SSM_SVSM_POLICY: Final = replace(
    KVM_QEMU_SVSM,
    name="kvm-svsm-ssm",
    description="KVM + QEMU booting COCONUT-SVSM, VMSAs as sev-snp-measure 0.0.13 builds them",
    vmsa_profile=KVM_QEMU_SVSM.vmsa_profile.derive(name="qemu-svsm-ssm", x87_fcw=0),
    source="sev-snp-measure 0.0.13 vmsa.py VMSA_SVSM (passes the FCW under a misspelt "
    "field name, so x87 FCW stays 0; launch-measurement.md §9.6)",
)
"""``kvm-svsm`` with sev-snp-measure's snp:svsm VMSA quirk: x87 FCW 0 instead of KVM's
FNINIT value 0x37F.  Which one real KVM measures is unconfirmed against hardware; KVM's
``sev_es_sync_vmsa`` copies the FPU reset state, which suggests 0x37F."""


class SpecError(ValueError):
    """A launch spec that is contradictory or out of range (one-line message)."""


def _sample_ovmf() -> bytes:
    """The built-in sample OVMF (its module is loaded only when no image is given)."""
    from sp_emu.images import build_sample_ovmf

    return build_sample_ovmf()


@record
class LaunchSpec:
    """One SNP launch as sev-snp-measure's flags describe it, plus the guest owner's inputs.

    ``mode`` is ``"snp"`` (OVMF, optionally with direct kernel boot), ``"snp:ovmf-hash"``
    (only the OVMF image pages) or ``"snp:svsm"`` (COCONUT-SVSM in front of OVMF).
    ``snp_ovmf_hash`` is sev-snp-measure's ``--snp-ovmf-hash``: the emulated firmware cannot
    start from a precomputed digest, so :func:`run_launch` requires that the digest after
    the image pages equals it.
    """

    mode: str = "snp"
    vcpus: int = 1
    cpu_sig: int = DEFAULT_CPU_SIG
    vmm_type: VmmType = VmmType.QEMU
    ovmf: bytes = field(default_factory=_sample_ovmf, repr=False)
    kernel: bytes | None = field(default=None, repr=False)
    initrd: bytes | None = field(default=None, repr=False)
    append: str | None = None
    guest_features: int = DEFAULT_GUEST_FEATURES
    snp_ovmf_hash: bytes | None = None
    svsm: bytes | None = field(default=None, repr=False)
    vars_size: int = 0
    policy: int = DEFAULT_GUEST_POLICY
    host_data: bytes = bytes(32)
    id_block: bytes | None = field(default=None, repr=False)
    id_auth: bytes | None = field(default=None, repr=False)
    auth_key_en: bool = False
    ssm_compat: bool = False
    """Reproduce sev-snp-measure 0.0.13 where it departs from the KVM model (today only in
    snp:svsm mode: :data:`SSM_SVSM_POLICY` instead of ``kvm-svsm``)."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise SpecError(f"mode {self.mode!r} is not modelled (modes: {', '.join(MODES)})")
        if self.vcpus < 1:
            raise SpecError(f"a guest needs at least one vCPU, got {self.vcpus}")
        if not 0 <= self.cpu_sig <= 0xFFFF_FFFF:
            raise SpecError(f"vCPU signature {self.cpu_sig:#x} is not a 32-bit value")
        if not 0 <= self.guest_features <= _U64:
            raise SpecError(f"guest features {self.guest_features:#x} are not a 64-bit value")
        if not 0 <= self.policy <= _U64:
            raise SpecError(f"guest policy {self.policy:#x} is not a 64-bit value")
        if len(self.host_data) != 32:
            raise SpecError(f"HOST_DATA must be 32 bytes, got {len(self.host_data)}")
        if self.kernel is None and (self.initrd is not None or self.append):
            raise SpecError("an initrd or a kernel command line needs a kernel")
        if (self.id_block is None) != (self.id_auth is None):
            raise SpecError("an ID block and an ID authentication page go together")
        if self.snp_ovmf_hash is not None:
            if self.mode != "snp":
                raise SpecError("a precomputed OVMF hash only works in mode snp")
            if len(self.snp_ovmf_hash) != _DIGEST_SIZE:
                raise SpecError(
                    f"the OVMF hash must be {_DIGEST_SIZE} bytes, got {len(self.snp_ovmf_hash)}"
                )
        if self.mode == "snp:svsm":
            if self.svsm is None:
                raise SpecError("mode snp:svsm needs an SVSM image")
            if self.vmm_type is not VmmType.QEMU:
                raise SpecError("mode snp:svsm is only modelled for the QEMU VMM")
            if self.kernel is not None:
                raise SpecError("mode snp:svsm does not measure a kernel (no direct boot)")
            if self.vars_size < 0:
                raise SpecError(f"variable store size {self.vars_size} is negative")
        elif self.svsm is not None or self.vars_size:
            raise SpecError("an SVSM image and a variable store size need mode snp:svsm")

    @property
    def kernel_hashes(self) -> SevHashes | None:
        """The hashes table QEMU builds for direct kernel boot (``None`` without a kernel)."""
        if self.kernel is None:
            return None
        from sp_emu.images import SevHashes

        return SevHashes.from_inputs(self.kernel, self.initrd, self.append)


def policy_for(spec: LaunchSpec) -> HypervisorPolicy:
    """The hypervisor model of a spec: by VMM type (``kvm-upstream``, ``ec2``, ``gce``), and
    ``kvm-svsm`` for snp:svsm (:data:`SSM_SVSM_POLICY` with ``spec.ssm_compat``)."""
    if spec.mode == "snp:svsm":
        return SSM_SVSM_POLICY if spec.ssm_compat else POLICIES[_SVSM_POLICY]
    return POLICIES[_POLICY_BY_VMM[spec.vmm_type]]


def plan_for(spec: LaunchSpec) -> LaunchPlan:
    """The ordered LAUNCH_UPDATE ranges of a spec (without the VMSAs).

    For ``snp:ovmf-hash`` this is the OVMF image alone.  Raises
    :class:`~sp_emu.images.ImageError` for an image QEMU would not launch.
    """
    if spec.mode == "snp:svsm":
        assert spec.svsm is not None  # checked by LaunchSpec
        from sp_emu.images import svsm_launch_plan

        return svsm_launch_plan(spec.ovmf, spec.svsm, spec.vars_size)
    if spec.mode == "snp:ovmf-hash":
        image = parse_ovmf(spec.ovmf)
        return LaunchPlan(
            items=(image_launch_item(image),),
            bsp_eip=BSP_RESET_EIP,
            ap_eip=image.sev_es_reset_eip or BSP_RESET_EIP,
        )
    return snp_launch_plan(spec.ovmf, kernel_hashes=spec.kernel_hashes, vmm=spec.vmm_type)


def options_for(spec: LaunchSpec) -> LaunchOptions:
    """The hypervisor's launch options for a spec."""
    return LaunchOptions(
        vcpus=spec.vcpus,
        cpu_sig=spec.cpu_sig,
        sev_features=spec.guest_features,
        policy=spec.policy,
        host_data=spec.host_data,
        id_block=spec.id_block,
        id_auth=spec.id_auth,
        auth_key_en=spec.auth_key_en,
    )


def image_step_digest(spec: LaunchSpec, result: LaunchResult) -> bytes:
    """The firmware's digest right after the OVMF image pages of a launch of ``spec``.

    Read from the PAGE_INFO the firmware reported for the image's last page (the image is
    the first launch item in every mode).
    """
    image_pages = len(spec.ovmf) // 0x1000
    if len(result.units) < image_pages or image_pages == 0:
        raise SpecError("the launch did not measure the whole OVMF image")
    return result.units[image_pages - 1].digest


def _image_only(spec: LaunchSpec, platform: Platform | None) -> LaunchResult:
    """LAUNCH_START, then LAUNCH_UPDATE of the OVMF image pages only; the guest stays in
    the LAUNCH state and the result's digest is the guest context's digest."""
    p = platform if platform is not None else Platform()
    return Launcher(p, policy_for(spec)).run(plan_for(spec), options_for(spec), image_only=True)


def ovmf_hash(spec: LaunchSpec, platform: Platform | None = None) -> bytes:
    """The launch digest the firmware holds after measuring only the OVMF image pages.

    This is sev-snp-measure's ``snp:ovmf-hash`` value (and what ``--snp-ovmf-hash`` takes).
    Only ``spec.ovmf`` matters; the launch runs on ``platform`` (a fresh one by default).
    """
    return _image_only(spec, platform).digest


def run_launch(
    spec: LaunchSpec, platform: Platform | None = None, *, page_log: bool = True
) -> LaunchResult:
    """Launch ``spec`` through the emulated firmware and return what the launch produced.

    The hypervisor model is :func:`policy_for` ``(spec)``; the platform is a fresh
    :class:`~sp_emu.platform.Platform` unless one is given.  In ``snp`` and ``snp:svsm`` mode
    the launch runs to LAUNCH_FINISH (the guest is RUNNING); in ``snp:ovmf-hash`` mode it
    stops after the OVMF image pages.  Without ``page_log`` the result's ``units`` (every
    PAGE_INFO measured) may be left empty, which saves a launch that wants only the digest
    a little time.  With ``spec.snp_ovmf_hash`` the firmware's digest
    after the image pages must equal it (:class:`SpecError` otherwise).
    """
    if spec.mode == "snp:ovmf-hash":
        return _image_only(spec, platform)
    plan = plan_for(spec)
    p = platform if platform is not None else Platform()
    opts = options_for(spec)
    opts.page_log = page_log or spec.snp_ovmf_hash is not None  # (the check reads the log)
    result = launch(p, plan, policy_for(spec), opts)
    if spec.snp_ovmf_hash is not None:
        got = image_step_digest(spec, result)
        if got != spec.snp_ovmf_hash:
            raise SpecError(
                f"the OVMF hash {spec.snp_ovmf_hash.hex()} is not this image's "
                f"(the firmware measured {got.hex()}); the emulated firmware cannot start "
                "from a precomputed digest, so it needs the OVMF image that hash came from"
            )
    return result
