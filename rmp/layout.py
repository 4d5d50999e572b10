"""Byte layouts of the RMP: the raw 16-byte entry and the RMPUPDATE/RMPREAD state.

Each layout is declared once, as a table of bit fields.  The same table yields the
:mod:`binlayout` declaration (used to parse and build bytes, and whose ``.struct`` is the
``construct`` form) and the shift/mask constants the instruction model uses on its hot
path, so the two can never disagree: every :class:`BitField` below *is* a
:class:`binlayout.Bits` member of its layout.

Raw entry (Milan/Genoa, family 19h PPR; AFW ``sev_rmp.h``; Linux ``arch/x86/virt/svm/sev.c``),
two little-endian quadwords:

* quadword 0: bit 0 Assigned, bit 1 Page_Size, bit 2 Immutable, bits 11:3 the count of
  assigned 4 KiB entries in the 2 MiB region (kept in the 2 MiB-aligned entry; AFW),
  bits 50:12 GPA[50:12], bits 60:51 ASID, bit 61 VMSA, bit 62 Validated, bit 63 lock
  (the firmware keeps it equal to Immutable).
* quadword 1: one VMPL permission byte each for VMPL0..3 in bits 31:0.
"""

from __future__ import annotations

from functools import cached_property

from binlayout import Bits, BufferLayout, Member, u32, u64

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final


class BitField(Bits):
    """One field of a little-endian quadword: ``width`` bits starting at bit ``lsb``."""

    @cached_property
    def mask(self) -> int:
        """The field's mask, already shifted to its position."""
        return ((1 << self.width) - 1) << self.lsb

    def get(self, word: int) -> int:
        return (word >> self.lsb) & ((1 << self.width) - 1)


# --- raw RMP entry ---------------------------------------------------------------------------
PAGE_4K = 0x1000
"""A small page: the unit of an RMP entry, of LAUNCH_UPDATE's measurement and of host memory."""
PAGE_2M = 0x200000
"""A large page: 512 small ones, one RMP entry when Page_Size is set."""

ASSIGNED = BitField("assigned", 0, 1)
PAGE_SIZE = BitField("page_size", 1, 1)
IMMUTABLE = BitField("immutable", 2, 1)
SUBPAGE_COUNT = BitField("subpage_count", 3, 9)
GPA = BitField("gpa_pfn", 12, 39)  # GPA[50:12]
ASID = BitField("asid", 51, 10)
VMSA = BitField("vmsa", 61, 1)
VALIDATED = BitField("validated", 62, 1)
LOCK = BitField("lock", 63, 1)
RAW_Q0_FIELDS = (ASSIGNED, PAGE_SIZE, IMMUTABLE, SUBPAGE_COUNT, GPA, ASID, VMSA, VALIDATED, LOCK)

PERMS = tuple(BitField(f"vmpl{i}_perms", 8 * i, 8) for i in range(4))
RAW_Q1_FIELDS = PERMS

# Firmware-owned entries (assigned, ASID 0) carry a marker in GPA-field bits 38:36, i.e.
# GPA bits 50:48 (AFW): 0 FIRMWARE, 1 METADATA, 2 FIRMWARE_IOMMU.
FW_MARKER = BitField("fw_marker", 48, 3)

RAW_ENTRY_SIZE = 16

RAW_ENTRY_LAYOUT: Final = BufferLayout(
    "rmp_entry",
    RAW_ENTRY_SIZE,
    (Member(0x0, 8, "q0", bits=RAW_Q0_FIELDS), Member(0x8, 8, "q1", bits=RAW_Q1_FIELDS)),
)
"""The 16-byte raw RMP entry as it sits in the RMP table: the two quadwords ``q0`` and ``q1``
split into the fields above (``gpa_pfn`` is GPA[50:12], a page number); quadword-1 bits
63:32 are reserved."""

ASID_LIMIT = 1 << ASID.width
"""ASIDs the raw entry can hold: 0..1023."""

# --- RMPUPDATE input / RMPREAD output (16 bytes) -----------------------------------------------
# 0x00 u64 GPA; 0x08 bit 0 ASSIGNED; 0x09 bit 0 PAGE_SIZE, bit 1 2MB_REGION_STATUS (RMPREAD
# only); 0x0A bit 0 IMMUTABLE; 0x0B reserved; 0x0C u32 ASID.  (Linux ``struct rmp_state``, MSDOC)
STATE_ASSIGNED = BitField("assigned", 0, 1)
STATE_PAGE_SIZE = BitField("page_size", 8, 1)
STATE_REGION_STATUS = BitField("region_status", 9, 1)
STATE_IMMUTABLE = BitField("immutable", 16, 1)
STATE_FLAGS = (STATE_ASSIGNED, STATE_PAGE_SIZE, STATE_REGION_STATUS, STATE_IMMUTABLE)
STATE_DEFINED_FLAGS = STATE_ASSIGNED.mask | STATE_PAGE_SIZE.mask | STATE_IMMUTABLE.mask
"""Flag bits RMPUPDATE accepts; any other bit set in the flags word is FAIL_INPUT."""

RMP_STATE_LAYOUT: Final = BufferLayout(
    "rmp_state",
    16,
    (
        u64(0x0, "gpa"),
        Member(0x8, 4, "flags", bits=STATE_FLAGS),
        u32(0xC, "asid"),
    ),
)
"""The 16-byte state RMPUPDATE takes and RMPREAD returns."""

# --- VMPL permission byte (AFW ``vmpl_perm_mask``; CSVSM ``RMPFlags``) -------------------------
PERM_READ = 0x01
PERM_WRITE = 0x02
PERM_EXEC_USER = 0x04
PERM_EXEC_SUPERVISOR = 0x08
PERM_SUPERVISOR_SHADOW_STACK = 0x10
PERM_ALL = 0x1F
"""Every defined permission bit; bits 7:5 are reserved."""
