"""The wrapped VLEK that SNP_VLEK_LOAD reads from memory (firmware-commands.md §6
SNP_VLEK_LOAD; attestation.md §8.3).

A cloud provider gets this 0x1B0-byte blob from AMD and hands it to the firmware, which
unwraps it with AES-256-GCM under a key only the chip can derive (from its VCEK seed for
TCB_VERSION).  The 16 bytes at 0x190 (TCB_VERSION and the reserved word after it) are the
additional authenticated data; the reserved word at 0x00C is covered by nothing.
"""

from __future__ import annotations

from binlayout import BufferLayout, blob, u64

WRAPPED_VLEK_SIZE = 0x1B0
WRAPPED_VLEK_VERSION = 0
"""The only VLEK_WRAPPED_VERSION the firmware accepts."""
VLEK_HASHSTICK_SIZE = 0x180

WRAPPED_VLEK = BufferLayout(
    "VLEK_WRAPPED",
    WRAPPED_VLEK_SIZE,
    (
        blob(0x000, 12, "iv"),
        blob(0x010, VLEK_HASHSTICK_SIZE, "wrapped"),
        u64(0x190, "tcb_version"),
        blob(0x1A0, 16, "auth_tag"),
    ),
)
"""IV[12], reserved[4], WRAPPED[0x180], TCB_VERSION u64, reserved[8], AUTH_TAG[16]."""

WRAPPED_VLEK_AAD = slice(0x190, 0x1A0)
"""The bytes of the blob that are authenticated but not encrypted: TCB_VERSION ‖ reserved."""

VLEK_SEED_SIZE = 48
VLEK_HASHSTICK = BufferLayout(
    "VLEK hashstick (sp-emu format)",
    VLEK_HASHSTICK_SIZE,
    (blob(0x00, VLEK_SEED_SIZE, "vlek_seed"),),
)
"""The decrypted 0x180 bytes.  AMD's own format is not public; the emulator's puts the 48-byte
VLEK seed first (what ``EmulatedChip.vlek_private_key`` takes) and zeros after it.  The
firmware uses the seed and nothing else: the rest is authenticated by the wrapping, and is
not checked."""
