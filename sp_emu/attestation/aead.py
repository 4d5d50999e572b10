"""Wrapping guest messages with AES-256-GCM under a VMPCK (attestation.md §1.2).

Both ends do the same thing, so the firmware model and the guest driver share it:

* key: the 32-byte VMPCK named by the header's MSG_VMPCK;
* IV (12 bytes): MSG_SEQNO as 8 little-endian bytes, then 4 zero bytes;
* additional data: header bytes 0x30..0x5F (ALGO to the end of the header);
* the 16-byte tag goes to header bytes 0x00..0x0F; bytes 0x10..0x1F stay zero.

(AFW ``snp_mcmd_guest_request``, Linux ``drivers/virt/coco/sev-guest`` ``enc_payload`` /
``verify_and_dec_payload``.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sp_emu.abi.messages import (
    AAD_START,
    AEAD_ALGO_AES_256_GCM,
    AUTHTAG_LEN,
    HDR_SIZE,
    HDR_VERSION,
    MSG_HEADER,
    MSG_VERSION,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

VMPCK_LEN = 32


class MessageAuthError(ValueError):
    """The tag does not verify: wrong key, wrong sequence number, or altered bytes."""


def message_iv(seqno: int) -> bytes:
    """The AES-GCM IV of the message with MSG_SEQNO ``seqno``."""
    return seqno.to_bytes(8, "little") + bytes(4)


@dataclass(frozen=True)
class MessageHeader:
    """The header fields a sender chooses (the tag is computed)."""

    msg_type: int
    msg_size: int
    msg_seqno: int
    msg_vmpck: int
    msg_version: int = MSG_VERSION
    algo: int = AEAD_ALGO_AES_256_GCM
    hdr_version: int = HDR_VERSION
    hdr_size: int = HDR_SIZE

    def fields(self) -> dict[str, Any]:
        return {
            "msg_seqno": self.msg_seqno,
            "algo": self.algo,
            "hdr_version": self.hdr_version,
            "hdr_size": self.hdr_size,
            "msg_type": self.msg_type,
            "msg_version": self.msg_version,
            "msg_size": self.msg_size,
            "msg_vmpck": self.msg_vmpck,
        }

    @classmethod
    def from_fields(cls, f: Mapping[str, Any]) -> MessageHeader:
        return cls(
            msg_type=f["msg_type"],
            msg_size=f["msg_size"],
            msg_seqno=f["msg_seqno"],
            msg_vmpck=f["msg_vmpck"],
            msg_version=f["msg_version"],
            algo=f["algo"],
            hdr_version=f["hdr_version"],
            hdr_size=f["hdr_size"],
        )


def seal_message(key: bytes, header: MessageHeader, payload: bytes) -> bytes:
    """Header (with tag) followed by the encrypted ``payload``: ``0x60 + len(payload)`` bytes.

    ``header.msg_size`` is written as given, so a caller can make a header that lies about the
    payload length (tests do); the cipher always runs over ``payload``.
    """
    raw = bytearray(MSG_HEADER.build(header.fields()))
    sealed = AESGCM(key).encrypt(message_iv(header.msg_seqno), payload, bytes(raw[AAD_START:]))
    raw[:AUTHTAG_LEN] = sealed[-AUTHTAG_LEN:]
    return bytes(raw) + sealed[:-AUTHTAG_LEN]


def open_payload(key: bytes, header: bytes, ciphertext: bytes) -> bytes:
    """Decrypt and authenticate the payload that followed ``header`` (its 0x60 raw bytes).

    Raises MessageAuthError when the tag does not match.
    """
    iv = message_iv(MSG_HEADER.parse(header)["msg_seqno"])
    tag = header[:AUTHTAG_LEN]
    try:
        return AESGCM(key).decrypt(iv, ciphertext + tag, header[AAD_START:HDR_SIZE])
    except InvalidTag:
        raise MessageAuthError("the message does not authenticate under this key") from None


def parse_header(message: bytes) -> MessageHeader:
    """The header fields of a message (or of its first 0x60 bytes)."""
    return MessageHeader.from_fields(MSG_HEADER.parse(message[:HDR_SIZE]))
