"""Traces: scenarios written down as JSON Lines (shared/specs/trace-v1.md), replayed on the
emulator, and recorded from anything done through the Python API."""

from sp_emu.trace.runner import TraceError, TraceRunner, dump_trace, replay_lines
from sp_emu.trace.values import StepError

__all__ = ["StepError", "TraceError", "TraceRunner", "dump_trace", "replay_lines"]
