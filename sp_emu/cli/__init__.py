"""The ``sp-emu`` command line: argument parsing and rendering over the public API."""
