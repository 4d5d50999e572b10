"""Exceptions raised by the :mod:`vmsa` package.

Only *expected* failures (a VMSA page that came from outside and is malformed) get a
class here.  Programming errors, such as constructing a :class:`vmsa.Vmsa` with a
value that does not fit its field, raise the built-in ``TypeError`` / ``ValueError``.

The package deliberately knows no SNP firmware status codes: a command handler that
validates a VMSA catches :class:`VmsaInvalid` and chooses the status itself, because
the right code depends on the command (design.md §2.5).
"""

from __future__ import annotations


class VmsaError(Exception):
    """Base class of every expected failure raised by :mod:`vmsa`."""


class VmsaInvalid(VmsaError, ValueError):
    """A VMSA page breaks a rule; ``field`` names the offending field.

    ``field`` is a top-level field name from :data:`vmsa.layout.FIELD_OFFSETS`
    (``"vmpl"``, ``"sev_features"``, ``"reserved_0x0c8"``, ...) or ``"length"`` when
    the buffer is not exactly one 4 KiB page.  ``reason`` is a human-readable sentence.
    """

    field: str
    reason: str

    def __init__(self, field: str, reason: str) -> None:
        """Record which ``field`` broke which rule (``reason``)."""
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

    def __repr__(self) -> str:
        """Constructor-style representation."""
        return f"VmsaInvalid(field={self.field!r}, reason={self.reason!r})"
