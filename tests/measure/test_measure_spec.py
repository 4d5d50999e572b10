"""The library behind ``measure``: :mod:`sp_emu.launch_spec`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sp_emu.images import ImageError, PageType, VmmType, build_sample_ovmf, build_sample_svsm
from sp_emu.launch_spec import (
    SSM_SVSM_POLICY,
    LaunchSpec,
    SpecError,
    image_step_digest,
    ovmf_hash,
    plan_for,
    policy_for,
    run_launch,
)
from sp_emu.platform import Platform
from sp_emu.state import GuestState


def test_digest_is_the_firmwares() -> None:
    """run_launch reads the digest from the guest context; no separate formula."""
    platform = Platform()
    result = run_launch(LaunchSpec(vcpus=3), platform)
    guest = platform.fw.state.guests[result.gctx]
    assert result.digest == guest.ld and guest.state is GuestState.RUNNING
    assert result.units[-1].digest == result.digest
    assert [u.index for u in result.units] == list(range(len(result.units)))
    assert len(result.vmsas) == 3
    assert [u.page_type for u in result.units[-3:]] == [PageType.VMSA] * 3
    # The guest's RMP entries are exactly the pages the launch handed to the firmware.
    owned = {
        pfn << 12
        for pfn in platform.rmp.touched()
        if platform.rmp.entry(pfn).assigned and platform.rmp.entry(pfn).asid == result.asid
    }
    assert owned == set(result.private_pages.values()) | set(result.vmsa_spas)
    assert all(platform.rmp.entry(spa >> 12).vmsa for spa in result.vmsa_spas)


def test_launch_without_the_page_log_gives_the_same_digest() -> None:
    logged = run_launch(LaunchSpec(vcpus=2))
    bare = run_launch(LaunchSpec(vcpus=2), page_log=False)
    assert bare.digest == logged.digest and bare.units == [] and len(logged.units) > 50
    # --snp-ovmf-hash is checked against the log, so that launch keeps it
    pinned = LaunchSpec(vcpus=2, snp_ovmf_hash=image_step_digest(LaunchSpec(vcpus=2), logged))
    assert run_launch(pinned, page_log=False).digest == logged.digest


def test_default_image_is_the_sample() -> None:
    assert LaunchSpec().ovmf == build_sample_ovmf()


def test_ovmf_hash_is_the_image_step(ssm_ovmf_hash: Any, images: dict[str, Path]) -> None:
    spec = LaunchSpec(mode="snp:ovmf-hash")
    platform = Platform()
    value = ovmf_hash(spec, platform)
    assert value == ssm_ovmf_hash(images["ovmf"])
    # The guest stopped after the image: still launching, no VMSAs measured.
    (guest,) = platform.fw.state.guests.values()
    assert guest.state is GuestState.LAUNCH and guest.ld == value
    full = run_launch(LaunchSpec(vcpus=2, vmm_type=VmmType.EC2))
    assert image_step_digest(LaunchSpec(), full) == value
    partial = run_launch(spec)
    assert partial.digest == value and partial.vmsas == []
    assert len(partial.units) == len(spec.ovmf) // 4096 == len(partial.private_pages)


@pytest.fixture(scope="module")
def ssm_ovmf_hash() -> Any:
    guest = pytest.importorskip("sevsnpmeasure.guest")
    return lambda path: guest.calc_snp_ovmf_hash(str(path))


def test_precomputed_hash_must_match() -> None:
    good = ovmf_hash(LaunchSpec(mode="snp:ovmf-hash"))
    assert run_launch(LaunchSpec(snp_ovmf_hash=good)).digest == run_launch(LaunchSpec()).digest
    with pytest.raises(SpecError, match="not this image's"):
        run_launch(LaunchSpec(snp_ovmf_hash=bytes(48)))


def test_policy_for() -> None:
    assert policy_for(LaunchSpec()).name == "kvm-upstream"
    assert policy_for(LaunchSpec(vmm_type=VmmType.EC2)).name == "ec2"
    assert policy_for(LaunchSpec(vmm_type=VmmType.GCE)).name == "gce"
    svsm = LaunchSpec(mode="snp:svsm", svsm=build_sample_svsm(), vars_size=0x84000)
    assert policy_for(svsm).name == "kvm-svsm"
    compat = LaunchSpec(
        mode="snp:svsm", svsm=build_sample_svsm(), vars_size=0x84000, ssm_compat=True
    )
    assert policy_for(compat) is SSM_SVSM_POLICY
    # The two differ only in the VMSAs' x87 FCW (0x410..0x411).
    ours, theirs = run_launch(svsm), run_launch(compat)
    assert ours.digest != theirs.digest
    diff = [
        i for i, (a, b) in enumerate(zip(ours.vmsas[0], theirs.vmsas[0], strict=True)) if a != b
    ]
    assert diff == [0x410, 0x411]


def test_plan_for() -> None:
    assert len(plan_for(LaunchSpec(mode="snp:ovmf-hash")).items) == 1
    assert plan_for(LaunchSpec()).items[0].label == "OVMF image"
    kernel = plan_for(LaunchSpec(kernel=b"k" * 100))
    assert any(i.page_type is PageType.NORMAL and i.data for i in kernel.items[1:])


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"mode": "sev"}, "not modelled"),
        ({"vcpus": 0}, "at least one vCPU"),
        ({"cpu_sig": 1 << 32}, "32-bit"),
        ({"guest_features": -1}, "64-bit"),
        ({"policy": 1 << 64}, "64-bit"),
        ({"host_data": b"x"}, "32 bytes"),
        ({"initrd": b"i"}, "needs a kernel"),
        ({"append": "quiet"}, "needs a kernel"),
        ({"id_block": bytes(0x60)}, "go together"),
        ({"snp_ovmf_hash": bytes(47)}, "48 bytes"),
        ({"mode": "snp:ovmf-hash", "snp_ovmf_hash": bytes(48)}, "mode snp"),
        ({"mode": "snp:svsm"}, "needs an SVSM"),
        ({"mode": "snp:svsm", "svsm": b"s", "vmm_type": VmmType.GCE}, "QEMU"),
        ({"mode": "snp:svsm", "svsm": b"s", "kernel": b"k"}, "kernel"),
        ({"mode": "snp:svsm", "svsm": b"s", "vars_size": -1}, "negative"),
        ({"svsm": b"s"}, "snp:svsm"),
        ({"vars_size": 4096}, "snp:svsm"),
    ],
)
def test_spec_errors(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        LaunchSpec(**fields)


def test_image_errors_surface_as_image_error() -> None:
    with pytest.raises(ImageError, match="not an OVMF image"):
        run_launch(LaunchSpec(ovmf=bytes(0x10000)))
    with pytest.raises(ImageError):
        run_launch(LaunchSpec(mode="snp:svsm", svsm=bytes(0x1000), vars_size=0x1000))
