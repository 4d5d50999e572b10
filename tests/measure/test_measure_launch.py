"""``sp-emu launch``: the guest launched through the firmware, summarised (rich and JSON)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest


def launched(sp_emu: Any, *args: Any) -> dict[str, Any]:
    run = sp_emu("launch", "--json", *args)
    assert run.code == 0, run.err
    obj: dict[str, Any] = json.loads(run.out)
    return obj


def measured(sp_emu: Any, *args: Any) -> str:
    run = sp_emu("measure", *args)
    assert run.code == 0, run.err
    return str(run.out.strip())


@pytest.mark.parametrize("vcpus", [1, 4])
def test_default_launch(sp_emu: Any, vcpus: int) -> None:
    s = launched(sp_emu, "--vcpus", vcpus)
    assert s["hypervisor"] == "kvm-upstream" and s["mode"] == "snp"
    assert s["guest_policy"] == "0x30000"
    assert s["guest_state"] == "RUNNING"
    assert s["digest"] == measured(sp_emu, "--vcpus", vcpus)
    assert s["vcpus"] == vcpus and s["vmsa_pages"] == vcpus
    assert s["page_info"] == {
        "NORMAL": 64,
        "VMSA": vcpus,
        "ZERO": 29,
        "UNMEASURED": 0,
        "SECRETS": 1,
        "CPUID": 1,
    }
    assert s["page_info_total"] == 95 + vcpus
    # Every page the guest owns is validated guest memory; one RMP entry per PAGE_INFO.
    assert s["all_guest_valid"] and s["rmp_states"] == {"GUEST_VALID": 95 + vcpus}
    assert s["guest_pages"] == s["page_info_total"]
    vmsa_rows = [r for r in s["rmp"] if r["vmsa"]]
    assert len(vmsa_rows) == vcpus
    assert all(r["gpa"] == "0xfffffffff000" and r["page_type"] == "VMSA" for r in vmsa_rows)
    assert not any(r["vmsa"] for r in s["rmp"] if r["page_type"] != "VMSA")
    assert sum(r["pages"] for r in s["rmp"]) == s["guest_pages"]
    assert s["gctx_rmp_state"] == "CONTEXT"
    assert s["id_block_en"] is False


def test_cloud_vmm_and_policy(sp_emu: Any) -> None:
    s = launched(
        sp_emu, "--vmm-type", "gce", "--vcpus", "2", "--policy", "0x70000", "--host-data", "ab" * 32
    )
    assert s["hypervisor"] == "gce" and s["guest_policy"] == "0x70000"
    assert s["page_info"]["UNMEASURED"] == 27 and s["all_guest_valid"]
    assert s["digest"] == measured(sp_emu, "--vmm-type", "gce", "--vcpus", "2")


def test_kernel_boot(sp_emu: Any, images: dict[str, Path]) -> None:
    args = ["--kernel", images["kernel"], "--initrd", images["initrd"], "--append", "quiet"]
    s = launched(sp_emu, *args)
    assert s["page_info"]["NORMAL"] == 65  # the image and the kernel-hashes page
    assert s["digest"] == measured(sp_emu, *args)


def test_svsm_launch_uses_kvms_vmsa(sp_emu: Any, images: dict[str, Path]) -> None:
    """``launch`` models KVM (x87 FCW 0x37F); ``measure`` reproduces sev-snp-measure's FCW 0."""
    args = ["--mode", "snp:svsm", "--svsm", images["svsm"], "--vars-file", images["vars"]]
    s = launched(sp_emu, *args, "--vcpus", "2")
    assert s["hypervisor"] == "kvm-svsm" and s["guest_state"] == "RUNNING"
    assert s["all_guest_valid"] and s["vmsa_pages"] == 2
    assert s["digest"] != measured(sp_emu, *args, "--vcpus", "2")


def test_debian_ovmf(sp_emu: Any, debian_ovmf: Path) -> None:
    s = launched(sp_emu, "--ovmf", debian_ovmf)
    assert s["guest_state"] == "RUNNING" and s["all_guest_valid"]
    assert s["page_info"]["NORMAL"] == debian_ovmf.stat().st_size // 4096
    assert s["digest"] == measured(sp_emu, "--ovmf", debian_ovmf)


def test_rich_summary(sp_emu: Any) -> None:
    run = sp_emu("launch", "--vcpus", "2")
    assert run.code == 0 and run.err == ""
    digest = measured(sp_emu, "--vcpus", "2")
    for text in (
        "RUNNING",
        digest,
        "kvm-upstream",
        "0x30000",
        "GUEST_VALID",
        "VMSA",
        "PAGE_INFO measured: 97",
        "CPUID",
        "SECRETS",
    ):
        assert text in run.out, text


def test_launch_with_id_block(sp_emu: Any, keys: Any, tmp_path: Path) -> None:
    made = sp_emu(
        "id-block",
        "--launch",
        "--vcpus",
        "2",
        "--id-key",
        keys.id_key,
        "--author-key",
        keys.author_key,
        "--out",
        tmp_path,
    )
    assert made.code == 0, made.err
    id_args = ["--id-block", tmp_path / "id_block.bin", "--id-auth", tmp_path / "id_auth.bin"]
    s = launched(sp_emu, "--vcpus", "2", *id_args, "--auth-key-en")
    assert s["guest_state"] == "RUNNING" and s["id_block_en"] and s["author_key_en"]
    run = sp_emu("launch", "--vcpus", "2", *id_args)
    assert run.code == 0 and "checked" in run.out
    # The same ID block for a launch with another vCPU count: the firmware refuses.
    refused = sp_emu("launch", "--vcpus", "3", *id_args)
    assert refused.code == 1 and refused.out == ""
    assert len(refused.err_lines) == 1
    assert "SNP_LAUNCH_FINISH" in refused.err and "BAD_MEASUREMENT (0x0B)" in refused.err
    other_policy = sp_emu("launch", "--vcpus", "2", "--policy", "0x70000", *id_args)
    assert other_policy.code == 1 and "POLICY_FAILURE (0x07)" in other_policy.err


@pytest.mark.parametrize("policy", ["0x10000", "0x1030000"])
def test_firmware_refusal_is_one_line_exit_1(sp_emu: Any, policy: str) -> None:
    """A policy LAUNCH_START refuses (RSVD_MBO clear, an unsupported bit): status name and
    value on one line, exit status 1."""
    run = sp_emu("launch", "--policy", policy)
    assert run.code == 1 and run.out == ""
    assert len(run.err_lines) == 1
    assert "SNP_LAUNCH_START: POLICY_FAILURE (0x07)" in run.err
