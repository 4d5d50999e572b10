"""sp-emu: an executable model of the AMD Secure Processor's SEV-SNP firmware.

Build a :class:`Platform`, then drive it as a hypervisor does: ``platform.cpu`` for the SNP
instructions and memory accesses, ``platform.run``/``platform.execute`` for firmware commands.
Every command returns the status the firmware would; a failed command changes nothing.
"""

from __future__ import annotations

from binlayout.lazy import lazy_exports

_EXPORTS = {
    "Activation": "sp_emu.state",
    "BUFFERS": "sp_emu.abi",
    "COMMANDS": "sp_emu.firmware",
    "CommandId": "sp_emu.abi",
    "CommandResult": "sp_emu.firmware",
    "Firmware": "sp_emu.firmware",
    "GuestCpu": "sp_emu.cpu",
    "GuestState": "sp_emu.state",
    "LayoutError": "sp_emu.abi",
    "PRODUCTS": "sp_emu.products",
    "Platform": "sp_emu.platform",
    "PlatformConfig": "sp_emu.platform",
    "PlatformStateName": "sp_emu.state",
    "Product": "sp_emu.products",
    "SnpError": "sp_emu.errors",
    "SnpStatus": "sp_emu.abi",
    "TcbVersion": "sp_emu.tcb",
    "VmrunFailed": "sp_emu.cpu",
    "status_name": "sp_emu.abi",
}
"""Public name -> module that defines it; imported on first use so that ``import sp_emu``
(and the command line's start-up) stays cheap."""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sp_emu.abi import BUFFERS, CommandId, LayoutError, SnpStatus, status_name
    from sp_emu.cpu import GuestCpu, VmrunFailed
    from sp_emu.errors import SnpError
    from sp_emu.firmware import COMMANDS, CommandResult, Firmware
    from sp_emu.platform import Platform, PlatformConfig
    from sp_emu.products import PRODUCTS, Product
    from sp_emu.state import Activation, GuestState, PlatformStateName
    from sp_emu.tcb import TcbVersion


__getattr__ = lazy_exports(__name__, _EXPORTS, globals())


__all__ = [
    "BUFFERS",
    "COMMANDS",
    "PRODUCTS",
    "Activation",
    "CommandId",
    "CommandResult",
    "Firmware",
    "GuestCpu",
    "GuestState",
    "LayoutError",
    "Platform",
    "PlatformConfig",
    "PlatformStateName",
    "Product",
    "SnpError",
    "SnpStatus",
    "TcbVersion",
    "VmrunFailed",
    "status_name",
]
