"""``sp-emu kds serve`` through its module's ``add_parser`` / ``run`` (the lead wires them into
``sp_emu.cli.app``)."""

from __future__ import annotations

import argparse
import io
import re
import threading
import time
import urllib.request

import pytest
from cryptography import x509

from sp_emu.chip import EmulatedChip
from sp_emu.cli import kds_cmd
from sp_emu.products import MILAN

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sp-emu")
    sub = parser.add_subparsers(dest="command", required=True)
    kds_cmd.add_parser(sub)
    return parser.parse_args(["kds", "serve", *argv])


class Output(io.StringIO):
    """StringIO another thread can poll."""

    def wait_for(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.getvalue())
            if match:
                return match
            time.sleep(0.02)
        raise AssertionError(f"{pattern!r} never printed; got {self.getvalue()!r}")


def test_defaults() -> None:
    args = parse()
    assert (args.command, args.kds_command) == ("kds", "serve")
    assert (args.host, args.port, args.product) == ("127.0.0.1", 0, "Genoa")
    assert args.seed is None and args.root_seed is None and args.timeout is None


def test_serve_answers_then_stops_at_the_timeout() -> None:
    args = parse("--product", "Milan", "--seed", "00ff", "--timeout", "2", "--quiet")
    out = Output()
    status: list[int] = []
    thread = threading.Thread(target=lambda: status.append(kds_cmd.run(args, out)))
    thread.start()
    try:
        base = out.wait_for(r"at (http://127\.0\.0\.1:\d+)").group(1)
        chain = NO_PROXY.open(f"{base}/vcek/v1/Milan/cert_chain", timeout=30).read()
        assert len(x509.load_pem_x509_certificates(chain)) == 2
        vcek_url = out.wait_for(r"VCEK: +(\S+)").group(1)
        hwid = EmulatedChip(MILAN, bytes.fromhex("00ff")).chip_id.hex()
        assert f"/vcek/v1/Milan/{hwid}?" in vcek_url
        vcek = NO_PROXY.open(vcek_url, timeout=30).read()
        x509.load_der_x509_certificate(vcek)
    finally:
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert status == [0]
    assert "NOT AMD" in out.getvalue()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--host", "0.0.0.0"], "loopback"),
        (["--host", "192.0.2.1"], "loopback"),
        (["--host", "kds.example"], "loopback"),
        (["--seed", "xyz"], "--seed must be hexadecimal"),
        (["--root-seed", "0"], "--root-seed must be hexadecimal"),
        (["--port", "70000"], "not a port"),
    ],
)
def test_bad_arguments_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = io.StringIO()
    assert kds_cmd.run(parse(*argv, "--timeout", "0.1"), out) == 2
    assert message in capsys.readouterr().err
    assert out.getvalue() == ""


def test_unknown_product_is_an_argparse_error() -> None:
    with pytest.raises(SystemExit):
        parse("--product", "Naples")
