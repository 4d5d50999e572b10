"""SHA-384 and SHAKE-256 for the emulator, without loading OpenSSL up front.

``import hashlib`` loads OpenSSL (``_hashlib``), about 3 ms: a twentieth of a whole
``sp-emu measure``.  CPython also ships its own implementations of these functions
(``_sha2`` from Python 3.12; ``_sha512`` and ``_sha3`` before), which load in
a tenth of that time and give the same digests.  They are faster than OpenSSL's for short
inputs (a 112-byte PAGE_INFO: 0.6 against 1.2 us) and slower for pages (a 4 KiB page:
8.7 against 5.6 us, measured on the CI machine), so:

* :func:`sha384` and :func:`shake_256` are the built-in ones (``hashlib``'s where an
  interpreter lacks them);
* :func:`bulk_sha384` is for page contents: the built-in one for the first
  :data:`BULK_SWITCH` calls of the process, OpenSSL's afterwards, when loading it has paid
  for itself (a launch of a few MiB never loads it; a launch of hundreds of MiB hashes at
  OpenSSL's speed).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Hasher = Callable[[bytes | bytearray | memoryview], Any]

if TYPE_CHECKING:  # the same signatures as hashlib's
    from hashlib import sha384, shake_256
else:
    try:  # Python 3.11 calls the module _sha512; 3.12 merged the SHA-2 family into _sha2
        from _sha512 import sha384
    except ImportError:
        try:
            from _sha2 import sha384
        except ImportError:  # an interpreter built without it
            from hashlib import sha384
    try:
        from _sha3 import shake_256
    except ImportError:
        from hashlib import shake_256

__all__ = ["BULK_SWITCH", "bulk_sha384", "openssl_sha384", "sha384", "shake_256"]

BULK_SWITCH = 1024
"""Page hashes done with the built-in SHA-384 before :func:`bulk_sha384` loads OpenSSL's
(4 MiB of pages: about the point where OpenSSL's faster hashing repays its loading)."""

_bulk_calls = 0
_openssl_sha384: Hasher | None = None


def bulk_sha384(data: bytes | bytearray | memoryview) -> bytes:
    """SHA-384 of one page (or any long input), by the implementation that is quicker
    over the whole process (see the module's description)."""
    global _bulk_calls, _openssl_sha384
    if _openssl_sha384 is not None:
        digest: bytes = _openssl_sha384(data).digest()
        return digest
    _bulk_calls += 1
    if _bulk_calls > BULK_SWITCH:
        _openssl_sha384 = openssl_sha384()
    digest = sha384(data).digest()
    return digest


def openssl_sha384() -> Hasher:
    """OpenSSL's SHA-384 (loading it), for code that hashes many pages at once on several
    threads: OpenSSL's releases the interpreter lock while it hashes."""
    import hashlib

    return hashlib.sha384
