"""The SNP firmware commands, one function each, grouped by ABI chapter.

Each handler follows the same sections, in the order the firmware makes its checks: ``# CHECKS``
(buffer fields, platform and guest state), ``# PAGES`` (RMP state of the pages it names),
``# COMMIT`` (changes, made only once nothing can fail) and ``# OUTPUT``.

Importing a module of this package registers its handlers in ``sp_emu.firmware.COMMANDS``.
The firmware imports a module the first time one of its commands is looked up (:data:`MODULE_OF`
says which), so a launch loads only the commands it runs; :func:`load_all` loads every one.
"""

from __future__ import annotations

from sp_emu.abi.commands import CommandId as C

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

__all__ = ["MODULE_OF", "load_all"]

MODULE_OF: Final[dict[int, str]] = {
    C.SNP_INIT: "platform",
    C.SNP_INIT_EX: "platform",
    C.SNP_SHUTDOWN: "platform",
    C.SNP_SHUTDOWN_EX: "platform",
    C.SNP_PLATFORM_STATUS: "platform",
    C.SNP_DF_FLUSH: "platform",
    C.SNP_FEATURE_INFO: "platform",
    C.SNP_CONFIG: "platform",
    C.SNP_GCTX_CREATE: "guests",
    C.SNP_ACTIVATE: "guests",
    C.SNP_ACTIVATE_EX: "guests",
    C.SNP_DECOMMISSION: "guests",
    C.SNP_GUEST_STATUS: "guests",
    C.SNP_LAUNCH_START: "launch",
    C.SNP_LAUNCH_UPDATE: "launch_update",
    C.SNP_LAUNCH_FINISH: "launch_finish",
    C.SNP_GUEST_REQUEST: "guest_request",
    C.SNP_DBG_DECRYPT: "debug",
    C.SNP_DBG_ENCRYPT: "debug",
    C.SNP_PAGE_RECLAIM: "pages",
    C.SNP_PAGE_UNSMASH: "pages",
    C.SNP_PAGE_SET_STATE: "pages",
    C.SNP_PAGE_SWAP_OUT: "page_swap",
    C.SNP_PAGE_SWAP_IN: "page_swap",
    C.SNP_PAGE_MOVE: "page_swap",
    C.SNP_PAGE_MD_INIT: "page_swap",
    C.SNP_DOWNLOAD_FIRMWARE_EX: "firmware_update",
    C.SNP_COMMIT: "firmware_update",
    C.SNP_VLEK_LOAD: "vlek",
}
"""Every implemented command id -> the module of this package that implements it (a command
not listed is INVALID_COMMAND)."""


def load_all() -> None:
    """Import every command module (registering every handler)."""
    for module in sorted(set(MODULE_OF.values())):
        __import__(f"{__name__}.{module}")
