"""Fixtures for the ``sp-emu measure`` / ``launch`` / ``id-block`` tests.

sev-snp-measure (``sevsnpmeasure``) is the oracle: its Python API for the digests and its
command line where the printed form matters.  Product code never imports it.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sp_emu.cli.app import main
from sp_emu.images import SAMPLE_VARS_SIZE, build_sample_ovmf, build_sample_svsm

DEBIAN_OVMF_CANDIDATES = ("/usr/share/ovmf/OVMF.fd", "/usr/share/OVMF/OVMF.fd")


@dataclass
class CliRun:
    """What one in-process ``sp-emu`` run did."""

    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()


@pytest.fixture()
def sp_emu(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliRun]:
    """Run ``sp-emu ARGS`` in-process; returns exit code, stdout and stderr."""

    def run(*args: str | Path) -> CliRun:
        capsys.readouterr()
        out = io.StringIO()
        code = main([str(a) for a in args], out)
        err = capsys.readouterr().err
        return CliRun(code, out.getvalue(), err)

    return run


@pytest.fixture(scope="session")
def ssm() -> Any:
    """sev-snp-measure's ``guest`` module (the oracle's Python API)."""
    return pytest.importorskip("sevsnpmeasure.guest")


@pytest.fixture(scope="session")
def ssm_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run sev-snp-measure's command line (``sev-snp-measure ARGS``)."""
    pytest.importorskip("sevsnpmeasure")
    exe = shutil.which("sev-snp-measure")
    if exe is None:
        pytest.skip("sev-snp-measure's command is not on PATH")

    def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [exe, *map(str, args)], capture_output=True, text=True, check=False, cwd=cwd
        )

    return run


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The built-in sample OVMF and SVSM as files, plus an OVMF_VARS file of the sample size,
    and small kernel/initrd files."""
    d = tmp_path_factory.mktemp("images")
    files = {
        "ovmf": build_sample_ovmf(),
        "svsm": build_sample_svsm(),
        "vars": bytes(SAMPLE_VARS_SIZE),
        "kernel": b"MZ sample kernel " * 300,
        "initrd": bytes(range(256)) * 40,
        "empty": b"",
    }
    paths = {}
    for name, data in files.items():
        path = d / f"{name}.bin"
        path.write_bytes(data)
        paths[name] = path
    return paths


@pytest.fixture(scope="session")
def debian_ovmf() -> Path:
    for candidate in DEBIAN_OVMF_CANDIDATES:
        if Path(candidate).is_file():
            return Path(candidate)
    pytest.skip("Debian's OVMF is not installed (apt-get install ovmf)")


@dataclass(frozen=True)
class Keys:
    """PEM files: two P-384 keys (ID, author), a third P-384 key, and unusable keys."""

    id_key: Path
    author_key: Path
    other_key: Path
    p256_key: Path
    rsa_key: Path
    encrypted_key: Path
    not_a_key: Path


def _pem(key: Any, password: bytes | None = None) -> bytes:
    algo: serialization.KeySerializationEncryption = (
        serialization.NoEncryption()
        if password is None
        else serialization.BestAvailableEncryption(password)
    )
    data: bytes = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, algo
    )
    return data


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    d = tmp_path_factory.mktemp("keys")
    made = {
        "id_key": _pem(ec.generate_private_key(ec.SECP384R1())),
        "author_key": _pem(ec.generate_private_key(ec.SECP384R1())),
        "other_key": _pem(ec.generate_private_key(ec.SECP384R1())),
        "p256_key": _pem(ec.generate_private_key(ec.SECP256R1())),
        "rsa_key": _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        "encrypted_key": _pem(ec.generate_private_key(ec.SECP384R1()), b"secret"),
        "not_a_key": b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    }
    paths = {}
    for name, data in made.items():
        path = d / f"{name}.pem"
        path.write_bytes(data)
        paths[name] = path
    return Keys(**paths)


@pytest.fixture()
def in_tmp_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Run the test inside an empty directory (``--dump-vmsa`` writes to the cwd)."""
    monkeypatch.chdir(tmp_path)
    yield tmp_path
