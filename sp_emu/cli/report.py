"""``sp-emu report show FILE`` and ``sp-emu report verify FILE --certs DIR``.

``show`` decodes an attestation report field by field.  ``verify`` checks it the way a
relying party does, with ``cryptography`` alone: the ARK -> ASK -> VCEK chain in DIR
(``ark.pem``, ``ask.pem``, ``vcek.pem``, as ``sp-emu launch --out`` and snpguest write them),
the VCEK's TCB and hwID against the report, the signature, and any expected values.  A
report, certificate or key that is not what it should be gives one line and exit status 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sp_emu.cli.common import Parser, UsageError, hex_bytes, read_file

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO


def register(sub: Any) -> None:
    p: Parser = sub.add_parser("report", help="decode or verify an attestation report")
    cmds = p.add_subparsers(dest="report_command", required=True, metavar="ACTION")
    show = cmds.add_parser("show", help="decode a report field by field")
    show.add_argument("file", help="the 0x4A0-byte report (report.bin)")
    show.add_argument("--json", action="store_true", help="print a JSON object instead")
    show.set_defaults(func=run_show)
    verify = cmds.add_parser("verify", help="check a report's chain, signature and values")
    verify.add_argument("file", help="the 0x4A0-byte report (report.bin)")
    verify.add_argument("--certs", metavar="DIR", required=True, help="ark.pem, ask.pem, vcek.pem")
    verify.add_argument("--measurement", metavar="HEX", help="expected MEASUREMENT (48 bytes)")
    verify.add_argument("--report-data", metavar="HEX", help="expected REPORT_DATA (64 bytes)")
    verify.add_argument("--host-data", metavar="HEX", help="expected HOST_DATA (32 bytes)")
    verify.add_argument("--json", action="store_true", help="print a JSON object instead")
    verify.set_defaults(func=run_verify)


def _printable(fields: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if isinstance(value, bytes | bytearray):
            out[name] = bytes(value).hex()
        elif isinstance(value, int) and name.endswith(("tcb", "policy", "platform_info")):
            out[name] = f"{value:#018x}"
        else:
            out[name] = value
    return out


def _load_report(path: str) -> tuple[bytes, dict[str, Any]]:
    from sp_emu.attestation import ReportFormatError, parse_report

    data = read_file(path, "report")
    try:
        return data, parse_report(data)
    except ReportFormatError as err:
        raise UsageError(f"{path}: not an attestation report: {err}") from None


def run_show(args: argparse.Namespace, out: TextIO) -> int:
    _data, fields = _load_report(args.file)
    printable = _printable(fields)
    if args.json:
        import json

        out.write(json.dumps(printable, indent=1) + "\n")
        return 0
    from sp_emu.cli import render

    render.report_fields(printable, f"attestation report: {args.file}", out)
    return 0


def _load_cert(directory: Path, name: str) -> Any:
    from cryptography import x509

    path = directory / name
    data = read_file(str(path), name)
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        try:
            return x509.load_der_x509_certificate(data)
        except ValueError:
            raise UsageError(f"{path}: not a PEM or DER X.509 certificate") from None


def run_verify(args: argparse.Namespace, out: TextIO) -> int:
    from sp_emu.attestation.verify import verify_report

    report, _fields = _load_report(args.file)
    directory = Path(args.certs)
    if not directory.is_dir():
        raise UsageError(f"{args.certs}: not a directory")
    ark, ask, vcek = (_load_cert(directory, f"{n}.pem") for n in ("ark", "ask", "vcek"))

    def expected(value: str | None, size: int, flag: str) -> bytes | None:
        return None if value is None else hex_bytes(value, size, flag)

    result = verify_report(
        report,
        ark,
        ask,
        vcek,
        measurement=expected(args.measurement, 48, "--measurement"),
        report_data=expected(args.report_data, 64, "--report-data"),
        host_data=expected(args.host_data, 32, "--host-data"),
    )
    if args.json:
        import json

        checks = [{"check": c.name, "ok": c.ok, "detail": c.detail} for c in result.checks]
        out.write(json.dumps({"ok": result.ok, "checks": checks}, indent=1) + "\n")
    else:
        from sp_emu.cli import render

        render.verification(result.checks, f"verify {args.file} against {args.certs}", out)
    if not result.ok:
        failed = next(c for c in result.checks if not c.ok)
        detail = f" ({failed.detail})" if failed.detail else ""
        raise UsageError(f"{args.file}: verification failed: {failed.name}: no{detail}")
    return 0
