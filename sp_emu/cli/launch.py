"""``sp-emu launch``: launch a guest on the emulated platform and show what it left behind.

The hypervisor model is upstream KVM with QEMU (or the EC2/GCE variant for ``--vmm-type``,
or KVM booting an SVSM for ``--mode snp:svsm``).  The summary shows the guest policy, the
launch digest, the vCPUs, how many PAGE_INFO of each page type the firmware measured, the RMP
state of every page the guest owns afterwards (VMSA pages flagged), and the guest's state.
"""

from __future__ import annotations

import argparse
from collections import Counter

from sp_emu.cli.common import CommandFailed, Parser, UsageError, hex_bytes, int_value, read_file
from sp_emu.cli.launch_args import (
    add_launch_arguments,
    launch_errors_as_cli_errors,
    spec_from_args,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

    from sp_emu.hypervisors import LaunchResult
    from sp_emu.launch_spec import LaunchSpec
    from sp_emu.platform import Platform

LAUNCH_MODES = ("snp", "snp:svsm")


def register(sub: Any) -> None:
    p: Parser = sub.add_parser(
        "launch",
        help="launch a guest on the emulated platform and summarise it",
        description="Launch a guest through the emulated SNP firmware the way upstream "
        "KVM/QEMU does, and show the digest, the measured pages, the guest's RMP "
        "entries and its state.  Without --ovmf, the built-in sample OVMF.",
    )
    add_launch_arguments(p, modes=LAUNCH_MODES)
    g = p.add_argument_group("guest owner")
    g.add_argument(
        "--policy", metavar="VALUE", type=int_value, default=None, help="guest policy (0x30000)"
    )
    g.add_argument("--host-data", metavar="HEX", help="HOST_DATA, 32 bytes in hex (zeros)")
    g.add_argument("--id-block", metavar="FILE", help="ID block (0x60 bytes) for LAUNCH_FINISH")
    g.add_argument("--id-auth", metavar="FILE", help="ID authentication page (0x1000 bytes)")
    g.add_argument(
        "--auth-key-en", action="store_true", help="have LAUNCH_FINISH check the author key"
    )
    a = p.add_argument_group("attestation")
    a.add_argument(
        "--out",
        metavar="DIR",
        help="write the guest's report to DIR/report.bin and the certificate chain to "
        "DIR/certs/{ark,ask,vcek}.pem (snpguest's layout)",
    )
    a.add_argument(
        "--report-data", metavar="HEX", help="REPORT_DATA the guest puts in its request (zeros)"
    )
    p.add_argument("--json", action="store_true", help="print a JSON object instead")
    p.set_defaults(func=run)


def _owner_fields(args: argparse.Namespace) -> dict[str, object]:
    fields: dict[str, object] = {}
    if args.policy is not None:
        fields["policy"] = args.policy
    if args.host_data is not None:
        fields["host_data"] = hex_bytes(args.host_data, 32, "--host-data")
    if (args.id_block is None) != (args.id_auth is None):
        raise UsageError("--id-block and --id-auth go together")
    if args.auth_key_en and args.id_block is None:
        raise UsageError("--auth-key-en needs --id-block and --id-auth")
    if args.id_block is not None:
        block = read_file(args.id_block, "--id-block")
        auth = read_file(args.id_auth, "--id-auth")
        if len(block) != 0x60:
            raise UsageError(f"--id-block {args.id_block}: {len(block):#x} bytes, need 0x60")
        if len(auth) != 0x1000:
            raise UsageError(f"--id-auth {args.id_auth}: {len(auth):#x} bytes, need 0x1000")
        fields |= {"id_block": block, "id_auth": auth, "auth_key_en": args.auth_key_en}
    return fields


def _rmp_rows(platform: Platform, result: LaunchResult) -> list[dict[str, Any]]:
    """The guest's RMP entries as runs of consecutive GPAs with the same state, LAUNCH_UPDATE
    page type and VMSA flag (VMSA pages share KVM's single GPA, so each is its own row)."""
    from sp_emu.images import PageType

    types: dict[int, str] = {}
    for unit in result.units:
        try:
            types[unit.gpa] = PageType(unit.page_type).name
        except ValueError:
            types[unit.gpa] = str(unit.page_type)
    entries = []
    for pfn in platform.rmp.touched():
        entry = platform.rmp.entry(pfn)
        if entry.assigned and entry.asid == result.asid:
            page_type = "VMSA" if entry.vmsa else types.get(entry.gpa, "?")
            entries.append((entry.gpa, entry.vmsa, entry.state.name, page_type, pfn))
    entries.sort()
    rows: list[dict[str, Any]] = []
    for gpa, vmsa, state, page_type, pfn in entries:
        last = rows[-1] if rows else None
        if (
            last is not None
            and not vmsa
            and not last["vmsa"]
            and last["state"] == state
            and last["page_type"] == page_type
            and last["_end"] == gpa
        ):
            last["pages"] += 1
            last["_end"] = gpa + 0x1000
            continue
        rows.append(
            {
                "gpa": gpa,
                "_end": gpa + 0x1000,
                "pages": 1,
                "page_type": page_type,
                "state": state,
                "vmsa": vmsa,
                "spa": pfn << 12,
            }
        )
    for row in rows:
        end = row.pop("_end")
        row["gpa_end"] = f"{end:#x}"
        row["gpa"] = f"{row['gpa']:#x}"
        row["spa"] = f"{row['spa']:#x}"
    return rows


def launch_summary(
    spec: LaunchSpec, result: LaunchResult, platform: Platform, image: str
) -> dict[str, Any]:
    """Everything ``sp-emu launch`` shows, as JSON-ready data."""
    from sp_emu.images import PageType
    from sp_emu.launch_spec import policy_for

    hv = policy_for(spec)
    guest = platform.fw.state.guests[result.gctx]
    measured: Counter[str] = Counter()
    for unit in result.units:
        try:
            measured[PageType(unit.page_type).name] += 1
        except ValueError:
            measured[str(unit.page_type)] += 1
    rows = _rmp_rows(platform, result)
    states: Counter[str] = Counter()
    for row in rows:
        states[row["state"]] += row["pages"]
    vmsa_pages = sum(row["pages"] for row in rows if row["vmsa"])
    return {
        "image": image,
        "mode": spec.mode,
        "hypervisor": hv.name,
        "hypervisor_description": hv.description,
        "vmm_type": spec.vmm_type.value,
        "guest_policy": f"{guest.policy:#x}",
        "digest": result.digest.hex(),
        "vcpus": spec.vcpus,
        "vcpu_sig": f"{spec.cpu_sig:#x}",
        "guest_features": f"{spec.guest_features:#x}",
        "asid": result.asid,
        "gctx": f"{result.gctx:#x}",
        "gctx_rmp_state": platform.rmp.entry(result.gctx >> 12).state.name,
        "guest_state": guest.state.name,
        "id_block_en": guest.id_block_en,
        "author_key_en": guest.author_key_en,
        "page_info_total": len(result.units),
        "page_info": {name.name: measured.get(name.name, 0) for name in PageType}
        | {k: v for k, v in measured.items() if k not in PageType.__members__},
        "guest_pages": sum(states.values()),
        "rmp_states": dict(sorted(states.items())),
        "vmsa_pages": vmsa_pages,
        "all_guest_valid": set(states) == {"GUEST_VALID"},
        "rmp": rows,
    }


def _attest(inputs: Any, report_data: bytes) -> Any:
    """The attested launch with its failures as one-line CLI errors."""
    from sp_emu.scenarios import ScenarioError, attested_launch

    try:
        return launch_errors_as_cli_errors(
            inputs, lambda: attested_launch(inputs.spec, report_data=report_data)
        )
    except ScenarioError as err:
        raise CommandFailed(str(err)) from None


def _report_summary(attested: Any, out_dir: str | None) -> dict[str, Any]:
    """What the guest's report says, whether it verifies, and where it was written."""
    from pathlib import Path

    from sp_emu.attestation.verify import verify_report

    c = attested.certs
    check = verify_report(
        attested.report,
        c.ark_cert,
        c.ask_cert,
        c.vcek_cert(),
        measurement=attested.vm.result.digest,
    )
    f = check.fields
    summary: dict[str, Any] = {
        "version": f["version"],
        "vmpl": f["vmpl"],
        "signing_key": f["signing_key"],
        "reported_tcb": f"{f['reported_tcb']:#018x}",
        "chip_id": bytes(f["chip_id"]).hex(),
        "measurement_matches": bytes(f["measurement"]) == attested.vm.result.digest,
        "verified": check.ok,
        "certificates_from_host": len(attested.cert_table),
    }
    if out_dir is not None:
        directory = Path(out_dir)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            (directory / "report.bin").write_bytes(attested.report)
            c.write_snpguest_layout(directory / "certs")
        except OSError as err:
            raise UsageError(f"{out_dir}: {err.strerror or err}") from None
        summary["written"] = [str(directory / "report.bin"), str(directory / "certs")]
    return summary


def run(args: argparse.Namespace, out: TextIO) -> int:
    inputs = spec_from_args(args, modes=LAUNCH_MODES, **_owner_fields(args))
    report_data = bytes(64)
    if args.report_data is not None:
        report_data = hex_bytes(args.report_data, 64, "--report-data")
    attested = _attest(inputs, report_data)
    platform, result = attested.platform, attested.vm.result
    summary = launch_summary(inputs.spec, result, platform, inputs.image_name)
    summary["report"] = _report_summary(attested, args.out)
    if inputs.svsm_name is not None:
        summary["image"] = f"{inputs.ovmf_name} + SVSM {inputs.svsm_name}"
    if args.json:
        import json

        out.write(json.dumps(summary, indent=1) + "\n")
        return 0
    from sp_emu.cli import render

    render.launch_summary(summary, out)
    return 0
