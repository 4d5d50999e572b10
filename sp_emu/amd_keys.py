"""AMD's ECDSA P-384 public-key and signature formats (SEV ABI), to and from `cryptography`.

A public key is 0x404 bytes: curve id (2 = P-384), then X and Y, each little-endian and zero
padded to 72 bytes.  A signature is 0x200 bytes: R then S, each little-endian in 72 bytes.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from sp_emu.abi.launch import CURVE_P384, ECDSA_PUBKEY, ECDSA_SIGNATURE


class BadKey(ValueError):
    """Bytes that are not a valid AMD-format P-384 public key or signature."""


def _le72(value: int) -> bytes:
    return value.to_bytes(72, "little")


def _from_le72(data: bytes, what: str) -> int:
    if any(data[48:]):
        raise BadKey(f"{what} has non-zero padding")
    return int.from_bytes(data[:48], "little")


def public_key_to_amd(key: ec.EllipticCurvePublicKey) -> bytes:
    """The 0x404-byte AMD encoding of a P-384 public key."""
    if not isinstance(key.curve, ec.SECP384R1):
        raise BadKey("only P-384 keys have an AMD encoding here")
    numbers = key.public_numbers()
    return ECDSA_PUBKEY.build({"curve": CURVE_P384, "qx": _le72(numbers.x), "qy": _le72(numbers.y)})


def public_key_from_amd(data: bytes) -> ec.EllipticCurvePublicKey:
    """Decode an AMD-format public key; BadKey if the curve is not P-384 or the point is not
    on the curve."""
    if ECDSA_PUBKEY.first_reserved_violation(data) is not None:
        raise BadKey("public key has non-zero reserved bytes")
    fields = ECDSA_PUBKEY.parse(data)
    if fields["curve"] != CURVE_P384:
        raise BadKey(f"curve {fields['curve']} is not P-384 (2)")
    x = _from_le72(fields["qx"], "QX")
    y = _from_le72(fields["qy"], "QY")
    try:
        return ec.EllipticCurvePublicNumbers(x, y, ec.SECP384R1()).public_key()
    except ValueError:
        raise BadKey("the point is not on P-384") from None


def sign_amd(key: ec.EllipticCurvePrivateKey, message: bytes) -> bytes:
    """ECDSA-P384-SHA384 signature of ``message`` in the 0x200-byte AMD format."""
    r, s = decode_dss_signature(key.sign(message, ec.ECDSA(hashes.SHA384())))
    return ECDSA_SIGNATURE.build({"r": _le72(r), "s": _le72(s)})


def verify_amd(key: ec.EllipticCurvePublicKey, signature: bytes, message: bytes) -> bool:
    """Whether ``signature`` (AMD format) is a valid ECDSA-P384-SHA384 signature of
    ``message`` by ``key``."""
    try:
        fields = ECDSA_SIGNATURE.parse(signature)
        r = _from_le72(fields["r"], "R")
        s = _from_le72(fields["s"], "S")
        key.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA384()))
    except (BadKey, InvalidSignature, ValueError):
        return False
    return True
