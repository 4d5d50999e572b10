"""sp-emu launch --out / report show / report verify: the attestation flow from the command
line, and one clear line with exit status 2 for every bad input."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from sp_emu.cli.app import main


def cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(args), out), out.getvalue()


@pytest.fixture(scope="module")
def launched(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("launch")
    code, text = cli(
        "launch", "--vcpus", "2", "--report-data", "ab" * 64, "--out", str(out), "--json"
    )
    assert code == 0
    return out, json.loads(text)


def test_launch_writes_report_and_snpguest_certs(launched: tuple[Path, dict]) -> None:
    out, summary = launched
    assert (out / "report.bin").stat().st_size == 0x4A0
    assert sorted(p.name for p in (out / "certs").iterdir()) == ["ark.pem", "ask.pem", "vcek.pem"]
    report = summary["report"]
    assert report["verified"] and report["measurement_matches"]
    assert report["certificates_from_host"] == 3
    assert summary["guest_state"] == "RUNNING"


def test_report_measurement_equals_sp_emu_measure(launched: tuple[Path, dict]) -> None:
    out, summary = launched
    code, digest = cli("measure", "--vcpus", "2")
    assert code == 0
    code, text = cli("report", "show", str(out / "report.bin"), "--json")
    fields = json.loads(text)
    assert code == 0 and fields["measurement"] == digest.strip() == summary["digest"]
    assert fields["report_data"] == "ab" * 64


def test_verify_accepts_the_report(launched: tuple[Path, dict]) -> None:
    out, summary = launched
    code, text = cli(
        "report",
        "verify",
        str(out / "report.bin"),
        "--certs",
        str(out / "certs"),
        "--measurement",
        summary["digest"],
        "--report-data",
        "ab" * 64,
        "--json",
    )
    result = json.loads(text)
    assert code == 0 and result["ok"] and len(result["checks"]) == 9


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


def test_tampered_report_is_rejected(
    launched: tuple[Path, dict], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = launched
    data = bytearray((out / "report.bin").read_bytes())
    data[0x50] ^= 0xFF  # REPORT_DATA, inside the signed region
    (tmp_path / "r.bin").write_bytes(data)
    code, _ = cli("report", "verify", str(tmp_path / "r.bin"), "--certs", str(out / "certs"))
    assert code == 2
    assert "signature" in one_error_line(capsys)


def test_wrong_key_is_rejected(
    launched: tuple[Path, dict], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = launched
    other = tmp_path / "other"
    assert cli("launch", "--out", str(other), "--json")[0] == 0
    mixed = tmp_path / "mixed"
    shutil.copytree(out / "certs", mixed)
    # A VCEK of the same chip family but a different TCB/chip is not this report's signer.
    from cryptography import x509

    from sp_emu.certs import ChipCertificates, pem
    from sp_emu.platform import Platform, PlatformConfig

    stranger = ChipCertificates(Platform(PlatformConfig(seed=b"stranger")).fw.chip)
    (mixed / "vcek.pem").write_bytes(pem(stranger.vcek_cert()))
    assert isinstance(
        x509.load_pem_x509_certificate((mixed / "vcek.pem").read_bytes()), x509.Certificate
    )
    code, _ = cli("report", "verify", str(out / "report.bin"), "--certs", str(mixed))
    assert code == 2
    assert "verification failed" in one_error_line(capsys)


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda d: (d / "r.bin").write_bytes(b"\0" * 16), "not an attestation report"),
        (lambda d: (d / "r.bin").write_bytes(b"\x09" + b"\0" * 0x49F), "not an attestation report"),
    ],
)
def test_corrupt_report(
    make: object,
    fragment: str,
    launched: tuple[Path, dict],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out, _ = launched
    make(tmp_path)  # type: ignore[operator]
    for args in (
        ("report", "show", str(tmp_path / "r.bin")),
        ("report", "verify", str(tmp_path / "r.bin"), "--certs", str(out / "certs")),
    ):
        code, _ = cli(*args)
        assert code == 2
        assert fragment in one_error_line(capsys)


def test_wrong_pem(
    launched: tuple[Path, dict], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = launched
    bad = tmp_path / "certs"
    shutil.copytree(out / "certs", bad)
    (bad / "ask.pem").write_text(
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"
    )
    code, _ = cli("report", "verify", str(out / "report.bin"), "--certs", str(bad))
    assert code == 2 and "ask.pem: not a PEM or DER X.509 certificate" in one_error_line(capsys)
    (bad / "ask.pem").unlink()
    code, _ = cli("report", "verify", str(out / "report.bin"), "--certs", str(bad))
    assert code == 2 and "ask.pem" in one_error_line(capsys)
