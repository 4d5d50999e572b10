"""The emulated AMD hierarchy's RSA keys: derived from a seed, shipped for the default seed,
cached for the others; and the reproducible RSASSA-PSS signatures made with them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from sp_emu import certs
from sp_emu.certs import (
    DEFAULT_SEED,
    PSS_PADDING,
    ROLES,
    derive_root_key,
    key_file_name,
    key_pem,
    pss_sign,
    root_key,
    rsa_keys,
    shipped_key_pem,
)
from sp_emu.platform import DEFAULT_SEED as PLATFORM_DEFAULT_SEED
from sp_emu.products import PRODUCTS

KEY_DIR = Path(certs.__file__).parent.parent / "data" / "keys"


def _strong_probable_prime(n: int, bases: tuple[int, ...] = (2, 3, 5, 7, 11, 13, 17)) -> bool:
    """An independent Miller-Rabin with fixed bases (not the module's DRBG-driven one)."""
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for a in bases:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty XDG cache, and root_key's memo cleared before and after."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    root_key.cache_clear()
    yield tmp_path / "sp-emu" / "keys"
    root_key.cache_clear()


def test_the_default_seed_is_the_platforms() -> None:
    assert DEFAULT_SEED == PLATFORM_DEFAULT_SEED


@pytest.mark.parametrize("product", sorted(PRODUCTS))
@pytest.mark.parametrize("role", ROLES)
def test_every_default_key_is_shipped(product: str, role: str) -> None:
    data = shipped_key_pem(product, DEFAULT_SEED, role)
    assert data is not None, f"{key_file_name(product, DEFAULT_SEED, role)} is not shipped"
    assert (KEY_DIR / key_file_name(product, DEFAULT_SEED, role)).is_file()
    key = root_key(product, DEFAULT_SEED, role)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 4096
    assert key.public_key().public_numbers().e == 65537
    assert key_pem(key) == data


def test_shipped_directory_holds_only_the_default_keys() -> None:
    wanted = {key_file_name(p, DEFAULT_SEED, r) for p in PRODUCTS for r in ROLES}
    assert {p.name for p in KEY_DIR.glob("*.pem")} == wanted


def test_the_nine_shipped_keys_are_distinct() -> None:
    moduli = {
        root_key(p, DEFAULT_SEED, r).public_key().public_numbers().n
        for p in PRODUCTS
        for r in ROLES
    }
    assert len(moduli) == 9


def test_shipped_key_factors_are_primes_of_the_required_shape() -> None:
    numbers = root_key("Genoa", DEFAULT_SEED, "ark").private_numbers()
    for prime in (numbers.p, numbers.q):
        assert prime.bit_length() == 2048
        assert prime >> 2046 == 3  # top two bits set, so n has exactly 4096 bits
        assert _strong_probable_prime(prime)
        assert (prime - 1) % 65537 != 0
    assert abs(numbers.p - numbers.q) > 1 << (2048 - 100)


def test_default_keys_load_without_deriving(
    empty_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object) -> rsa.RSAPrivateKey:
        raise AssertionError("the default keys must come from the shipped files")

    monkeypatch.setattr(rsa_keys, "derive_root_key", refuse)
    for product in PRODUCTS:
        for role in ROLES:
            root_key(product, DEFAULT_SEED, role)
    assert not empty_cache.exists()  # nothing written to the cache either


def test_a_shipped_key_is_exactly_what_its_seed_derives() -> None:
    """Re-derive the Genoa ARK from the default seed (about 5 s unloaded)."""
    start = time.perf_counter()
    derived = derive_root_key("Genoa", DEFAULT_SEED, "ark")
    elapsed = time.perf_counter() - start
    assert key_pem(derived) == shipped_key_pem("Genoa", DEFAULT_SEED, "ark")
    print(f"derived an RSA-4096 key in {elapsed:.1f} s")


def test_other_seeds_derive_once_then_come_from_the_cache(
    empty_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stand_in = root_key("Milan", DEFAULT_SEED, "ask")  # shipped: a quick stand-in derivation
    calls: list[tuple[str, bytes, str]] = []

    def fake_derive(product: str, seed: bytes, role: str) -> rsa.RSAPrivateKey:
        calls.append((product, seed, role))
        return stand_in

    monkeypatch.setattr(rsa_keys, "derive_root_key", fake_derive)
    seed = b"another seed"
    assert root_key("Genoa", seed, "ark") is stand_in
    assert calls == [("Genoa", seed, "ark")]
    cached = empty_cache / key_file_name("Genoa", seed, "ark")
    assert cached.read_bytes() == key_pem(stand_in)
    assert cached.stat().st_mode & 0o077 == 0

    root_key.cache_clear()
    again = root_key("Genoa", seed, "ark")
    assert calls == [("Genoa", seed, "ark")]  # from the cache, not derived again
    assert key_pem(again) == key_pem(stand_in)


def test_a_corrupt_cache_entry_is_derived_again(
    empty_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stand_in = root_key("Milan", DEFAULT_SEED, "ask")
    monkeypatch.setattr(rsa_keys, "derive_root_key", lambda *args: stand_in)
    empty_cache.mkdir(parents=True)
    (empty_cache / key_file_name("Genoa", b"x", "ask")).write_bytes(b"not a key")
    assert root_key("Genoa", b"x", "ask") is stand_in
    assert (empty_cache / key_file_name("Genoa", b"x", "ask")).read_bytes() == key_pem(stand_in)


def test_key_names_depend_on_product_and_seed() -> None:
    names = {key_file_name(p, s, "ark") for p in PRODUCTS for s in (b"", b"a", DEFAULT_SEED)}
    assert len(names) == 9


def test_unknown_role_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown role"):
        derive_root_key("Genoa", DEFAULT_SEED, "vcek")


def test_prime_search_is_deterministic_and_finds_primes() -> None:
    first = rsa_keys._random_prime(rsa_keys._Drbg(b"k"), 512)
    again = rsa_keys._random_prime(rsa_keys._Drbg(b"k"), 512)
    other = rsa_keys._random_prime(rsa_keys._Drbg(b"l"), 512)
    assert first == again != other
    for prime in (first, other):
        assert prime.bit_length() == 512 and prime >> 510 == 3
        assert _strong_probable_prime(prime)


# --- reproducible RSASSA-PSS --------------------------------------------------------------------
def test_pss_signatures_verify_with_amds_parameters_and_repeat() -> None:
    key = root_key("Genoa", DEFAULT_SEED, "ask")
    signature = pss_sign(key, b"message")
    assert signature == pss_sign(key, b"message")
    assert signature != pss_sign(key, b"other message")
    assert len(signature) == 512
    key.public_key().verify(signature, b"message", PSS_PADDING, hashes.SHA384())
    # the salt really is 48 bytes: a verifier insisting on another length rejects it
    wrong = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=32)
    with pytest.raises(InvalidSignature):
        key.public_key().verify(signature, b"message", wrong, hashes.SHA384())
