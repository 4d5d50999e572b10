"""An emulated AMD key hierarchy and its certificates: ARK -> ASK -> VCEK, ARK -> ASVK -> VLEK.

AMD keeps one root (ARK) per product line, an intermediate for VCEKs (ASK) and one for
VLEKs (ASVK), all RSA-4096 signing with RSASSA-PSS (SHA-384, MGF1-SHA-384, 48-byte salt);
the Key Distribution Service issues an X.509 certificate for each chip's VCEK at each TCB,
carrying AMD's extensions under 1.3.6.1.4.1.3704.1 (attestation.md §6, §6.1).  This module
builds the same shapes from the emulator's own keys:

* the RSA keys are derived from ``(product, seed)`` through a deterministic DRBG (so a seed
  always gives the same hierarchy), cached as PEM under ``$XDG_CACHE_HOME/sp-emu/keys``, and
  shipped in ``sp_emu/data/keys/`` for :data:`DEFAULT_SEED` so that the default is instant;
* the VCEK/VLEK keys come from :class:`~sp_emu.chip.EmulatedChip`;
* every certificate and CRL is made by ``cryptography``'s builders with fixed dates and
  serial numbers.  PSS signatures are randomised (the salt), so after building, the 512-byte
  signature value -- the last field of the DER -- is replaced by a PSS signature over the same
  TBS bytes whose salt is derived from the key and the message; it is verified before use.
  The same seed therefore gives byte-identical certificates.

**These are test keys.**  Every subject says so ("sp-emu EMULATOR TEST ... (NOT AMD)"), and
nothing chains to AMD's real roots: a verifier that trusts AMD will reject all of it.

The module also holds AMD's side of the VLEK hand-over (:func:`wrap_vlek`): the blob a cloud
provider receives for SNP_VLEK_LOAD, wrapped under a key derived from the chip's VCEK seed.
"""

from __future__ import annotations

from sp_emu.certs.hierarchy import AmdRoots, ChipCertificates, amd_roots, verify_issued_by
from sp_emu.certs.names import (
    DEFAULT_CSP,
    EMULATOR_ORG,
    EMULATOR_OU,
    KDS_URL,
    NOT_AFTER,
    NOT_BEFORE,
    PSS_PADDING,
    PSS_SALT_LENGTH,
    RSA_BITS,
    RSA_EXPONENT,
    STRUCT_VERSION,
    TURIN_HWID_SIZE,
    KdsOid,
    kds_hwid,
    tcb_extensions,
)
from sp_emu.certs.pss import der, kds_path, pem, pss_sign
from sp_emu.certs.rsa_keys import (
    MILLER_RABIN_ROUNDS,
    ROLES,
    cache_dir,
    derive_root_key,
    export_root_keys,
    key_file_name,
    key_id,
    key_pem,
    root_key,
    shipped_key_pem,
)
from sp_emu.certs.vlek import wrap_vlek
from sp_emu.chip import DEFAULT_SEED
from sp_emu.kdf import VLEK_WRAPPING_LABEL, vlek_wrapping_key

__all__ = [
    "DEFAULT_CSP",
    "DEFAULT_SEED",
    "EMULATOR_ORG",
    "EMULATOR_OU",
    "KDS_URL",
    "MILLER_RABIN_ROUNDS",
    "NOT_AFTER",
    "NOT_BEFORE",
    "PSS_PADDING",
    "PSS_SALT_LENGTH",
    "ROLES",
    "RSA_BITS",
    "RSA_EXPONENT",
    "STRUCT_VERSION",
    "TURIN_HWID_SIZE",
    "VLEK_WRAPPING_LABEL",
    "AmdRoots",
    "ChipCertificates",
    "KdsOid",
    "amd_roots",
    "cache_dir",
    "der",
    "derive_root_key",
    "export_root_keys",
    "kds_hwid",
    "kds_path",
    "key_file_name",
    "key_id",
    "key_pem",
    "pem",
    "pss_sign",
    "root_key",
    "shipped_key_pem",
    "tcb_extensions",
    "verify_issued_by",
    "vlek_wrapping_key",
    "wrap_vlek",
]
