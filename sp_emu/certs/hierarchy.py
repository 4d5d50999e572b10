"""The certificates: a product's ARK -> ASK and ARK -> ASVK roots, and one chip's VCEK and VLEK
certificates, built with ``cryptography``'s X.509 builders."""

from __future__ import annotations

import os
from functools import cached_property, lru_cache
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from sp_emu.certs.names import (
    DEFAULT_CSP,
    KDS_URL,
    NOT_AFTER,
    NOT_BEFORE,
    PSS_PADDING,
    PSS_SALT_LENGTH,
    STRUCT_VERSION,
    KdsOid,
    _check_tcb,
    _emulator_name,
    _ia5_ext,
    _int_ext,
    kds_hwid,
    tcb_extensions,
)
from sp_emu.certs.pss import (
    _builder,
    _ca_key_usage,
    _crl_point,
    _resign,
    _serial,
    _sign_certificate,
    kds_path,
    pem,
)
from sp_emu.certs.rsa_keys import root_key
from sp_emu.chip import DEFAULT_SEED, EmulatedChip
from sp_emu.products import PRODUCTS, Product
from sp_emu.tcb import TcbVersion


# --- the product's roots ------------------------------------------------------------------------
class AmdRoots:
    """One product line's ARK, ASK and ASVK (keys and certificates) and its CRL."""

    def __init__(self, product: Product, seed: bytes = DEFAULT_SEED) -> None:
        self.product = product
        self.seed = bytes(seed)

    def _key(self, role: str) -> rsa.RSAPrivateKey:
        return root_key(self.product.name, self.seed, role)

    @property
    def ark_key(self) -> rsa.RSAPrivateKey:
        return self._key("ark")

    @property
    def ask_key(self) -> rsa.RSAPrivateKey:
        return self._key("ask")

    @property
    def asvk_key(self) -> rsa.RSAPrivateKey:
        return self._key("asvk")

    def _serial(self, role: str) -> int:
        return _serial(self.product.name.encode(), self.seed, role.encode())

    @cached_property
    def ark_cert(self) -> x509.Certificate:
        """The self-signed root: CA, key usage certSign + cRLSign (as AMD's ARK)."""
        name = _emulator_name(f"ARK-{self.product.name}")
        public = self.ark_key.public_key()
        builder = (
            _builder(name, name, public, self._serial("ark"))
            .add_extension(_ca_key_usage(crl_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_crl_point(self.crl_url()), critical=False)
        )
        return _sign_certificate(builder, self.ark_key)

    def _intermediate(self, role: str, common_name: str, crl_url: str) -> x509.Certificate:
        key = self._key(role)
        public = key.public_key()
        ark_ski = self.ark_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        builder = (
            _builder(_emulator_name(common_name), self.ark_cert.subject, public, self._serial(role))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ark_ski.value),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_ca_key_usage(crl_sign=False), critical=True)
            .add_extension(_crl_point(crl_url), critical=False)
        )
        return _sign_certificate(builder, self.ark_key)

    @cached_property
    def ask_cert(self) -> x509.Certificate:
        """The VCEK intermediate, signed by the ARK (CA, path length 0, certSign)."""
        return self._intermediate("ask", f"SEV-{self.product.name}", self.crl_url())

    @cached_property
    def asvk_cert(self) -> x509.Certificate:
        """The VLEK intermediate, signed by the ARK; its CRL is on the VLEK path."""
        return self._intermediate("asvk", f"SEV-VLEK-{self.product.name}", self.crl_url(vlek=True))

    def crl_url(self, *, vlek: bool = False) -> str:
        return f"{KDS_URL}{kds_path(self.product, vlek=vlek)}/crl"

    @cached_property
    def crl(self) -> x509.CertificateRevocationList:
        """An empty CRL signed by the ARK (nothing the emulator issues is revoked)."""
        ark_ski = self.ark_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.ark_cert.subject)
            .last_update(NOT_BEFORE)
            .next_update(NOT_AFTER)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ark_ski.value),
                critical=False,
            )
            .add_extension(x509.CRLNumber(1), critical=False)
        )
        crl = builder.sign(self.ark_key, hashes.SHA384(), rsa_padding=PSS_PADDING)
        encoded = crl.public_bytes(serialization.Encoding.DER)
        return x509.load_der_x509_crl(
            _resign(encoded, crl.signature, crl.tbs_certlist_bytes, self.ark_key)
        )

    def crl_der(self) -> bytes:
        return self.crl.public_bytes(serialization.Encoding.DER)

    def cert_chain_pem(self) -> bytes:
        """ASK then ARK, PEM: the body of KDS's ``/vcek/v1/{product}/cert_chain``."""
        return pem(self.ask_cert) + pem(self.ark_cert)

    def vlek_cert_chain_pem(self) -> bytes:
        """ASVK then ARK, PEM: the body of ``/vlek/v1/{product}/cert_chain``."""
        return pem(self.asvk_cert) + pem(self.ark_cert)


@lru_cache(maxsize=16)
def amd_roots(product_name: str, seed: bytes = DEFAULT_SEED) -> AmdRoots:
    """The (shared, memoised) roots of ``product_name`` for ``seed``."""
    product = PRODUCTS.get(product_name)
    if product is None:
        raise ValueError(f"unknown product {product_name!r} (known: {', '.join(PRODUCTS)})")
    return AmdRoots(product, seed)


# --- one chip's certificates -------------------------------------------------------------------
class ChipCertificates:
    """The certificates KDS would serve for one emulated chip: its VCEKs (one per TCB), the
    VLEKs issued for it, and the product's ARK/ASK/ASVK.

    ``seed`` chooses the AMD hierarchy (the roots), not the chip: AMD has one ARK per
    product line whatever the chip, and the default is the shipped, instant one.
    """

    def __init__(self, chip: EmulatedChip, seed: bytes = DEFAULT_SEED) -> None:
        self.chip = chip
        self.product = chip.product
        self.roots = amd_roots(chip.product.name, bytes(seed))
        self._vcek: dict[TcbVersion, x509.Certificate] = {}
        self._vlek: dict[tuple[TcbVersion, bytes, str], x509.Certificate] = {}

    # the roots, for convenience
    @property
    def ark_cert(self) -> x509.Certificate:
        return self.roots.ark_cert

    @property
    def ask_cert(self) -> x509.Certificate:
        return self.roots.ask_cert

    @property
    def asvk_cert(self) -> x509.Certificate:
        return self.roots.asvk_cert

    @property
    def ark_key(self) -> rsa.RSAPrivateKey:
        return self.roots.ark_key

    @property
    def ask_key(self) -> rsa.RSAPrivateKey:
        return self.roots.ask_key

    @property
    def asvk_key(self) -> rsa.RSAPrivateKey:
        return self.roots.asvk_key

    def cert_chain_pem(self) -> bytes:
        return self.roots.cert_chain_pem()

    def vlek_cert_chain_pem(self) -> bytes:
        return self.roots.vlek_cert_chain_pem()

    def crl_der(self) -> bytes:
        return self.roots.crl_der()

    @property
    def hwid(self) -> bytes:
        return kds_hwid(self.chip)

    def _leaf(
        self,
        role: str,
        public: ec.EllipticCurvePublicKey,
        issuer: x509.Certificate,
        issuer_key: rsa.RSAPrivateKey,
        serial: int,
        extensions: list[x509.Extension[x509.ExtensionType]],
    ) -> x509.Certificate:
        builder = _builder(_emulator_name(role), issuer.subject, public, serial)
        for ext in extensions:
            builder = builder.add_extension(ext.value, critical=ext.critical)
        return _sign_certificate(builder, issuer_key)

    def vcek_cert(self, tcb: TcbVersion | None = None) -> x509.Certificate:
        """The certificate of the VCEK for ``tcb`` (default: the product's shipped TCB), signed
        by the ASK, with structVersion, productName1 (stepping name), the SPLs and hwID (raw
        bytes, no OCTET STRING tag, as KDS writes it) -- and no other extension."""
        tcb = self.product.tcb if tcb is None else tcb
        cert = self._vcek.get(tcb)
        if cert is None:
            _check_tcb(self.product, tcb)
            extensions = [
                _int_ext(KdsOid.STRUCT_VERSION, STRUCT_VERSION),
                _ia5_ext(KdsOid.PRODUCT_NAME, self.product.stepping_name),
                *tcb_extensions(tcb),
                x509.Extension(
                    KdsOid.HWID, False, x509.UnrecognizedExtension(KdsOid.HWID, self.hwid)
                ),
            ]
            serial = _serial(b"vcek", self.chip.chip_id, tcb.to_int().to_bytes(8, "little"))
            cert = self._leaf(
                "SEV-VCEK",
                self.chip.vcek_private_key(tcb).public_key(),
                self.ask_cert,
                self.ask_key,
                serial,
                extensions,
            )
            self._vcek[tcb] = cert
        return cert

    def vlek_cert(
        self,
        tcb: TcbVersion | None = None,
        *,
        vlek_seed: bytes | None = None,
        csp: str = DEFAULT_CSP,
    ) -> x509.Certificate:
        """The certificate of a VLEK issued to ``csp`` for ``tcb``, signed by the ASVK:
        structVersion, productName1 (the product line only), the SPLs and cspID.  The key is
        ``chip.vlek_private_key(vlek_seed)``, by default the seed ``chip.vlek_seed(tcb, csp)``
        that :func:`wrap_vlek` would wrap."""
        tcb = self.product.tcb if tcb is None else tcb
        _check_tcb(self.product, tcb)
        seed = self.chip.vlek_seed(tcb, csp) if vlek_seed is None else bytes(vlek_seed)
        cache_key = (tcb, seed, csp)
        cert = self._vlek.get(cache_key)
        if cert is None:
            extensions = [
                _int_ext(KdsOid.STRUCT_VERSION, STRUCT_VERSION),
                _ia5_ext(KdsOid.PRODUCT_NAME, self.product.name),
                *tcb_extensions(tcb),
                _ia5_ext(KdsOid.CSP_ID, csp),
            ]
            serial = _serial(b"vlek", seed, csp.encode(), tcb.to_int().to_bytes(8, "little"))
            cert = self._leaf(
                "SEV-VLEK",
                self.chip.vlek_private_key(seed).public_key(),
                self.asvk_cert,
                self.asvk_key,
                serial,
                extensions,
            )
            self._vlek[cache_key] = cert
        return cert

    def write_snpguest_layout(
        self,
        directory: str | os.PathLike[str],
        tcb: TcbVersion | None = None,
        *,
        vlek: bool = False,
    ) -> list[Path]:
        """Write the certificates where snpguest looks for them: ``ark.pem``, ``ask.pem`` and
        ``vcek.pem`` (with ``vlek``: ``ark.pem``, ``asvk.pem`` and ``vlek.pem``)."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        if vlek:
            files = {
                "ark.pem": self.ark_cert,
                "asvk.pem": self.asvk_cert,
                "vlek.pem": self.vlek_cert(tcb),
            }
        else:
            files = {
                "ark.pem": self.ark_cert,
                "ask.pem": self.ask_cert,
                "vcek.pem": self.vcek_cert(tcb),
            }
        paths = []
        for name, cert in files.items():
            path = out / name
            path.write_bytes(pem(cert))
            paths.append(path)
        return paths


def verify_issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> None:
    """InvalidSignature unless ``issuer`` signed ``cert`` with AMD's RSASSA-PSS parameters
    (SHA-384, MGF1-SHA-384, salt 48) and ``cert``'s issuer name is ``issuer``'s subject."""
    params = cert.signature_algorithm_parameters
    if (
        not isinstance(params, padding.PSS)
        or not isinstance(cert.signature_hash_algorithm, hashes.SHA384)
        or params._salt_length != PSS_SALT_LENGTH
        or not isinstance(params._mgf, padding.MGF1)
        or not isinstance(params._mgf._algorithm, hashes.SHA384)
    ):
        raise InvalidSignature("not RSASSA-PSS with SHA-384, MGF1-SHA-384 and a 48-byte salt")
    if cert.issuer != issuer.subject:
        raise InvalidSignature("issuer name differs from the issuer's subject")
    public = issuer.public_key()
    if not isinstance(public, rsa.RSAPublicKey):
        raise InvalidSignature("the issuer key is not RSA")
    public.verify(cert.signature, cert.tbs_certificate_bytes, PSS_PADDING, hashes.SHA384())
