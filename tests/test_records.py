"""binlayout.records: records behave like the dataclasses they replace (constructor, value
semantics, immutability, field options) and the ``dataclasses`` functions accept them."""

from __future__ import annotations

import copy
import dataclasses

import pytest

from binlayout.records import FrozenInstanceError, field, fields, record, replace


@record
class Point:
    x: int
    y: int = 0
    tags: tuple[str, ...] = ()


@record(frozen=False)
class Bag:
    name: str
    items: list[int] = field(default_factory=list)
    hidden: str = field(default="", repr=False)


@record(kw_only=True)
class Options:
    a: int
    b: int = 2


@record
class Checked:
    value: int
    double: int = field(init=False)

    def __post_init__(self) -> None:
        if self.value < 0:
            raise ValueError("negative")
        object.__setattr__(self, "double", 2 * self.value)


@record
class Point3(Point):
    z: int = 0


def test_constructor_positional_keyword_and_defaults() -> None:
    assert Point(1) == Point(x=1, y=0, tags=())
    assert Point(1, 2).y == 2
    assert Options(a=1).b == 2
    with pytest.raises(TypeError, match="missing required arguments: x"):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'w'"):
        Point(1, w=2)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="multiple values for argument 'x'"):
        Point(1, x=2)  # type: ignore[misc]
    with pytest.raises(TypeError, match="takes 3 positional arguments but 4"):
        Point(1, 2, (), 4)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="positional"):
        Options(1)  # type: ignore[call-arg]


def test_value_semantics_and_immutability() -> None:
    p = Point(1, 2)
    assert p == Point(1, 2) and p != Point(2, 1) and p != Point3(1, 2)
    assert hash(p) == hash(Point(1, 2))
    assert repr(p) == "Point(x=1, y=2, tags=())"
    with pytest.raises(FrozenInstanceError):
        p.x = 3  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del p.x
    assert copy.deepcopy(p) == p


def test_mutable_records_and_field_options() -> None:
    a, b = Bag("a"), Bag("b")
    a.items.append(1)
    assert b.items == [] and a.items == [1]
    a.name = "c"
    assert repr(a) == "Bag(name='c', items=[1])"
    assert Bag.__hash__ is None
    assert Checked(3).double == 6
    with pytest.raises(ValueError):
        Checked(-1)
    with pytest.raises(TypeError):
        Checked(1, double=2)


def test_inherited_fields() -> None:
    p = Point3(1, 2, ("t",), 3)
    assert [f.name for f in fields(p)] == ["x", "y", "tags", "z"]
    assert repr(p) == "Point3(x=1, y=2, tags=('t',), z=3)"


def test_replace_and_fields() -> None:
    assert replace(Point(1, 2), y=5) == Point(1, 5)
    assert replace(Checked(2), value=4).double == 8
    with pytest.raises(ValueError):
        replace(Checked(2), double=1)
    with pytest.raises(TypeError):
        fields(object())


def test_the_dataclasses_functions_accept_records() -> None:
    p = Point(1, 2)
    assert dataclasses.is_dataclass(p)
    assert dataclasses.replace(p, x=7) == Point(7, 2)
    assert dataclasses.asdict(p) == {"x": 1, "y": 2, "tags": ()}
    assert [f.name for f in dataclasses.fields(Point3)] == ["x", "y", "tags", "z"]
    assert [f.name for f in dataclasses.fields(Checked) if f.init] == ["value"]


def test_declaration_errors() -> None:
    with pytest.raises(TypeError, match="non-default argument"):

        @record
        class Bad:
            a: int = 0
            b: int  # type: ignore[misc]

    with pytest.raises(ValueError, match="mutable default"):

        @record
        class Shared:
            a: list[int] = []  # noqa: RUF012
