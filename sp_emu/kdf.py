"""The firmware's key-derivation function: NIST SP 800-108 in counter mode with HMAC-SHA-256.

Block i = HMAC(key, i ‖ label ‖ 0x00 ‖ context ‖ L), with i counting from 1 and L the output
length in bits, both as 32-bit **little-endian** integers (AFW ``nist_kdf.c``; attestation.md
§8.3).  ``cryptography``'s KBKDFHMAC encodes them big-endian, so it cannot be used.  The
firmware derives MSG_KEY_REQ keys ("gmsg-keyreq") and the VLEK wrapping key
("vlek-wrapping-key") with it.
"""

from __future__ import annotations

import hashlib
import hmac


def nist_kdf(key: bytes, label: bytes, context: bytes = b"", length: int = 32) -> bytes:
    """``length`` bytes derived from ``key`` for ``label`` and ``context``."""
    bits = (8 * length).to_bytes(4, "little")
    out = bytearray()
    i = 1
    while len(out) < length:
        out += hmac.new(
            key, i.to_bytes(4, "little") + label + b"\0" + context + bits, hashlib.sha256
        ).digest()
        i += 1
    return bytes(out[:length])


VLEK_WRAPPING_LABEL = b"vlek-wrapping-key"


def vlek_wrapping_key(vcek_seed: bytes) -> bytes:
    """The AES-256 key that wraps a VLEK for the chip whose VCEK seed (at the blob's TCB) is
    ``vcek_seed``: the KDF with label "vlek-wrapping-key" and no context."""
    return nist_kdf(vcek_seed, VLEK_WRAPPING_LABEL)
