"""binlayout.enums: a fast_enum class behaves as the class statement's enum would, with the
standard library's fast path and without it."""

from __future__ import annotations

import enum
import pickle

import pytest

from binlayout import enums
from binlayout.enums import IntEnumBase, IntFlagBase, fast_enum
from rmp import PageState
from sp_emu.abi import SnpStatus
from sp_emu.abi.launch import GuestPolicy, PageType
from vmsa import SevFeatures


def _statement_twin(cls: type[enum.Enum]) -> type[enum.Enum]:
    """The same enum made by the functional API (the class statement's machinery)."""
    kind = next(b for b in (enum.IntFlag, enum.IntEnum, enum.Enum) if issubclass(cls, b))
    return kind(cls.__name__, [(m.name, m.value) for m in cls])  # type: ignore[return-value]


@pytest.mark.parametrize("cls", [SnpStatus, PageType, GuestPolicy, SevFeatures, PageState])
def test_product_enums_match_their_class_statement_twin(cls: type[enum.Enum]) -> None:
    twin = _statement_twin(cls)
    assert type(cls) is type(twin)
    assert [(m.name, m.value) for m in cls] == [(m.name, m.value) for m in twin]
    for member in cls:
        assert cls(member.value) is member and cls[member.name] is member
        assert repr(member) == repr(twin[member.name])
        assert str(member) == str(twin[member.name])
        assert format(member) == format(twin[member.name])
        assert pickle.loads(pickle.dumps(member)) is member
    with pytest.raises(ValueError):
        cls(0x7FFF_FFFF if not issubclass(cls, enum.Flag) else "nope")


def test_flags_combine_as_flags() -> None:
    both = GuestPolicy.SMT | GuestPolicy.DEBUG
    assert isinstance(both, GuestPolicy) and GuestPolicy.SMT in both
    assert int(both) == int(GuestPolicy.SMT) | int(GuestPolicy.DEBUG)
    assert GuestPolicy.SMT not in (both & ~GuestPolicy.SMT)


def test_methods_and_fallback_without_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    for fast in (True, False):
        if not fast:
            monkeypatch.setattr(enums, "_SIMPLE_ENUM", None)

        @fast_enum(enum.IntEnum)
        class Colour(IntEnumBase):
            RED = 1
            GREEN = 2

            def shout(self) -> str:
                return self.name.upper() + "!"

        @fast_enum(enum.IntFlag)
        class Bits(IntFlagBase):
            A = 1
            B = 2

        assert issubclass(Colour, enum.IntEnum) and Colour(2) is Colour.GREEN
        assert Colour.RED.shout() == "RED!" and Colour.RED == 1
        assert [m.name for m in Colour] == ["RED", "GREEN"]
        assert (Bits.A | Bits.B).value == 3 and Bits(3) == Bits.A | Bits.B
