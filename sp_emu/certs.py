"""An emulated AMD key hierarchy and its certificates: ARK -> ASK -> VCEK, ARK -> ASVK -> VLEK.

AMD keeps one root (ARK) per product line, an intermediate for VCEKs (ASK) and one for
VLEKs (ASVK), all RSA-4096 signing with RSASSA-PSS (SHA-384, MGF1-SHA-384, 48-byte salt);
the Key Distribution Service issues an X.509 certificate for each chip's VCEK at each TCB,
carrying AMD's extensions under 1.3.6.1.4.1.3704.1 (attestation.md §6, §6.1).  This module
builds the same shapes from the emulator's own keys:

* the RSA keys are derived from ``(product, seed)`` through a deterministic DRBG (so a seed
  always gives the same hierarchy), cached as PEM under ``$XDG_CACHE_HOME/sp-emu/keys``, and
  shipped in ``sp_emu/data/keys/`` for :data:`DEFAULT_SEED` so that the default is instant;
* the VCEK/VLEK keys come from :class:`~sp_emu.chip.EmulatedChip`;
* every certificate and CRL is made by ``cryptography``'s builders with fixed dates and
  serial numbers.  PSS signatures are randomised (the salt), so after building, the 512-byte
  signature value -- the last field of the DER -- is replaced by a PSS signature over the same
  TBS bytes whose salt is derived from the key and the message; it is verified before use.
  The same seed therefore gives byte-identical certificates.

**These are test keys.**  Every subject says so ("sp-emu EMULATOR TEST ... (NOT AMD)"), and
nothing chains to AMD's real roots: a verifier that trusts AMD will reject all of it.

The module also holds AMD's side of the VLEK hand-over (:func:`wrap_vlek`): the blob a cloud
provider receives for SNP_VLEK_LOAD, wrapped under a key derived from the chip's VCEK seed.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import os
import threading
from functools import cached_property, lru_cache
from importlib import resources
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat import asn1
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

from sp_emu.abi.vlek import (
    VLEK_HASHSTICK,
    VLEK_SEED_SIZE,
    WRAPPED_VLEK,
)
from sp_emu.chip import EmulatedChip
from sp_emu.products import PRODUCTS, Product
from sp_emu.tcb import TcbVersion

DEFAULT_SEED = b"sp-emu default seed"
"""The seed of the shipped hierarchy; the same bytes as ``sp_emu.platform.DEFAULT_SEED``."""
DEFAULT_CSP = "sp-emu-csp"
"""The cloud provider the emulator's VLEKs are issued to (``EmulatedChip.vlek_seed``'s)."""

KDS_URL = "https://kds.sp-emu.invalid"
"""Where the certificates say their CRLs live.  ``.invalid`` never resolves (RFC 2606): run
``sp-emu kds serve`` and fetch ``/vcek/v1/{product}/crl`` from it instead."""

RSA_BITS = 4096
RSA_EXPONENT = 65537
PSS_SALT_LENGTH = 48
PSS_PADDING = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=PSS_SALT_LENGTH)
"""RSASSA-PSS as AMD's ARK/ASK/ASVK sign: SHA-384, MGF1 with SHA-384, 48-byte salt."""

NOT_BEFORE = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
NOT_AFTER = datetime.datetime(2049, 1, 1, tzinfo=datetime.UTC)
"""Every certificate's validity, fixed so that certificates are reproducible.  (AMD's roots
are valid 25 years and VCEKs 7; the emulator's leaves simply share the roots' window.)"""

EMULATOR_ORG = "sp-emu emulator (not Advanced Micro Devices)"
EMULATOR_OU = "sp-emu test key hierarchy - trust nothing it signs"


def _emulator_name(role: str) -> x509.Name:
    """A subject that cannot be mistaken for AMD's: ``role`` is AMD's common name for it."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"sp-emu EMULATOR TEST {role} (NOT AMD)"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, EMULATOR_ORG),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, EMULATOR_OU),
        ]
    )


# --- AMD's certificate extensions (attestation.md §6.1) -----------------------------------------
class KdsOid:
    """The X.509 extensions KDS puts in VCEK and VLEK certificates (arc 1.3.6.1.4.1.3704.1)."""

    STRUCT_VERSION = x509.ObjectIdentifier("1.3.6.1.4.1.3704.1.1")
    PRODUCT_NAME = x509.ObjectIdentifier("1.3.6.1.4.1.3704.1.2")
    BL_SPL = x509.ObjectIdentifier("1.3.6.1.4.1.3704.1.3.1")
    TEE_SPL = x509.ObjectIdentifier("1.3.6.1.4.1.3704.1.3.2")
    SNP_SPL = x509.ObjectIdentifier("1.3.6.1.4.1.3704.1.3.3")
    SPL_4 = x509.ObjectIdentifier("1.3.6.1.4.1.3704.1.3.4")
    SPL_5 = x509.ObjectIdentifier("1.3.6.1.4.1.3704.1.3.5")
    SPL_6 = x509.ObjectIdentifier("1.3.6.1.4.1.3704.1.3.6")
    SPL_7 = x509.ObjectIdentifier("1.3.6.1.4.1.3704.1.3.7")
    UCODE_SPL = x509.ObjectIdentifier("1.3.6.1.4.1.3704.1.3.8")
    FMC_SPL = x509.ObjectIdentifier("1.3.6.1.4.1.3704.1.3.9")
    HWID = x509.ObjectIdentifier("1.3.6.1.4.1.3704.1.4")
    CSP_ID = x509.ObjectIdentifier("1.3.6.1.4.1.3704.1.5")


STRUCT_VERSION = 0
"""structVersion of KDS-issued VCEK certificates (a KDS VCEK in go-sev-guest's test data)."""
TURIN_HWID_SIZE = 8


def kds_hwid(chip: EmulatedChip) -> bytes:
    """The chip's hwID as KDS knows it: the 64-byte CHIP_ID, or its 8 significant bytes on
    Turin (go-sev-guest ``kds.TurinHWIDSize``; third-party, unconfirmed by AMD documents)."""
    if chip.product.turin_tcb_layout:
        return chip.chip_id[:TURIN_HWID_SIZE]
    return chip.chip_id


def _int_ext(oid: x509.ObjectIdentifier, value: int) -> x509.Extension[x509.ExtensionType]:
    return x509.Extension(oid, False, x509.UnrecognizedExtension(oid, asn1.encode_der(value)))


def _ia5_ext(oid: x509.ObjectIdentifier, value: str) -> x509.Extension[x509.ExtensionType]:
    return x509.Extension(
        oid, False, x509.UnrecognizedExtension(oid, asn1.encode_der(asn1.IA5String(value)))
    )


def tcb_extensions(tcb: TcbVersion) -> list[x509.Extension[x509.ExtensionType]]:
    """The SPL extensions of ``tcb``, in the order KDS writes them.

    Milan/Genoa certificates carry blSPL, teeSPL, spl_4..spl_7 (the reserved TCB bytes 2-5,
    always 0 here), snpSPL and ucodeSPL.  Turin's carry fmcSPL too, and spl_5..spl_7 (bytes
    4-6) but no spl_4 (go-sev-guest ``kdsOidMapToExtensions``).
    """
    if tcb.turin_layout:
        spls = [
            (KdsOid.FMC_SPL, tcb.fmc),
            (KdsOid.BL_SPL, tcb.bootloader),
            (KdsOid.TEE_SPL, tcb.tee),
            (KdsOid.SNP_SPL, tcb.snp),
            (KdsOid.SPL_5, 0),
            (KdsOid.SPL_6, 0),
            (KdsOid.SPL_7, 0),
            (KdsOid.UCODE_SPL, tcb.microcode),
        ]
    else:
        spls = [
            (KdsOid.BL_SPL, tcb.bootloader),
            (KdsOid.TEE_SPL, tcb.tee),
            (KdsOid.SPL_4, 0),
            (KdsOid.SPL_5, 0),
            (KdsOid.SPL_6, 0),
            (KdsOid.SPL_7, 0),
            (KdsOid.SNP_SPL, tcb.snp),
            (KdsOid.UCODE_SPL, tcb.microcode),
        ]
    return [_int_ext(oid, value) for oid, value in spls]


def _check_tcb(product: Product, tcb: TcbVersion) -> None:
    if tcb.turin_layout != product.turin_tcb_layout:
        layout = "Turin" if product.turin_tcb_layout else "Milan/Genoa"
        raise ValueError(f"{product.name} TCBs have the {layout} layout")
    for name, svn in tcb.components().items():
        if not 0 <= svn <= 0xFF:
            raise ValueError(f"TCB component {name}={svn} does not fit in a byte")


# --- deterministic RSA keys --------------------------------------------------------------------
class _Drbg:
    """HMAC-SHA-512 in counter mode: the byte stream the RSA primes are drawn from."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._counter = 0

    def read(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            self._counter += 1
            out += hmac.new(self._key, self._counter.to_bytes(8, "big"), hashlib.sha512).digest()
        return bytes(out[:n])

    def below(self, low: int, high: int) -> int:
        """A number in [low, high), with negligible bias (64 extra bits)."""
        nbytes = (high.bit_length() + 7) // 8 + 8
        return low + int.from_bytes(self.read(nbytes), "big") % (high - low)


@lru_cache(maxsize=1)
def _small_primes(limit: int = 1 << 16) -> tuple[int, ...]:
    sieve = bytearray([1]) * (limit + 1)
    sieve[0:2] = b"\0\0"
    for i in range(2, int(limit**0.5) + 1):
        if sieve[i]:
            sieve[i * i :: i] = bytes(len(range(i * i, limit + 1, i)))
    return tuple(i for i in range(3, limit + 1) if sieve[i])


MILLER_RABIN_ROUNDS = 5
"""Random-base Miller-Rabin rounds per candidate (FIPS 186-5 table B.1 asks for 4 for the
2048-bit primes of an RSA-4096 key)."""


def _probably_prime(n: int, drbg: _Drbg, rounds: int = MILLER_RABIN_ROUNDS) -> bool:
    d, s = n - 1, 0
    while not d & 1:
        d >>= 1
        s += 1
    for _ in range(rounds):
        x = pow(drbg.below(2, n - 1), d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def _random_prime(drbg: _Drbg, bits: int, window: int = 4096) -> int:
    """A ``bits``-bit prime p with the top two bits set and gcd(e, p-1) = 1: a random odd
    start, then the odd numbers after it sieved by the primes below 2^16 and tested with
    Miller-Rabin."""
    while True:
        start = int.from_bytes(drbg.read(bits // 8), "big") | (3 << (bits - 2)) | 1
        alive = bytearray([1]) * window  # alive[i]: start + 2i has no small factor
        for p in _small_primes():
            first = (-start * pow(2, -1, p)) % p  # the i with start + 2i = 0 (mod p)
            alive[first::p] = bytes(len(range(first, window, p)))
        for i in range(window):
            if not alive[i]:
                continue
            candidate = start + 2 * i
            if candidate.bit_length() != bits:
                break
            if candidate % RSA_EXPONENT == 1:
                continue
            if _probably_prime(candidate, drbg):
                return candidate


def derive_root_key(product_name: str, seed: bytes, role: str) -> rsa.RSAPrivateKey:
    """The RSA-4096 key of ``role`` ("ark", "ask" or "asvk") for ``product_name`` and
    ``seed``, computed from scratch (several seconds; :func:`root_key` caches it)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r} (known: {', '.join(ROLES)})")
    key = hashlib.sha512(
        b"sp-emu rsa drbg v1\0" + product_name.encode() + b"\0" + role.encode() + b"\0" + seed
    ).digest()
    drbg = _Drbg(key)
    half = RSA_BITS // 2
    while True:
        p = _random_prime(drbg, half)
        q = _random_prime(drbg, half)
        # FIPS 186-5 A.1.3: p and q must differ somewhere in their top 100 bits.
        if abs(p - q) > 1 << (half - 100):
            break
    if p < q:
        p, q = q, p
    n = p * q
    lam = (p - 1) * (q - 1) // _gcd(p - 1, q - 1)
    d = pow(RSA_EXPONENT, -1, lam)
    numbers = rsa.RSAPrivateNumbers(
        p=p,
        q=q,
        d=d,
        dmp1=rsa.rsa_crt_dmp1(d, p),
        dmq1=rsa.rsa_crt_dmq1(d, q),
        iqmp=rsa.rsa_crt_iqmp(p, q),
        public_numbers=rsa.RSAPublicNumbers(RSA_EXPONENT, n),
    )
    return numbers.private_key()


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a


ROLES = ("ark", "ask", "asvk")


def key_id(product_name: str, seed: bytes) -> str:
    """The name under which ``(product, seed)``'s keys are shipped and cached."""
    digest = hashlib.sha256(b"sp-emu amd roots v1\0" + product_name.encode() + b"\0" + seed)
    return digest.hexdigest()[:24]


def key_file_name(product_name: str, seed: bytes, role: str) -> str:
    return f"{product_name.lower()}-{role}-{key_id(product_name, seed)}.pem"


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/sp-emu`` (or ``~/.cache/sp-emu``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sp-emu"


def _load_key(data: bytes) -> rsa.RSAPrivateKey | None:
    """A shipped or cached key, or None if ``data`` is not a consistent RSA-4096 key.

    OpenSSL's own key check (primality tests, about half a second per key) is skipped; the
    arithmetic that ties the numbers together is checked instead.  The files are ones this
    module wrote, and a test re-derives a shipped key from its seed.
    """
    try:
        key = serialization.load_pem_private_key(
            data, password=None, unsafe_skip_rsa_key_validation=True
        )
    except (ValueError, TypeError):
        return None
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size != RSA_BITS:
        return None
    n = key.private_numbers()
    p, q, e = n.p, n.q, n.public_numbers.e
    lam = (p - 1) * (q - 1) // _gcd(p - 1, q - 1)
    if (
        e != RSA_EXPONENT
        or p * q != n.public_numbers.n
        or e * n.d % lam != 1
        or n.dmp1 != n.d % (p - 1)
        or n.dmq1 != n.d % (q - 1)
        or n.iqmp * q % p != 1
    ):
        return None
    return key


def key_pem(key: rsa.RSAPrivateKey) -> bytes:
    """PKCS#8 PEM, unencrypted: how the keys are shipped and cached."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def shipped_key_pem(product_name: str, seed: bytes, role: str) -> bytes | None:
    """The PEM shipped in ``sp_emu/data/keys`` for these inputs, if there is one."""
    entry = resources.files("sp_emu").joinpath(
        "data", "keys", key_file_name(product_name, seed, role)
    )
    try:
        return entry.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


_key_lock = threading.Lock()


@lru_cache(maxsize=32)
def root_key(product_name: str, seed: bytes, role: str) -> rsa.RSAPrivateKey:
    """The RSA key of ``role`` for ``(product_name, seed)``: the shipped copy, else the cached
    one, else derived (:func:`derive_root_key`) and written to the cache."""
    name = key_file_name(product_name, seed, role)
    with _key_lock:
        shipped = shipped_key_pem(product_name, seed, role)
        if shipped is not None and (key := _load_key(shipped)) is not None:
            return key
        cached = cache_dir() / "keys" / name
        try:
            key = _load_key(cached.read_bytes())
        except OSError:
            key = None
        if key is not None:
            return key
        key = derive_root_key(product_name, seed, role)
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_name(f".{name}.{os.getpid()}.tmp")
            tmp.write_bytes(key_pem(key))
            os.chmod(tmp, 0o600)
            os.replace(tmp, cached)
        except OSError:
            pass  # an unwritable cache only costs the derivation next time
        return key


def export_root_keys(product_name: str, seed: bytes, directory: Path) -> list[Path]:
    """Write ``(product, seed)``'s three keys into ``directory`` under their shipped names
    (how ``sp_emu/data/keys`` was made: ``export_root_keys(name, DEFAULT_SEED, dir)`` per
    product)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for role in ROLES:
        path = directory / key_file_name(product_name, seed, role)
        path.write_bytes(key_pem(root_key(product_name, seed, role)))
        paths.append(path)
    return paths


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


# --- the product's roots ------------------------------------------------------------------------
class AmdRoots:
    """One product line's ARK, ASK and ASVK (keys and certificates) and its CRL."""

    def __init__(self, product: Product, seed: bytes = DEFAULT_SEED) -> None:
        self.product = product
        self.seed = bytes(seed)

    def _key(self, role: str) -> rsa.RSAPrivateKey:
        return root_key(self.product.name, self.seed, role)

    @property
    def ark_key(self) -> rsa.RSAPrivateKey:
        return self._key("ark")

    @property
    def ask_key(self) -> rsa.RSAPrivateKey:
        return self._key("ask")

    @property
    def asvk_key(self) -> rsa.RSAPrivateKey:
        return self._key("asvk")

    def _serial(self, role: str) -> int:
        return _serial(self.product.name.encode(), self.seed, role.encode())

    @cached_property
    def ark_cert(self) -> x509.Certificate:
        """The self-signed root: CA, key usage certSign + cRLSign (as AMD's ARK)."""
        name = _emulator_name(f"ARK-{self.product.name}")
        public = self.ark_key.public_key()
        builder = (
            _builder(name, name, public, self._serial("ark"))
            .add_extension(_ca_key_usage(crl_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_crl_point(self.crl_url()), critical=False)
        )
        return _sign_certificate(builder, self.ark_key)

    def _intermediate(self, role: str, common_name: str, crl_url: str) -> x509.Certificate:
        key = self._key(role)
        public = key.public_key()
        ark_ski = self.ark_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        builder = (
            _builder(_emulator_name(common_name), self.ark_cert.subject, public, self._serial(role))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ark_ski.value),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_ca_key_usage(crl_sign=False), critical=True)
            .add_extension(_crl_point(crl_url), critical=False)
        )
        return _sign_certificate(builder, self.ark_key)

    @cached_property
    def ask_cert(self) -> x509.Certificate:
        """The VCEK intermediate, signed by the ARK (CA, path length 0, certSign)."""
        return self._intermediate("ask", f"SEV-{self.product.name}", self.crl_url())

    @cached_property
    def asvk_cert(self) -> x509.Certificate:
        """The VLEK intermediate, signed by the ARK; its CRL is on the VLEK path."""
        return self._intermediate("asvk", f"SEV-VLEK-{self.product.name}", self.crl_url(vlek=True))

    def crl_url(self, *, vlek: bool = False) -> str:
        return f"{KDS_URL}{kds_path(self.product, vlek=vlek)}/crl"

    @cached_property
    def crl(self) -> x509.CertificateRevocationList:
        """An empty CRL signed by the ARK (nothing the emulator issues is revoked)."""
        ark_ski = self.ark_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.ark_cert.subject)
            .last_update(NOT_BEFORE)
            .next_update(NOT_AFTER)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ark_ski.value),
                critical=False,
            )
            .add_extension(x509.CRLNumber(1), critical=False)
        )
        crl = builder.sign(self.ark_key, hashes.SHA384(), rsa_padding=PSS_PADDING)
        encoded = crl.public_bytes(serialization.Encoding.DER)
        return x509.load_der_x509_crl(
            _resign(encoded, crl.signature, crl.tbs_certlist_bytes, self.ark_key)
        )

    def crl_der(self) -> bytes:
        return self.crl.public_bytes(serialization.Encoding.DER)

    def cert_chain_pem(self) -> bytes:
        """ASK then ARK, PEM: the body of KDS's ``/vcek/v1/{product}/cert_chain``."""
        return pem(self.ask_cert) + pem(self.ark_cert)

    def vlek_cert_chain_pem(self) -> bytes:
        """ASVK then ARK, PEM: the body of ``/vlek/v1/{product}/cert_chain``."""
        return pem(self.asvk_cert) + pem(self.ark_cert)


@lru_cache(maxsize=16)
def amd_roots(product_name: str, seed: bytes = DEFAULT_SEED) -> AmdRoots:
    """The (shared, memoised) roots of ``product_name`` for ``seed``."""
    product = PRODUCTS.get(product_name)
    if product is None:
        raise ValueError(f"unknown product {product_name!r} (known: {', '.join(PRODUCTS)})")
    return AmdRoots(product, seed)


# --- one chip's certificates -------------------------------------------------------------------
class ChipCertificates:
    """The certificates KDS would serve for one emulated chip: its VCEKs (one per TCB), the
    VLEKs issued for it, and the product's ARK/ASK/ASVK.

    ``seed`` chooses the AMD hierarchy (the roots), not the chip: AMD has one ARK per
    product line whatever the chip, and the default is the shipped, instant one.
    """

    def __init__(self, chip: EmulatedChip, seed: bytes = DEFAULT_SEED) -> None:
        self.chip = chip
        self.product = chip.product
        self.roots = amd_roots(chip.product.name, bytes(seed))
        self._vcek: dict[TcbVersion, x509.Certificate] = {}
        self._vlek: dict[tuple[TcbVersion, bytes, str], x509.Certificate] = {}

    # the roots, for convenience
    @property
    def ark_cert(self) -> x509.Certificate:
        return self.roots.ark_cert

    @property
    def ask_cert(self) -> x509.Certificate:
        return self.roots.ask_cert

    @property
    def asvk_cert(self) -> x509.Certificate:
        return self.roots.asvk_cert

    @property
    def ark_key(self) -> rsa.RSAPrivateKey:
        return self.roots.ark_key

    @property
    def ask_key(self) -> rsa.RSAPrivateKey:
        return self.roots.ask_key

    @property
    def asvk_key(self) -> rsa.RSAPrivateKey:
        return self.roots.asvk_key

    def cert_chain_pem(self) -> bytes:
        return self.roots.cert_chain_pem()

    def vlek_cert_chain_pem(self) -> bytes:
        return self.roots.vlek_cert_chain_pem()

    def crl_der(self) -> bytes:
        return self.roots.crl_der()

    @property
    def hwid(self) -> bytes:
        return kds_hwid(self.chip)

    def _leaf(
        self,
        role: str,
        public: ec.EllipticCurvePublicKey,
        issuer: x509.Certificate,
        issuer_key: rsa.RSAPrivateKey,
        serial: int,
        extensions: list[x509.Extension[x509.ExtensionType]],
    ) -> x509.Certificate:
        builder = _builder(_emulator_name(role), issuer.subject, public, serial)
        for ext in extensions:
            builder = builder.add_extension(ext.value, critical=ext.critical)
        return _sign_certificate(builder, issuer_key)

    def vcek_cert(self, tcb: TcbVersion | None = None) -> x509.Certificate:
        """The certificate of the VCEK for ``tcb`` (default: the product's shipped TCB), signed
        by the ASK, with structVersion, productName1 (stepping name), the SPLs and hwID (raw
        bytes, no OCTET STRING tag, as KDS writes it) -- and no other extension."""
        tcb = self.product.tcb if tcb is None else tcb
        cert = self._vcek.get(tcb)
        if cert is None:
            _check_tcb(self.product, tcb)
            extensions = [
                _int_ext(KdsOid.STRUCT_VERSION, STRUCT_VERSION),
                _ia5_ext(KdsOid.PRODUCT_NAME, self.product.stepping_name),
                *tcb_extensions(tcb),
                x509.Extension(
                    KdsOid.HWID, False, x509.UnrecognizedExtension(KdsOid.HWID, self.hwid)
                ),
            ]
            serial = _serial(b"vcek", self.chip.chip_id, tcb.to_int().to_bytes(8, "little"))
            cert = self._leaf(
                "SEV-VCEK",
                self.chip.vcek_private_key(tcb).public_key(),
                self.ask_cert,
                self.ask_key,
                serial,
                extensions,
            )
            self._vcek[tcb] = cert
        return cert

    def vlek_cert(
        self,
        tcb: TcbVersion | None = None,
        *,
        vlek_seed: bytes | None = None,
        csp: str = DEFAULT_CSP,
    ) -> x509.Certificate:
        """The certificate of a VLEK issued to ``csp`` for ``tcb``, signed by the ASVK:
        structVersion, productName1 (the product line only), the SPLs and cspID.  The key is
        ``chip.vlek_private_key(vlek_seed)``, by default the seed ``chip.vlek_seed(tcb, csp)``
        that :func:`wrap_vlek` would wrap."""
        tcb = self.product.tcb if tcb is None else tcb
        _check_tcb(self.product, tcb)
        seed = self.chip.vlek_seed(tcb, csp) if vlek_seed is None else bytes(vlek_seed)
        cache_key = (tcb, seed, csp)
        cert = self._vlek.get(cache_key)
        if cert is None:
            extensions = [
                _int_ext(KdsOid.STRUCT_VERSION, STRUCT_VERSION),
                _ia5_ext(KdsOid.PRODUCT_NAME, self.product.name),
                *tcb_extensions(tcb),
                _ia5_ext(KdsOid.CSP_ID, csp),
            ]
            serial = _serial(b"vlek", seed, csp.encode(), tcb.to_int().to_bytes(8, "little"))
            cert = self._leaf(
                "SEV-VLEK",
                self.chip.vlek_private_key(seed).public_key(),
                self.asvk_cert,
                self.asvk_key,
                serial,
                extensions,
            )
            self._vlek[cache_key] = cert
        return cert

    def write_snpguest_layout(
        self,
        directory: str | os.PathLike[str],
        tcb: TcbVersion | None = None,
        *,
        vlek: bool = False,
    ) -> list[Path]:
        """Write the certificates where snpguest looks for them: ``ark.pem``, ``ask.pem`` and
        ``vcek.pem`` (with ``vlek``: ``ark.pem``, ``asvk.pem`` and ``vlek.pem``)."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        if vlek:
            files = {
                "ark.pem": self.ark_cert,
                "asvk.pem": self.asvk_cert,
                "vlek.pem": self.vlek_cert(tcb),
            }
        else:
            files = {
                "ark.pem": self.ark_cert,
                "ask.pem": self.ask_cert,
                "vcek.pem": self.vcek_cert(tcb),
            }
        paths = []
        for name, cert in files.items():
            path = out / name
            path.write_bytes(pem(cert))
            paths.append(path)
        return paths


def verify_issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> None:
    """InvalidSignature unless ``issuer`` signed ``cert`` with AMD's RSASSA-PSS parameters
    (SHA-384, MGF1-SHA-384, salt 48) and ``cert``'s issuer name is ``issuer``'s subject."""
    params = cert.signature_algorithm_parameters
    if (
        not isinstance(params, padding.PSS)
        or not isinstance(cert.signature_hash_algorithm, hashes.SHA384)
        or params._salt_length != PSS_SALT_LENGTH
        or not isinstance(params._mgf, padding.MGF1)
        or not isinstance(params._mgf._algorithm, hashes.SHA384)
    ):
        raise InvalidSignature("not RSASSA-PSS with SHA-384, MGF1-SHA-384 and a 48-byte salt")
    if cert.issuer != issuer.subject:
        raise InvalidSignature("issuer name differs from the issuer's subject")
    public = issuer.public_key()
    if not isinstance(public, rsa.RSAPublicKey):
        raise InvalidSignature("the issuer key is not RSA")
    public.verify(cert.signature, cert.tbs_certificate_bytes, PSS_PADDING, hashes.SHA384())


# --- the VLEK hand-over (attestation.md §8.3) ----------------------------------------------------
VLEK_WRAPPING_LABEL = b"vlek-wrapping-key"


def sp800_108_counter_kdf(
    key: bytes, label: bytes, context: bytes = b"", length: int = 32
) -> bytes:
    """NIST SP 800-108 KDF in counter mode with HMAC-SHA-256, as the firmware runs it: block
    i = HMAC(key, i ‖ label ‖ 0x00 ‖ context ‖ L), i from 1 and L = output bits, both u32
    **little-endian** (attestation.md §8.3; ``cryptography``'s KBKDFHMAC is big-endian)."""
    length_bits = (8 * length).to_bytes(4, "little")
    out = bytearray()
    i = 1
    while len(out) < length:
        block = i.to_bytes(4, "little") + label + b"\0" + context + length_bits
        out += hmac.new(key, block, hashlib.sha256).digest()
        i += 1
    return bytes(out[:length])


def vlek_wrapping_key(vcek_seed: bytes) -> bytes:
    """The AES-256 key that wraps a VLEK for the chip whose VCEK seed (at the blob's TCB) is
    ``vcek_seed``: the KDF with label "vlek-wrapping-key" and no context."""
    return sp800_108_counter_kdf(vcek_seed, VLEK_WRAPPING_LABEL)


def wrap_vlek(
    chip: EmulatedChip, tcb: TcbVersion, vlek_seed: bytes, *, iv: bytes | None = None
) -> bytes:
    """The 0x1B0-byte wrapped VLEK a cloud provider gets from AMD for ``chip`` at ``tcb``:
    the hashstick holding ``vlek_seed`` (48 bytes), AES-256-GCM under
    :func:`vlek_wrapping_key` of the chip's VCEK seed for ``tcb``, with TCB_VERSION ‖ reserved
    as additional data.  The IV defaults to one derived from the key and the plaintext."""
    _check_tcb(chip.product, tcb)
    if len(vlek_seed) != VLEK_SEED_SIZE:
        raise ValueError(f"a VLEK seed is {VLEK_SEED_SIZE} bytes")
    key = vlek_wrapping_key(chip.vcek_seed(tcb))
    plaintext = VLEK_HASHSTICK.build({"vlek_seed": bytes(vlek_seed)})
    tcb_value = tcb.to_int()
    aad = tcb_value.to_bytes(8, "little") + bytes(8)
    if iv is None:
        iv = hashlib.sha256(b"sp-emu vlek iv\0" + key + plaintext).digest()[:12]
    elif len(iv) != 12:
        raise ValueError("the IV is 12 bytes")
    sealed = AESGCM(key).encrypt(iv, plaintext, aad)
    return WRAPPED_VLEK.build(
        {"iv": iv, "wrapped": sealed[:-16], "tcb_version": tcb_value, "auth_tag": sealed[-16:]}
    )
