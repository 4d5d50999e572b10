"""What every subcommand shares: the one-line error types, the argument parser that reports
bad flags in one line, and small value parsers.  Imports only the few standard modules that
start quickly (no ``pathlib``, ``base64`` or ``typing``), so that building the parser costs
nothing."""

from __future__ import annotations

import argparse
import os
import sys
from functools import cache

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


class CommandFailed(Exception):
    """The emulated firmware refused the operation: printed as one line, exit status 1."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (a :class:`UsageError`), not usage text."""

    def _get_formatter(self) -> argparse.HelpFormatter:
        # argparse makes a formatter for every add_argument; given no width, each one imports
        # shutil (with bz2 and lzma) to ask for the terminal's, a few ms of start-up.
        return self.formatter_class(prog=self.prog, width=_terminal_columns() - 2)  # type: ignore[call-arg]

    def error(self, message: str) -> NoReturn:
        where = self.prog.removeprefix("sp-emu").strip()
        raise UsageError(f"{where}: {message}" if where else message)


@cache
def _terminal_columns() -> int:
    """The terminal's width as ``shutil.get_terminal_size`` finds it ($COLUMNS, then the
    terminal on standard output, else 80), asked once per process."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


def int_value(text: str) -> int:
    """An integer in any base Python accepts (``0x..``, ``0b..``, decimal), or a decimal
    with leading zeros as ``int()`` reads it."""
    try:
        return int(text, 0)
    except ValueError:
        pass
    try:
        return int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def hex_bytes(text: str, size: int, what: str) -> bytes:
    """Exactly ``size`` bytes written as hex (``0x`` prefix, ``-`` and ``:`` allowed)."""
    cleaned = text.strip().removeprefix("0x").replace("-", "").replace(":", "")
    try:
        raw = bytes.fromhex(cleaned)
    except ValueError:
        raise UsageError(f"{what}: not hex: {text!r}") from None
    if len(raw) != size:
        raise UsageError(f"{what}: need {size} bytes ({2 * size} hex digits), got {len(raw)}")
    return raw


def digest_bytes(text: str, what: str) -> bytes:
    """A 48-byte launch digest in hex (96 digits) or base64 (64 characters)."""
    cleaned = text.strip()
    if len(cleaned.removeprefix("0x")) == 96:
        return hex_bytes(cleaned, 48, what)
    import binascii  # here: only base64 input needs it

    try:
        raw = binascii.a2b_base64(cleaned, strict_mode=True)
    except (binascii.Error, ValueError):
        raise UsageError(f"{what}: not a 48-byte digest in hex or base64: {text!r}") from None
    if len(raw) != 48:
        raise UsageError(f"{what}: a digest is 48 bytes, this base64 holds {len(raw)}")
    return raw


def read_file(name: str, what: str) -> bytes:
    """The bytes of file ``name``; a :class:`UsageError` naming it if it cannot be read."""
    try:
        with open(name, "rb") as file:
            return file.read()
    except FileNotFoundError:
        raise UsageError(f"{what} {name}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{what} {name}: is a directory") from None
    except OSError as err:
        raise UsageError(f"{what} {name}: {err.strerror}") from None


def file_size(name: str, what: str) -> int:
    """The size of file ``name`` (as sev-snp-measure's ``--vars-file`` reads it)."""
    try:
        if os.path.isdir(name):
            raise UsageError(f"{what} {name}: is a directory")
        return os.stat(name).st_size
    except FileNotFoundError:
        raise UsageError(f"{what} {name}: no such file") from None
    except OSError as err:
        raise UsageError(f"{what} {name}: {err.strerror}") from None
