"""The emulated chip's secrets: its CHIP_ID and the per-TCB VCEK, derived from a seed.

A real AMD-SP derives each VCEK inside the chip from a fused secret through a hash chain over
the TCB's security versions, so that a chip at TCB t can derive the VCEK of every TCB <= t but
none above.  The emulator keeps the same shape with its own secret (taken from the platform
seed): ``vcek_seed(tcb)`` = SHA-384 chain over the components, and the VCEK's private scalar
is drawn from that seed with HKDF.  The keys are reproducible and are never AMD's.
"""

from __future__ import annotations

from functools import lru_cache

from sp_emu.digests import sha384, shake_256
from sp_emu.products import Product
from sp_emu.tcb import TcbVersion

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

DEFAULT_SEED = b"sp-emu default seed"
"""The seed a platform (and the emulated AMD key hierarchy) uses when none is given."""

_P384_ORDER = int(
    "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973",
    16,
)


def _scalar(seed: bytes, info: bytes) -> int:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    okm = HKDF(hashes.SHA384(), 64, salt=b"sp-emu scalar", info=info).derive(seed)
    return int.from_bytes(okm, "big") % (_P384_ORDER - 1) + 1


class EmulatedChip:
    """One emulated EPYC chip: identity and endorsement keys, reproducible from ``seed``."""

    def __init__(self, product: Product, seed: bytes) -> None:
        self.product = product
        self.seed = sha384(b"sp-emu chip" + product.name.encode() + seed).digest()
        chip_id = shake_256(b"chip-id" + self.seed).digest(64)
        if product.turin_tcb_layout:
            chip_id = chip_id[:8] + bytes(56)  # Turin: only the first 8 bytes are significant
        self.chip_id = chip_id
        self._secret = sha384(b"chip-secret" + self.seed).digest()

    def vcek_seed(self, tcb: TcbVersion) -> bytes:
        """The 48-byte secret of the VCEK for ``tcb`` (the firmware's "VCEK hash")."""
        h = self._secret
        for name, svn in sorted(tcb.components().items()):
            h = sha384(h + name.encode() + bytes([svn])).digest()
        return h

    def vcek_private_key(self, tcb: TcbVersion) -> ec.EllipticCurvePrivateKey:
        """The ECDSA P-384 VCEK that signs reports carrying REPORTED_TCB ``tcb``."""
        return _vcek_key(self.vcek_seed(tcb))

    def vlek_seed(self, tcb: TcbVersion, csp: str = "sp-emu-csp") -> bytes:
        """The secret of a VLEK a cloud provider would have AMD issue for ``tcb``."""
        return sha384(
            b"vlek" + csp.encode() + self.seed + tcb.to_int().to_bytes(8, "little")
        ).digest()

    def vlek_private_key(self, vlek_seed: bytes) -> ec.EllipticCurvePrivateKey:
        """The ECDSA P-384 VLEK whose secret is ``vlek_seed``."""
        return _vcek_key(b"vlek" + vlek_seed)


@lru_cache(maxsize=64)
def _vcek_key(seed: bytes) -> ec.EllipticCurvePrivateKey:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.derive_private_key(_scalar(seed, b"sp-emu vcek"), ec.SECP384R1())
