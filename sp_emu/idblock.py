"""The guest owner's ID block and ID authentication page for SNP_LAUNCH_FINISH.

An ID block (0x60 bytes) states the launch digest, family and image IDs, SVN and guest policy
the guest owner expects; the ID authentication page (0x1000 bytes) carries its ECDSA
P-384/SHA-384 signature by the owner's ID key, the ID key itself and, optionally, the ID key
signed by an author key (launch-measurement.md §8).  At LAUNCH_FINISH the firmware checks the
block against the guest context and the signatures, and the attestation report then carries
the family/image IDs, the SVN and the SHA-384 digests of the two public keys.

Keys are P-384 EC private keys in PEM; everything else raises :class:`IdBlockError`.  The
output of sev-snp-measure's ``snp-create-id-block`` is reproduced by
:meth:`SignedIdBlock.snp_create_id_block_text`.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sp_emu.abi.launch import ALGO_ECDSA_P384_SHA384, ID_AUTH, ID_BLOCK
from sp_emu.amd_keys import public_key_to_amd, sign_amd

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

__all__ = [
    "DEFAULT_ID_POLICY",
    "ID_AUTH_SIZE",
    "ID_BLOCK_SIZE",
    "ID_BLOCK_VERSION",
    "IdBlock",
    "IdBlockError",
    "SignedIdBlock",
    "build_id_auth",
    "key_digest",
    "load_signing_key",
    "sign_id_block",
]

ID_BLOCK_VERSION: Final = 1
"""The only ID block version (FW 1.55 does not check it; sev-snp-measure writes 1)."""
DEFAULT_ID_POLICY: Final = 0x30000
"""sev-snp-measure's ``DefaultPolicy``: SMT allowed, RSVD_MBO, ABI 0.0 (QEMU's default)."""
ID_BLOCK_SIZE: Final = ID_BLOCK.size
ID_AUTH_SIZE: Final = ID_AUTH.size
_U64: Final = (1 << 64) - 1


class IdBlockError(ValueError):
    """An ID block field out of range or a key that cannot sign one (one-line message)."""


@dataclass(frozen=True)
class IdBlock:
    """The fields of an ID block (launch-measurement.md §8.1)."""

    ld: bytes
    family_id: bytes = bytes(16)
    image_id: bytes = bytes(16)
    guest_svn: int = 0
    policy: int = DEFAULT_ID_POLICY
    version: int = ID_BLOCK_VERSION

    def __post_init__(self) -> None:
        for name, size in (("ld", 48), ("family_id", 16), ("image_id", 16)):
            value = getattr(self, name)
            if len(value) != size:
                raise IdBlockError(f"ID block {name} must be {size} bytes, got {len(value)}")
        if not 0 <= self.guest_svn <= 0xFFFF_FFFF:
            raise IdBlockError(f"guest SVN {self.guest_svn} is not a 32-bit value")
        if not 0 <= self.version <= 0xFFFF_FFFF:
            raise IdBlockError(f"ID block version {self.version} is not a 32-bit value")
        if not 0 <= self.policy <= _U64:
            raise IdBlockError(f"guest policy {self.policy:#x} is not a 64-bit value")

    def to_bytes(self) -> bytes:
        """The 0x60-byte ID block."""
        return ID_BLOCK.build(
            {
                "ld": bytes(self.ld),
                "family_id": bytes(self.family_id),
                "image_id": bytes(self.image_id),
                "version": self.version,
                "guest_svn": self.guest_svn,
                "policy": self.policy,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> IdBlock:
        """Decode a 0x60-byte ID block."""
        if len(data) != ID_BLOCK_SIZE:
            raise IdBlockError(f"an ID block is {ID_BLOCK_SIZE:#x} bytes, got {len(data):#x}")
        f = ID_BLOCK.parse(bytes(data))
        return cls(
            ld=bytes(f["ld"]),
            family_id=bytes(f["family_id"]),
            image_id=bytes(f["image_id"]),
            guest_svn=int(f["guest_svn"]),
            policy=int(f["policy"]),
            version=int(f["version"]),
        )


@dataclass(frozen=True)
class SignedIdBlock:
    """What LAUNCH_FINISH takes: the ID block and its authentication page, plus the digests
    the attestation report will show (``author_key_digest`` is ``None`` without an author
    key, and then AUTH_KEY_EN must be 0)."""

    id_block: bytes
    id_auth: bytes
    id_key_digest: bytes
    author_key_digest: bytes | None = None

    @property
    def auth_key_en(self) -> bool:
        """Whether LAUNCH_FINISH should be told to check the author key (AUTH_KEY_EN)."""
        return self.author_key_digest is not None

    def qemu_properties(self) -> str:
        """``id-block=<base64>,id-auth=<base64>`` for QEMU's ``sev-snp-guest`` object (add
        ``author-key-enabled=on`` when :attr:`auth_key_en`)."""
        block = base64.b64encode(self.id_block).decode()
        auth = base64.b64encode(self.id_auth).decode()
        return f"id-block={block},id-auth={auth}"

    def snp_create_id_block_text(self) -> str:
        """The text sev-snp-measure's ``snp-create-id-block`` prints (without the final
        newline): the QEMU properties, then the base64 ID-key and author-key digests."""
        lines = [
            self.qemu_properties(),
            f"id_key_hash: {base64.b64encode(self.id_key_digest).decode()}",
        ]
        if self.author_key_digest is not None:
            lines.append(f"author_key: {base64.b64encode(self.author_key_digest).decode()}")
        return "\n".join(lines)


def load_signing_key(pem: bytes, what: str = "key") -> ec.EllipticCurvePrivateKey:
    """A P-384 EC private key from PEM bytes (unencrypted).

    Raises :class:`IdBlockError` naming ``what`` for anything else: not PEM, encrypted, not
    an EC key, or an EC key on another curve.
    """
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError:
        raise IdBlockError(f"{what}: encrypted PEM keys are not supported") from None
    except ValueError:
        raise IdBlockError(f"{what}: not a PEM private key") from None
    except Exception as err:  # the backend rejects unsupported key types with its own errors
        raise IdBlockError(f"{what}: cannot load the key ({type(err).__name__})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        kind = type(key).__name__.removeprefix("_").replace("PrivateKey", "")
        raise IdBlockError(f"{what}: not an EC private key ({kind or 'unknown type'}); need P-384")
    if not isinstance(key.curve, ec.SECP384R1):
        raise IdBlockError(f"{what}: EC curve {key.curve.name} is not P-384 (secp384r1)")
    return key


def _public(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> bytes:
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    if not isinstance(public.curve, ec.SECP384R1):
        raise IdBlockError(f"EC curve {public.curve.name} is not P-384 (secp384r1)")
    return public_key_to_amd(public)


def key_digest(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> bytes:
    """SHA-384 of the 0x404-byte AMD encoding of the key's public half: the report's
    ID_KEY_DIGEST / AUTHOR_KEY_DIGEST."""
    return hashlib.sha384(_public(key)).digest()


def build_id_auth(
    id_block: bytes,
    id_key: ec.EllipticCurvePrivateKey,
    author_key: ec.EllipticCurvePrivateKey | None = None,
) -> bytes:
    """The 0x1000-byte ID authentication page for ``id_block`` (its exact bytes).

    The ID key signs the ID block; with an author key, the author key signs the 0x404-byte
    ID key field and AUTH_KEY_ALGO is 1.  Without one, the author fields stay zero.
    """
    if len(id_block) != ID_BLOCK_SIZE:
        raise IdBlockError(f"an ID block is {ID_BLOCK_SIZE:#x} bytes, got {len(id_block):#x}")
    id_public = _public(id_key)
    author_public = None if author_key is None else _public(author_key)
    fields: dict[str, object] = {
        "id_key_algo": ALGO_ECDSA_P384_SHA384,
        "id_block_sig": sign_amd(id_key, bytes(id_block)),
        "id_key": id_public,
    }
    if author_key is not None and author_public is not None:
        fields |= {
            "auth_key_algo": ALGO_ECDSA_P384_SHA384,
            "id_key_sig": sign_amd(author_key, id_public),
            "author_key": author_public,
        }
    return ID_AUTH.build(fields)


def sign_id_block(
    block: IdBlock,
    id_key: ec.EllipticCurvePrivateKey,
    author_key: ec.EllipticCurvePrivateKey | None = None,
) -> SignedIdBlock:
    """Build the ID block and its authentication page, signed with ``id_key`` (and the ID
    key endorsed by ``author_key`` if given)."""
    raw = block.to_bytes()
    return SignedIdBlock(
        id_block=raw,
        id_auth=build_id_auth(raw, id_key, author_key),
        id_key_digest=key_digest(id_key),
        author_key_digest=None if author_key is None else key_digest(author_key),
    )
