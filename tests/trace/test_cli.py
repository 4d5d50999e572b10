"""The sp-emu command line: exit codes, one-line errors, output formats."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from sp_emu.cli.app import main


def run_cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(args), out)
    return code, out.getvalue()


def test_builtin_example_replays_cleanly_as_json() -> None:
    code, text = run_cli("replay", "--json")
    assert code == 0
    steps = [json.loads(line) for line in text.splitlines()]
    assert [s["step"] for s in steps] == list(range(1, len(steps) + 1))
    by_result = {s["step"]: s["result"] for s in steps}
    assert "FAULT" in by_result.values()  # the host write to a pre-guest page
    assert steps[-1]["out"]["state"] == 0  # shut down again


def test_builtin_example_renders_a_table() -> None:
    code, text = run_cli("replay")
    assert code == 0
    assert "SNP_GCTX_CREATE" in text and "DFFLUSH_REQUIRED" in text


def test_malformed_line_gives_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "t.jsonl"
    trace.write_text('{"op": "wbinvd"}\n{"op": "read", "spa": 1}\n')
    code, text = run_cli("replay", "--json", str(trace))
    err = capsys.readouterr().err
    assert code == 2
    assert json.loads(text) == {"step": 1, "op": "wbinvd", "result": "OK"}
    assert err.count("\n") == 1 and "line 2" in err and "length" in err


def test_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = run_cli("replay", "/no/such/trace.jsonl")
    assert code == 2
    assert capsys.readouterr().err.strip() == "sp-emu: /no/such/trace.jsonl: no such file"


def test_console_entry_point_runs_without_traceback(tmp_path: Path) -> None:
    trace = tmp_path / "bad.jsonl"
    trace.write_bytes(b"\xff\xfe\n")
    proc = subprocess.run(
        [sys.executable, "-m", "sp_emu", "replay", str(trace)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_a_reader_that_goes_away_ends_the_command_quietly() -> None:
    """``sp-emu replay --json | head -1``: once the reader has closed the pipe, the command
    stops with status 141 (as SIGPIPE would) and says nothing on standard error.  (The read
    end is closed before the command starts, so its first write fails every time.)"""
    import os

    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "sp_emu", "replay", "--json"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            check=False,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert proc.returncode == 141
    assert proc.stderr == b""
