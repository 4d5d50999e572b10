"""Verifying an attestation report as a relying party does, with ``cryptography`` alone.

Given the report and the ARK, ASK and VCEK certificates (the layout snpguest writes), check:

1. the report is well formed (size, a known version, reserved bytes zero);
2. the ARK is self-signed and the ASK is signed by the ARK, with RSASSA-PSS (SHA-384,
   MGF1-SHA-384, 48-byte salt);
3. the VCEK certificate is signed by the ASK and holds a P-384 key;
4. the VCEK certificate's TCB extensions equal the report's REPORTED_TCB, and its hwID the
   report's CHIP_ID (unless the chip ID is masked);
5. the report's ECDSA P-384 signature verifies with the VCEK;
6. optionally, MEASUREMENT (and REPORT_DATA, HOST_DATA) equal what the caller expects.

Which roots to trust is the caller's decision: the emulator's roots say in their subject that
they are emulator test keys, and AMD's real roots will never verify an emulated report.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec

from sp_emu.attestation.report import (
    ReportFormatError,
    ReportSignatureError,
    parse_report,
    verify_report_signature,
)
from sp_emu.certs import KdsOid, verify_issued_by
from sp_emu.tcb import TcbVersion

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_TCB_OIDS = {
    "bootloader": KdsOid.BL_SPL,
    "tee": KdsOid.TEE_SPL,
    "snp": KdsOid.SNP_SPL,
    "microcode": KdsOid.UCODE_SPL,
    "fmc": KdsOid.FMC_SPL,
}


@dataclass
class Check:
    """One verification step and its outcome."""

    name: str
    ok: bool
    detail: str = ""


@dataclass
class Verification:
    """Every check made, in order; ``ok`` when all passed."""

    checks: list[Check] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def add(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append(Check(name, ok, detail))
        return ok


def _ext_int(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> int | None:
    """An INTEGER-valued AMD extension (DER: tag 2, short length, big-endian value)."""
    try:
        raw = cert.extensions.get_extension_for_oid(oid).value
    except x509.ExtensionNotFound:
        return None
    value = getattr(raw, "value", b"")
    if len(value) < 3 or value[0] != 0x02 or value[1] != len(value) - 2:
        return None
    return int.from_bytes(value[2:], "big", signed=True)


def _ext_bytes(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> bytes | None:
    """A raw-valued extension (hwID; an OCTET STRING wrapper is also accepted)."""
    try:
        raw = cert.extensions.get_extension_for_oid(oid).value
    except x509.ExtensionNotFound:
        return None
    value = bytes(getattr(raw, "value", b""))
    if len(value) >= 2 and value[0] == 0x04 and value[1] == len(value) - 2:
        return value[2:]
    return value


def verify_report(
    report: bytes,
    ark: x509.Certificate,
    ask: x509.Certificate,
    vcek: x509.Certificate,
    *,
    turin_tcb_layout: bool | None = None,
    measurement: bytes | None = None,
    report_data: bytes | None = None,
    host_data: bytes | None = None,
) -> Verification:
    """Run every check; the result lists each with its outcome (it never raises for a bad
    report).  ``turin_tcb_layout`` picks the TCB layout; by default it is read from the
    report's CPUID family (v3+) or inferred from the certificate's fmcSPL extension."""
    v = Verification()
    try:
        fields = parse_report(report)
    except ReportFormatError as err:
        v.add("report is well formed", False, str(err))
        return v
    v.fields = fields
    v.add("report is well formed", True, f"version {fields['version']}")

    for name, cert, issuer in (
        ("ARK is self-signed", ark, ark),
        ("ASK is signed by the ARK", ask, ark),
    ):
        try:
            verify_issued_by(cert, issuer)
            v.add(name, True)
        except InvalidSignature as err:
            v.add(name, False, str(err) or "signature does not verify")
    try:
        verify_issued_by(vcek, ask)
        v.add("VCEK is signed by the ASK", True)
    except InvalidSignature as err:
        v.add("VCEK is signed by the ASK", False, str(err) or "signature does not verify")
    key = vcek.public_key()
    if not (isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP384R1)):
        v.add("VCEK key is ECDSA P-384", False, type(key).__name__)
        return v

    if turin_tcb_layout is None:
        family = fields.get("cpuid_fam_id", 0)
        turin_tcb_layout = family >= 0x1A if family else _ext_int(vcek, KdsOid.FMC_SPL) is not None
    tcb = TcbVersion.from_int(fields["reported_tcb"], turin_layout=turin_tcb_layout)
    mismatches = []
    for name, want in tcb.components().items():
        got = _ext_int(vcek, _TCB_OIDS[name])
        if got != want:
            mismatches.append(f"{name} {got} != {want}")
    v.add(
        "VCEK TCB equals REPORTED_TCB",
        not mismatches,
        "; ".join(mismatches) or f"{fields['reported_tcb']:#018x}",
    )
    chip_id = fields["chip_id"]
    if any(chip_id):
        hwid = _ext_bytes(vcek, KdsOid.HWID) or b""
        v.add(
            "VCEK hwID equals CHIP_ID",
            bool(hwid) and chip_id.startswith(hwid) and not any(chip_id[len(hwid) :]),
        )
    try:
        verify_report_signature(report, key)
        v.add("report signature verifies with the VCEK", True)
    except ReportSignatureError as err:
        v.add("report signature verifies with the VCEK", False, str(err))

    expected: tuple[tuple[str, bytes | None, bytes], ...] = (
        ("MEASUREMENT", measurement, bytes(fields["measurement"])),
        ("REPORT_DATA", report_data, bytes(fields["report_data"])),
        ("HOST_DATA", host_data, bytes(fields["host_data"])),
    )
    for label, wanted, actual in expected:
        if wanted is not None:
            v.add(f"{label} is as expected", actual == bytes(wanted), actual.hex())
    return v
