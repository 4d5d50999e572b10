"""The command table: every implemented command is listed where it is implemented, and a
lookup loads only the module that implements it."""

from __future__ import annotations

import subprocess
import sys

from sp_emu.commands import MODULE_OF, load_all
from sp_emu.firmware import COMMANDS


def test_every_listed_command_is_registered_by_its_module() -> None:
    load_all()
    assert set(COMMANDS) == set(MODULE_OF)
    for cmd, module in MODULE_OF.items():
        assert COMMANDS[cmd].handler.__module__ == f"sp_emu.commands.{module}"
        assert COMMANDS[cmd].command == cmd


def test_unlisted_commands_are_not_in_the_table() -> None:
    # Every CommandId is implemented now; 0xC4 names no command.
    assert 0xC4 not in COMMANDS
    assert COMMANDS.spec(0xC4) is None
    assert COMMANDS.spec(0x7FF) is None


def test_a_lookup_loads_only_its_module() -> None:
    code = (
        "import sys; from sp_emu.firmware import COMMANDS; COMMANDS.spec(0xA1); "
        "print(sorted(m for m in sys.modules if m.startswith('sp_emu.commands.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['sp_emu.commands.guests', 'sp_emu.commands.launch_update']"
