"""The firmware's binary interface: command ids, status codes, buffer and structure layouts.

Nothing here changes state; it turns bytes into named fields and back.
"""

from binlayout import BufferLayout, LayoutError
from sp_emu.abi.buffers import BUFFERS
from sp_emu.abi.commands import CommandId
from sp_emu.abi.status import SnpStatus, status_name

__all__ = ["BUFFERS", "BufferLayout", "CommandId", "LayoutError", "SnpStatus", "status_name"]
