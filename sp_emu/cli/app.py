"""The ``sp-emu`` command: parses arguments, calls the library, hands results to render.

Exit codes: 0 success; 2 bad input (a malformed trace line, a missing file), with one line on
standard error; 3 an internal error of the emulator (a bug: please report it).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

EXAMPLE = "bringup.jsonl"


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sp-emu", description="An executable model of the AMD-SP SEV-SNP firmware."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    replay = sub.add_parser(
        "replay",
        help="run a trace (JSON Lines, trace format v1) on the emulator",
        description="Run a trace on the emulator.  Without FILE, the built-in example.",
    )
    replay.add_argument("file", nargs="?", help="trace file ('-' for standard input)")
    replay.add_argument("--json", action="store_true", help="print one JSON object per step")
    return parser


def _trace_lines(name: str | None) -> Iterator[str]:
    if name is None:
        text = resources.files("sp_emu").joinpath("data", EXAMPLE).read_text("utf-8")
        yield from text.splitlines()
        return
    if name == "-":
        yield from sys.stdin
        return
    path = Path(name)
    try:
        with path.open(encoding="utf-8") as fh:
            yield from fh
    except FileNotFoundError:
        raise UsageError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{name}: is a directory") from None
    except UnicodeDecodeError as err:
        raise UsageError(f"{name}: not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise UsageError(f"{name}: {err.strerror}") from None


def cmd_replay(args: argparse.Namespace, out: TextIO) -> int:
    """``sp-emu replay``: run the steps, printing each result as it comes."""
    from sp_emu.trace import TraceError, replay_lines

    label = args.file or f"<built-in {EXAMPLE}>"
    results = replay_lines(_trace_lines(args.file))
    if args.json:
        try:
            for step in results:
                out.write(json.dumps(step) + "\n")
                out.flush()
        except TraceError as err:
            raise UsageError(f"{label}: {err}") from None
        return 0
    from sp_emu.cli import render

    collected: list[dict[str, Any]] = []
    try:
        for step in results:
            collected.append(step)
    except TraceError as err:
        render.replay_table(collected, label, out)
        raise UsageError(f"{label}: {err}") from None
    render.replay_table(collected, label, out)
    return 0


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command line; returns the exit status."""
    out = out or sys.stdout
    args = _parser().parse_args(argv)
    try:
        if args.command == "replay":
            return cmd_replay(args, out)
    except UsageError as err:
        out.flush()
        print(f"sp-emu: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # an emulator bug: one line, not a traceback
        out.flush()
        print(f"sp-emu: internal error: {type(err).__name__}: {err}", file=sys.stderr)
        return 3
    raise AssertionError(f"unhandled command {args.command}")
