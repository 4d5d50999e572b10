"""The launch digest: a SHA-384 chain over one PAGE_INFO per 4 KiB unit of launched memory.

For each unit SNP_LAUNCH_UPDATE builds PAGE_INFO = {current digest, SHA-384 of the unit's
contents (or zeros), length 0x70, page type, IMI bit, VMPL1-3 permissions, the unit's GPA from
the RMP} and the new digest is SHA-384(PAGE_INFO) (launch-measurement.md §1).  The firmware
calls these functions with its guest context's digest; nothing here keeps state.
"""

from __future__ import annotations

from collections.abc import Sequence

from sp_emu.abi.launch import PAGE_INFO, PAGE_INFO_LENGTH
from sp_emu.digests import bulk_sha384, openssl_sha384, sha384

TYPE_CHECKING = False
if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

ZERO_CONTENTS = bytes(48)
_MIDDLES: dict[tuple[int, bool, tuple[int, int, int]], bytes] = {}
"""The bytes of PAGE_INFO between CONTENTS and GPA, by (page type, IMI, permissions)."""


def _middle(page_type: int, imi_page: bool, perms: tuple[int, int, int]) -> bytes:
    """PAGE_INFO's bytes after CONTENTS and before GPA (cut from the declared layout once
    per kind of unit; a launch has a handful)."""
    key = (page_type, imi_page, perms)
    middle = _MIDDLES.get(key)
    if middle is None:
        info = PAGE_INFO.build(
            {
                "length": PAGE_INFO_LENGTH,
                "page_type": page_type,
                "imi_page": int(imi_page),
                "vmpl1_perms": perms[0],
                "vmpl2_perms": perms[1],
                "vmpl3_perms": perms[2],
            }
        )
        contents, gpa = PAGE_INFO.fields["contents"], PAGE_INFO.fields["gpa"]
        middle = info[contents.offset + contents.size : gpa.offset]
        _MIDDLES[key] = middle
    return middle


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
    return digest + contents + _middle(page_type, imi_page, perms) + gpa.to_bytes(8, "little")


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
    out: bytes = sha384(info).digest()
    return out


def extend_run(
    digest: bytes,
    contents: Sequence[bytes],
    page_type: int,
    first_gpa: int,
    imi_page: bool = False,
    perms: tuple[int, int, int] = (0, 0, 0),
) -> list[bytes]:
    """The digests after measuring consecutive units at ``first_gpa``, ``first_gpa+0x1000``,
    ...: one entry per unit (the same chain as calling :func:`extend` for each)."""
    middle = _middle(page_type, imi_page, perms)
    out = []
    gpa = first_gpa
    for c in contents:
        digest = sha384(digest + c + middle + gpa.to_bytes(8, "little")).digest()
        out.append(digest)
        gpa += 0x1000
    return out


def content_hash(data: bytes | bytearray | memoryview) -> bytes:
    """SHA-384 of a 4 KiB unit's plaintext (the CONTENTS of NORMAL and VMSA pages)."""
    out: bytes = sha384(data).digest()
    return out


def _hash_list(units: Sequence[bytes | bytearray | memoryview]) -> list[bytes]:
    sha = openssl_sha384()  # releases the interpreter lock while it hashes
    return [sha(u).digest() for u in units]


class ContentHasher:
    """Hashes many 4 KiB units, on several threads when asked (OpenSSL's SHA-384 releases
    the GIL for large inputs, so two cores hash two pages at once)."""

    def __init__(self, threads: int = 1) -> None:
        self.threads = max(1, threads)
        self._last: tuple[bytes | bytearray | memoryview, bytes] = (b"", b"")
        self._pool: ThreadPoolExecutor | None = None
        if self.threads > 1:
            from concurrent.futures import ThreadPoolExecutor  # only with threads (start-up)

            self._pool = ThreadPoolExecutor(self.threads - 1)

    def hash_one(self, unit: bytes | bytearray | memoryview) -> bytes:
        """SHA-384 of one unit.  The last unit and its hash are remembered: runs of identical
        pages (an image's erased flash, 0xFF) are compared, not hashed again."""
        if unit.__class__ is not bytes:
            unit = bytes(unit)  # an immutable copy to keep (and bytes compare fast)
        last, last_digest = self._last
        if unit == last:
            return last_digest
        digest = bulk_sha384(unit)
        self._last = (unit, digest)
        return digest

    def hash_all(self, units: Sequence[bytes | bytearray | memoryview]) -> list[bytes]:
        """SHA-384 of every unit, in order; one share of the units per thread."""
        if self._pool is None or len(units) < 2 * self.threads:
            return [bulk_sha384(u) for u in units]
        share = -(-len(units) // self.threads)
        parts = [units[i : i + share] for i in range(0, len(units), share)]
        futures = [self._pool.submit(_hash_list, part) for part in parts[1:]]
        out = _hash_list(parts[0])  # this thread takes the first share itself
        for future in futures:
            out.extend(future.result())
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
