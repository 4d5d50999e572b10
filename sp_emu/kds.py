"""A local stand-in for AMD's Key Distribution Service, serving the emulator's certificates.

Paths follow KDS (attestation.md §6.2), under ``http://127.0.0.1:PORT`` instead of
``https://kdsintf.amd.com``:

* ``GET /vcek/v1/{product}/{hwid}?blSPL=&teeSPL=&snpSPL=&ucodeSPL=``: the VCEK certificate,
  DER (Turin: also ``fmcSPL=``, and an 8-byte hwid);
* ``GET /vcek/v1/{product}/cert_chain``: ASK then ARK, PEM;
* ``GET /vcek/v1/{product}/crl`` and ``/vlek/v1/{product}/crl``: the CRL, DER;
* ``GET /vlek/v1/{product}/cert_chain``: ASVK then ARK, PEM;
* ``GET /vlek/v1/{product}/cert?blSPL=...``: the emulated provider's VLEK certificate, DER
  (AMD asks for the provider's credentials; the emulator does not).

A malformed request (bad hwid, missing, unknown, repeated or out-of-range SPL) is 400; a
well-formed one for another chip or product, or an unknown path, is 404.  The server binds
to loopback addresses only.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from sp_emu.certs import TURIN_HWID_SIZE, ChipCertificates, der
from sp_emu.tcb import TcbVersion

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PEM_TYPE = "application/x-pem-file"
CERT_TYPE = "application/pkix-cert"
CRL_TYPE = "application/pkix-crl"

LEGACY_PARAMS = {"blSPL": "bootloader", "teeSPL": "tee", "snpSPL": "snp", "ucodeSPL": "microcode"}
TURIN_PARAMS = {"fmcSPL": "fmc", **LEGACY_PARAMS}
"""Query parameter -> TcbVersion component, per TCB layout."""


@dataclass(frozen=True)
class KdsResponse:
    status: HTTPStatus
    content_type: str
    body: bytes


def _error(status: HTTPStatus, message: str) -> KdsResponse:
    return KdsResponse(status, "text/plain; charset=utf-8", (message + "\n").encode())


class EmulatedKds:
    """KDS's answers for one emulated chip (no HTTP here: :meth:`get` maps a request target
    such as ``/vcek/v1/Genoa/cert_chain`` to a response)."""

    def __init__(self, certs: ChipCertificates) -> None:
        self.certs = certs
        self.product = certs.product

    def vcek_path(self, tcb: TcbVersion | None = None) -> str:
        """The request target of this chip's VCEK at ``tcb`` (default: the product's TCB)."""
        tcb = self.product.tcb if tcb is None else tcb
        params = TURIN_PARAMS if self.product.turin_tcb_layout else LEGACY_PARAMS
        query = "&".join(f"{name}={getattr(tcb, field)}" for name, field in params.items())
        return f"/vcek/v1/{self.product.name}/{self.certs.hwid.hex()}?{query}"

    def get(self, target: str) -> KdsResponse:
        url = urlsplit(target)
        parts = url.path.split("/")
        # "", "vcek"|"vlek", "v1", product, endpoint
        if len(parts) != 5 or parts[0] or parts[1] not in ("vcek", "vlek") or parts[2] != "v1":
            return _error(HTTPStatus.NOT_FOUND, f"no such KDS resource: {url.path}")
        kind, product, endpoint = parts[1], parts[3], parts[4]
        if product != self.product.name:
            return _error(
                HTTPStatus.NOT_FOUND, f"this KDS serves {self.product.name} only, not {product!r}"
            )
        if endpoint == "cert_chain":
            chain = (
                self.certs.vlek_cert_chain_pem() if kind == "vlek" else self.certs.cert_chain_pem()
            )
            return KdsResponse(HTTPStatus.OK, PEM_TYPE, chain)
        if endpoint == "crl":
            return KdsResponse(HTTPStatus.OK, CRL_TYPE, self.certs.crl_der())
        if kind == "vlek":
            if endpoint != "cert":
                return _error(HTTPStatus.NOT_FOUND, f"no such KDS resource: {url.path}")
            tcb = self._tcb(url.query)
            if isinstance(tcb, KdsResponse):
                return tcb
            return KdsResponse(HTTPStatus.OK, CERT_TYPE, der(self.certs.vlek_cert(tcb)))
        return self._vcek(endpoint, url.query)

    def _vcek(self, hwid_hex: str, query: str) -> KdsResponse:
        size = TURIN_HWID_SIZE if self.product.turin_tcb_layout else 64
        try:
            hwid = bytes.fromhex(hwid_hex)
        except ValueError:
            return _error(HTTPStatus.BAD_REQUEST, "the hwid is not hexadecimal")
        if len(hwid) != size or len(hwid_hex) != 2 * size:
            return _error(HTTPStatus.BAD_REQUEST, f"a {self.product.name} hwid is {size} bytes")
        tcb = self._tcb(query)
        if isinstance(tcb, KdsResponse):
            return tcb
        if hwid != self.certs.hwid:
            return _error(HTTPStatus.NOT_FOUND, "unknown hwid (not the emulated chip)")
        return KdsResponse(HTTPStatus.OK, CERT_TYPE, der(self.certs.vcek_cert(tcb)))

    def _tcb(self, query: str) -> TcbVersion | KdsResponse:
        """The TCB a query names: every parameter of the product's layout exactly once, each a
        decimal 0-255 (0-127 except ucodeSPL, go-sev-guest / attestation.md §5)."""
        turin = self.product.turin_tcb_layout
        params = TURIN_PARAMS if turin else LEGACY_PARAMS
        try:
            values = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
        except ValueError:
            return _error(HTTPStatus.BAD_REQUEST, "malformed query")
        unknown = sorted(set(values) - set(params))
        if unknown:
            return _error(HTTPStatus.BAD_REQUEST, f"unexpected parameter {unknown[0]!r}")
        parts: dict[str, Any] = {}
        for name, field in params.items():
            given = values.get(name)
            if not given:
                return _error(HTTPStatus.BAD_REQUEST, f"missing parameter {name}")
            if len(given) > 1:
                return _error(HTTPStatus.BAD_REQUEST, f"parameter {name} given twice")
            text = given[0]
            limit = 255 if name == "ucodeSPL" else 127
            if not (text.isascii() and text.isdigit()) or int(text) > limit:
                return _error(HTTPStatus.BAD_REQUEST, f"{name} must be a number 0-{limit}")
            parts[field] = int(text)
        return TcbVersion(turin_layout=turin, **parts)


# --- HTTP ---------------------------------------------------------------------------------------
def loopback_host(host: str) -> str:
    """``host`` as an address to bind, if it is a loopback one ("localhost", 127.0.0.0/8,
    ::1); ValueError for anything else."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise ValueError(f"{host!r} is not an IP address; the KDS serves loopback only") from None
    if not address.is_loopback:
        raise ValueError(f"{host} is not a loopback address; the KDS serves loopback only")
    return str(address)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    kds: EmulatedKds
    log: Callable[[str], None] | None


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "sp-emu-kds/1"

    def do_GET(self) -> None:
        response = self.server.kds.get(self.path)
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.log is not None:
            self.server.log(f"{self.address_string()} {format % args}")


class KdsServer:
    """The emulated KDS over HTTP on a loopback address.

    ``port`` 0 picks a free port (see :attr:`url`).  Use as a context manager, or call
    :meth:`start` (a background thread) / :meth:`serve` (this thread) and :meth:`close`.
    """

    def __init__(
        self,
        kds: EmulatedKds,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        log: Callable[[str], None] | None = None,
    ) -> None:
        address = loopback_host(host)
        server_class = _Server6 if ":" in address else _Server
        self.httpd = server_class((address, port), _Handler)
        self.httpd.kds = kds
        self.httpd.log = log
        self.kds = kds
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` (the base every KDS path goes under)."""
        host = str(self.httpd.server_address[0])
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    def start(self) -> None:
        """Serve from a daemon thread."""
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def serve(self, timeout: float | None = None) -> None:
        """Serve from this thread until ``timeout`` seconds pass (None: until interrupted)."""
        if timeout is None:
            self.httpd.serve_forever(poll_interval=0.2)
            return
        timer = threading.Timer(timeout, self.httpd.shutdown)
        timer.daemon = True
        timer.start()
        try:
            self.httpd.serve_forever(poll_interval=0.05)
        finally:
            timer.cancel()

    def close(self) -> None:
        """Stop serving and release the socket."""
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join()
            self._thread = None
        self.httpd.server_close()

    def __enter__(self) -> KdsServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
