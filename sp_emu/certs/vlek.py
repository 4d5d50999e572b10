"""AMD's side of the VLEK hand-over (attestation.md §8.3): the blob a cloud provider receives
for SNP_VLEK_LOAD, wrapped under a key derived from the chip's VCEK seed."""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sp_emu.abi.vlek import (
    VLEK_HASHSTICK,
    VLEK_SEED_SIZE,
    WRAPPED_VLEK,
)
from sp_emu.certs.names import _check_tcb
from sp_emu.chip import EmulatedChip
from sp_emu.kdf import vlek_wrapping_key
from sp_emu.tcb import TcbVersion


# --- the VLEK hand-over (attestation.md §8.3) ----------------------------------------------------
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
