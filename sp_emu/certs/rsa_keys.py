"""RSA-4096 root keys derived from ``(product, seed)`` through a deterministic DRBG, cached as
PEM under ``$XDG_CACHE_HOME/sp-emu/keys`` and shipped in ``sp_emu/data/keys`` for the default
seed, so that a seed always gives the same hierarchy."""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from functools import lru_cache
from importlib import resources
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sp_emu.certs.names import RSA_BITS, RSA_EXPONENT


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
