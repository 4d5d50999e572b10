"""The firmware's random numbers, made reproducible: a SHAKE-256 stream keyed by a seed.

The real PSP draws keys (VEK, VMPCKs, REPORT_ID, ...) from its TRNG.  The emulator derives
them from the platform seed instead, so the same trace gives the same keys and reports.
"""

from __future__ import annotations

from sp_emu.digests import shake_256


class DeterministicRandom:
    """Bytes drawn in order from SHAKE-256(seed || counter)."""

    __slots__ = ("_counter", "_seed")

    def __init__(self, seed: bytes) -> None:
        self._seed = bytes(seed)
        self._counter = 0

    def bytes(self, n: int) -> bytes:
        """The next ``n`` random bytes."""
        self._counter += 1
        shake = shake_256(self._seed + self._counter.to_bytes(8, "little"))
        return shake.digest(n)

    def state(self) -> int:
        """Where the stream is (for snapshots)."""
        return self._counter

    def restore(self, counter: int) -> None:
        self._counter = counter
