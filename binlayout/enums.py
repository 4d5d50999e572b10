"""Enumerations declared as usual but created the way the standard library creates its own.

A class statement ``class SnpStatus(IntEnum)`` runs the enum machinery for every member and
costs about 10 us a member: with the status codes, command ids, page states and flags the
launch path needs (some 170 members) that was a twentieth of ``sp-emu measure``.  The
standard library declares its own large enums (``http.HTTPStatus``, ``re.RegexFlag``) with
``enum._simple_enum``, which makes the same kind of class from a plain one in less than half
the time.  :func:`fast_enum` does that here::

    @fast_enum(IntEnum)
    class PageType(IntEnumBase):
        NORMAL = 1

``IntEnumBase`` is ``IntEnum`` to a type checker and ``object`` at run time (the decorator
needs a plain class).  The result is an ordinary ``IntEnum`` subclass, identical in use.
Where ``enum._simple_enum`` is missing (a future Python), the class is made by the enum
metaclass as a class statement would.
"""

from __future__ import annotations

import enum

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from enum import Enum as EnumBase
    from enum import IntEnum as IntEnumBase
    from enum import IntFlag as IntFlagBase
    from typing import Any, TypeVar

    T = TypeVar("T")
else:
    EnumBase = IntEnumBase = IntFlagBase = object

__all__ = ["EnumBase", "IntEnumBase", "IntFlagBase", "fast_enum"]

_SIMPLE_ENUM = getattr(enum, "_simple_enum", None)


def fast_enum(kind: type[enum.Enum]) -> Callable[[type[T]], type[T]]:
    """Turn the decorated plain class into an enumeration of ``kind`` (``Enum``,
    ``IntEnum``, ``IntFlag``): its public class attributes become the members, its
    methods and properties stay methods and properties."""

    def build(cls: type[T]) -> type[T]:
        if _SIMPLE_ENUM is not None:
            made: type[T] = _SIMPLE_ENUM(kind)(cls)
            return made
        metaclass: Any = type(kind)
        namespace = metaclass.__prepare__(cls.__name__, (kind,))
        for key, value in cls.__dict__.items():
            if key not in ("__dict__", "__weakref__"):
                namespace[key] = value
        made = metaclass(cls.__name__, (kind,), namespace)
        return made

    return build
