"""Names, constants and AMD's X.509 extensions for the emulated key hierarchy
(attestation.md §6.1).  Every subject says plainly that it is an emulator test key."""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat import asn1
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.x509.oid import NameOID

from sp_emu.chip import EmulatedChip
from sp_emu.products import Product
from sp_emu.tcb import TcbVersion

DEFAULT_CSP = "sp-emu-csp"
"""The cloud provider the emulator's VLEKs are issued to (``EmulatedChip.vlek_seed``'s)."""

KDS_URL = "https://kds.sp-emu.invalid"
"""Where the certificates say their CRLs live.  ``.invalid`` never resolves (RFC 2606): run
``sp-emu kds serve`` and fetch ``/vcek/v1/{product}/crl`` from it instead."""

RSA_BITS = 4096
RSA_EXPONENT = 65537
PSS_SALT_LENGTH = 48
PSS_PADDING = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=PSS_SALT_LENGTH)
"""RSASSA-PSS as AMD's ARK/ASK/ASVK sign: SHA-384, MGF1 with SHA-384, 48-byte salt."""

NOT_BEFORE = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
NOT_AFTER = datetime.datetime(2049, 1, 1, tzinfo=datetime.UTC)
"""Every certificate's validity, fixed so that certificates are reproducible.  (AMD's roots
are valid 25 years and VCEKs 7; the emulator's leaves simply share the roots' window.)"""

EMULATOR_ORG = "sp-emu emulator (not Advanced Micro Devices)"
EMULATOR_OU = "sp-emu test key hierarchy - trust nothing it signs"


def _emulator_name(role: str) -> x509.Name:
    """A subject that cannot be mistaken for AMD's: ``role`` is AMD's common name for it."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"sp-emu EMULATOR TEST {role} (NOT AMD)"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, EMULATOR_ORG),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, EMULATOR_OU),
        ]
    )


# --- AMD's certificate extensions (attestation.md §6.1) -----------------------------------------
class KdsOid:
    """The X.509 extensions KDS puts in VCEK and VLEK certificates (arc 1.3.6.1.4.1.3704.1)."""

    STRUCT_VERSION = x509.ObjectIdentifier("1.3.6.1.4.1.3704.1.1")
    PRODUCT_NAME = x509.ObjectIdentifier("1.3.6.1.4.1.3704.1.2")
    BL_SPL = x509.ObjectIdentifier("1.3.6.1.4.1.3704.1.3.1")
    TEE_SPL = x509.ObjectIdentifier("1.3.6.1.4.1.3704.1.3.2")
    SNP_SPL = x509.ObjectIdentifier("1.3.6.1.4.1.3704.1.3.3")
    SPL_4 = x509.ObjectIdentifier("1.3.6.1.4.1.3704.1.3.4")
    SPL_5 = x509.ObjectIdentifier("1.3.6.1.4.1.3704.1.3.5")
    SPL_6 = x509.ObjectIdentifier("1.3.6.1.4.1.3704.1.3.6")
    SPL_7 = x509.ObjectIdentifier("1.3.6.1.4.1.3704.1.3.7")
    UCODE_SPL = x509.ObjectIdentifier("1.3.6.1.4.1.3704.1.3.8")
    FMC_SPL = x509.ObjectIdentifier("1.3.6.1.4.1.3704.1.3.9")
    HWID = x509.ObjectIdentifier("1.3.6.1.4.1.3704.1.4")
    CSP_ID = x509.ObjectIdentifier("1.3.6.1.4.1.3704.1.5")


STRUCT_VERSION = 0
"""structVersion of KDS-issued VCEK certificates (a KDS VCEK in go-sev-guest's test data)."""
TURIN_HWID_SIZE = 8


def kds_hwid(chip: EmulatedChip) -> bytes:
    """The chip's hwID as KDS knows it: the 64-byte CHIP_ID, or its 8 significant bytes on
    Turin (go-sev-guest ``kds.TurinHWIDSize``; third-party, unconfirmed by AMD documents)."""
    if chip.product.turin_tcb_layout:
        return chip.chip_id[:TURIN_HWID_SIZE]
    return chip.chip_id


def _int_ext(oid: x509.ObjectIdentifier, value: int) -> x509.Extension[x509.ExtensionType]:
    return x509.Extension(oid, False, x509.UnrecognizedExtension(oid, asn1.encode_der(value)))


def _ia5_ext(oid: x509.ObjectIdentifier, value: str) -> x509.Extension[x509.ExtensionType]:
    return x509.Extension(
        oid, False, x509.UnrecognizedExtension(oid, asn1.encode_der(asn1.IA5String(value)))
    )


def tcb_extensions(tcb: TcbVersion) -> list[x509.Extension[x509.ExtensionType]]:
    """The SPL extensions of ``tcb``, in the order KDS writes them.

    Milan/Genoa certificates carry blSPL, teeSPL, spl_4..spl_7 (the reserved TCB bytes 2-5,
    always 0 here), snpSPL and ucodeSPL.  Turin's carry fmcSPL too, and spl_5..spl_7 (bytes
    4-6) but no spl_4 (go-sev-guest ``kdsOidMapToExtensions``).
    """
    if tcb.turin_layout:
        spls = [
            (KdsOid.FMC_SPL, tcb.fmc),
            (KdsOid.BL_SPL, tcb.bootloader),
            (KdsOid.TEE_SPL, tcb.tee),
            (KdsOid.SNP_SPL, tcb.snp),
            (KdsOid.SPL_5, 0),
            (KdsOid.SPL_6, 0),
            (KdsOid.SPL_7, 0),
            (KdsOid.UCODE_SPL, tcb.microcode),
        ]
    else:
        spls = [
            (KdsOid.BL_SPL, tcb.bootloader),
            (KdsOid.TEE_SPL, tcb.tee),
            (KdsOid.SPL_4, 0),
            (KdsOid.SPL_5, 0),
            (KdsOid.SPL_6, 0),
            (KdsOid.SPL_7, 0),
            (KdsOid.SNP_SPL, tcb.snp),
            (KdsOid.UCODE_SPL, tcb.microcode),
        ]
    return [_int_ext(oid, value) for oid, value in spls]


def _check_tcb(product: Product, tcb: TcbVersion) -> None:
    if tcb.turin_layout != product.turin_tcb_layout:
        layout = "Turin" if product.turin_tcb_layout else "Milan/Genoa"
        raise ValueError(f"{product.name} TCBs have the {layout} layout")
    for name, svn in tcb.components().items():
        if not 0 <= svn <= 0xFF:
            raise ValueError(f"TCB component {name}={svn} does not fit in a byte")
