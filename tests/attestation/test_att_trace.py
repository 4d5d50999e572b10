"""Guest requests are reproducible: the hypervisor's steps are recorded like any other, and
replaying the trace gives the same response page byte for byte (the emulator's keys come
from the platform seed and its ECDSA nonces are RFC 6979)."""

from __future__ import annotations

from sp_emu.attestation import GuestMessenger, GuestRequestHost
from sp_emu.hypervisors import KVM_QEMU, LaunchOptions, launch
from sp_emu.images.plan import snp_launch_plan
from sp_emu.images.sample import build_sample_ovmf
from sp_emu.platform import Platform
from sp_emu.trace.runner import dump_trace, replay_lines
from tests.attestation.att_helpers import MEM, SECRETS_GPA, launched_guest


def test_replayed_trace_gives_the_same_response() -> None:
    p = Platform(memory=MEM)
    steps = p.start_recording()
    result = launch(p, snp_launch_plan(build_sample_ovmf()), KVM_QEMU, LaunchOptions())
    host = GuestRequestHost(p, result.gctx)
    driver = GuestMessenger.from_guest_memory(p, result.asid, SECRETS_GPA)
    assert driver.get_report(host, b"replay me").status == 0
    assert steps[-2]["op"] == "fw" and steps[-2]["cmd"] == "SNP_GUEST_REQUEST"
    assert steps[-1]["op"] == "read" and steps[-1]["spa"] == host.rsp_spa
    original = p.memory.read(host.rsp_spa, 0x1000)

    outputs = list(replay_lines(dump_trace(steps).splitlines()))
    assert outputs[-2]["status"] == 0
    assert outputs[-2]["out"]["msg_type"] == 6 and outputs[-2]["out"]["msg_seqno"] == 2
    assert bytes.fromhex(outputs[-1]["data"]) == original


def test_identical_platforms_give_identical_reports() -> None:
    a, b = launched_guest(), launched_guest()
    ra = a.driver.get_report(a.host, b"same").report
    assert b.driver.get_report(b.host, b"same").report == ra
    c = launched_guest(seed=b"another chip")
    rc = c.driver.get_report(c.host, b"same").report
    assert rc[0x90:0xC0] == ra[0x90:0xC0]  # same image, same measurement
    assert rc[0x1A0:0x1E0] != ra[0x1A0:0x1E0] and rc[0x2A0:] != ra[0x2A0:]
