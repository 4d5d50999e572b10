"""The ``sp-emu`` command: parses arguments and hands them to one module per subcommand
(``replay``, ``measure``, ``launch``, ``id-block``, ``report``, ``kds``), each of which calls
the library and hands its results to :mod:`sp_emu.cli.render` or prints them.

Exit codes: 0 success; 1 the emulated firmware refused the operation; 2 bad input (a bad
flag, a malformed trace line or image, a missing file), with one line on standard error;
3 an internal error of the emulator (a bug: please report it).

Start-up is kept short: building the parser imports only the standard library; each
subcommand imports what it needs when it runs.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from sp_emu.cli import id_block, kds_cmd, launch, measure, replay, report
from sp_emu.cli.common import CommandFailed, Parser, UsageError
from sp_emu.cli.replay import run as cmd_replay

__all__ = ["CommandFailed", "UsageError", "cmd_replay", "main"]


def _parser() -> Parser:
    parser = Parser(
        prog="sp-emu", description="An executable model of the AMD-SP SEV-SNP firmware."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (replay, measure, launch, id_block, report):
        module.register(sub)
    kds_cmd.add_parser(sub).set_defaults(func=kds_cmd.run)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command line; returns the exit status."""
    out = out or sys.stdout
    try:
        args = _parser().parse_args(argv)
        status: int = args.func(args, out)
        return status
    except UsageError as err:
        out.flush()
        print(f"sp-emu: {err}", file=sys.stderr)
        return 2
    except CommandFailed as err:
        out.flush()
        print(f"sp-emu: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # an emulator bug: one line, not a traceback
        out.flush()
        print(f"sp-emu: internal error: {type(err).__name__}: {err}", file=sys.stderr)
        return 3
