"""``sp-emu replay``: run a trace (JSON Lines, trace format v1) on the emulator."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

from sp_emu.cli.common import Parser, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

EXAMPLE = "bringup.jsonl"


def register(sub: Any) -> None:
    replay: Parser = sub.add_parser(
        "replay",
        help="run a trace (JSON Lines, trace format v1) on the emulator",
        description="Run a trace on the emulator.  Without FILE, the built-in example.",
    )
    replay.add_argument("file", nargs="?", help="trace file ('-' for standard input)")
    replay.add_argument("--json", action="store_true", help="print one JSON object per step")
    replay.set_defaults(func=run)


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


def run(args: argparse.Namespace, out: TextIO) -> int:
    """``sp-emu replay``: run the steps, printing each result as it comes."""
    from sp_emu.trace import TraceError, replay_lines

    label = args.file or f"<built-in {EXAMPLE}>"
    results = replay_lines(_trace_lines(args.file))
    if args.json:
        import json

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
