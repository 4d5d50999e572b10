"""Declaring a binary layout once: words, bit fields and byte strings at fixed offsets.

A leaf package (standard library only) shared by ``rmp``, ``vmsa`` and ``sp_emu``, so that
every structure of the emulator is declared the same way and ``construct`` is imported only
when a tool asks for the construct form of a layout.

A :class:`BufferLayout` is built from a list of members.  From that one declaration it derives

* the codec that parses and builds the bytes (a ``struct`` format of whole little-endian
  words, byte strings and reserved gaps), and the same layout as a ``construct`` Struct (every
  gap named ``reserved_0xNN``), made on first use;
* the split of bit-field words into named fields;
* the groups of members copied from a smaller layout (:func:`group`, e.g. the ten 16-byte
  segment registers of a VMSA), so that a caller can present them as one value;
* a mask of every reserved bit in the buffer, so that the must-be-zero check is one AND;
* the field names a trace may set.

:mod:`binlayout.records` declares value classes like dataclasses but without their start-up
cost; every package of the emulator uses it for the value types on the launch path.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType

from .records import record, replace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_STRUCT_CODE = {1: "B", 2: "H", 4: "I", 8: "Q"}
_DERIVED = frozenset(
    ("_plan", "_wire", "_words", "fields", "groups", "members", "reserved_mask", "reserved_ranges")
)
"""The attributes of a :class:`BufferLayout` worked out from its declaration on first use."""


@record
class Bits:
    """A bit field ``name`` of ``width`` bits at bit ``lsb`` of its word."""

    name: str
    lsb: int
    width: int = 1
    address: bool = False
    """The field is a byte address that fills these bits in place (its low bits are zero)."""

    # The constructors of Bits, Group, Member and FieldInfo are written out (a record's
    # generic one is slower): the layouts make hundreds of these when they are imported.
    def __init__(self, name: str, lsb: int, width: int = 1, address: bool = False) -> None:
        self.__dict__.update(name=name, lsb=lsb, width=width, address=address)


@record
class Group:
    """A run of members copied from a smaller layout by :func:`group`: its name, and where
    and how large that layout sits in the buffer."""

    name: str
    offset: int
    size: int

    def __init__(self, name: str, offset: int, size: int) -> None:
        self.__dict__.update(name=name, offset=offset, size=size)


@record
class Member:
    """One word (or byte string) of a buffer.

    A word with ``bits`` is split into those fields (the other bits are reserved); a word
    without is one integer field called ``name``; ``blob`` marks a byte string.  ``group``
    is set on the members :func:`group` made.
    """

    offset: int
    size: int
    name: str = ""
    bits: tuple[Bits, ...] = ()
    blob: bool = False
    group: Group | None = None

    def __init__(
        self,
        offset: int,
        size: int,
        name: str = "",
        bits: tuple[Bits, ...] = (),
        blob: bool = False,
        group: Group | None = None,
    ) -> None:
        self.__dict__.update(offset=offset, size=size, name=name, bits=bits, blob=blob, group=group)

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


def group(offset: int, name: str, layout: BufferLayout) -> tuple[Member, ...]:
    """The members of ``layout`` placed at ``offset``, each field renamed ``<name>_<field>``.

    Splice the result into a declaration (``*group(0x10, "cs", SEGMENT)``).  The copies are
    ordinary members of the outer layout (parsed and built flat, ``cs_selector`` ...); each
    carries the :class:`Group`, which the outer layout lists in :attr:`BufferLayout.groups`.
    Gaps of ``layout`` stay reserved bytes of the group.
    """
    where = Group(name, offset, layout.size)
    return tuple(
        replace(
            m,
            offset=offset + m.offset,
            name=f"{name}_{m.name}" if m.name else "",
            bits=tuple(replace(b, name=f"{name}_{b.name}") for b in m.bits),
            group=where,
        )
        for m in layout.members
    )


class LayoutError(ValueError):
    """Fields that do not fit the layout (unknown name, value too wide)."""


@record
class FieldInfo:
    """Where a named field lives: byte offset, size of its word, bit position and width."""

    name: str
    offset: int
    size: int
    lsb: int
    width: int
    blob: bool
    address: bool = False

    def __init__(
        self,
        name: str,
        offset: int,
        size: int,
        lsb: int,
        width: int,
        blob: bool,
        address: bool = False,
    ) -> None:
        self.__dict__.update(
            name=name, offset=offset, size=size, lsb=lsb, width=width, blob=blob, address=address
        )

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


class BufferLayout:
    """The declared layout of one command buffer or firmware structure.

    Parsing and building use a ``struct`` format generated from the declaration (the hot
    path: a command buffer decodes in about a microsecond); :attr:`struct` is the same
    declaration as a ``construct`` Struct, generated on first use, for tools and for the
    tests that check the two codecs agree.
    """

    __slots__ = (
        "_construct",
        "_declared",
        "_plan",
        "_ready",
        "_wire",
        "_words",
        "fields",
        "groups",
        "members",
        "name",
        "reserved_mask",
        "reserved_ranges",
        "size",
    )

    def __init__(self, name: str, size: int, members: Iterable[Member]) -> None:
        self.name = name
        self.size = size
        self._declared = tuple(members)
        self._construct: Any = None
        self._ready = False

    def __getattr__(self, name: str) -> Any:
        # Everything derived from the declaration is worked out on first use, so that a
        # program touching a few of the many declared layouts does not pay for the rest (the
        # declaration's consistency is checked then too; the tests use every layout).
        if name in _DERIVED and not self._ready:
            self._derive()
            return getattr(self, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _derive(self) -> None:
        """Work out the codec, fields, groups and reserved bits from the declaration."""
        size = self.size
        self.members = tuple(sorted(self._declared, key=lambda m: m.offset))
        groups: dict[str, Group] = {}
        for m in self.members:
            if m.group is not None and groups.setdefault(m.group.name, m.group) != m.group:
                raise ValueError(f"{self.name}: two groups are called {m.group.name!r}")
        spans = [(g.offset, g.offset + g.size, g.name) for g in groups.values()]
        for m in self.members if spans else ():  # no member may lie in another's group
            start, end = m.offset, m.offset + m.size
            own = None if m.group is None else m.group.name
            for g_start, g_end, g_name in spans:
                if start < g_end and g_start < end and own != g_name:
                    raise ValueError(f"{self.name}: member at {m.offset:#x} overlaps {g_name}")
        self.groups: Mapping[str, Group] = MappingProxyType(groups)
        fields: dict[str, FieldInfo] = {}
        used = bytearray(size)  # the defined bits of the whole buffer
        gaps: list[tuple[int, int]] = []
        words: list[tuple[Member, tuple[Bits, ...]]] = []
        fmt = "<"
        pos = 0
        for m in self.members:
            if m.offset < pos:
                raise ValueError(f"{self.name}: member at {m.offset:#x} overlaps")
            if m.offset > pos:
                fmt += f"{m.offset - pos}x"
                gaps.append((pos, m.offset - pos))
            if m.blob:
                fmt += f"{m.size}s"
                infos = [FieldInfo(m.name, m.offset, m.size, 0, 8 * m.size, True)]
                word_bits: tuple[Bits, ...] = (Bits(m.wire_name, 0, 8 * m.size),)
                mask = (1 << (8 * m.size)) - 1
            else:
                fmt += _STRUCT_CODE[m.size]
                word_bits = m.bits or (Bits(m.wire_name, 0, 8 * m.size),)
                # A word without bits is one field named after the member (wire_name is
                # its name when it has one).
                field_bits = word_bits if m.bits or m.name else (Bits("", 0, 8 * m.size),)
                infos = [
                    FieldInfo(b.name, m.offset, m.size, b.lsb, b.width, False, b.address)
                    for b in field_bits
                ]
                mask = 0
                for info in infos:
                    mask |= ((1 << info.width) - 1) << info.lsb
            if m.offset + m.size <= size:
                used[m.offset : m.offset + m.size] = mask.to_bytes(m.size, "little")
            words.append((m, word_bits))
            for info in infos:
                if info.name in fields:
                    raise ValueError(f"{self.name}: two fields are called {info.name!r}")
                fields[info.name] = info
            pos = m.offset + m.size
        if pos < self.size:
            fmt += f"{self.size - pos}x"
            gaps.append((pos, self.size - pos))
        elif pos > self.size:
            raise ValueError(f"{self.name}: members run past {self.size:#x}")
        self.fields = fields
        self.reserved_mask = ((1 << (8 * self.size)) - 1) & ~int.from_bytes(used, "little")
        self.reserved_ranges = tuple(gaps)
        self._wire = struct.Struct(fmt)
        # How each wire value becomes fields: (name, None) for a whole word or byte string,
        # (None, bit fields) for a split word.
        self._plan = tuple(
            (m.wire_name, None) if not m.bits else (None, m.bits) for m in self.members
        )
        # How build() makes each word: the member and its bit fields (a whole word is one).
        self._words = tuple(words)
        self._ready = True

    def __repr__(self) -> str:
        return f"BufferLayout({self.name!r}, {self.size:#x})"

    @property
    def struct(self) -> Any:
        """The layout as a ``construct`` Struct (whole words, gaps named ``reserved_0xNN``)."""
        if self._construct is None:
            import construct as c

            ints = {1: c.Int8ul, 2: c.Int16ul, 4: c.Int32ul, 8: c.Int64ul}
            wire: list[Any] = []
            pos = 0
            for m in self.members:
                if m.offset > pos:
                    wire.append(f"reserved_0x{pos:02x}" / c.Bytes(m.offset - pos))
                wire.append(m.wire_name / (c.Bytes(m.size) if m.blob else ints[m.size]))
                pos = m.offset + m.size
            if pos < self.size:
                wire.append(f"reserved_0x{pos:02x}" / c.Bytes(self.size - pos))
            self._construct = c.Struct(*wire)
        return self._construct

    # --- whole wire values -----------------------------------------------------------------
    def unpack(self, data: bytes | bytearray | memoryview) -> tuple[Any, ...]:
        """The raw value of every member of ``data``, in offset order: an int for a word
        (bit-field words whole), ``bytes`` for a byte string.  Gaps are skipped."""
        return self._wire.unpack_from(data)

    def pack(self, values: Sequence[Any]) -> bytes:
        """Inverse of :meth:`unpack`: one raw value per member, gaps zero.  Only ``struct``
        checks the values (a word out of range raises :class:`struct.error`); for callers
        that have already validated them, e.g. a typed model serialising itself."""
        return self._wire.pack(*values)

    # --- bytes -> fields ------------------------------------------------------------------
    def parse(self, data: bytes | bytearray | memoryview) -> dict[str, Any]:
        """The named fields of ``data`` (at least ``size`` bytes).  Reserved bits are not
        returned; check them with :meth:`first_reserved_violation`."""
        out: dict[str, Any] = {}
        for value, (name, bit_fields) in zip(self._wire.unpack_from(data), self._plan, strict=True):
            if bit_fields is None:
                out[name] = value  # type: ignore[index]
            else:
                for b in bit_fields:
                    v = (value >> b.lsb) & ((1 << b.width) - 1)
                    out[b.name] = v << b.lsb if b.address else v
        return out

    def first_reserved_violation(self, data: bytes | bytearray | memoryview) -> int | None:
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
        words: list[Any] = []
        for m, word_bits in self._words:
            if m.blob:
                raw = values.get(m.name, bytes(m.size))
                if not isinstance(raw, bytes | bytearray) or len(raw) != m.size:
                    raise LayoutError(f"{self.name}.{m.name} takes exactly {m.size} bytes")
                words.append(bytes(raw))
                continue
            word = 0
            for b in word_bits:
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
            words.append(word)
        return self._wire.pack(*words)

    def field_names(self) -> tuple[str, ...]:
        """Names a caller may set, in offset order."""
        return tuple(self.fields)
