"""sev-snp-measure's SNP flags, shared by ``measure``, ``launch`` and ``id-block --launch``,
and their translation into a :class:`~sp_emu.launch_spec.LaunchSpec`.

The rules follow sev-snp-measure 0.0.13 (``cli.py``, ``guest.py``) where it has them:

* vCPU signature: ``--vcpu-family`` (with ``--vcpu-model`` and ``--vcpu-stepping``) wins
  over ``--vcpu-sig``, which wins over ``--vcpu-type``.
* ``--initrd`` and a non-empty ``--append`` need ``--kernel``.
* ``snp:svsm`` needs ``--svsm`` and ``--vars-size`` or ``--vars-file`` (the file's size is
  used), and is modelled for QEMU only.  ``--vars-size`` and ``--vars-file`` exclude each
  other.
* ``--snp-ovmf-hash`` works in ``snp`` mode only.

Where sev-snp-measure requires a flag we have a default instead: ``--vcpus`` 1, the EPYC-v4
signature, and the built-in sample OVMF.  Where it silently ignores a flag that would change
the measurement (``--kernel`` in ``snp:svsm``, ``--guest-features`` in ``snp:svsm``,
``--vcpu-model`` without ``--vcpu-family``, ...) or crashes, we refuse with one line.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from binlayout.records import record
from sp_emu.cli.common import CommandFailed, UsageError, file_size, hex_bytes, int_value, read_file

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TypeVar

    from sp_emu.hypervisors import LaunchResult
    from sp_emu.launch_spec import LaunchSpec
    from sp_emu.platform import Platform

    T = TypeVar("T")

SNP_MODES = ("snp", "snp:ovmf-hash", "snp:svsm")
UNMODELLED_MODES = ("sev", "seves")
VMM_TYPES = ("QEMU", "ec2", "gce")
VCPU_TYPES_HELP = "EPYC[-v1..v4], EPYC-IBPB, EPYC-Rome[-v1..v3], EPYC-Milan[-v1,v2], " + (
    "EPYC-Genoa[-v1], EPYC-Turin"
)
_LAUNCH_DESTS = (
    "mode",
    "vcpus",
    "vcpu_type",
    "vcpu_sig",
    "vcpu_family",
    "vcpu_model",
    "vcpu_stepping",
    "vmm_type",
    "ovmf",
    "kernel",
    "initrd",
    "append",
    "guest_features",
    "snp_ovmf_hash",
    "svsm",
    "vars_size",
    "vars_file",
)


@record
class SpecInputs:
    """A spec and where its images came from (for messages and summaries)."""

    spec: LaunchSpec
    ovmf_name: str
    svsm_name: str | None = None

    @property
    def image_name(self) -> str:
        """The image a launch parses (and an ImageError is about)."""
        return self.svsm_name if self.svsm_name is not None else self.ovmf_name


def add_launch_arguments(parser: argparse.ArgumentParser, *, modes: Sequence[str]) -> None:
    """Add the image and vCPU flags (all default to ``None``, so "given" is detectable)."""
    g = parser.add_argument_group(
        "guest image and vCPUs", "the SNP flags of sev-snp-measure, with the same meaning"
    )
    g.add_argument("--mode", metavar="MODE", help=f"guest mode: {' | '.join(modes)} (snp)")
    g.add_argument("--vcpus", metavar="N", type=int_value, help="number of vCPUs (1)")
    g.add_argument(
        "--vcpu-type", metavar="CPUTYPE", help=f"QEMU vCPU model ({VCPU_TYPES_HELP}; EPYC-v4)"
    )
    g.add_argument("--vcpu-sig", metavar="VALUE", type=int_value, help="vCPU signature value")
    g.add_argument("--vcpu-family", metavar="FAMILY", type=int_value, help="vCPU family")
    g.add_argument("--vcpu-model", metavar="MODEL", type=int_value, help="vCPU model")
    g.add_argument("--vcpu-stepping", metavar="STEPPING", type=int_value, help="vCPU stepping")
    g.add_argument("--vmm-type", metavar="VMMTYPE", help=f"{', '.join(VMM_TYPES)} (QEMU)")
    g.add_argument("--ovmf", metavar="PATH", help="OVMF image (default: the built-in sample)")
    g.add_argument("--kernel", metavar="PATH", help="kernel for measured direct boot")
    g.add_argument("--initrd", metavar="PATH", help="initrd (with --kernel)")
    g.add_argument("--append", metavar="CMDLINE", help="kernel command line (with --kernel)")
    g.add_argument(
        "--guest-features",
        metavar="VALUE",
        type=int_value,
        help="SEV_FEATURES of the VMSAs (0x1)",
    )
    g.add_argument(
        "--snp-ovmf-hash",
        metavar="HASH",
        help="precomputed OVMF digest (hex); must be this OVMF's (snp mode)",
    )
    g.add_argument("--svsm", metavar="PATH", help="SVSM image (snp:svsm mode)")
    vars_group = g.add_mutually_exclusive_group()
    vars_group.add_argument(
        "--vars-size", metavar="SIZE", type=int_value, help="OVMF_VARS size in bytes (snp:svsm)"
    )
    vars_group.add_argument(
        "--vars-file", metavar="PATH", help="OVMF_VARS file, for its size (snp:svsm)"
    )


def launch_flags_given(args: argparse.Namespace) -> list[str]:
    """The image/vCPU flags set on the command line (as ``--flag`` names)."""
    return [
        "--" + dest.replace("_", "-")
        for dest in _LAUNCH_DESTS
        if getattr(args, dest, None) is not None
    ]


def _mode(args: argparse.Namespace, modes: Sequence[str]) -> str:
    mode: str = args.mode or "snp"
    if mode in UNMODELLED_MODES:
        raise UsageError(
            f"--mode {mode} is not modelled: sp-emu emulates SEV-SNP launches only "
            f"({', '.join(SNP_MODES)})"
        )
    if mode not in modes:
        raise UsageError(f"--mode {mode}: choose one of {', '.join(modes)}")
    return mode


def _cpu_sig(args: argparse.Namespace) -> int:
    from sp_emu.launch_spec import DEFAULT_CPU_SIG
    from vmsa import cpu_signature, vcpu_signature

    if args.vcpu_family is not None:
        if args.vcpu_model is None or args.vcpu_stepping is None:
            raise UsageError("--vcpu-family needs --vcpu-model and --vcpu-stepping")
        try:
            return cpu_signature(args.vcpu_family, args.vcpu_model, args.vcpu_stepping)
        except ValueError as err:
            raise UsageError(f"--vcpu-family/--vcpu-model/--vcpu-stepping: {err}") from None
    if args.vcpu_model is not None or args.vcpu_stepping is not None:
        raise UsageError("--vcpu-model and --vcpu-stepping need --vcpu-family")
    if args.vcpu_sig is not None:
        sig: int = args.vcpu_sig
        if not 0 <= sig <= 0xFFFF_FFFF:
            raise UsageError(f"--vcpu-sig {sig:#x} is not a 32-bit value")
        return sig
    if args.vcpu_type is not None:
        try:
            return vcpu_signature(args.vcpu_type)
        except KeyError as err:
            raise UsageError(f"--vcpu-type: {err.args[0]}") from None
    return DEFAULT_CPU_SIG


def _refuse(args: argparse.Namespace, flags: Sequence[str], why: str) -> None:
    given = [f for f in flags if getattr(args, f[2:].replace("-", "_"), None) is not None]
    if given:
        raise UsageError(f"{', '.join(given)}: {why}")


def spec_from_args(
    args: argparse.Namespace, *, modes: Sequence[str] = SNP_MODES, **extra: object
) -> SpecInputs:
    """Check the flags like sev-snp-measure, read the files, and build the spec.

    ``extra`` are further :class:`LaunchSpec` fields (guest policy, ID block, ...).
    Every problem is a :class:`UsageError` with one line.
    """
    from sp_emu.images import ImageError, VmmType
    from sp_emu.launch_spec import LaunchSpec, SpecError

    mode = _mode(args, modes)
    if mode == "snp:ovmf-hash":
        _refuse(
            args,
            ["--kernel", "--initrd", "--append", "--svsm", "--vars-size", "--vars-file"],
            "mode snp:ovmf-hash measures the OVMF image only",
        )
        _refuse(args, ["--snp-ovmf-hash"], "use it with --mode snp")
    if mode == "snp:svsm":
        _refuse(args, ["--kernel", "--initrd", "--append"], "mode snp:svsm has no direct boot")
        _refuse(args, ["--snp-ovmf-hash"], "a precomputed OVMF hash only works with --mode snp")
        if args.guest_features is not None and args.guest_features != 0x1:
            raise UsageError(
                "--guest-features: mode snp:svsm measures SEV_FEATURES 0x1 (as sev-snp-measure)"
            )
        if args.svsm is None:
            raise UsageError("mode snp:svsm needs --svsm")
        if args.vars_file is None and not args.vars_size:
            raise UsageError("mode snp:svsm needs --vars-size or --vars-file")
    if mode == "snp":
        _refuse(args, ["--svsm", "--vars-size", "--vars-file"], "these need --mode snp:svsm")
    if args.initrd is not None and args.kernel is None:
        raise UsageError("--initrd needs --kernel")
    if args.append and args.kernel is None:
        raise UsageError("--append needs --kernel")
    vcpus = 1 if args.vcpus is None else args.vcpus
    if vcpus < 1:
        raise UsageError(f"--vcpus {vcpus}: a guest needs at least one vCPU")
    vmm_name = "QEMU" if args.vmm_type is None else args.vmm_type
    if vmm_name not in VMM_TYPES:
        raise UsageError(f"--vmm-type {vmm_name}: unknown VMM type (choose {', '.join(VMM_TYPES)})")
    vmm = VmmType(vmm_name)
    if mode == "snp:svsm" and vmm is not VmmType.QEMU:
        raise UsageError(f"--vmm-type {vmm_name}: mode snp:svsm is modelled for QEMU only")
    cpu_sig = _cpu_sig(args)
    features = 0x1 if args.guest_features is None else args.guest_features
    if not 0 <= features < 1 << 64:
        raise UsageError(f"--guest-features {features:#x} is not a 64-bit value")
    ovmf_hash = None
    if args.snp_ovmf_hash is not None:
        ovmf_hash = hex_bytes(args.snp_ovmf_hash, 48, "--snp-ovmf-hash")
    fields: dict[str, object] = {
        "mode": mode,
        "vcpus": vcpus,
        "cpu_sig": cpu_sig,
        "vmm_type": vmm,
        "guest_features": features,
        "snp_ovmf_hash": ovmf_hash,
        "append": args.append,
    }
    ovmf_name = "<built-in sample OVMF>"
    if args.ovmf is not None:
        fields["ovmf"] = read_file(args.ovmf, "--ovmf")
        ovmf_name = args.ovmf
    if args.kernel is not None:
        fields["kernel"] = read_file(args.kernel, "--kernel")
    if args.initrd is not None:
        fields["initrd"] = read_file(args.initrd, "--initrd")
    svsm_name = None
    if mode == "snp:svsm":
        fields["svsm"] = read_file(args.svsm, "--svsm")
        svsm_name = args.svsm
        if args.vars_file is not None:
            fields["vars_size"] = file_size(args.vars_file, "--vars-file")
        else:
            fields["vars_size"] = args.vars_size
    fields |= extra
    try:
        spec = LaunchSpec(**fields)  # type: ignore[arg-type]
    except SpecError as err:
        raise UsageError(str(err)) from None
    except ImageError as err:
        raise UsageError(f"{svsm_name or ovmf_name}: {err}") from None
    return SpecInputs(spec, ovmf_name, svsm_name)


def run_spec(
    inputs: SpecInputs, platform: Platform | None = None, *, page_log: bool = True
) -> LaunchResult:
    """:func:`~sp_emu.launch_spec.run_launch` with its errors as one-line CLI errors: a bad
    image or spec is a :class:`UsageError`, a firmware refusal a :class:`CommandFailed`."""
    from sp_emu.launch_spec import run_launch

    return launch_errors_as_cli_errors(
        inputs, lambda: run_launch(inputs.spec, platform, page_log=page_log)
    )


def launch_errors_as_cli_errors(inputs: SpecInputs, launch: Callable[[], T]) -> T:
    """Run ``launch`` with its failures as one-line CLI errors: a bad image or spec is a
    :class:`UsageError`, a firmware refusal a :class:`CommandFailed`."""
    from sp_emu.hypervisors import LaunchError
    from sp_emu.images import ImageError
    from sp_emu.launch_spec import SpecError

    try:
        return launch()
    except ImageError as err:
        raise UsageError(f"{inputs.image_name}: {err}") from None
    except SpecError as err:
        raise UsageError(str(err)) from None
    except LaunchError as err:
        raise CommandFailed(
            f"the firmware refused the launch: {describe_launch_error(err)}"
        ) from None


def describe_launch_error(err: Exception) -> str:
    """A LaunchError's text with the status value in hex, e.g. ``BAD_MEASUREMENT (0x0B)``."""
    text = str(err)
    result = getattr(err, "result", None)
    status = getattr(result, "status", result)
    name = getattr(status, "name", None)
    if isinstance(status, int) and name and f"{name} (0x" not in text:
        text = text.replace(name, f"{name} (0x{int(status):02X})", 1)
    return text
