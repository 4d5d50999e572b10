"""Deterministic RSASSA-PSS (SHA-384, MGF1-SHA-384, 48-byte salt derived from the key and the
message), so that the same seed gives byte-identical certificates and CRLs."""

from __future__ import annotations

import hashlib
import hmac

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sp_emu.certs.names import NOT_AFTER, NOT_BEFORE, PSS_PADDING, PSS_SALT_LENGTH
from sp_emu.products import Product


# --- deterministic RSASSA-PSS ------------------------------------------------------------------
def _mgf1_sha384(seed: bytes, length: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < length:
        out += hashlib.sha384(seed + counter.to_bytes(4, "big")).digest()
        counter += 1
    return bytes(out[:length])


def pss_sign(key: rsa.RSAPrivateKey, message: bytes) -> bytes:
    """RSASSA-PSS (SHA-384, MGF1-SHA-384, 48-byte salt; RFC 8017 §8.1) over ``message`` with
    the salt drawn from the key and the message, so that signing is reproducible.  The
    result is checked with ``cryptography``'s PSS verification before it is returned."""
    numbers = key.private_numbers()
    n = numbers.public_numbers.n
    em_bits = n.bit_length() - 1
    em_len = (em_bits + 7) // 8
    h_len = s_len = PSS_SALT_LENGTH
    m_hash = hashlib.sha384(message).digest()
    secret = numbers.d.to_bytes((numbers.d.bit_length() + 7) // 8, "big")
    salt = hmac.new(secret, b"sp-emu pss salt\0" + m_hash, hashlib.sha384).digest()[:s_len]
    h = hashlib.sha384(bytes(8) + m_hash + salt).digest()
    db = bytes(em_len - s_len - h_len - 2) + b"\x01" + salt
    masked = bytearray(a ^ b for a, b in zip(db, _mgf1_sha384(h, em_len - h_len - 1), strict=True))
    masked[0] &= 0xFF >> (8 * em_len - em_bits)
    m = int.from_bytes(bytes(masked) + h + b"\xbc", "big")
    s1 = pow(m, numbers.dmp1, numbers.p)
    s2 = pow(m, numbers.dmq1, numbers.q)
    s = s2 + (numbers.iqmp * (s1 - s2) % numbers.p) * numbers.q
    signature = s.to_bytes((n.bit_length() + 7) // 8, "big")
    key.public_key().verify(signature, message, PSS_PADDING, hashes.SHA384())
    return signature


def _resign(der: bytes, old_signature: bytes, signed: bytes, key: rsa.RSAPrivateKey) -> bytes:
    """``der`` (a certificate or CRL the builder made) with its signature value -- the last
    bytes of the encoding -- replaced by the reproducible PSS signature of ``signed``."""
    if not der.endswith(old_signature):
        raise RuntimeError("the signature is not the last field of the encoding")
    signature = pss_sign(key, signed)
    if len(signature) != len(old_signature):
        raise RuntimeError("a PSS signature changed length")
    return der[: len(der) - len(signature)] + signature


def _serial(*parts: bytes) -> int:
    """A positive 63-bit serial number drawn from ``parts``."""
    value = int.from_bytes(
        hashlib.sha256(b"\0".join((b"sp-emu serial", *parts))).digest()[:8], "big"
    )
    return (value >> 1) or 1


def _sign_certificate(builder: x509.CertificateBuilder, key: rsa.RSAPrivateKey) -> x509.Certificate:
    cert = builder.sign(key, hashes.SHA384(), rsa_padding=PSS_PADDING)
    der = cert.public_bytes(serialization.Encoding.DER)
    return x509.load_der_x509_certificate(
        _resign(der, cert.signature, cert.tbs_certificate_bytes, key)
    )


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey,
    serial: int,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
    )


def _crl_point(url: str) -> x509.CRLDistributionPoints:
    return x509.CRLDistributionPoints(
        [x509.DistributionPoint([x509.UniformResourceIdentifier(url)], None, None, None)]
    )


def _ca_key_usage(*, crl_sign: bool) -> x509.KeyUsage:
    """keyCertSign, and cRLSign for the root (AMD's ARK: both; ASK/ASVK: certSign only)."""
    return x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def kds_path(product: Product, *, vlek: bool = False) -> str:
    """``/vcek/v1/{product}`` or ``/vlek/v1/{product}`` (attestation.md §6.2)."""
    return f"/{'vlek' if vlek else 'vcek'}/v1/{product.name}"


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)
