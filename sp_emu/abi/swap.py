"""The 64-byte swap metadata entry SNP_PAGE_SWAP_OUT writes and SNP_PAGE_SWAP_IN consumes
(firmware-commands.md §6 SNP_PAGE_SWAP_OUT / SNP_PAGE_SWAP_IN), and where the emulator keeps
the per-guest swap state inside the guest context page.

Entry (AFW): 0x00 SOFTWARE_DATA u64, 0x08 IV u64, 0x10 AUTH_TAG[16], 0x20 u64 {bit 0 VALID,
bit 1 PAGE_VALIDATED, bit 2 VMSA, bit 3 METADATA, bit 4 PAGE_SIZE, bits 63:12 GPA}, 0x28 u64
VMPL permission word, 0x30-0x3F reserved.
"""

from __future__ import annotations

from binlayout import Bits, BufferLayout, bits, blob, u64

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

MDATA_ENTRY_SIZE: Final = 0x40

MDATA_ENTRY: Final = BufferLayout(
    "SWAP_MDATA_ENTRY",
    MDATA_ENTRY_SIZE,
    (
        u64(0x00, "software_data"),
        u64(0x08, "iv"),
        blob(0x10, 16, "auth_tag"),
        bits(
            0x20,
            8,
            Bits("valid", 0),
            Bits("page_validated", 1),
            Bits("vmsa", 2),
            Bits("metadata", 3),
            Bits("page_size", 4),
            Bits("gpa_pfn", 12, 52),
        ),
        u64(0x28, "vmpl_perms"),
    ),
)
"""One metadata entry; ``gpa_pfn`` is GPA[63:12] (a page number)."""

MDATA_ENTRY_AAD: Final = slice(0x20, 0x30)
"""The entry bytes the AES-GCM tag authenticates (sp-emu's choice; AMD's construction is not
public): the flags/GPA word and the VMPL permission word, as SWAP_OUT writes them (VALID
set).  SOFTWARE_DATA is the host's and is not covered."""

# Swap state the emulator keeps in the guest context page itself (written through the
# firmware's key, so it is journaled with the rest of memory and the host only sees
# ciphertext).  The offsets are sp-emu's: AMD's context-page layout is not public.
GCTX_SWAP_IV_OFFSET: Final = 0xFB8
"""u64: the last IV SWAP_OUT used for this guest (0: none yet)."""
GCTX_ROOT_MDATA_OFFSET: Final = 0xFC0
"""The root metadata entry (ROOT_MDATA_EN), the context page's last 64 bytes."""

SWAP_PAGE_DATA: Final = 0
SWAP_PAGE_METADATA: Final = 1
SWAP_PAGE_VMSA: Final = 2
"""PAGE_TYPE values of the SWAP_OUT / SWAP_IN flags word (3 is reserved)."""
