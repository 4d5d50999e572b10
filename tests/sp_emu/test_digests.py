"""sp_emu.digests: the built-in hash functions give hashlib's (OpenSSL's) digests, and the
page hasher switches to OpenSSL after BULK_SWITCH pages without changing a digest."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sp_emu import digests


@given(st.binary(max_size=9000))
def test_builtin_functions_match_hashlib(data: bytes) -> None:
    assert digests.sha384(data).digest() == hashlib.sha384(data).digest()
    assert digests.shake_256(data).digest(77) == hashlib.shake_256(data).digest(77)


def test_bulk_hasher_switches_to_openssl_with_the_same_digests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(digests, "BULK_SWITCH", 3)
    monkeypatch.setattr(digests, "_bulk_calls", 0)
    monkeypatch.setattr(digests, "_openssl_sha384", None)
    pages = [bytes([i]) * 4096 for i in range(6)]
    got = []
    for page in pages:
        got.append(digests.bulk_sha384(page))
        if len(got) <= 3:
            assert digests._openssl_sha384 is None  # still the built-in implementation
    assert digests._openssl_sha384 is hashlib.sha384
    assert got == [hashlib.sha384(p).digest() for p in pages]
