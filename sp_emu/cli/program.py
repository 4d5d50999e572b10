"""The ``sp-emu`` program: :func:`sp_emu.cli.app.main` run as a short-lived process.

Two things that only a whole process may do are kept here, out of ``main`` (which tests and
other programs call in-process):

* The cyclic garbage collector looks at young objects every 100,000 allocations instead of
  every 700.  Importing the emulator creates tens of thousands of long-lived objects, and
  with the default the collector walks them again and again: about 3 ms of a 50 ms command.
  Long commands still collect.
* At the end the process flushes its output and leaves with ``os._exit``, skipping the
  interpreter's teardown of every module and object (1-2 ms).  Nothing of ours relies on
  it: each file is closed by the command that opened it, and no exit handler is registered.
"""

from __future__ import annotations

import gc
import os
import sys


def run() -> None:
    """Run the command line of this process and exit with its status."""
    gc.set_threshold(100_000, 10, 10)
    from sp_emu.cli.app import main

    status = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # e.g. the reader of a pipe went away
        status = status or 141
    os._exit(status)
