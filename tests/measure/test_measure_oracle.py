"""``sp-emu measure`` against sev-snp-measure 0.0.13 as the oracle.

Our digest comes from launching the guest on the emulated firmware; sev-snp-measure's from its
own hash chain.  Every case here must print the same digest.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vmsa import VCPU_SIGNATURES, cpu_signature

SSM_TYPES = ("EPYC-v4", "EPYC-Milan", "EPYC-Genoa", "EPYC-Rome")


def oracle(
    ssm: Any,
    ovmf: Path,
    *,
    mode: str = "snp",
    vcpus: int = 1,
    sig: int = VCPU_SIGNATURES["EPYC-v4"],
    kernel: Path | None = None,
    initrd: Path | None = None,
    append: str | None = None,
    features: int = 0x1,
    ovmf_hash: str = "",
    vmm: str = "QEMU",
    svsm: Path | None = None,
    vars_size: int = 0,
) -> str:
    """sev-snp-measure's digest (hex) through its Python API."""
    from sevsnpmeasure.sev_mode import SevMode
    from sevsnpmeasure.vmm_types import VMMType

    if mode == "snp:ovmf-hash":
        return str(ssm.calc_snp_ovmf_hash(str(ovmf)).hex())
    ld = ssm.calc_launch_digest(
        SevMode.from_str(mode),
        vcpus,
        sig,
        str(ovmf),
        None if kernel is None else str(kernel),
        None if initrd is None else str(initrd),
        append,
        features,
        ovmf_hash,
        VMMType[vmm],
        False,
        None if svsm is None else str(svsm),
        vars_size,
    )
    return str(ld.hex())


def measured(sp_emu: Callable[..., Any], *args: Any) -> str:
    run = sp_emu("measure", *args)
    assert run.code == 0, run.err
    assert run.err == ""
    return str(run.out.strip())


# --- vCPUs and vCPU types ----------------------------------------------------------------


@pytest.mark.parametrize("vcpus", [1, 2, 4, 16])
@pytest.mark.parametrize("vcpu_type", SSM_TYPES)
def test_vcpus_and_types(
    sp_emu: Any, ssm: Any, images: dict[str, Path], vcpus: int, vcpu_type: str
) -> None:
    ours = measured(
        sp_emu,
        "--mode",
        "snp",
        "--vcpus",
        vcpus,
        "--vcpu-type",
        vcpu_type,
        "--ovmf",
        images["ovmf"],
    )
    assert ours == oracle(ssm, images["ovmf"], vcpus=vcpus, sig=VCPU_SIGNATURES[vcpu_type])


@pytest.mark.parametrize("sig", [0x00A10F11, 0x00B00F00, 0x00830F10])
def test_raw_vcpu_sig(sp_emu: Any, ssm: Any, images: dict[str, Path], sig: int) -> None:
    ours = measured(sp_emu, "--vcpus", "2", "--vcpu-sig", hex(sig), "--ovmf", images["ovmf"])
    assert ours == oracle(ssm, images["ovmf"], vcpus=2, sig=sig)


@pytest.mark.parametrize(("family", "model", "stepping"), [(25, 17, 1), (23, 49, 0), (26, 2, 3)])
def test_family_model_stepping(
    sp_emu: Any, ssm: Any, images: dict[str, Path], family: int, model: int, stepping: int
) -> None:
    ours = measured(
        sp_emu,
        "--vcpus",
        "3",
        "--vcpu-family",
        family,
        "--vcpu-model",
        model,
        "--vcpu-stepping",
        stepping,
        "--ovmf",
        images["ovmf"],
    )
    sig = cpu_signature(family, model, stepping)
    assert ours == oracle(ssm, images["ovmf"], vcpus=3, sig=sig)


def test_signature_precedence_is_sev_snp_measures(
    sp_emu: Any, ssm_cli: Any, images: dict[str, Path]
) -> None:
    """family/model/stepping beats --vcpu-sig, which beats --vcpu-type (its cli.py)."""
    common = ["--mode", "snp", "--vcpus", "2", "--ovmf", images["ovmf"]]
    cases = [
        ["--vcpu-type", "EPYC-Rome", "--vcpu-sig", "0xa10f11"],
        [
            "--vcpu-type",
            "EPYC-Rome",
            "--vcpu-sig",
            "0xa10f11",
            "--vcpu-family",
            "26",
            "--vcpu-model",
            "1",
            "--vcpu-stepping",
            "0",
        ],
        [
            "--vcpu-sig",
            "0xa10f11",
            "--vcpu-family",
            "25",
            "--vcpu-model",
            "1",
            "--vcpu-stepping",
            "1",
        ],
    ]
    for flags in cases:
        theirs = ssm_cli(*common, *flags)
        assert theirs.returncode == 0, theirs.stderr
        assert measured(sp_emu, *common, *flags) == theirs.stdout.strip()


# --- VMM types and guest features --------------------------------------------------------


@pytest.mark.parametrize("vmm", ["QEMU", "ec2", "gce"])
@pytest.mark.parametrize("features", [0x1, 0x21, 0x4001])
def test_vmm_types_and_guest_features(
    sp_emu: Any, ssm: Any, images: dict[str, Path], vmm: str, features: int
) -> None:
    ours = measured(
        sp_emu,
        "--vcpus",
        "4",
        "--vcpu-type",
        "EPYC-Milan",
        "--vmm-type",
        vmm,
        "--guest-features",
        hex(features),
        "--ovmf",
        images["ovmf"],
    )
    sig = VCPU_SIGNATURES["EPYC-Milan"]
    assert ours == oracle(ssm, images["ovmf"], vcpus=4, sig=sig, vmm=vmm, features=features)


@pytest.mark.parametrize("vmm", ["ec2", "gce"])
def test_cloud_vmm_without_vcpu_type(
    sp_emu: Any, ssm_cli: Any, images: dict[str, Path], vmm: str
) -> None:
    """sev-snp-measure needs no vCPU type for EC2/GCE (RDX is fixed there)."""
    args = ["--mode", "snp", "--vcpus", "2", "--vmm-type", vmm, "--ovmf", images["ovmf"]]
    theirs = ssm_cli(*args)
    assert theirs.returncode == 0, theirs.stderr
    assert measured(sp_emu, *args) == theirs.stdout.strip()


# --- direct kernel boot ------------------------------------------------------------------


KERNEL_CASES = [
    pytest.param(dict(kernel=True), id="kernel"),
    pytest.param(dict(kernel=True, initrd=True), id="kernel+initrd"),
    pytest.param(dict(kernel=True, append="console=ttyS0 root=/dev/vda"), id="kernel+append"),
    pytest.param(dict(kernel=True, initrd=True, append="quiet"), id="kernel+initrd+append"),
    pytest.param(dict(kernel=True, initrd="empty", append=""), id="empty-initrd+empty-append"),
    pytest.param(dict(append=""), id="empty-append-without-kernel"),
]


@pytest.mark.parametrize("vmm", ["QEMU", "ec2"])
@pytest.mark.parametrize("case", KERNEL_CASES)
def test_kernel_initrd_append(
    sp_emu: Any, ssm: Any, images: dict[str, Path], vmm: str, case: dict[str, Any]
) -> None:
    args: list[Any] = ["--vcpus", "2", "--vmm-type", vmm, "--ovmf", images["ovmf"]]
    kw: dict[str, Any] = {}
    if case.get("kernel"):
        args += ["--kernel", images["kernel"]]
        kw["kernel"] = images["kernel"]
    if case.get("initrd"):
        initrd = images["empty"] if case["initrd"] == "empty" else images["initrd"]
        args += ["--initrd", initrd]
        kw["initrd"] = initrd
    if "append" in case:
        args += ["--append", case["append"]]
        kw["append"] = case["append"]
    ours = measured(sp_emu, *args)
    assert ours == oracle(ssm, images["ovmf"], vcpus=2, vmm=vmm, **kw)


# --- snp:ovmf-hash and --snp-ovmf-hash ---------------------------------------------------


def test_ovmf_hash_mode(sp_emu: Any, ssm: Any, images: dict[str, Path]) -> None:
    ours = measured(sp_emu, "--mode", "snp:ovmf-hash", "--ovmf", images["ovmf"])
    assert ours == oracle(ssm, images["ovmf"], mode="snp:ovmf-hash")


def test_ovmf_hash_mode_prints_hex_whatever_the_format(
    sp_emu: Any, ssm_cli: Any, images: dict[str, Path]
) -> None:
    args = ["--mode", "snp:ovmf-hash", "--ovmf", images["ovmf"], "--output-format", "base64"]
    theirs = ssm_cli(*args)
    assert theirs.returncode == 0
    assert measured(sp_emu, *args) == theirs.stdout.strip()


@pytest.mark.parametrize("vmm", ["QEMU", "gce"])
def test_precomputed_ovmf_hash(sp_emu: Any, ssm: Any, images: dict[str, Path], vmm: str) -> None:
    ovmf_hash = oracle(ssm, images["ovmf"], mode="snp:ovmf-hash")
    ours = measured(
        sp_emu,
        "--vcpus",
        "2",
        "--vmm-type",
        vmm,
        "--snp-ovmf-hash",
        ovmf_hash,
        "--kernel",
        images["kernel"],
        "--ovmf",
        images["ovmf"],
    )
    theirs = oracle(
        ssm, images["ovmf"], vcpus=2, vmm=vmm, ovmf_hash=ovmf_hash, kernel=images["kernel"]
    )
    assert ours == theirs


# --- snp:svsm -------------------------------------------------------------------------------


@pytest.mark.parametrize("vcpus", [1, 4])
@pytest.mark.parametrize("vars_flag", ["--vars-size", "--vars-file"])
def test_svsm(sp_emu: Any, ssm: Any, images: dict[str, Path], vcpus: int, vars_flag: str) -> None:
    vars_size = images["vars"].stat().st_size
    vars_arg = vars_size if vars_flag == "--vars-size" else images["vars"]
    ours = measured(
        sp_emu,
        "--mode",
        "snp:svsm",
        "--vcpus",
        vcpus,
        "--vcpu-type",
        "EPYC-Genoa",
        "--ovmf",
        images["ovmf"],
        "--svsm",
        images["svsm"],
        vars_flag,
        vars_arg,
    )
    theirs = oracle(
        ssm,
        images["ovmf"],
        mode="snp:svsm",
        vcpus=vcpus,
        sig=VCPU_SIGNATURES["EPYC-Genoa"],
        svsm=images["svsm"],
        vars_size=vars_size,
    )
    assert ours == theirs


def test_svsm_with_other_vars_size(sp_emu: Any, ssm: Any, images: dict[str, Path]) -> None:
    ours = measured(
        sp_emu,
        "--mode",
        "snp:svsm",
        "--vcpus",
        "2",
        "--ovmf",
        images["ovmf"],
        "--svsm",
        images["svsm"],
        "--vars-size",
        "0x20000",
    )
    assert ours == oracle(
        ssm, images["ovmf"], mode="snp:svsm", vcpus=2, svsm=images["svsm"], vars_size=0x20000
    )


# --- Debian's OVMF (about 2 MiB: a few cases only) ----------------------------------------


def test_debian_default(sp_emu: Any, ssm: Any, debian_ovmf: Path) -> None:
    assert measured(sp_emu, "--ovmf", debian_ovmf) == oracle(ssm, debian_ovmf)


def test_debian_many_flags(sp_emu: Any, ssm: Any, debian_ovmf: Path) -> None:
    """(Debian's OVMF has no SNP_KERNEL_HASHES section, so no direct boot here.)"""
    ours = measured(
        sp_emu,
        "--vcpus",
        "16",
        "--vcpu-type",
        "EPYC-Genoa",
        "--vmm-type",
        "ec2",
        "--guest-features",
        "0x21",
        "--ovmf",
        debian_ovmf,
    )
    theirs = oracle(
        ssm, debian_ovmf, vcpus=16, sig=VCPU_SIGNATURES["EPYC-Genoa"], vmm="ec2", features=0x21
    )
    assert ours == theirs


def test_debian_ovmf_hash_and_svsm(
    sp_emu: Any, ssm: Any, debian_ovmf: Path, images: dict[str, Path]
) -> None:
    ovmf_hash = measured(sp_emu, "--mode", "snp:ovmf-hash", "--ovmf", debian_ovmf)
    assert ovmf_hash == oracle(ssm, debian_ovmf, mode="snp:ovmf-hash")
    ours = measured(
        sp_emu,
        "--mode",
        "snp:svsm",
        "--vcpus",
        "2",
        "--ovmf",
        debian_ovmf,
        "--svsm",
        images["svsm"],
        "--vars-file",
        images["vars"],
    )
    theirs = oracle(
        ssm,
        debian_ovmf,
        mode="snp:svsm",
        vcpus=2,
        svsm=images["svsm"],
        vars_size=images["vars"].stat().st_size,
    )
    assert ours == theirs


# --- output forms: base64, --verbose, --dump-vmsa, --json ---------------------------------


@pytest.mark.parametrize("mode", ["snp", "snp:svsm"])
@pytest.mark.parametrize("verbose", [False, True])
def test_printed_form_equals_sev_snp_measure(
    sp_emu: Any, ssm_cli: Any, images: dict[str, Path], mode: str, verbose: bool
) -> None:
    args: list[Any] = ["--mode", mode, "--vcpus", "2", "--vcpu-type", "EPYC-Milan"]
    args += ["--ovmf", images["ovmf"], "--output-format", "base64"]
    if mode == "snp:svsm":
        args += ["--svsm", images["svsm"], "--vars-file", images["vars"]]
    if verbose:
        args.append("-v")
    theirs = ssm_cli(*args)
    assert theirs.returncode == 0, theirs.stderr
    run = sp_emu("measure", *args)
    assert run.code == 0 and run.out == theirs.stdout
    digest = run.out.split()[-1]
    assert len(base64.b64decode(digest)) == 48


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param(["--mode", "snp", "--vcpus", "3", "--vmm-type", "gce"], id="snp-gce"),
        pytest.param(["--mode", "snp", "--vcpus", "2", "--guest-features", "0x4001"], id="snp"),
        pytest.param(["--mode", "snp:svsm", "--vcpus", "2", "--vars-size", "540672"], id="svsm"),
    ],
)
def test_dump_vmsa_files_equal(
    sp_emu: Any,
    ssm_cli: Any,
    images: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    extra: list[str],
) -> None:
    args: list[Any] = [*extra, "--vcpu-type", "EPYC-Rome", "--ovmf", images["ovmf"], "--dump-vmsa"]
    if "snp:svsm" in extra:
        args += ["--svsm", images["svsm"]]
    theirs_dir, ours_dir = tmp_path / "theirs", tmp_path / "ours"
    theirs_dir.mkdir()
    ours_dir.mkdir()
    theirs = ssm_cli(*args, cwd=theirs_dir)
    assert theirs.returncode == 0, theirs.stderr
    monkeypatch.chdir(ours_dir)
    run = sp_emu("measure", *args)
    assert run.code == 0 and run.out == theirs.stdout
    names = sorted(p.name for p in theirs_dir.iterdir())
    assert names == sorted(p.name for p in ours_dir.iterdir())
    vcpus = int(extra[extra.index("--vcpus") + 1])
    assert names == [f"vmsa{i}.bin" for i in range(vcpus)]
    for name in names:
        assert (ours_dir / name).read_bytes() == (theirs_dir / name).read_bytes(), name


def test_json_lists_every_page_info_like_sev_snp_measure(
    sp_emu: Any, ssm: Any, images: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each PAGE_INFO the firmware measured equals the one sev-snp-measure hashes."""
    import sevsnpmeasure.gctx as gctx

    recorded: list[tuple[int, int, bytes, bytes]] = []
    original = gctx.GCTX._update

    def spy(self: Any, page_type: int, gpa: int, contents: bytes) -> None:
        original(self, page_type, gpa, contents)
        recorded.append((page_type, gpa, bytes(contents), self.ld()))

    monkeypatch.setattr(gctx.GCTX, "_update", spy)
    digest = oracle(ssm, images["ovmf"], vcpus=2, vmm="gce", kernel=images["kernel"], features=0x21)
    run = sp_emu(
        "measure",
        "--json",
        "--vcpus",
        "2",
        "--vmm-type",
        "gce",
        "--kernel",
        images["kernel"],
        "--guest-features",
        "0x21",
        "--ovmf",
        images["ovmf"],
    )
    assert run.code == 0
    obj = json.loads(run.out)
    assert obj["digest"] == digest
    assert obj["mode"] == "snp" and obj["hypervisor"] == "gce" and obj["vcpus"] == 2
    rows = obj["page_info"]
    assert [r["index"] for r in rows] == list(range(len(recorded)))
    names = {1: "NORMAL", 2: "VMSA", 3: "ZERO", 4: "UNMEASURED", 5: "SECRETS", 6: "CPUID"}
    for row, (page_type, gpa, contents, after) in zip(rows, recorded, strict=True):
        assert row["page_type"] == names[page_type]
        assert int(row["gpa"], 16) == gpa
        assert row["contents"] == contents.hex()
        assert row["digest"] == after.hex()
    assert rows[-1]["digest"] == digest
    assert {r["page_type"] for r in rows} >= {"NORMAL", "UNMEASURED", "SECRETS", "CPUID", "VMSA"}


def test_json_in_ovmf_hash_mode(sp_emu: Any, ssm: Any, images: dict[str, Path]) -> None:
    run = sp_emu("measure", "--mode", "snp:ovmf-hash", "--json", "--ovmf", images["ovmf"])
    obj = json.loads(run.out)
    assert obj["digest"] == oracle(ssm, images["ovmf"], mode="snp:ovmf-hash")
    assert len(obj["page_info"]) == images["ovmf"].stat().st_size // 4096
    assert {r["page_type"] for r in obj["page_info"]} == {"NORMAL"}


def test_builtin_sample_is_the_default(sp_emu: Any, ssm: Any, images: dict[str, Path]) -> None:
    assert measured(sp_emu) == oracle(ssm, images["ovmf"])
    assert measured(sp_emu, "--vcpus", "4") == oracle(ssm, images["ovmf"], vcpus=4)
