"""Trace format v1 (shared/specs/trace-v1.md): lexical rules, every step, errors, recording."""

from __future__ import annotations

import json

import pytest

from sp_emu import CommandId, Platform, PlatformConfig
from sp_emu.trace import TraceError, dump_trace, replay_lines

FW_PAGE = {"assigned": True, "page_size": "4K", "immutable": True, "asid": 0, "gpa": 0}


def run(*steps: object) -> list[dict]:
    lines = [s if isinstance(s, str) else json.dumps(s) for s in steps]
    return list(replay_lines(lines))


def test_comments_and_blank_lines_produce_no_output_and_do_not_count() -> None:
    out = run("# a comment", "", "   # indented comment", {"op": "wbinvd"}, "  ", {"op": "wbinvd"})
    assert [o["step"] for o in out] == [1, 2]
    assert all(o == {"step": o["step"], "op": "wbinvd", "result": "OK"} for o in out)


@pytest.mark.parametrize("spa", [0x1000, "4096", "0x1000", "0X1000"])
def test_integers_as_number_decimal_string_or_hex(spa: object) -> None:
    (out,) = run({"op": "rmpread", "spa": spa})
    assert out["result"] == "SUCCESS"


def test_platform_defaults_to_4g_genoa() -> None:
    (out,) = run({"op": "platform"})
    assert out["memory"] == 4 << 30 and out["product"] == "Genoa" and out["smt"] is True
    assert out["max_asid"] == 1006


def test_platform_memory_string_and_product() -> None:
    (out,) = run({"op": "platform", "memory": "512M", "product": "Milan", "smt": False})
    assert out["memory"] == 512 << 20 and out["product"] == "Milan" and out["smt"] is False


def test_platform_must_come_first() -> None:
    with pytest.raises(TraceError) as err:
        run({"op": "wbinvd"}, {"op": "platform"})
    assert err.value.line == 2 and "first" in err.value.message


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ('{"op": "frobnicate"}', "unknown op"),
        ('{"spa": 1}', '"op"'),
        ("[1, 2]", "JSON object"),
        ("{not json", "not valid JSON"),
        ('{"op": "rmpread"}', "needs member 'spa'"),
        ('{"op": "rmpread", "spa": 1, "extra": 2}', "no member 'extra'"),
        ('{"op": "rmpread", "spa": "12z"}', "not a number"),
        ('{"op": "rmpread", "spa": -1}', "does not fit"),
        ('{"op": "write", "spa": 4096, "data": "abc"}', "even-length hex"),
        ('{"op": "psmash", "spa": true}', "integer"),
        ('{"op": "fw", "cmd": "SNP_NOPE", "fields": {}}', "unknown command"),
        ('{"op": "fw", "cmd": "SNP_INIT"}', "exactly one of"),
        ('{"op": "fw", "cmd": "SNP_GCTX_CREATE", "fields": {"bogus": 1}}', "no field 'bogus'"),
        ('{"op": "fw", "cmd": "SNP_ACTIVATE", "fields": {"asid": "0x100000000"}}', "does not fit"),
        ('{"op": "fw", "cmd": "SNP_GCTX_CREATE", "buffer": "00"}', "0x8 bytes"),
        ('{"op": "fw", "cmd": "SNP_INIT_EX", "fields": {"init_rmp": 2}}', "one-bit"),
        ('{"op": "fw", "cmd": "SNP_PAGE_RECLAIM", "fields": {"page_paddr": 4097}}', "fit"),
    ],
)
def test_malformed_steps_name_their_line(line: str, fragment: str) -> None:
    outputs: list[dict] = []
    with pytest.raises(TraceError) as err:
        for o in replay_lines(['{"op": "wbinvd"}', "# comment", line, '{"op": "wbinvd"}']):
            outputs.append(o)
    assert err.value.line == 3
    assert fragment in err.value.message
    assert len(outputs) == 1  # the step before ran; the one after did not


def test_fw_fields_and_buffer_are_equivalent() -> None:
    a = run({"op": "fw", "cmd": "SNP_INIT_EX", "fields": {"init_rmp": True}})
    b = run({"op": "fw", "cmd": "SNP_INIT_EX", "buffer": "01" + "00" * 63})
    c = run({"op": "fw", "cmd": 0x85, "fields": {"init_rmp": 1}})
    assert a[0]["result"] == b[0]["result"] == c[0]["result"] == "SUCCESS"
    assert a[0]["status"] == 0


def test_unknown_numeric_command_is_sent_and_refused() -> None:
    (out,) = run({"op": "fw", "cmd": "0xC4", "fields": {}})
    assert out["result"] == "INVALID_COMMAND" and out["status"] == 0x11


def test_status_commands_return_their_structure_in_out() -> None:
    out = run(
        {"op": "fw", "cmd": "SNP_INIT", "fields": {}},
        {"op": "rmpupdate", "spa": "0x200000", **FW_PAGE},
        {"op": "fw", "cmd": "SNP_PLATFORM_STATUS", "fields": {"status_paddr": "0x200000"}},
        {"op": "read", "spa": "0x200000", "length": 4},
    )
    status = out[2]["out"]
    assert status["state"] == 1 and status["is_rmp_initialized"] == 1
    assert status["api_major"] == 1 and status["api_minor"] == 55  # Genoa FW 1.55
    # The structure was also written to memory: API_MAJOR, API_MINOR, STATE, bit0 RMP init.
    assert out[3]["data"] == "01370101"


def test_page_type_and_page_size_take_names() -> None:
    (out,) = run(
        {
            "op": "fw",
            "cmd": "SNP_LAUNCH_UPDATE",
            "fields": {"gctx_paddr": "0x1000", "page_type": "VMSA", "page_size": "2M"},
        }
    )
    assert "status" in out  # accepted as a well-formed step


def test_guest_lifecycle_and_faults() -> None:
    gctx, page = "0x1000000", "0x2000000"
    out = run(
        {"op": "fw", "cmd": "SNP_INIT", "fields": {}},
        {"op": "wbinvd"},
        {"op": "fw", "cmd": "SNP_DF_FLUSH", "fields": {}},
        {"op": "rmpupdate", "spa": gctx, **FW_PAGE},
        {"op": "fw", "cmd": "SNP_GCTX_CREATE", "fields": {"gctx_paddr": gctx}},
        {
            "op": "fw",
            "cmd": "SNP_LAUNCH_START",
            "fields": {"gctx_paddr": gctx, "policy": "0x30000"},
        },
        {"op": "fw", "cmd": "SNP_ACTIVATE", "fields": {"gctx_paddr": gctx, "asid": 3}},
        # A private guest page at GPA 0x5000 that the host assigned but the guest has not
        # validated: the guest's access raises #VC until PVALIDATE.
        {
            "op": "rmpupdate",
            "spa": page,
            "assigned": True,
            "page_size": "4K",
            "immutable": False,
            "asid": 3,
            "gpa": "0x5000",
        },
        {"op": "npt_map", "asid": 3, "gpa": "0x5000", "spa": page, "page_size": "4K"},
        {"op": "guest_read", "asid": 3, "vmpl": 0, "gpa": "0x5000", "length": 4},
        {
            "op": "pvalidate",
            "asid": 3,
            "vmpl": 0,
            "gpa": "0x5000",
            "page_size": "4K",
            "validate": True,
        },
        {
            "op": "pvalidate",
            "asid": 3,
            "vmpl": 0,
            "gpa": "0x5000",
            "page_size": "4K",
            "validate": True,
        },
        {"op": "guest_write", "asid": 3, "vmpl": 0, "gpa": "0x5000", "data": "c0ffee"},
        {"op": "guest_read", "asid": 3, "vmpl": 0, "gpa": "0x5000", "length": 3},
        {"op": "read", "spa": page, "length": 3},
        {"op": "guest_read", "asid": 3, "vmpl": 1, "gpa": "0x5000", "length": 3},
        {
            "op": "pvalidate",
            "asid": 3,
            "vmpl": 1,
            "gpa": "0x5000",
            "page_size": "4K",
            "validate": False,
        },
        {"op": "guest_read", "asid": 3, "vmpl": 0, "gpa": "0x9000", "length": 1},
        {"op": "guest_read", "asid": 9, "vmpl": 0, "gpa": "0x5000", "length": 1},
    )
    results = [o["result"] for o in out]
    assert results[:9] == [
        "SUCCESS",
        "OK",
        "SUCCESS",
        "SUCCESS",
        "SUCCESS",
        "SUCCESS",
        "SUCCESS",
        "SUCCESS",
        "OK",
    ]
    assert out[9]["result"] == "FAULT" and out[9]["fault"] == "#VC"
    assert out[10] | {"step": 0} == {
        "step": 0,
        "op": "pvalidate",
        "result": "SUCCESS",
        "changed": True,
    }
    assert out[11]["changed"] is False  # already validated: the carry flag case
    assert out[13]["data"] == "c0ffee"
    assert out[14]["data"] != "c0ffee"  # the host sees ciphertext
    # VMPL1 has no permissions on a page nobody RMPADJUSTed: #NPF with RMP and VMPL bits.
    assert out[15]["fault"] == "#NPF" and out[15]["error_code"] & (1 << 36)
    assert out[15]["error_code"] & (1 << 31)
    assert out[16]["fault"] == "#GP"  # PVALIDATE needs VMPL0
    assert out[17]["fault"] == "#NPF" and not out[17].get("error_code", 0) & (1 << 31)
    assert out[18]["result"] == "VMRUN_FAILED"


def test_recorded_api_session_replays_to_the_same_state() -> None:
    p = Platform(PlatformConfig(memory=256 << 20, product="Turin", seed=b"rec"))
    steps = p.start_recording()
    p.run(CommandId.SNP_INIT)
    p.cpu.rmpupdate(0x400000, assigned=True, immutable=True)
    p.run(CommandId.SNP_GCTX_CREATE, gctx_paddr=0x400000)
    p.run(CommandId.SNP_LAUNCH_START, gctx_paddr=0x400000, policy=0x30000)
    p.cpu.rmpupdate(0x600000, assigned=True, page_size=1, asid=5, gpa=0x200000)
    p.cpu.psmash(0x600000)
    p.cpu.host_write(0x800000, b"hello")
    p.execute(0xC4)
    text = dump_trace(steps)

    from sp_emu.trace import TraceRunner

    runner = TraceRunner()
    outputs = list(replay_lines(text.splitlines(), runner))
    q = runner.platform
    assert q is not None
    assert len(outputs) == len(steps)
    assert q.rmp.snapshot() == p.rmp.snapshot()
    assert q.memory.fingerprint() == p.memory.fingerprint()
    assert q.fw.state.guests.keys() == p.fw.state.guests.keys()
    assert outputs[-1]["result"] == "INVALID_COMMAND"
