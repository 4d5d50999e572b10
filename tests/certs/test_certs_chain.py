"""The emulated ARK -> ASK -> VCEK and ARK -> ASVK -> VLEK chains, checked with
``cryptography`` alone against what attestation.md §6 / §6.1 says AMD's look like."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat import asn1
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from sp_emu.certs import (
    DEFAULT_CSP,
    DEFAULT_SEED,
    AmdRoots,
    ChipCertificates,
    der,
    verify_issued_by,
)
from sp_emu.chip import EmulatedChip
from sp_emu.products import GENOA, MILAN, PRODUCTS, TURIN, Product
from sp_emu.tcb import TcbVersion

ARC = "1.3.6.1.4.1.3704.1"
OID = {
    "structVersion": f"{ARC}.1",
    "productName1": f"{ARC}.2",
    "blSPL": f"{ARC}.3.1",
    "teeSPL": f"{ARC}.3.2",
    "snpSPL": f"{ARC}.3.3",
    "spl4": f"{ARC}.3.4",
    "spl5": f"{ARC}.3.5",
    "spl6": f"{ARC}.3.6",
    "spl7": f"{ARC}.3.7",
    "ucodeSPL": f"{ARC}.3.8",
    "fmcSPL": f"{ARC}.3.9",
    "hwID": f"{ARC}.4",
    "cspID": f"{ARC}.5",
}
"""Typed from attestation.md §6.1."""


def chip_certs(product: Product, seed: bytes = b"chip seed") -> ChipCertificates:
    return ChipCertificates(EmulatedChip(product, seed))


def check_pss_signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> None:
    """RSASSA-PSS, SHA-384, MGF1-SHA-384, salt 48, by ``issuer``'s RSA-4096 key."""
    assert cert.signature_algorithm_oid == x509.SignatureAlgorithmOID.RSASSA_PSS
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA384)
    key = issuer.public_key()
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 4096
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)
    key.verify(cert.signature, cert.tbs_certificate_bytes, pss, hashes.SHA384())
    cert.verify_directly_issued_by(issuer)


def amd_ext(cert: x509.Certificate, name: str) -> bytes:
    value = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(OID[name])).value
    assert isinstance(value, x509.UnrecognizedExtension)
    return value.value


def amd_int(cert: x509.Certificate, name: str) -> int:
    value: int = asn1.decode_der(int, amd_ext(cert, name))
    return value


def amd_ia5(cert: x509.Certificate, name: str) -> str:
    text: str = asn1.decode_der(asn1.IA5String, amd_ext(cert, name)).as_str()
    return text


def oids(cert: x509.Certificate) -> list[str]:
    return [ext.oid.dotted_string for ext in cert.extensions]


# --- the roots ----------------------------------------------------------------------------------
@pytest.mark.parametrize("product", PRODUCTS.values(), ids=list(PRODUCTS))
def test_chain_verifies_with_amds_signature_parameters(product: Product) -> None:
    c = chip_certs(product)
    check_pss_signed_by(c.ark_cert, c.ark_cert)
    check_pss_signed_by(c.ask_cert, c.ark_cert)
    check_pss_signed_by(c.asvk_cert, c.ark_cert)
    check_pss_signed_by(c.vcek_cert(), c.ask_cert)
    check_pss_signed_by(c.vlek_cert(), c.asvk_cert)


@pytest.mark.parametrize("product", PRODUCTS.values(), ids=list(PRODUCTS))
def test_root_certificates_have_amds_shape(product: Product) -> None:
    c = chip_certs(product)
    for cert in (c.ark_cert, c.ask_cert, c.asvk_cert):
        assert cert.version is x509.Version.v3
        assert cert.public_key().public_numbers().e == 65537  # type: ignore[union-attr]
    ark_bc = c.ark_cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert ark_bc.critical and ark_bc.value.ca and ark_bc.value.path_length is None
    ark_ku = c.ark_cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ark_ku.key_cert_sign and ark_ku.crl_sign and not ark_ku.digital_signature
    for cert in (c.ask_cert, c.asvk_cert):
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        assert bc.critical and bc.value.ca and bc.value.path_length == 0
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        assert ku.key_cert_sign and not ku.crl_sign
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        ski = c.ark_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        assert aki.key_identifier == ski.digest
        assert cert.issuer == c.ark_cert.subject
    crl_points = {
        name: cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        for name, cert in (("ark", c.ark_cert), ("ask", c.ask_cert), ("asvk", c.asvk_cert))
    }
    urls = {name: p[0].full_name[0].value for name, p in crl_points.items()}
    assert urls["ark"] == urls["ask"]
    assert urls["ark"].endswith(f"/vcek/v1/{product.name}/crl")
    assert urls["asvk"].endswith(f"/vlek/v1/{product.name}/crl")
    assert all(".invalid/" in url for url in urls.values())


@pytest.mark.parametrize("product", PRODUCTS.values(), ids=list(PRODUCTS))
def test_nothing_claims_to_be_amd(product: Product) -> None:
    c = chip_certs(product)
    certs = [c.ark_cert, c.ask_cert, c.asvk_cert, c.vcek_cert(), c.vlek_cert()]
    for cert in certs:
        for name in (cert.subject, cert.issuer):
            (cn,) = name.get_attributes_for_oid(NameOID.COMMON_NAME)
            assert "EMULATOR TEST" in str(cn.value) and "(NOT AMD)" in str(cn.value)
            (org,) = name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
            assert org.value != "Advanced Micro Devices"
            assert "not Advanced Micro Devices" in str(org.value)
            # AMD's location attributes, which verifiers check, are absent
            assert not name.get_attributes_for_oid(NameOID.LOCALITY_NAME)
    ark_cn = c.ark_cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert ark_cn == f"sp-emu EMULATOR TEST ARK-{product.name} (NOT AMD)"
    for cert in certs:
        for ext in cert.extensions:
            assert "amd.com" not in repr(ext.value)


def test_cert_chain_is_ask_then_ark() -> None:
    c = chip_certs(GENOA)
    ask, ark = x509.load_pem_x509_certificates(c.cert_chain_pem())
    assert (ask, ark) == (c.ask_cert, c.ark_cert)
    asvk, ark2 = x509.load_pem_x509_certificates(c.vlek_cert_chain_pem())
    assert (asvk, ark2) == (c.asvk_cert, c.ark_cert)


def test_crl_is_empty_and_signed_by_the_ark_with_pss() -> None:
    c = chip_certs(MILAN)
    crl = x509.load_der_x509_crl(c.crl_der())
    assert crl.issuer == c.ark_cert.subject
    assert len(crl) == 0
    assert crl.signature_algorithm_oid == x509.SignatureAlgorithmOID.RSASSA_PSS
    assert crl.is_signature_valid(c.ark_cert.public_key())  # type: ignore[arg-type]
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)
    c.ark_key.public_key().verify(crl.signature, crl.tbs_certlist_bytes, pss, hashes.SHA384())
    assert not crl.is_signature_valid(c.ask_cert.public_key())  # type: ignore[arg-type]


# --- VCEK ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("product", [MILAN, GENOA], ids=["Milan", "Genoa"])
def test_vcek_extensions_milan_genoa(product: Product) -> None:
    chip = EmulatedChip(product, b"chip seed")
    tcb = TcbVersion(bootloader=3, tee=1, snp=20, microcode=209)
    cert = ChipCertificates(chip).vcek_cert(tcb)
    assert amd_int(cert, "structVersion") == 0
    assert amd_ia5(cert, "productName1") == product.stepping_name
    assert [amd_int(cert, n) for n in ("blSPL", "teeSPL", "snpSPL", "ucodeSPL")] == [3, 1, 20, 209]
    assert [amd_int(cert, n) for n in ("spl4", "spl5", "spl6", "spl7")] == [0, 0, 0, 0]
    assert amd_ext(cert, "hwID") == chip.chip_id  # raw 64 bytes, no OCTET STRING tag
    assert len(amd_ext(cert, "hwID")) == 64
    assert OID["fmcSPL"] not in oids(cert) and OID["cspID"] not in oids(cert)
    # KDS VCEKs carry AMD's extensions and nothing else (go-sev-guest rejects any other)
    assert all(oid.startswith(ARC + ".") for oid in oids(cert))


def test_vcek_extensions_turin() -> None:
    chip = EmulatedChip(TURIN, b"chip seed")
    tcb = TcbVersion(fmc=2, bootloader=3, tee=4, snp=5, microcode=77, turin_layout=True)
    cert = ChipCertificates(chip).vcek_cert(tcb)
    assert amd_ia5(cert, "productName1") == TURIN.stepping_name
    names = ("fmcSPL", "blSPL", "teeSPL", "snpSPL", "ucodeSPL")
    assert [amd_int(cert, n) for n in names] == [2, 3, 4, 5, 77]
    assert OID["spl4"] not in oids(cert)
    assert amd_ext(cert, "hwID") == chip.chip_id[:8]  # Turin: the 8 significant bytes
    assert all(oid.startswith(ARC + ".") for oid in oids(cert))


@pytest.mark.parametrize("product", PRODUCTS.values(), ids=list(PRODUCTS))
def test_vcek_is_the_chips_key_for_that_tcb(product: Product) -> None:
    chip = EmulatedChip(product, b"chip seed")
    c = ChipCertificates(chip)
    cert = c.vcek_cert()
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert isinstance(public.curve, ec.SECP384R1)
    assert public == chip.vcek_private_key(product.tcb).public_key()
    lower = TcbVersion.from_int(
        product.tcb.to_int() - (1 << 8 * product.tcb.layout["snp"]),
        turin_layout=product.turin_tcb_layout,
    )
    other = c.vcek_cert(lower)
    assert other.public_key() == chip.vcek_private_key(lower).public_key()
    assert other.public_key() != public
    assert amd_int(other, "snpSPL") == product.tcb.snp - 1
    assert other.serial_number != cert.serial_number


def test_vcek_for_a_tcb_of_the_wrong_layout_is_refused() -> None:
    c = chip_certs(GENOA)
    with pytest.raises(ValueError, match="layout"):
        c.vcek_cert(TURIN.tcb)
    with pytest.raises(ValueError, match="layout"):
        chip_certs(TURIN).vcek_cert(GENOA.tcb)


def test_different_chips_get_different_vceks_under_the_same_roots() -> None:
    a, b = chip_certs(GENOA, b"chip a"), chip_certs(GENOA, b"chip b")
    assert a.ark_cert == b.ark_cert and a.ask_cert == b.ask_cert
    assert amd_ext(a.vcek_cert(), "hwID") != amd_ext(b.vcek_cert(), "hwID")
    assert a.vcek_cert().public_key() != b.vcek_cert().public_key()


# --- VLEK ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("product", PRODUCTS.values(), ids=list(PRODUCTS))
def test_vlek_extensions(product: Product) -> None:
    chip = EmulatedChip(product, b"chip seed")
    c = ChipCertificates(chip)
    cert = c.vlek_cert()
    assert amd_ia5(cert, "productName1") == product.name  # the product line only
    assert amd_ia5(cert, "cspID") == DEFAULT_CSP
    assert amd_int(cert, "snpSPL") == product.tcb.snp
    assert amd_int(cert, "ucodeSPL") == product.tcb.microcode
    assert OID["hwID"] not in oids(cert)
    assert all(oid.startswith(ARC + ".") for oid in oids(cert))
    seed = chip.vlek_seed(product.tcb, DEFAULT_CSP)
    assert cert.public_key() == chip.vlek_private_key(seed).public_key()
    custom = c.vlek_cert(vlek_seed=bytes(48), csp="other-csp")
    assert amd_ia5(custom, "cspID") == "other-csp"
    assert custom.public_key() == chip.vlek_private_key(bytes(48)).public_key()


# --- reproducibility ----------------------------------------------------------------------------
def test_same_seed_gives_byte_identical_certificates() -> None:
    fresh = AmdRoots(GENOA, DEFAULT_SEED)  # not the memoised instance
    c = chip_certs(GENOA)
    assert der(fresh.ark_cert) == der(c.ark_cert)
    assert der(fresh.ask_cert) == der(c.ask_cert)
    assert fresh.crl_der() == c.crl_der()
    again = chip_certs(GENOA)
    assert der(again.vcek_cert()) == der(c.vcek_cert())
    assert der(again.vlek_cert()) == der(c.vlek_cert())


def test_certificates_are_identical_across_processes() -> None:
    script = (
        "import hashlib\n"
        "from sp_emu.certs import ChipCertificates, der\n"
        "from sp_emu.chip import EmulatedChip\n"
        "from sp_emu.products import GENOA\n"
        "c = ChipCertificates(EmulatedChip(GENOA, b'chip seed'))\n"
        "blob = der(c.ark_cert) + der(c.ask_cert) + der(c.vcek_cert()) + c.crl_der()\n"
        "print(hashlib.sha256(blob).hexdigest())\n"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    c = chip_certs(GENOA)
    blob = der(c.ark_cert) + der(c.ask_cert) + der(c.vcek_cert()) + c.crl_der()
    assert result.stdout.strip() == hashlib.sha256(blob).hexdigest()


def test_fixed_validity_window() -> None:
    c = chip_certs(TURIN)
    for cert in (c.ark_cert, c.ask_cert, c.asvk_cert, c.vcek_cert(), c.vlek_cert()):
        assert cert.not_valid_before_utc.year == 2024
        assert cert.not_valid_after_utc.year == 2049


# --- the verification helper --------------------------------------------------------------------
def test_verify_issued_by_accepts_the_chain_and_rejects_swaps() -> None:
    c = chip_certs(GENOA)
    verify_issued_by(c.ark_cert, c.ark_cert)
    verify_issued_by(c.ask_cert, c.ark_cert)
    verify_issued_by(c.vcek_cert(), c.ask_cert)
    verify_issued_by(c.vlek_cert(), c.asvk_cert)
    with pytest.raises(InvalidSignature):
        verify_issued_by(c.vcek_cert(), c.asvk_cert)
    with pytest.raises(InvalidSignature):
        verify_issued_by(c.ask_cert, c.ask_cert)
    milan = chip_certs(MILAN)
    with pytest.raises(InvalidSignature):
        verify_issued_by(c.ask_cert, milan.ark_cert)


def test_snpguest_layout(tmp_path: Path) -> None:
    c = chip_certs(GENOA)
    written = c.write_snpguest_layout(tmp_path / "certs")
    assert sorted(p.name for p in written) == ["ark.pem", "ask.pem", "vcek.pem"]
    load = x509.load_pem_x509_certificate
    assert load((tmp_path / "certs" / "ark.pem").read_bytes()) == c.ark_cert
    assert load((tmp_path / "certs" / "ask.pem").read_bytes()) == c.ask_cert
    assert load((tmp_path / "certs" / "vcek.pem").read_bytes()) == c.vcek_cert()
    vlek = c.write_snpguest_layout(tmp_path / "vlek", vlek=True)
    assert sorted(p.name for p in vlek) == ["ark.pem", "asvk.pem", "vlek.pem"]
    assert load((tmp_path / "vlek" / "vlek.pem").read_bytes()) == c.vlek_cert()


def test_openssl_verifies_the_snpguest_layout(tmp_path: Path) -> None:
    """Interoperability: ``openssl verify`` accepts ark.pem -> ask.pem -> vcek.pem.  (Like
    AMD's own KDS VCEKs, the leaves carry no authority key identifier, so ``-x509_strict``
    would refuse both.)"""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl command")
    c = chip_certs(GENOA)
    c.write_snpguest_layout(tmp_path)
    c.write_snpguest_layout(tmp_path / "vlek", vlek=True)
    for leaf, intermediate in (("vcek.pem", "ask.pem"), ("vlek/vlek.pem", "vlek/asvk.pem")):
        result = subprocess.run(
            [openssl, "verify", "-CAfile", "ark.pem", "-untrusted", intermediate, leaf],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr
