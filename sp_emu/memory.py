"""System memory: sparse 4 KiB pages addressed by SPA, with the memory controller's
per-guest encryption.

The memory controller encrypts a guest's private pages with that guest's key (AES-XTS,
tweaked by the physical address), so the hypervisor reading one sees ciphertext and the guest
sees plaintext.  The emulator keeps such a page as plaintext tagged with its key and makes the
ciphertext only when someone reads the page under a different key (or none): the bytes anyone
observes are exactly those real hardware would give, at no cost on the common path.
"""

from __future__ import annotations

from rmp import PAGE_4K as PAGE
from rmp.table import Transaction

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_ZERO_PAGE = bytes(PAGE)


class MemoryKey:
    """A memory-encryption key slot's contents: an AES-256-XTS key (64 bytes)."""

    __slots__ = ("key", "name")

    def __init__(self, name: str, key: bytes) -> None:
        if len(key) != 64:
            raise ValueError("AES-256-XTS takes a 64-byte key")
        self.name = name
        self.key = bytes(key)

    def __repr__(self) -> str:
        return f"MemoryKey({self.name!r})"

    def _cipher(self, spa: int) -> Any:
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        return Cipher(algorithms.AES(self.key), modes.XTS((spa & ~0xFFF).to_bytes(16, "little")))

    def encrypt_page(self, spa: int, plaintext: bytes) -> bytes:
        """What DRAM holds for ``plaintext`` written through this key at page ``spa``."""
        enc = self._cipher(spa).encryptor()
        out: bytes = enc.update(plaintext) + enc.finalize()
        return out

    def decrypt_page(self, spa: int, ciphertext: bytes) -> bytes:
        """What a read through this key returns for DRAM contents ``ciphertext``."""
        dec = self._cipher(spa).decryptor()
        out: bytes = dec.update(ciphertext) + dec.finalize()
        return out


Page = bytes | bytearray | memoryview
"""A stored page: never changed in place (a memoryview only ever views immutable bytes)."""
_JournalEntry = tuple[int, Page | None, MemoryKey | None]
"""(pfn, the page object it held or None, the key it was held under)."""


class PhysicalMemory:
    """``size`` bytes of system memory; pages cost memory only once written.

    Every page holds either raw bytes (``key`` None: what DRAM holds) or plaintext under a
    key.  Reads and writes name the key they go through: None for the hypervisor and for
    shared (C-bit clear) guest accesses, the guest's key for private ones.
    """

    __slots__ = ("_data", "_journal", "_keys", "size")

    def __init__(self, size: int) -> None:
        if size <= 0 or size % PAGE:
            raise ValueError("memory is a whole number of 4 KiB pages")
        self.size = size
        self._data: dict[int, Page] = {}
        """pfn -> contents; a page object is never changed in place once stored (a write
        stores a new one), so whole pages are kept without copying and shared freely."""
        self._keys: dict[int, MemoryKey] = {}
        self._journal: list[_JournalEntry] | None = None

    def contains(self, spa: int, length: int = 1) -> bool:
        return spa >= 0 and spa + length <= self.size

    # --- one page ----------------------------------------------------------------------------
    def _page_view(self, pfn: int, key: MemoryKey | None) -> bytes:
        data = self._data.get(pfn)
        if data is None:
            raw: bytes = _ZERO_PAGE
            held = None
        else:
            raw = bytes(data)
            held = self._keys.get(pfn)
        if held is key:
            return raw
        physical = raw if held is None else held.encrypt_page(pfn << 12, raw)
        return physical if key is None else key.decrypt_page(pfn << 12, physical)

    def _store(self, pfn: int, data: Page, key: MemoryKey | None) -> None:
        if self._journal is not None:
            self._journal.append((pfn, self._data.get(pfn), self._keys.get(pfn)))
        self._data[pfn] = data
        if key is None:
            self._keys.pop(pfn, None)
        else:
            self._keys[pfn] = key

    def read(self, spa: int, length: int, key: MemoryKey | None = None) -> bytes:
        """``length`` bytes at ``spa`` as seen through ``key`` (None: the raw DRAM bytes)."""
        self._check(spa, length)
        out = bytearray()
        while length:
            pfn, off = spa >> 12, spa & 0xFFF
            n = min(length, PAGE - off)
            data = self._data.get(pfn)
            if data is not None and self._keys.get(pfn) is key:
                out += data[off : off + n]
            else:
                out += self._page_view(pfn, key)[off : off + n]
            spa += n
            length -= n
        return bytes(out)

    def write(self, spa: int, data: bytes, key: MemoryKey | None = None) -> None:
        """Write ``data`` at ``spa`` through ``key`` (None: raw bytes, as the host does)."""
        self._check(spa, len(data))
        if len(data) == PAGE and not spa & 0xFFF:  # one whole page: the common case
            self._store(spa >> 12, bytes(data), key)  # no copy when data is bytes
            return
        pos = 0
        # Whole pages of an immutable ``bytes`` are kept as views of it, not copies: a
        # launch image then costs no fresh memory (each new page costs a page fault, about
        # 2 us on a virtual machine: a millisecond for a 2 MiB image).
        whole: bytes | memoryview = memoryview(data) if data.__class__ is bytes else data
        while pos < len(data):
            pfn, off = spa >> 12, spa & 0xFFF
            n = min(len(data) - pos, PAGE - off)
            current = self._data.get(pfn)
            page: Page
            if n == PAGE:
                page = whole[pos : pos + n] if whole is not data else bytes(data[pos : pos + n])
            elif current is not None and self._keys.get(pfn) is key:
                page = bytearray(current)
                page[off : off + n] = data[pos : pos + n]
            else:
                page = bytearray(self._page_view(pfn, key))
                page[off : off + n] = data[pos : pos + n]
            self._store(pfn, page, key)
            spa += n
            pos += n

    def write_page(self, spa: int, data: bytes, key: MemoryKey | None = None) -> None:
        """Replace a whole page (``spa`` page aligned, ``data`` 4 KiB) through ``key``."""
        self._store(spa >> 12, bytes(data), key)

    def page_key(self, spa: int) -> MemoryKey | None:
        """The key a page's contents are currently encrypted with (None: plain)."""
        return self._keys.get(spa >> 12)

    def reencrypt(self, spa: int, key: MemoryKey | None) -> None:
        """Encrypt the page in place under ``key``, as the firmware does to launch pages:
        what was readable through no key becomes readable through ``key``."""
        pfn = spa >> 12
        data = self._data.get(pfn)
        if data is not None and pfn not in self._keys:
            self._store(pfn, data, key)  # page objects are never changed in place
            return
        self._store(pfn, self._page_view(pfn, None), key)

    def reencrypt_pages(self, spas: list[int], key: MemoryKey | None) -> None:
        """:meth:`reencrypt` for many pages."""
        for spa in spas:
            self.reencrypt(spa, key)

    def page_bytes(self, spa: int) -> Page:
        """The raw (host-view) contents of the page at ``spa``, without copying when the page
        holds raw bytes (callers must not modify it)."""
        pfn = spa >> 12
        data = self._data.get(pfn)
        if data is None:
            return _ZERO_PAGE
        if pfn not in self._keys:
            return data
        return self._page_view(pfn, None)

    def touched_pages(self) -> int:
        return len(self._data)

    def _check(self, spa: int, length: int) -> None:
        if length < 0 or not self.contains(spa, length):
            raise ValueError(f"[{spa:#x}, +{length:#x}) is outside system memory")

    # --- transactions ------------------------------------------------------------------------
    def transaction(self) -> Transaction:
        """Undo every page written in the block if it raises (``with memory.transaction():``)."""
        return Transaction(self)

    # The transaction's three steps, for a caller that cannot use ``with``: ``outer =
    # begin()``, then ``commit(outer)`` or ``rollback(outer)``.
    def begin(self) -> list[_JournalEntry] | None:
        """Start recording writes; returns the enclosing transaction's record."""
        outer = self._journal
        self._journal = []
        return outer

    def commit(self, outer: list[_JournalEntry] | None) -> None:
        """Keep the writes since :meth:`begin` (the enclosing transaction may still undo)."""
        journal = self._journal
        if outer is not None and journal:
            outer.extend(journal)
        self._journal = outer

    def rollback(self, outer: list[_JournalEntry] | None) -> None:
        """Undo the writes since :meth:`begin`."""
        journal = self._journal
        self._journal = None
        if journal:
            self._undo(journal)
        self._journal = outer

    def _undo(self, journal: list[_JournalEntry]) -> None:
        for pfn, data, key in reversed(journal):
            if data is None:
                self._data.pop(pfn, None)
                self._keys.pop(pfn, None)
            else:
                self._data[pfn] = data
                if key is None:
                    self._keys.pop(pfn, None)
                else:
                    self._keys[pfn] = key

    def fingerprint(self) -> dict[int, tuple[bytes, str | None]]:
        """Every written page and its key name (for tests that compare before and after)."""
        return {
            pfn: (bytes(d), None if (k := self._keys.get(pfn)) is None else k.name)
            for pfn, d in self._data.items()
        }
