"""Declaring a command buffer once: words, bit fields and byte strings at fixed offsets.

A :class:`BufferLayout` is built from a list of members.  From that one declaration it derives

* the ``construct`` Struct of the buffer (whole little-endian words and byte strings, every
  gap named ``reserved_0xNN``), compiled, which parses and builds the bytes;
* the split of bit-field words into named fields;
* a mask of every reserved bit in the buffer, so that the must-be-zero check is one AND;
* the field names a trace may set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import construct as c

_INT = {1: c.Int8ul, 2: c.Int16ul, 4: c.Int32ul, 8: c.Int64ul}


@dataclass(frozen=True)
class Bits:
    """A bit field ``name`` of ``width`` bits at bit ``lsb`` of its word."""

    name: str
    lsb: int
    width: int = 1
    address: bool = False
    """The field is a byte address that fills these bits in place (its low bits are zero)."""


@dataclass(frozen=True)
class Member:
    """One word (or byte string) of a buffer.

    A word with ``bits`` is split into those fields (the other bits are reserved); a word
    without is one integer field called ``name``; ``blob`` marks a byte string.
    """

    offset: int
    size: int
    name: str = ""
    bits: tuple[Bits, ...] = ()
    blob: bool = False

    @property
    def wire_name(self) -> str:
        return self.name or f"word_0x{self.offset:02x}"


def u8(offset: int, name: str) -> Member:
    return Member(offset, 1, name)


def u16(offset: int, name: str) -> Member:
    return Member(offset, 2, name)


def u32(offset: int, name: str) -> Member:
    return Member(offset, 4, name)


def u64(offset: int, name: str) -> Member:
    return Member(offset, 8, name)


def blob(offset: int, size: int, name: str) -> Member:
    return Member(offset, size, name, blob=True)


def bits(offset: int, size: int, *fields: Bits) -> Member:
    return Member(offset, size, bits=fields)


class LayoutError(ValueError):
    """Fields that do not fit the layout (unknown name, value too wide)."""


@dataclass(frozen=True)
class FieldInfo:
    """Where a named field lives: byte offset, size of its word, bit position and width."""

    name: str
    offset: int
    size: int
    lsb: int
    width: int
    blob: bool
    address: bool = False

    def fits(self, value: object) -> bool:
        """Whether ``value`` can be stored in this field."""
        if self.blob:
            return isinstance(value, bytes | bytearray) and len(value) == self.size
        if isinstance(value, bool):
            value = int(value)
        if not isinstance(value, int):
            return False
        if self.address:
            return value & ((1 << self.lsb) - 1) == 0 and 0 <= value < (
                1 << (self.lsb + self.width)
            )
        return 0 <= value < (1 << self.width)


@dataclass
class BufferLayout:
    """The declared layout of one command buffer or firmware structure."""

    name: str
    size: int
    members: tuple[Member, ...]
    fields: dict[str, FieldInfo] = field(init=False)
    reserved_mask: int = field(init=False)
    reserved_ranges: tuple[tuple[int, int], ...] = field(init=False)
    struct: Any = field(init=False, repr=False)
    _compiled: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        members = sorted(self.members, key=lambda m: m.offset)
        wire: list[Any] = []
        fields: dict[str, FieldInfo] = {}
        used = 0  # bit mask of defined bits over the whole buffer
        gaps: list[tuple[int, int]] = []
        pos = 0
        for m in members:
            if m.offset < pos:
                raise ValueError(f"{self.name}: member at {m.offset:#x} overlaps")
            if m.offset > pos:
                wire.append(f"reserved_0x{pos:02x}" / c.Bytes(m.offset - pos))
                gaps.append((pos, m.offset - pos))
            if m.blob:
                wire.append(m.name / c.Bytes(m.size))
                fields[m.name] = FieldInfo(m.name, m.offset, m.size, 0, 8 * m.size, True)
                used |= ((1 << (8 * m.size)) - 1) << (8 * m.offset)
            else:
                wire.append(m.wire_name / _INT[m.size])
                specs = m.bits or (Bits(m.name, 0, 8 * m.size),)
                for b in specs:
                    fields[b.name] = FieldInfo(
                        b.name, m.offset, m.size, b.lsb, b.width, False, b.address
                    )
                    used |= ((1 << b.width) - 1) << (8 * m.offset + b.lsb)
            pos = m.offset + m.size
        if pos < self.size:
            wire.append(f"reserved_0x{pos:02x}" / c.Bytes(self.size - pos))
            gaps.append((pos, self.size - pos))
        elif pos > self.size:
            raise ValueError(f"{self.name}: members run past {self.size:#x}")
        self.fields = fields
        self.reserved_mask = ((1 << (8 * self.size)) - 1) & ~used
        self.reserved_ranges = tuple(gaps)
        self.struct = c.Struct(*wire)
        self._compiled = self.struct.compile()

    # --- bytes -> fields ------------------------------------------------------------------
    def parse(self, data: bytes) -> dict[str, Any]:
        """The named fields of ``data`` (exactly ``size`` bytes).  Reserved bits are not
        returned; check them with :meth:`first_reserved_violation`."""
        words = self._compiled.parse(data)
        out: dict[str, Any] = {}
        for m in self.members:
            value = words[m.wire_name]
            if m.bits:
                for b in m.bits:
                    v = (value >> b.lsb) & ((1 << b.width) - 1)
                    out[b.name] = v << b.lsb if b.address else v
            else:
                out[m.wire_name] = value
        return out

    def first_reserved_violation(self, data: bytes) -> int | None:
        """Byte offset of the first non-zero reserved bit in ``data``, or None."""
        bad = int.from_bytes(data[: self.size], "little") & self.reserved_mask
        if not bad:
            return None
        return ((bad & -bad).bit_length() - 1) // 8

    # --- fields -> bytes ------------------------------------------------------------------
    def build(self, values: Mapping[str, Any] | None = None) -> bytes:
        """The buffer bytes for ``values`` (missing fields are zero, reserved bits zero)."""
        values = dict(values or {})
        unknown = set(values) - set(self.fields)
        if unknown:
            raise LayoutError(f"{self.name} has no field {sorted(unknown)[0]!r}")
        words: dict[str, Any] = {}
        for m in self.members:
            if m.blob:
                raw = values.get(m.name, bytes(m.size))
                if not isinstance(raw, bytes | bytearray) or len(raw) != m.size:
                    raise LayoutError(f"{self.name}.{m.name} takes exactly {m.size} bytes")
                words[m.name] = bytes(raw)
                continue
            word = 0
            for b in m.bits or (Bits(m.wire_name, 0, 8 * m.size),):
                v = values.get(b.name, 0)
                if isinstance(v, bool):
                    v = int(v)
                if not isinstance(v, int):
                    raise LayoutError(f"{self.name}.{b.name} takes an integer")
                if b.address:
                    if v & ((1 << b.lsb) - 1):
                        raise LayoutError(f"{self.name}.{b.name} must be {1 << b.lsb:#x}-aligned")
                    v >>= b.lsb
                if not 0 <= v < (1 << b.width):
                    raise LayoutError(f"{self.name}.{b.name} does not fit in {b.width} bits")
                word |= v << b.lsb
            words[m.wire_name] = word
        for off, size in self.reserved_ranges:
            words[f"reserved_0x{off:02x}"] = bytes(size)
        return bytes(self._compiled.build(words))

    def field_names(self) -> tuple[str, ...]:
        """Names a caller may set, in offset order."""
        return tuple(self.fields)
