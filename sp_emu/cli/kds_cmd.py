"""``sp-emu kds serve``: the emulated Key Distribution Service on a loopback port.

Wired into ``sp_emu.cli.app`` with ``register(subparsers)`` (``add_parser`` and ``run``).
"""

from __future__ import annotations

import argparse
import contextlib
import sys

from sp_emu.products import PRODUCTS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

DEFAULT_SEED_TEXT = "the default seed"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``kds`` (with its one subcommand, ``serve``) to the top-level subparsers."""
    kds: argparse.ArgumentParser = subparsers.add_parser(
        "kds",
        help="serve the emulator's certificates the way AMD's KDS does",
        description="An emulated AMD Key Distribution Service (loopback only).",
    )
    sub = kds.add_subparsers(dest="kds_command", required=True)
    serve = sub.add_parser(
        "serve",
        help="answer KDS requests over HTTP on a loopback address",
        description=(
            "Serve /vcek/v1/{product}/{hwid}?..., /vcek/v1/{product}/cert_chain, "
            "/vcek/v1/{product}/crl, /vlek/v1/{product}/cert_chain, /vlek/v1/{product}/crl and "
            "/vlek/v1/{product}/cert?... for one emulated chip.  The certificates chain to the "
            "emulator's TEST roots, never to AMD's."
        ),
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)"
    )
    serve.add_argument(
        "--port", type=int, default=0, help="port (default 0: any free port, printed at start)"
    )
    serve.add_argument(
        "--product", choices=sorted(PRODUCTS), default="Genoa", help="product line (default Genoa)"
    )
    serve.add_argument(
        "--seed",
        metavar="HEX",
        help=f"the chip's seed, as a platform's seed (default: {DEFAULT_SEED_TEXT})",
    )
    serve.add_argument(
        "--root-seed",
        metavar="HEX",
        help=(
            f"the seed of the ARK/ASK/ASVK hierarchy (default: {DEFAULT_SEED_TEXT}, whose keys "
            "ship with sp-emu; another seed derives RSA keys once, in some seconds, then caches "
            "them)"
        ),
    )
    serve.add_argument(
        "--timeout", type=float, metavar="SECONDS", help="stop after SECONDS (default: never)"
    )
    serve.add_argument("--quiet", action="store_true", help="do not log requests")
    return kds


def register(subparsers: Any) -> None:
    """Add ``kds`` to the top-level subparsers, run by :func:`run`."""
    add_parser(subparsers).set_defaults(func=run)


def _seed(text: str | None, what: str) -> bytes | None:
    if text is None:
        return None
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"{what} must be hexadecimal, got {text!r}") from None


def run(args: argparse.Namespace, out: TextIO) -> int:
    """Run ``sp-emu kds serve``; 0 when stopped (timeout or Ctrl-C), 2 on bad arguments."""
    from sp_emu.certs import DEFAULT_SEED, ChipCertificates
    from sp_emu.chip import EmulatedChip
    from sp_emu.kds import EmulatedKds, KdsServer, loopback_host

    try:
        loopback_host(args.host)
        chip_seed = _seed(args.seed, "--seed")
        root_seed = _seed(args.root_seed, "--root-seed")
        if not 0 <= args.port <= 0xFFFF:
            raise ValueError(f"--port {args.port} is not a port number")
    except ValueError as err:
        print(f"sp-emu: {err}", file=sys.stderr)
        return 2
    product = PRODUCTS[args.product]
    chip = EmulatedChip(product, DEFAULT_SEED if chip_seed is None else chip_seed)
    certs = ChipCertificates(chip, DEFAULT_SEED if root_seed is None else root_seed)
    if root_seed not in (None, DEFAULT_SEED):
        out.write("deriving the RSA keys of this root seed (cached after the first time)...\n")
        out.flush()
    kds = EmulatedKds(certs)
    kds.certs.cert_chain_pem()  # derive (or load) the roots before the first request

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        server = KdsServer(kds, args.host, args.port, log=None if args.quiet else log)
    except OSError as err:
        print(f"sp-emu: cannot listen on {args.host}:{args.port}: {err.strerror}", file=sys.stderr)
        return 2
    try:
        out.write(
            f"sp-emu KDS for {product.name} at {server.url}  "
            "(emulator TEST certificates, NOT AMD's)\n"
            f"  cert chain: {server.url}/vcek/v1/{product.name}/cert_chain\n"
            f"  VCEK:       {server.url}{kds.vcek_path()}\n"
        )
        out.flush()
        with contextlib.suppress(KeyboardInterrupt):
            server.serve(args.timeout)
    finally:
        server.close()
    return 0
