"""Package attributes imported on first use.

A package that re-exports names from its modules would import every module when it is
imported itself; the command line's start-up then pays for modules a launch never uses.
:func:`lazy_exports` makes the module ``__getattr__`` that imports a name's module the first
time the name is read and caches the value in the package (later reads are plain lookups).
It imports with ``__import__``: importing ``importlib`` would import ``warnings`` too.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, str], namespace: dict[str, Any]
) -> Callable[[str], Any]:
    """The ``__getattr__`` of ``package``, whose globals are ``namespace``: ``exports`` maps
    each public name to the module that defines it, absolute or (``.name``) relative."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        if module.startswith("."):
            module = package + module
        __import__(module)
        value = getattr(sys.modules[module], name)
        namespace[name] = value
        return value

    return __getattr__
