"""The SNP firmware commands, one function each, grouped by ABI chapter.

Importing this package registers every handler in ``sp_emu.firmware.COMMANDS``.  Each handler
follows the same sections, in the order the firmware makes its checks: ``# CHECKS`` (buffer
fields, platform and guest state), ``# PAGES`` (RMP state of the pages it names), ``# COMMIT``
(changes, made only once nothing can fail) and ``# OUTPUT``.
"""

from sp_emu.commands import (
    debug,
    firmware_update,
    guest_request,
    guests,
    launch,
    launch_finish,
    launch_update,
    pages,
    platform,
    vlek,
)

__all__ = [
    "debug",
    "firmware_update",
    "guest_request",
    "guests",
    "launch",
    "launch_finish",
    "launch_update",
    "pages",
    "platform",
    "vlek",
]
