"""The emulated KDS over HTTP on 127.0.0.1 (a port the OS picks), fetched with urllib, the
chain checked with ``cryptography`` alone.  Paths and parameters: attestation.md §6.2."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat import asn1
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from sp_emu.certs import DEFAULT_SEED, ChipCertificates
from sp_emu.chip import EmulatedChip
from sp_emu.kds import EmulatedKds, KdsServer, loopback_host
from sp_emu.products import GENOA, TURIN, Product
from sp_emu.tcb import TcbVersion

PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
"""Straight to 127.0.0.1 whatever the environment's proxy settings."""


@dataclass
class Reply:
    status: int
    content_type: str
    body: bytes


def get(url: str) -> Reply:
    try:
        with NO_PROXY.open(url, timeout=30) as response:
            return Reply(response.status, response.headers["Content-Type"], response.read())
    except urllib.error.HTTPError as err:
        with err:
            return Reply(err.code, err.headers["Content-Type"], err.read())


def serve(product: Product, chip_seed: bytes = DEFAULT_SEED) -> KdsServer:
    chip = EmulatedChip(product, chip_seed)
    return KdsServer(EmulatedKds(ChipCertificates(chip)), "127.0.0.1", 0)


@pytest.fixture(scope="module")
def genoa() -> Iterator[KdsServer]:
    with serve(GENOA) as server:
        yield server


@pytest.fixture(scope="module")
def turin() -> Iterator[KdsServer]:
    with serve(TURIN) as server:
        yield server


def verify(cert: x509.Certificate, issuer: x509.Certificate) -> None:
    key = issuer.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify(cert.signature, cert.tbs_certificate_bytes, PSS, hashes.SHA384())
    cert.verify_directly_issued_by(issuer)
    assert cert.signature_algorithm_oid == x509.SignatureAlgorithmOID.RSASSA_PSS


def ext_int(cert: x509.Certificate, oid: str) -> int:
    value = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(oid)).value
    assert isinstance(value, x509.UnrecognizedExtension)
    number: int = asn1.decode_der(int, value.value)
    return number


def genoa_vcek_url(server: KdsServer, hwid: bytes, query: str) -> str:
    return f"{server.url}/vcek/v1/Genoa/{hwid.hex()}?{query}"


TCB_QUERY = "blSPL=7&teeSPL=0&snpSPL=15&ucodeSPL=62"
"""Genoa's shipped TCB, typed by hand."""


# --- the happy path -----------------------------------------------------------------------------
def test_server_is_on_loopback(genoa: KdsServer) -> None:
    assert genoa.url.startswith("http://127.0.0.1:")
    assert genoa.port != 0


def test_vcek_and_chain_verify(genoa: KdsServer) -> None:
    chain = get(f"{genoa.url}/vcek/v1/Genoa/cert_chain")
    assert chain.status == 200 and chain.content_type == "application/x-pem-file"
    ask, ark = x509.load_pem_x509_certificates(chain.body)
    verify(ark, ark)
    verify(ask, ark)
    chip = EmulatedChip(GENOA, DEFAULT_SEED)
    reply = get(genoa_vcek_url(genoa, chip.chip_id, TCB_QUERY))
    assert reply.status == 200 and reply.content_type == "application/pkix-cert"
    vcek = x509.load_der_x509_certificate(reply.body)
    verify(vcek, ask)
    assert vcek.public_key() == chip.vcek_private_key(GENOA.tcb).public_key()
    hwid = vcek.extensions.get_extension_for_oid(x509.ObjectIdentifier("1.3.6.1.4.1.3704.1.4"))
    assert hwid.value.value == chip.chip_id  # type: ignore[attr-defined]
    arc = "1.3.6.1.4.1.3704.1.3"
    assert [ext_int(vcek, f"{arc}.{i}") for i in (1, 2, 3, 8)] == [7, 0, 15, 62]


def test_vcek_for_another_tcb(genoa: KdsServer) -> None:
    chip = EmulatedChip(GENOA, DEFAULT_SEED)
    reply = get(genoa_vcek_url(genoa, chip.chip_id, "blSPL=1&teeSPL=2&snpSPL=3&ucodeSPL=255"))
    assert reply.status == 200
    vcek = x509.load_der_x509_certificate(reply.body)
    tcb = TcbVersion(bootloader=1, tee=2, snp=3, microcode=255)
    assert vcek.public_key() == chip.vcek_private_key(tcb).public_key()
    assert ext_int(vcek, "1.3.6.1.4.1.3704.1.3.8") == 255


def test_query_order_and_hex_case_do_not_matter(genoa: KdsServer) -> None:
    chip = EmulatedChip(GENOA, DEFAULT_SEED)
    shuffled = "ucodeSPL=62&snpSPL=15&teeSPL=0&blSPL=7"
    url = f"{genoa.url}/vcek/v1/Genoa/{chip.chip_id.hex().upper()}?{shuffled}"
    assert get(url).body == get(genoa_vcek_url(genoa, chip.chip_id, TCB_QUERY)).body


def test_crl(genoa: KdsServer) -> None:
    reply = get(f"{genoa.url}/vcek/v1/Genoa/crl")
    assert reply.status == 200 and reply.content_type == "application/pkix-crl"
    crl = x509.load_der_x509_crl(reply.body)
    _, ark = x509.load_pem_x509_certificates(get(f"{genoa.url}/vcek/v1/Genoa/cert_chain").body)
    assert crl.issuer == ark.subject and len(crl) == 0
    ark_key = ark.public_key()
    assert isinstance(ark_key, rsa.RSAPublicKey)
    assert crl.is_signature_valid(ark_key)
    ark_key.verify(crl.signature, crl.tbs_certlist_bytes, PSS, hashes.SHA384())
    assert get(f"{genoa.url}/vlek/v1/Genoa/crl").body == reply.body


def test_vlek_chain_and_cert(genoa: KdsServer) -> None:
    reply = get(f"{genoa.url}/vlek/v1/Genoa/cert_chain")
    assert reply.status == 200
    asvk, ark = x509.load_pem_x509_certificates(reply.body)
    verify(ark, ark)
    verify(asvk, ark)
    assert "SEV-VLEK-Genoa" in asvk.subject.rfc4514_string()
    vlek = x509.load_der_x509_certificate(get(f"{genoa.url}/vlek/v1/Genoa/cert?{TCB_QUERY}").body)
    verify(vlek, asvk)
    csp = vlek.extensions.get_extension_for_oid(x509.ObjectIdentifier("1.3.6.1.4.1.3704.1.5"))
    assert asn1.decode_der(asn1.IA5String, csp.value.value).as_str() == "sp-emu-csp"  # type: ignore[attr-defined]


def test_turin_uses_fmc_and_an_8_byte_hwid(turin: KdsServer) -> None:
    chip = EmulatedChip(TURIN, DEFAULT_SEED)
    query = "fmcSPL=1&blSPL=1&teeSPL=1&snpSPL=3&ucodeSPL=68"
    reply = get(f"{turin.url}/vcek/v1/Turin/{chip.chip_id[:8].hex()}?{query}")
    assert reply.status == 200
    vcek = x509.load_der_x509_certificate(reply.body)
    ask, _ = x509.load_pem_x509_certificates(get(f"{turin.url}/vcek/v1/Turin/cert_chain").body)
    verify(vcek, ask)
    assert vcek.public_key() == chip.vcek_private_key(TURIN.tcb).public_key()
    assert ext_int(vcek, "1.3.6.1.4.1.3704.1.3.9") == 1
    no_fmc = "blSPL=1&teeSPL=1&snpSPL=3&ucodeSPL=68"
    assert get(f"{turin.url}/vcek/v1/Turin/{chip.chip_id[:8].hex()}?{no_fmc}").status == 400
    assert get(f"{turin.url}/vcek/v1/Turin/{chip.chip_id.hex()}?{query}").status == 400


def test_vcek_path_helper_points_at_the_served_vcek(genoa: KdsServer) -> None:
    path = genoa.kds.vcek_path()
    assert path == f"/vcek/v1/Genoa/{EmulatedChip(GENOA, DEFAULT_SEED).chip_id.hex()}?{TCB_QUERY}"
    assert get(genoa.url + path).status == 200


# --- errors -------------------------------------------------------------------------------------
HWID = EmulatedChip(GENOA, DEFAULT_SEED).chip_id.hex()
ERRORS = [
    ("other chip", f"/vcek/v1/Genoa/{'ab' * 64}?{TCB_QUERY}", 404),
    ("other product", f"/vcek/v1/Milan/{HWID}?{TCB_QUERY}", 404),
    ("other product chain", "/vcek/v1/Turin/cert_chain", 404),
    ("unknown path", "/vcek/v2/Genoa/cert_chain", 404),
    ("unknown root", "/", 404),
    ("too deep", "/vcek/v1/Genoa/cert_chain/x", 404),
    ("vlek unknown endpoint", "/vlek/v1/Genoa/nothing", 404),
    ("hwid not hex", f"/vcek/v1/Genoa/{'zz' * 64}?{TCB_QUERY}", 400),
    ("hwid too short", f"/vcek/v1/Genoa/{HWID[:126]}?{TCB_QUERY}", 400),
    ("hwid odd length", f"/vcek/v1/Genoa/{HWID}0?{TCB_QUERY}", 400),
    ("missing ucodeSPL", f"/vcek/v1/Genoa/{HWID}?blSPL=7&teeSPL=0&snpSPL=15", 400),
    ("no query", f"/vcek/v1/Genoa/{HWID}", 400),
    ("unknown parameter", f"/vcek/v1/Genoa/{HWID}?{TCB_QUERY}&x=1", 400),
    ("fmcSPL on Genoa", f"/vcek/v1/Genoa/{HWID}?{TCB_QUERY}&fmcSPL=1", 400),
    ("repeated parameter", f"/vcek/v1/Genoa/{HWID}?{TCB_QUERY}&blSPL=7", 400),
    ("not a number", f"/vcek/v1/Genoa/{HWID}?blSPL=x&teeSPL=0&snpSPL=15&ucodeSPL=62", 400),
    ("negative", f"/vcek/v1/Genoa/{HWID}?blSPL=-1&teeSPL=0&snpSPL=15&ucodeSPL=62", 400),
    ("empty value", f"/vcek/v1/Genoa/{HWID}?blSPL=&teeSPL=0&snpSPL=15&ucodeSPL=62", 400),
    ("blSPL 128", f"/vcek/v1/Genoa/{HWID}?blSPL=128&teeSPL=0&snpSPL=15&ucodeSPL=62", 400),
    ("ucodeSPL 256", f"/vcek/v1/Genoa/{HWID}?blSPL=7&teeSPL=0&snpSPL=15&ucodeSPL=256", 400),
    ("vlek cert without TCB", "/vlek/v1/Genoa/cert", 400),
]


@pytest.mark.parametrize(("path", "status"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_errors_over_http(genoa: KdsServer, path: str, status: int) -> None:
    reply = get(genoa.url + path)
    assert reply.status == status
    assert reply.content_type.startswith("text/plain")


def test_only_get_is_answered(genoa: KdsServer) -> None:
    request = urllib.request.Request(f"{genoa.url}/vcek/v1/Genoa/cert_chain", method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        NO_PROXY.open(request, timeout=30)
    assert err.value.code == 501
    err.value.close()


# --- loopback only ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "host", ["0.0.0.0", "::", "10.0.0.1", "192.168.1.1", "8.8.8.8", "example.com", ""]
)
def test_non_loopback_hosts_are_refused(host: str) -> None:
    kds = EmulatedKds(ChipCertificates(EmulatedChip(GENOA, DEFAULT_SEED)))
    with pytest.raises(ValueError, match="loopback"):
        KdsServer(kds, host, 0)


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("localhost", "127.0.0.1"),
        ("127.0.0.1", "127.0.0.1"),
        ("127.1.2.3", "127.1.2.3"),
        ("::1", "::1"),
        ("[::1]", "::1"),
    ],
)
def test_loopback_hosts(host: str, address: str) -> None:
    assert loopback_host(host) == address


def test_ipv6_loopback_server() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    kds = EmulatedKds(ChipCertificates(EmulatedChip(GENOA, DEFAULT_SEED)))
    try:
        server = KdsServer(kds, "::1", 0)
    except OSError:
        pytest.skip("::1 is not configured")
    with server:
        assert server.url.startswith("http://[::1]:")
        assert get(f"{server.url}/vcek/v1/Genoa/cert_chain").status == 200


def test_close_releases_the_port() -> None:
    server = serve(GENOA)
    port = server.port
    with server:
        assert get(f"{server.url}/vcek/v1/Genoa/crl").status == 200
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
