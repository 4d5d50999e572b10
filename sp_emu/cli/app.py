"""The ``sp-emu`` command: parses arguments and hands them to one module per subcommand
(``replay``, ``measure``, ``launch``, ``id-block``, ``report``, ``kds``), each of which calls
the library and hands its results to :mod:`sp_emu.cli.render` or prints them.

Exit codes: 0 success; 1 the emulated firmware refused the operation; 2 bad input (a bad
flag, a malformed trace line or image, a missing file), with one line on standard error;
3 an internal error of the emulator (a bug: please report it); 141 (quietly) when the reader of
standard output went away, as a program killed by SIGPIPE reports.

Start-up is kept short: when the command line names a subcommand, only that subcommand's
module is imported and only its parser is built (the others cannot be reached); building a
parser imports only the standard library, and each subcommand imports what it needs when it
runs.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from sp_emu.cli.common import CommandFailed, Parser, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

    from sp_emu.cli.replay import run as cmd_replay

__all__ = ["CommandFailed", "UsageError", "cmd_replay", "main"]

SUBCOMMANDS = {
    "replay": "replay",
    "measure": "measure",
    "launch": "launch",
    "id-block": "id_block",
    "report": "report",
    "kds": "kds_cmd",
}
"""Subcommand -> its module in ``sp_emu.cli``, in the order ``--help`` lists them."""


class _OneSubcommand:
    """Stands in for argparse's subparsers action when the command line names a subcommand:
    that subcommand's parser (``prog`` "sp-emu NAME", as argparse would name it) is then the
    only one built, since the top-level parser could only lead to it.  Building the
    top-level parser and its subparsers action doubled the parser's start-up cost."""

    parser: Parser

    def add_parser(self, name: str, **kwargs: Any) -> Parser:
        kwargs.pop("help", None)  # the top-level --help's summary line
        self.parser = Parser(prog=f"sp-emu {name}", **kwargs)
        return self.parser


def _parser(command: str | None = None) -> Parser:
    """The parser of ``command`` alone, which reads the words after the command name, or
    the top-level parser of every subcommand (``None``)."""
    if command is not None:
        one = _OneSubcommand()
        module = f"sp_emu.cli.{SUBCOMMANDS[command]}"
        __import__(module)
        sys.modules[module].register(one)
        return one.parser
    parser = Parser(
        prog="sp-emu", description="An executable model of the AMD-SP SEV-SNP firmware."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS.values():
        __import__(f"sp_emu.cli.{module}")
        sys.modules[f"sp_emu.cli.{module}"].register(sub)
    return parser


def __getattr__(name: str) -> Any:
    if name == "cmd_replay":  # imported on first use, like every subcommand
        from sp_emu.cli.replay import run

        return run
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command line; returns the exit status."""
    out = out or sys.stdout
    words = sys.argv[1:] if argv is None else list(argv)
    command = words[0] if words and words[0] in SUBCOMMANDS else None
    try:
        args = _parser(command).parse_args(words if command is None else words[1:])
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
    except BrokenPipeError:  # the reader went away (``| head``): stop quietly, as on SIGPIPE
        return 141
    except Exception as err:  # an emulator bug: one line, not a traceback
        out.flush()
        print(f"sp-emu: internal error: {type(err).__name__}: {err}", file=sys.stderr)
        return 3
