"""Reading the values of a trace step (trace-v1 "Lexical rules")."""

from __future__ import annotations

import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class StepError(ValueError):
    """A malformed step: the message says which member and what is wrong."""


_SIZES = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
PAGE_SIZES = {"4K": 0, "2M": 1}


def integer(value: Any, name: str, *, bits: int = 64) -> int:
    """An integer written as a JSON number, a decimal string or a ``0x`` hex string."""
    if isinstance(value, bool) or value is None:
        raise StepError(f"{name} must be an integer")
    if isinstance(value, int):
        result = value
    elif isinstance(value, str):
        text = value.strip()
        try:
            if text.lower().startswith("0x"):
                result = int(text[2:], 16)
            elif re.fullmatch(r"[0-9]+", text):
                result = int(text, 10)
            else:
                raise ValueError
        except ValueError:
            raise StepError(f"{name} is not a number: {value!r}") from None
    else:
        raise StepError(f"{name} must be an integer")
    if not 0 <= result < (1 << bits):
        raise StepError(f"{name} {result:#x} does not fit in {bits} bits")
    return result


def hexbytes(value: Any, name: str, *, length: int | None = None) -> bytes:
    """A byte string written as hex (upper or lower case, even length)."""
    if not isinstance(value, str) or len(value) % 2 or not re.fullmatch(r"[0-9a-fA-F]*", value):
        raise StepError(f"{name} must be an even-length hex string")
    data = bytes.fromhex(value)
    if length is not None and len(data) != length:
        raise StepError(f"{name} must be exactly {length} bytes, not {len(data)}")
    return data


def boolean(value: Any, name: str) -> bool:
    """A JSON boolean."""
    if not isinstance(value, bool):
        raise StepError(f"{name} must be true or false")
    return value


def bit(value: Any, name: str) -> int:
    """A one-bit buffer field: 0/1 or false/true (numbers may also be strings)."""
    if isinstance(value, bool):
        return int(value)
    v = integer(value, name)
    if v > 1:
        raise StepError(f"{name} is a one-bit field")
    return v


def page_size(value: Any, name: str) -> int:
    """``"4K"``/``"2M"`` (or 0/1)."""
    if isinstance(value, str) and value.upper() in PAGE_SIZES:
        return PAGE_SIZES[value.upper()]
    if isinstance(value, str | int) and not isinstance(value, bool):
        v = integer(value, name)
        if v in (0, 1):
            return v
    raise StepError(f'{name} must be "4K" or "2M"')


def memory_size(value: Any, name: str) -> int:
    """A size in bytes, or a string such as ``"4G"`` or ``"512M"``."""
    if isinstance(value, str):
        m = re.fullmatch(r"\s*([0-9]+)\s*([KMGT])i?B?\s*", value, re.IGNORECASE)
        if m:
            return int(m.group(1)) * _SIZES[m.group(2).upper()]
    return integer(value, name)


def text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise StepError(f"{name} must be a string")
    return value
