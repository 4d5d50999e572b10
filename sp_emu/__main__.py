"""``python -m sp_emu``: the same as the ``sp-emu`` command."""

from sp_emu.cli.program import run

run()
