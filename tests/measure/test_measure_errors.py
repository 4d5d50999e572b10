"""Bad input to ``measure``, ``launch`` and ``id-block``: exit status 2 and exactly one line
on standard error (never a traceback, never usage text)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sp_emu.images import (
    SAMPLE_OVMF_SECTIONS,
    SAMPLE_OVMF_SIZE,
    SAMPLE_RESET_EIP,
    build_ovmf_image,
    build_sample_ovmf,
)


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Malformed or unsuitable images."""
    body = hashlib.shake_256(b"test body").digest(SAMPLE_OVMF_SIZE)
    sample = build_sample_ovmf()
    made = {
        "random": hashlib.shake_256(b"random").digest(0x10000),
        "odd_size": b"\x00" * 1234,
        "tiny": b"\x00" * 16,
        "no_metadata": build_ovmf_image(body, reset_eip=SAMPLE_RESET_EIP),
        "no_reset_block": build_ovmf_image(body, sections=SAMPLE_OVMF_SECTIONS),
        "no_hashes_table": build_ovmf_image(
            body, sections=SAMPLE_OVMF_SECTIONS, reset_eip=SAMPLE_RESET_EIP
        ),
        "cut_tail": sample[:-0x1000],
        "bad_signature": sample.replace(b"ASEV", b"XSEV"),
        "sample": sample,
        "small": b"x" * 100,
    }
    d = tmp_path_factory.mktemp("bad")
    paths = {}
    for name, data in made.items():
        paths[name] = d / f"{name}.fd"
        paths[name].write_bytes(data)
    paths["dir"] = d
    paths["missing"] = d / "does-not-exist.fd"
    return paths


def _resolve(
    args: list[str], bad: dict[str, Path], images: dict[str, Path], keys: Any
) -> list[str]:
    out = []
    for a in args:
        if a.startswith("@bad:"):
            out.append(str(bad[a[5:]]))
        elif a.startswith("@img:"):
            out.append(str(images[a[5:]]))
        elif a.startswith("@key:"):
            out.append(str(getattr(keys, a[5:])))
        else:
            out.append(a)
    return out


MEASURE_ERRORS = [
    # (args, a substring of the one error line)
    (["--mode", "sev"], "not modelled"),
    (["--mode", "seves"], "not modelled"),
    (["--mode", "snp:bogus"], "choose one of"),
    (["--ovmf", "@bad:missing"], "no such file"),
    (["--ovmf", "@bad:dir"], "is a directory"),
    (["--ovmf", "@bad:random"], "not an OVMF image"),
    (["--ovmf", "@bad:odd_size"], "multiple of 4 KiB"),
    (["--ovmf", "@bad:cut_tail"], "not an OVMF image"),
    (["--ovmf", "@bad:bad_signature"], "SEV metadata signature"),
    (["--ovmf", "@bad:no_metadata"], "SEV metadata"),
    (["--ovmf", "@bad:no_reset_block"], "reset block"),
    (["--mode", "snp:ovmf-hash", "--ovmf", "@bad:random"], "not an OVMF image"),
    (["--ovmf", "@bad:no_hashes_table", "--kernel", "@img:kernel"], "hash table"),
    (["--kernel", "@bad:missing"], "--kernel"),
    (["--kernel", "@img:kernel", "--initrd", "@bad:missing"], "--initrd"),
    (["--initrd", "@img:initrd"], "--initrd needs --kernel"),
    (["--append", "quiet"], "--append needs --kernel"),
    (["--vcpus", "0"], "at least one vCPU"),
    (["--vcpus", "two"], "not an integer"),
    (["--vcpu-type", "EPYC-Foo"], "unknown vCPU type"),
    (["--vcpu-family", "25"], "--vcpu-model"),
    (["--vcpu-family", "25", "--vcpu-model", "1"], "--vcpu-stepping"),
    (["--vcpu-model", "1", "--vcpu-stepping", "1"], "need --vcpu-family"),
    (["--vcpu-family", "300", "--vcpu-model", "1", "--vcpu-stepping", "0"], "family"),
    (["--vcpu-family", "25", "--vcpu-model", "1", "--vcpu-stepping", "16"], "stepping"),
    (["--vcpu-sig", "0x100000000"], "32-bit"),
    (["--vmm-type", "kvm"], "unknown VMM type"),
    (["--vmm-type", "qemu"], "unknown VMM type"),
    (["--guest-features", "-1"], "64-bit"),
    (["--snp-ovmf-hash", "zz"], "not hex"),
    (["--snp-ovmf-hash", "00" * 47], "48 bytes"),
    (["--snp-ovmf-hash", "00" * 48], "not this image's"),
    (["--mode", "snp:ovmf-hash", "--snp-ovmf-hash", "00" * 48], "--mode snp"),
    (["--mode", "snp:ovmf-hash", "--kernel", "@img:kernel"], "OVMF image only"),
    (["--mode", "snp:ovmf-hash", "--dump-vmsa"], "no VMSA"),
    (["--svsm", "@img:svsm"], "snp:svsm"),
    (["--vars-size", "4096"], "snp:svsm"),
    (["--mode", "snp:svsm", "--vars-size", "4096"], "needs --svsm"),
    (["--mode", "snp:svsm", "--svsm", "@img:svsm"], "--vars-size or --vars-file"),
    (
        [
            "--mode",
            "snp:svsm",
            "--svsm",
            "@img:svsm",
            "--vars-size",
            "4096",
            "--vars-file",
            "@img:vars",
        ],
        "not allowed with",
    ),
    (["--mode", "snp:svsm", "--svsm", "@img:svsm", "--vars-file", "@bad:missing"], "no such"),
    (["--mode", "snp:svsm", "--svsm", "@img:svsm", "--vars-size", "100"], "4 KiB"),
    (["--mode", "snp:svsm", "--svsm", "@img:svsm", "--vars-file", "@bad:small"], "4 KiB"),
    (
        ["--mode", "snp:svsm", "--svsm", "@img:svsm", "--vars-size", "4096", "--vmm-type", "ec2"],
        "QEMU only",
    ),
    (
        [
            "--mode",
            "snp:svsm",
            "--svsm",
            "@img:svsm",
            "--vars-size",
            "4096",
            "--kernel",
            "@img:kernel",
        ],
        "no direct boot",
    ),
    (
        [
            "--mode",
            "snp:svsm",
            "--svsm",
            "@img:svsm",
            "--vars-size",
            "4096",
            "--guest-features",
            "0x21",
        ],
        "SEV_FEATURES 0x1",
    ),
    (
        [
            "--mode",
            "snp:svsm",
            "--svsm",
            "@img:svsm",
            "--vars-size",
            "4096",
            "--snp-ovmf-hash",
            "00" * 48,
        ],
        "--mode snp",
    ),
    (["--mode", "snp:svsm", "--svsm", "@bad:random", "--vars-size", "4096"], "not an OVMF"),
    (["--mode", "snp:svsm", "--svsm", "@bad:sample", "--vars-size", "4096"], "SVSM info"),
    (["--output-format", "xml"], "invalid choice"),
    (["--no-such-flag"], "unrecognized arguments"),
]


@pytest.mark.parametrize(
    ("args", "message"), MEASURE_ERRORS, ids=[" ".join(a) for a, _ in MEASURE_ERRORS]
)
def test_measure_bad_input(
    sp_emu: Any,
    bad: dict[str, Path],
    images: dict[str, Path],
    keys: Any,
    in_tmp_cwd: Path,
    args: list[str],
    message: str,
) -> None:
    run = sp_emu("measure", *_resolve(args, bad, images, keys))
    assert run.code == 2, run
    assert run.out == ""
    assert len(run.err_lines) == 1, run.err
    assert run.err.startswith("sp-emu: ") and message in run.err, run.err
    assert list(in_tmp_cwd.iterdir()) == []  # --dump-vmsa wrote nothing


def test_debian_ovmf_refuses_a_kernel(
    sp_emu: Any, debian_ovmf: Path, images: dict[str, Path]
) -> None:
    """Debian's OVMF has no hashes table or SNP_KERNEL_HASHES section (QEMU and
    sev-snp-measure refuse too)."""
    run = sp_emu("measure", "--ovmf", debian_ovmf, "--kernel", images["kernel"])
    assert run.code == 2 and len(run.err_lines) == 1 and "hash" in run.err


OTHER_ERRORS = [
    (["launch", "--mode", "snp:ovmf-hash"], "choose one of"),
    (["launch", "--mode", "sev"], "not modelled"),
    (["launch", "--ovmf", "@bad:random"], "not an OVMF image"),
    (["launch", "--id-block", "@img:kernel"], "go together"),
    (["launch", "--auth-key-en"], "needs --id-block"),
    (["launch", "--id-block", "@img:kernel", "--id-auth", "@img:kernel"], "need 0x60"),
    (["launch", "--host-data", "00"], "32 bytes"),
    (["launch", "--policy", "x"], "not an integer"),
    (["id-block", "--id-key", "@key:id_key"], "one of the arguments"),
    (["id-block", "--measurement", "00" * 48], "--id-key"),
    (
        ["id-block", "--measurement", "00" * 48, "--launch", "--id-key", "@key:id_key"],
        "not allowed with",
    ),
    (["id-block", "--measurement", "xyz", "--id-key", "@key:id_key"], "--measurement"),
    (["id-block", "--measurement", "00" * 40, "--id-key", "@key:id_key"], "--measurement"),
    (["id-block", "--measurement", "AAAA", "--id-key", "@key:id_key"], "48 bytes"),
    (["id-block", "--measurement", "00" * 48, "--id-key", "@bad:missing"], "no such file"),
    (["id-block", "--measurement", "00" * 48, "--id-key", "@key:rsa_key"], "not an EC"),
    (["id-block", "--measurement", "00" * 48, "--id-key", "@key:p256_key"], "P-384"),
    (["id-block", "--measurement", "00" * 48, "--id-key", "@key:encrypted_key"], "encrypted"),
    (["id-block", "--measurement", "00" * 48, "--id-key", "@key:not_a_key"], "not a PEM"),
    (["id-block", "--measurement", "00" * 48, "--id-key", "@img:kernel"], "not a PEM"),
    (
        [
            "id-block",
            "--measurement",
            "00" * 48,
            "--id-key",
            "@key:id_key",
            "--author-key",
            "@key:rsa_key",
        ],
        "--author-key",
    ),
    (
        ["id-block", "--measurement", "00" * 48, "--id-key", "@key:id_key", "--family-id", "0011"],
        "16 bytes",
    ),
    (
        ["id-block", "--measurement", "00" * 48, "--id-key", "@key:id_key", "--svn", "0x100000000"],
        "SVN",
    ),
    (
        ["id-block", "--measurement", "00" * 48, "--id-key", "@key:id_key", "--policy", "-1"],
        "64-bit",
    ),
    (
        ["id-block", "--measurement", "00" * 48, "--id-key", "@key:id_key", "--vcpus", "2"],
        "need --launch",
    ),
    (
        ["id-block", "--launch", "--id-key", "@key:id_key", "--ovmf", "@bad:random"],
        "not an OVMF image",
    ),
    (
        ["id-block", "--launch", "--id-key", "@key:id_key", "--mode", "snp:ovmf-hash"],
        "choose one of",
    ),
    (["nosuchcommand"], "invalid choice"),
    ([], "required"),
]


@pytest.mark.parametrize(
    ("args", "message"), OTHER_ERRORS, ids=[" ".join(a) for a, _ in OTHER_ERRORS]
)
def test_other_commands_bad_input(
    sp_emu: Any,
    bad: dict[str, Path],
    images: dict[str, Path],
    keys: Any,
    args: list[str],
    message: str,
) -> None:
    run = sp_emu(*_resolve(args, bad, images, keys))
    assert run.code == 2, run
    assert run.out == ""
    assert len(run.err_lines) == 1, run.err
    assert run.err.startswith("sp-emu: ") and message in run.err, run.err


def test_console_command_prints_no_traceback(bad: dict[str, Path]) -> None:
    """The real process: one line on stderr, status 2, for a bad image and a bad flag."""
    for args in (["--ovmf", str(bad["random"])], ["--mode", "sev"], ["--vcpus"]):
        proc = subprocess.run(
            [sys.executable, "-m", "sp_emu", "measure", *args],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 2, proc
        assert proc.stdout == ""
        assert "Traceback" not in proc.stderr
        assert len(proc.stderr.splitlines()) == 1, proc.stderr
