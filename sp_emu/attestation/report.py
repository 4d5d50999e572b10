"""Building, signing, parsing and verifying ATTESTATION_REPORTs (attestation.md §4).

The firmware fills the report from the guest context and the platform state (§4.2), picks the
signing key from KEY_SEL, the loaded VLEK and MASK_CHIP_KEY, and signs bytes 0x000..0x29F with
ECDSA P-384 / SHA-384.  The VCEK that signs is the one of the REPORTED_TCB
(``EmulatedChip.vcek_private_key(state.effective_reported_tcb())``); a loaded VLEK signs with
``EmulatedChip.vlek_private_key(state.vlek)``.  With no key, SIGNING_KEY is 7 and the signature
block stays zero.

Values the emulator does not model are reported as zero: TSME_EN (no TSME), the v5
mitigation vectors.
"""

from __future__ import annotations

import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from sp_emu.abi.launch import ECDSA_SIGNATURE
from sp_emu.abi.messages import KEY_SEL_VCEK, KEY_SEL_VLEK, KEY_SEL_VLEK_OR_VCEK
from sp_emu.abi.report import (
    PLATFORM_CIPHERTEXT_HIDING_EN,
    PLATFORM_RAPL_DIS,
    PLATFORM_SMT_EN,
    REPORT_SIZE,
    SIGNATURE_ALGO_ECDSA_P384_SHA384,
    SIGNATURE_OFFSET,
    SIGNED_SIZE,
    SIGNING_KEY_NONE,
    SIGNING_KEY_VCEK,
    SIGNING_KEY_VLEK,
    UnsupportedReportVersion,
    report_layout,
)
from sp_emu.chip import EmulatedChip
from sp_emu.state import GuestContext, PlatformState

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class ReportFormatError(ValueError):
    """Bytes that are not a well-formed report (size, version, reserved bytes)."""


class ReportSignatureError(ValueError):
    """The report's signature does not verify under the given key (or there is none)."""


def key_sel_available(state: PlatformState, guest: GuestContext, key_sel: int) -> bool:
    """Whether KEY_SEL names a usable key (else the payload STATUS is INVALID_KEY): not the
    reserved value 3; VLEK-only needs a loaded VLEK; VCEK-only needs VCEK not disabled for
    the guest; the default needs one of the two (AFW)."""
    vlek = state.vlek is not None
    if key_sel == KEY_SEL_VLEK_OR_VCEK:
        return vlek or not guest.vcek_disabled
    if key_sel == KEY_SEL_VCEK:
        return not guest.vcek_disabled
    if key_sel == KEY_SEL_VLEK:
        return vlek
    return False


def signing_key(
    state: PlatformState, chip: EmulatedChip, key_sel: int
) -> tuple[int, ec.EllipticCurvePrivateKey | None]:
    """(SIGNING_KEY, key) for an accepted KEY_SEL: the VLEK when loaded and allowed, else the
    VCEK of the REPORTED_TCB unless MASK_CHIP_KEY, else none (SIGNING_KEY 7)."""
    vlek = state.vlek
    if key_sel in (KEY_SEL_VLEK_OR_VCEK, KEY_SEL_VLEK) and vlek is not None:
        return SIGNING_KEY_VLEK, chip.vlek_private_key(vlek)
    if key_sel in (KEY_SEL_VLEK_OR_VCEK, KEY_SEL_VCEK) and not state.mask_chip_key:
        return SIGNING_KEY_VCEK, chip.vcek_private_key(state.effective_reported_tcb())
    return SIGNING_KEY_NONE, None


def platform_info(state: PlatformState) -> int:
    """PLATFORM_INFO: SMT_EN, and RAPL_DIS / CIPHERTEXT_HIDING_DRAM_EN where enabled."""
    info = PLATFORM_SMT_EN if state.smt else 0
    if state.rapl_dis:
        info |= PLATFORM_RAPL_DIS
    if state.ciphertext_hiding_en:
        info |= PLATFORM_CIPHERTEXT_HIDING_EN
    return info


def report_version(state: PlatformState) -> int:
    """The VERSION the running firmware writes (per product, see ``Product.report_version``)."""
    return state.product.report_version(state.api_major, state.api_minor, state.build)


def report_fields(
    state: PlatformState,
    chip: EmulatedChip,
    guest: GuestContext,
    *,
    report_data: bytes,
    vmpl: int,
    signing_key_id: int,
    version: int | None = None,
) -> dict[str, Any]:
    """Every field of the unsigned report, as the firmware fills it (§4.2 step 2)."""
    version = report_version(state) if version is None else version
    committed_major, committed_minor, committed_build = state.committed_api
    f: dict[str, Any] = {
        "version": version,
        "guest_svn": guest.guest_svn,
        "policy": guest.policy,
        "family_id": guest.family_id,
        "image_id": guest.image_id,
        "vmpl": vmpl,
        "signature_algo": SIGNATURE_ALGO_ECDSA_P384_SHA384,
        "current_tcb": state.current_tcb.to_int(),
        "platform_info": platform_info(state),
        "author_key_en": int(guest.author_key_en),
        "mask_chip_key": int(state.mask_chip_key),
        "signing_key": signing_key_id,
        "report_data": bytes(report_data),
        "measurement": guest.ld,
        "host_data": guest.host_data,
        "id_key_digest": guest.id_key_digest,
        "author_key_digest": guest.author_key_digest,
        "report_id": guest.report_id,
        "report_id_ma": guest.report_id_ma,
        "reported_tcb": state.effective_reported_tcb().to_int(),
        "chip_id": bytes(64) if state.mask_chip_id else chip.chip_id,
        "committed_tcb": state.committed_tcb.to_int(),
        "current_build": state.build,
        "current_minor": state.api_minor,
        "current_major": state.api_major,
        "committed_build": committed_build,
        "committed_minor": committed_minor,
        "committed_major": committed_major,
        "launch_tcb": guest.launch_tcb,
    }
    if version >= 3:
        product = state.product
        f |= {
            "cpuid_fam_id": product.family,
            "cpuid_mod_id": product.model,
            "cpuid_step": product.stepping,
        }
    if version >= 5:
        f |= {"launch_mit_vector": 0, "current_mit_vector": 0}
    return f


def build_report(
    state: PlatformState,
    chip: EmulatedChip,
    guest: GuestContext,
    *,
    report_data: bytes,
    vmpl: int,
    key_sel: int,
) -> bytes:
    """The signed 0x4A0-byte report for an accepted MSG_REPORT_REQ."""
    key_id, key = signing_key(state, chip, key_sel)
    fields = report_fields(
        state, chip, guest, report_data=report_data, vmpl=vmpl, signing_key_id=key_id
    )
    raw = report_layout(fields["version"]).build(fields)
    return raw if key is None else sign_report(raw, key)


def _ecdsa() -> ec.ECDSA:
    try:
        return ec.ECDSA(hashes.SHA384(), deterministic_signing=True)
    except TypeError:  # cryptography < 43: no RFC 6979
        return ec.ECDSA(hashes.SHA384())


def sign_report(report: bytes, key: ec.EllipticCurvePrivateKey) -> bytes:
    """``report`` with its signature block replaced by ``key``'s signature of 0x000..0x29F.

    The emulator signs deterministically (RFC 6979 nonces) so that replaying a trace gives
    the same report bytes; the firmware's nonces are random, which a verifier cannot tell.
    """
    r, s = decode_dss_signature(key.sign(report[:SIGNED_SIZE], _ecdsa()))
    signature = ECDSA_SIGNATURE.build(
        {"r": r.to_bytes(72, "little"), "s": s.to_bytes(72, "little")}
    )
    return report[:SIGNATURE_OFFSET] + signature + report[SIGNATURE_OFFSET + len(signature) :]


def parse_report(report: bytes) -> dict[str, Any]:
    """The fields of a report, by its VERSION's layout.  ReportFormatError if the size or
    version is wrong or a reserved byte is not zero (go-sev-guest treats that as malformed)."""
    if len(report) != REPORT_SIZE:
        raise ReportFormatError(f"a report is {REPORT_SIZE:#x} bytes, not {len(report):#x}")
    version = int.from_bytes(report[:4], "little")
    try:
        layout = report_layout(version)
    except UnsupportedReportVersion as err:
        raise ReportFormatError(str(err)) from None
    bad = layout.first_reserved_violation(report)
    if bad is not None:
        raise ReportFormatError(f"reserved byte {bad:#x} of a v{version} report is not zero")
    return layout.parse(report)


def verify_report_signature(report: bytes, public_key: ec.EllipticCurvePublicKey) -> None:
    """Check the ECDSA P-384 / SHA-384 signature over bytes 0x000..0x29F; raise
    ReportSignatureError if it does not verify (including an unsigned report)."""
    fields = parse_report(report)
    if fields["signature_algo"] != SIGNATURE_ALGO_ECDSA_P384_SHA384:
        raise ReportSignatureError(f"SIGNATURE_ALGO {fields['signature_algo']} is not 1")
    r = int.from_bytes(fields["signature_r"][:48], "little")
    s = int.from_bytes(fields["signature_s"][:48], "little")
    if any(fields["signature_r"][48:]) or any(fields["signature_s"][48:]) or not (r and s):
        raise ReportSignatureError("the report carries no valid signature")
    try:
        public_key.verify(
            encode_dss_signature(r, s), report[:SIGNED_SIZE], ec.ECDSA(hashes.SHA384())
        )
    except InvalidSignature:
        raise ReportSignatureError("the signature does not verify under this key") from None


def report_digest(report: bytes) -> bytes:
    """SHA-384 of the signed part (what the signature is over)."""
    return hashlib.sha384(report[:SIGNED_SIZE]).digest()
