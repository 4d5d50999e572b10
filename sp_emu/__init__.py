"""sp-emu: an executable model of the AMD Secure Processor's SEV-SNP firmware.

Build a :class:`Platform`, then drive it as a hypervisor does: ``platform.cpu`` for the SNP
instructions and memory accesses, ``platform.run``/``platform.execute`` for firmware commands.
Every command returns the status the firmware would; a failed command changes nothing.
"""

from sp_emu.abi import BUFFERS, CommandId, LayoutError, SnpStatus, status_name
from sp_emu.cpu import GuestCpu, VmrunFailed
from sp_emu.errors import SnpError
from sp_emu.firmware import COMMANDS, CommandResult, Firmware
from sp_emu.platform import Platform, PlatformConfig
from sp_emu.products import PRODUCTS, Product
from sp_emu.state import Activation, GuestState, PlatformStateName
from sp_emu.tcb import TcbVersion

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
