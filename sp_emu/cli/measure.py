"""``sp-emu measure``: the launch digest of a guest, as sev-snp-measure prints it.

The digest is not computed by a formula: the launch runs on the emulated firmware with the
hypervisor model for the VMM type, and the digest is read from the firmware's guest context.
"""

from __future__ import annotations

import argparse

from sp_emu.cli.common import Parser, UsageError
from sp_emu.cli.launch_args import SNP_MODES, add_launch_arguments, run_spec, spec_from_args

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

    from sp_emu.hypervisors import LaunchResult
    from sp_emu.launch_spec import LaunchSpec

_MODE_NAMES = {"snp": "SEV_SNP", "snp:svsm": "SEV_SNP_SVSM"}
"""sev-snp-measure's ``SevMode`` names, used by ``--verbose``."""


def register(sub: Any) -> None:
    p: Parser = sub.add_parser(
        "measure",
        help="the launch digest of a guest (sev-snp-measure's SNP modes)",
        description="Launch a guest on the emulated firmware and print its launch digest, "
        "as sev-snp-measure does.  Without --ovmf, the built-in sample OVMF.  In snp:svsm "
        "mode the VMSAs are sev-snp-measure's (x87 FCW 0), which 'sp-emu launch' does not "
        "reproduce (KVM's FCW 0x37F).",
    )
    add_launch_arguments(p, modes=SNP_MODES)
    out = p.add_argument_group("output")
    out.add_argument(
        "--output-format",
        choices=("hex", "base64"),
        default="hex",
        help="digest format (hex); snp:ovmf-hash prints hex, as sev-snp-measure does",
    )
    out.add_argument(
        "--dump-vmsa",
        action="store_true",
        help="write the measured VMSAs to vmsa<N>.bin in the current directory",
    )
    out.add_argument("-v", "--verbose", action="store_true", help="say what is printed")
    out.add_argument(
        "--json",
        action="store_true",
        help="print a JSON object: the digest and every PAGE_INFO that went into it",
    )
    p.set_defaults(func=run)


def page_info_rows(result: LaunchResult) -> list[dict[str, Any]]:
    """Every PAGE_INFO the firmware measured, in order, as JSON-ready rows."""
    from sp_emu.images import PageType

    rows = []
    for unit in result.units:
        try:
            type_name = PageType(unit.page_type).name
        except ValueError:
            type_name = str(unit.page_type)
        rows.append(
            {
                "index": unit.index,
                "page_type": type_name,
                "gpa": f"{unit.gpa:#x}",
                "contents": unit.contents.hex(),
                "digest": unit.digest.hex(),
            }
        )
    return rows


def measurement_json(spec: LaunchSpec, result: LaunchResult) -> dict[str, Any]:
    """The ``--json`` object of ``measure``."""
    from sp_emu.launch_spec import policy_for

    return {
        "mode": spec.mode,
        "hypervisor": policy_for(spec).name,
        "vmm_type": spec.vmm_type.value,
        "vcpus": 0 if spec.mode == "snp:ovmf-hash" else spec.vcpus,
        "vcpu_sig": f"{spec.cpu_sig:#x}",
        "guest_features": f"{spec.guest_features:#x}",
        "digest": result.digest.hex(),
        "page_info": page_info_rows(result),
    }


def _dump_vmsas(result: LaunchResult) -> None:
    for index, page in enumerate(result.vmsas):
        path = f"vmsa{index}.bin"
        try:
            with open(path, "wb") as file:
                file.write(page)
        except OSError as err:
            raise UsageError(f"--dump-vmsa: {path}: {err.strerror}") from None


def format_digest(digest: bytes, output_format: str) -> str:
    """The digest as sev-snp-measure prints it: lower-case hex or base64."""
    if output_format == "base64":
        import binascii  # here: only base64 output needs it

        return binascii.b2a_base64(digest, newline=False).decode()
    return digest.hex()


def run(args: argparse.Namespace, out: TextIO) -> int:
    inputs = spec_from_args(args, ssm_compat=True)
    spec = inputs.spec
    if args.dump_vmsa and spec.mode == "snp:ovmf-hash":
        raise UsageError("--dump-vmsa: mode snp:ovmf-hash measures no VMSA")
    result = run_spec(inputs, page_log=args.json)  # only --json lists the PAGE_INFOs
    if args.dump_vmsa:
        _dump_vmsas(result)
    if args.json:
        import json

        out.write(json.dumps(measurement_json(spec, result), indent=1) + "\n")
        return 0
    if spec.mode == "snp:ovmf-hash":
        # sev-snp-measure prints this one in hex whatever --output-format and --verbose say.
        out.write(result.digest.hex() + "\n")
        return 0
    text = format_digest(result.digest, args.output_format)
    if args.verbose:
        text = f"Calculated {_MODE_NAMES[spec.mode]} guest measurement: {text}"
    out.write(text + "\n")
    return 0
