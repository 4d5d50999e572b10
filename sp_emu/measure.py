"""The launch digest: a SHA-384 chain over one PAGE_INFO per 4 KiB unit of launched memory.

For each unit SNP_LAUNCH_UPDATE builds PAGE_INFO = {current digest, SHA-384 of the unit's
contents (or zeros), length 0x70, page type, IMI bit, VMPL1-3 permissions, the unit's GPA from
the RMP} and the new digest is SHA-384(PAGE_INFO) (launch-measurement.md §1).  The firmware
calls these functions with its guest context's digest; nothing here keeps state.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from sp_emu.abi.launch import PAGE_INFO, PAGE_INFO_LENGTH

ZERO_CONTENTS = bytes(48)
_TAIL = struct.Struct("<HBBBBBBQ")  # length, type, imi, reserved, vmpl1, vmpl2, vmpl3, gpa
assert _TAIL.size + 96 == PAGE_INFO_LENGTH == PAGE_INFO.size


def page_info(
    digest: bytes,
    contents: bytes,
    page_type: int,
    gpa: int,
    *,
    imi_page: bool = False,
    perms: tuple[int, int, int] = (0, 0, 0),
) -> bytes:
    """The 0x70-byte PAGE_INFO of one 4 KiB unit."""
    tail = _TAIL.pack(PAGE_INFO_LENGTH, page_type, int(imi_page), 0, *perms, gpa)
    return digest + contents + tail


def extend(
    digest: bytes,
    contents: bytes,
    page_type: int,
    gpa: int,
    *,
    imi_page: bool = False,
    perms: tuple[int, int, int] = (0, 0, 0),
) -> bytes:
    """The digest after measuring one unit: SHA-384 of its PAGE_INFO."""
    info = page_info(digest, contents, page_type, gpa, imi_page=imi_page, perms=perms)
    return hashlib.sha384(info).digest()


def content_hash(data: bytes | bytearray | memoryview) -> bytes:
    """SHA-384 of a 4 KiB unit's plaintext (the CONTENTS of NORMAL and VMSA pages)."""
    return hashlib.sha384(data).digest()


class ContentHasher:
    """Hashes many 4 KiB units, on several threads when asked (hashlib releases the GIL for
    large inputs, so two cores hash two pages at once)."""

    def __init__(self, threads: int = 1) -> None:
        self.threads = max(1, threads)
        self._pool = ThreadPoolExecutor(self.threads) if self.threads > 1 else None

    def hash_all(self, units: Sequence[bytes | bytearray | memoryview]) -> list[bytes]:
        if self._pool is None or len(units) < 8:
            return [hashlib.sha384(u).digest() for u in units]
        return list(self._pool.map(content_hash, units, chunksize=max(1, len(units) // 16)))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
