"""``python -m sp_emu.cli``: the same as the ``sp-emu`` command."""

from sp_emu.cli.app import main

raise SystemExit(main())
