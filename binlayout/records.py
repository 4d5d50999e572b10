"""Value classes declared like dataclasses, without their start-up cost.

``dataclasses`` writes the source of each decorated class's ``__init__``, ``__repr__``,
``__eq__``, ``__hash__`` (and, when frozen, ``__setattr__``/``__delattr__``) and compiles it
when the class is created: about 0.7 ms per class, which for the few dozen value types on
the path of ``sp-emu measure`` was a third of its start-up time.  :func:`record` gives a class
the same methods as functions shared by every record, which read the class's field table
(``__record_meta__``), so declaring one costs microseconds and instances behave the same
(the methods are a little slower to call, which matters for none of these types; the
records made once per page write their own ``__init__``).

The declaration is a dataclass's: annotated fields in order, defaults as class attributes,
:func:`field` for a default factory, ``init=False`` or ``repr=False``; ``__post_init__``;
fields inherited from a base record.  Type checkers treat a record as a dataclass
(``typing.dataclass_transform``).  :func:`replace` and :func:`fields` stand in for their
``dataclasses`` namesakes without importing that module (records also work with the
``dataclasses`` functions themselves, which then import it).  Not supported (not needed so
far): ``ClassVar`` and ``InitVar`` fields, ordering, ``__match_args__``, ``__slots__``.

A leaf module (standard library only), shared by ``binlayout``, ``rmp``, ``vmsa`` and
``sp_emu`` like the rest of this package.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TypeVar, dataclass_transform, overload

    T = TypeVar("T")
else:  # ``typing`` costs start-up time; at run time this decorator does nothing

    def dataclass_transform(**_options):
        return lambda func: func


__all__ = ["Field", "FrozenInstanceError", "field", "fields", "record", "replace"]
_UNSUPPORTED = ("ClassVar", "typing.ClassVar", "InitVar", "dataclasses.InitVar")


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
"""No default (and no default factory) was given."""


class FrozenInstanceError(AttributeError):
    """Assignment to a field of a frozen record."""


class Field:
    """One field of a record: its name, default or default factory, and options."""

    __slots__ = ("default", "default_factory", "init", "kw_only", "name", "repr", "type")

    def __init__(
        self,
        default: Any = MISSING,
        default_factory: Any = MISSING,
        init: bool = True,
        repr: bool = True,
        kw_only: Any = MISSING,
    ) -> None:
        if default is not MISSING and default_factory is not MISSING:
            raise ValueError("a field takes a default or a default factory, not both")
        self.name = ""
        self.type: Any = None
        self.default = default
        self.default_factory = default_factory
        self.init = init
        self.repr = repr
        self.kw_only = kw_only

    def __repr__(self) -> str:
        return f"Field({self.name!r}, default={self.default!r})"


def field(
    *,
    default: Any = MISSING,
    default_factory: Callable[[], Any] | Any = MISSING,
    init: bool = True,
    repr: bool = True,
    kw_only: bool | Any = MISSING,
) -> Any:
    """Field options, as ``dataclasses.field``: ``x: list[int] = field(default_factory=list)``."""
    return Field(default, default_factory, init, repr, kw_only)


def fields(class_or_instance: Any) -> tuple[Field, ...]:
    """The fields of a record class (or of a record's class), in declaration order."""
    cls = class_or_instance if isinstance(class_or_instance, type) else type(class_or_instance)
    found: tuple[Field, ...] | None = getattr(cls, "__record_fields__", None)
    if found is None:
        raise TypeError(f"{cls.__name__} is not a record")
    return found


def replace(obj: T, /, **changes: Any) -> T:
    """A copy of record ``obj`` with ``changes`` applied (through ``__init__``, so checked)."""
    for f in fields(obj):
        if not f.init:
            if f.name in changes:
                raise ValueError(f"field {f.name!r} is not set by __init__ and cannot be replaced")
        elif f.name not in changes:
            changes[f.name] = getattr(obj, f.name)
    return type(obj)(**changes)


if TYPE_CHECKING:

    @overload
    def record(cls: type[T], /) -> type[T]: ...

    @overload
    def record(
        *, frozen: bool = True, eq: bool = True, kw_only: bool = False
    ) -> Callable[[type[T]], type[T]]: ...


@dataclass_transform(frozen_default=True, field_specifiers=(field, Field))
def record(
    cls: type[T] | None = None, /, *, frozen: bool = True, eq: bool = True, kw_only: bool = False
) -> type[T] | Callable[[type[T]], type[T]]:
    """Make ``cls`` a record: ``@record`` (frozen) or ``@record(frozen=False)``.

    Adds ``__init__``, ``__repr__``, ``__eq__`` (with ``eq``) and ``__hash__`` (frozen and
    ``eq``: hashable; mutable: unhashable), and for a frozen record a ``__setattr__`` and
    ``__delattr__`` that raise :class:`FrozenInstanceError`.  Methods the class body defines
    itself are kept.
    """

    def wrap(c: type[T]) -> type[T]:
        return _process(c, frozen=frozen, eq=eq, kw_only=kw_only)

    return wrap if cls is None else wrap(cls)


def _collect(cls: type, kw_only: bool) -> tuple[Field, ...]:
    found: dict[str, Field] = {}
    for base in reversed(cls.__mro__[1:]):
        for f in base.__dict__.get("__record_fields__", ()):
            found[f.name] = f
    own = cls.__dict__.get("__annotations__", {})  # noqa: RUF063 (inspect costs start-up time)
    for name, annotation in own.items():
        if isinstance(annotation, str) and annotation.startswith(_UNSUPPORTED):
            raise TypeError(f"{cls.__name__}.{name}: ClassVar and InitVar are not supported")
        value = cls.__dict__.get(name, MISSING)
        if isinstance(value, Field):
            f = value
            if f.default is MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, f.default)
        else:
            f = Field(value)
        if isinstance(f.default, list | dict | set):
            raise ValueError(f"{cls.__name__}.{name}: mutable default, use default_factory")
        f.name = name
        f.type = annotation
        if f.kw_only is MISSING:
            f.kw_only = kw_only
        found.pop(name, None)
        found[name] = f
    return tuple(found.values())


class _Meta:
    """What a record's shared methods need to know about its class."""

    __slots__ = (
        "accepted",
        "defaults",
        "factories",
        "n_positional",
        "n_set",
        "name",
        "positional",
        "post_init",
        "repr_names",
        "required",
        "values_of",
    )
    accepted: frozenset[str]
    defaults: dict[str, Any]
    factories: tuple[tuple[str, Any], ...]
    n_positional: int
    n_set: int
    name: str
    positional: tuple[str, ...]
    post_init: bool
    repr_names: tuple[str, ...]
    required: tuple[str, ...]
    values_of: Callable[[Any], Any]


# The methods every record shares: each reads its class's _Meta (making six new functions
# per class cost a record class most of its creation time).
def _record_init(self: Any, *args: Any, **kwargs: Any) -> None:
    meta: _Meta = self.__class__.__record_meta__
    if len(args) > meta.n_positional:
        raise TypeError(
            f"{meta.name}() takes {meta.n_positional} positional arguments "
            f"but {len(args)} were given"
        )
    values = self.__dict__
    values.update(meta.defaults)
    values.update(zip(meta.positional, args, strict=False))
    if kwargs:
        if not meta.accepted.issuperset(kwargs):
            key = next(k for k in kwargs if k not in meta.accepted)
            raise TypeError(f"{meta.name}() got an unexpected keyword argument {key!r}")
        for key in meta.positional[: len(args)]:
            if key in kwargs:
                raise TypeError(f"{meta.name}() got multiple values for argument {key!r}")
        values.update(kwargs)
    for key, factory in meta.factories:
        if key not in values:
            values[key] = factory()
    if len(values) != meta.n_set:
        missing = [k for k in meta.required if k not in values]
        raise TypeError(f"{meta.name}() missing required arguments: {', '.join(missing)}")
    if meta.post_init:
        self.__post_init__()


def _record_repr(self: Any) -> str:
    meta: _Meta = self.__class__.__record_meta__
    body = ", ".join(f"{n}={getattr(self, n)!r}" for n in meta.repr_names)
    return f"{type(self).__qualname__}({body})"


def _record_eq(self: Any, other: object) -> Any:
    values_of = self.__class__.__record_meta__.values_of
    if other.__class__ is not self.__class__:
        return NotImplemented
    return values_of(self) == values_of(other)


def _record_hash(self: Any) -> int:
    return hash(self.__class__.__record_meta__.values_of(self))


def _record_setattr(self: Any, key: str, value: object) -> None:
    raise FrozenInstanceError(
        f"cannot assign to field {key!r} of frozen {self.__class__.__record_meta__.name}"
    )


def _record_delattr(self: Any, key: str) -> None:
    raise FrozenInstanceError(
        f"cannot delete field {key!r} of frozen {self.__class__.__record_meta__.name}"
    )


def _process(cls: type[T], *, frozen: bool, eq: bool, kw_only: bool) -> type[T]:
    all_fields = _collect(cls, kw_only)
    meta = _Meta()
    meta.name = name = cls.__qualname__
    init_fields = [f for f in all_fields if f.init]
    positional = tuple(f.name for f in init_fields if not f.kw_only)
    accepted = frozenset(f.name for f in init_fields)
    seen_default = False
    for f in init_fields:
        if f.kw_only:
            continue
        if f.default is not MISSING or f.default_factory is not MISSING:
            seen_default = True
        elif seen_default:
            raise TypeError(f"{name}: non-default argument {f.name!r} follows default argument")
    defaults = {f.name: f.default for f in all_fields if f.default is not MISSING}
    factories = tuple(
        (f.name, f.default_factory) for f in all_fields if f.default_factory is not MISSING
    )
    names = tuple(f.name for f in all_fields)
    meta.positional, meta.accepted, meta.defaults, meta.factories = (
        positional,
        accepted,
        defaults,
        factories,
    )
    meta.required = tuple(
        f.name for f in init_fields if f.default is MISSING and f.default_factory is MISSING
    )
    meta.post_init = getattr(cls, "__post_init__", None) is not None
    meta.values_of = attrgetter(*names) if names else (lambda _obj: ())
    meta.repr_names = tuple(f.name for f in all_fields if f.repr)
    meta.n_positional = len(positional)
    meta.n_set = len(accepted | defaults.keys() | {key for key, _ in factories})
    cls.__record_meta__ = meta  # type: ignore[attr-defined]

    own = cls.__dict__
    methods: dict[str, Any] = {"__init__": _record_init, "__repr__": _record_repr}
    if eq:
        methods["__eq__"] = _record_eq
    if frozen:
        methods["__setattr__"] = _record_setattr
        methods["__delattr__"] = _record_delattr
    for key, method in methods.items():
        if key not in own:
            setattr(cls, key, method)
    explicit_hash = own.get("__hash__", MISSING)
    if explicit_hash is MISSING or (explicit_hash is None and "__eq__" in own):
        if eq and frozen:
            cls.__hash__ = _record_hash  # type: ignore[method-assign]
        elif eq:
            cls.__hash__ = None  # type: ignore[method-assign,assignment]
    cls.__record_fields__ = all_fields  # type: ignore[attr-defined]
    cls.__dataclass_fields__ = _DataclassFields()  # type: ignore[attr-defined]
    return cls


class _DataclassFields:
    """A record's ``__dataclass_fields__``, made on first use.

    The functions of :mod:`dataclasses` (``fields``, ``replace``, ``asdict``,
    ``is_dataclass``, ...) recognise a dataclass by this attribute, so with it they accept
    records too; the module (and its ``inspect`` import) is loaded only by code that calls
    them.  The fields are a dataclass's own, made by ``dataclasses.make_dataclass`` from the
    record's declaration, and are cached on the record class.
    """

    def __get__(self, obj: object, owner: type) -> dict[str, Any]:
        import dataclasses

        spec = []
        for f in fields(owner):
            options: dict[str, Any] = {"init": f.init, "repr": f.repr, "kw_only": f.kw_only}
            if f.default is not MISSING:
                options["default"] = f.default
            if f.default_factory is not MISSING:
                options["default_factory"] = f.default_factory
            spec.append((f.name, f.type, dataclasses.field(**options)))
        shadow = dataclasses.make_dataclass(owner.__name__, spec)
        found: dict[str, Any] = vars(shadow)["__dataclass_fields__"]
        owner.__dataclass_fields__ = found  # type: ignore[attr-defined]
        return found
