"""Expected firmware failures: each carries the status code the firmware returns.

A command handler raises :class:`SnpError` when the command must fail; the firmware's one
entry point turns it into the status and undoes anything the command changed.  Any other
exception from a handler is a bug in the emulator and propagates.
"""

from __future__ import annotations

from collections.abc import Callable

from rmp import PageState, RmpCheck
from sp_emu.abi.status import SnpStatus


class SnpError(Exception):
    """A modelled firmware failure; ``status`` is what the firmware returns.

    ``effect`` is what the ABI says a failing command still does, applied after everything
    else the command did has been undone (the one case: a rejected CPUID page is written
    back to the host, corrected, in plaintext).
    """

    def __init__(
        self, status: SnpStatus, detail: str = "", *, effect: Callable[[], None] | None = None
    ) -> None:
        super().__init__(f"{status.describe()}: {detail}" if detail else status.describe())
        self.status = status
        self.detail = detail
        self.effect = effect


RMP_CHECK_TO_STATUS: dict[RmpCheck, SnpStatus] = {
    RmpCheck.NOT_ASSIGNED: SnpStatus.INVALID_PAGE_STATE,
    RmpCheck.ASSIGNED: SnpStatus.INVALID_PAGE_STATE,
    RmpCheck.IMMUTABLE: SnpStatus.INVALID_PAGE_STATE,
    RmpCheck.NOT_VALIDATED: SnpStatus.INVALID_PAGE_STATE,
    RmpCheck.OWNER: SnpStatus.INVALID_PAGE_OWNER,
    RmpCheck.PAGE_SIZE: SnpStatus.INVALID_PAGE_SIZE,
    RmpCheck.NOT_COVERED: SnpStatus.INVALID_ADDRESS,
    RmpCheck.GPA: SnpStatus.INVALID_PARAM,
    RmpCheck.VMPL_PERMISSION: SnpStatus.INVALID_PARAM,
    RmpCheck.VMPL_PRIVILEGE: SnpStatus.INVALID_PARAM,
}
"""The one mapping from an RMP rule the firmware finds broken to the status it returns."""


def require_state(state: PageState, allowed: tuple[PageState, ...], what: str) -> None:
    """Fail with INVALID_PAGE_STATE unless ``state`` is one of ``allowed``."""
    if state not in allowed:
        names = "/".join(s.name for s in allowed)
        raise SnpError(SnpStatus.INVALID_PAGE_STATE, f"{what} is {state.name}, not {names}")
