"""One RMP entry as a value, the page sizes, and the firmware's page-state classification."""

from __future__ import annotations

from enum import Enum, IntEnum

from binlayout.enums import EnumBase, IntEnumBase, fast_enum
from binlayout.records import record
from rmp import layout as L


@fast_enum(IntEnum)
class PageSize(IntEnumBase):
    """RMP page size: the Page_Size bit of an entry (0 = 4 KiB, 1 = 2 MiB)."""

    SIZE_4K = 0
    SIZE_2M = 1

    @property
    def nbytes(self) -> int:
        return L.PAGE_4K if self is PageSize.SIZE_4K else L.PAGE_2M

    @property
    def label(self) -> str:
        return "4K" if self is PageSize.SIZE_4K else "2M"


@fast_enum(IntEnum)
class FirmwareMarker(IntEnumBase):
    """Marker the firmware keeps in GPA bits 50:48 of its own (ASID 0, assigned) pages."""

    FIRMWARE = 0
    METADATA = 1
    FIRMWARE_IOMMU = 2


@fast_enum(Enum)
class PageState(EnumBase):
    """The firmware's classification of an RMP entry (AFW ``rmp_entry_get_state``).

    It is derived purely from the entry's fields; the values here are names only, since the
    firmware's own numbering is internal.
    """

    DEFAULT = "DEFAULT"  # the page is not covered by the RMP
    HYPERVISOR = "HYPERVISOR"
    HV_FIXED = "HV_FIXED"
    FIRMWARE = "FIRMWARE"
    FIRMWARE_IOMMU = "FIRMWARE_IOMMU"
    CONTEXT = "CONTEXT"
    METADATA = "METADATA"
    RECLAIM = "RECLAIM"
    PRE_GUEST = "PRE_GUEST"
    PRE_SWAP = "PRE_SWAP"
    GUEST_INVALID = "GUEST_INVALID"
    GUEST_VALID = "GUEST_VALID"
    INVALID = "INVALID"


_INVALID, _HYPERVISOR, _HV_FIXED = PageState.INVALID, PageState.HYPERVISOR, PageState.HV_FIXED
_PRE_SWAP, _PRE_GUEST = PageState.PRE_SWAP, PageState.PRE_GUEST
_GUEST_VALID, _GUEST_INVALID = PageState.GUEST_VALID, PageState.GUEST_INVALID
_RECLAIM, _CONTEXT, _FIRMWARE = PageState.RECLAIM, PageState.CONTEXT, PageState.FIRMWARE
_METADATA, _FIRMWARE_IOMMU = PageState.METADATA, PageState.FIRMWARE_IOMMU
_GPA_MASK, _MARKER_MASK, _MARKER_LSB = L.GPA.mask, L.FW_MARKER.mask, L.FW_MARKER.lsb
_MARKER_METADATA, _MARKER_IOMMU = int(FirmwareMarker.METADATA), int(FirmwareMarker.FIRMWARE_IOMMU)
# (reading a member off its enum class costs a lookup: the classifier runs on every check)


def classify(q0: int) -> PageState:
    """Page state of a raw entry's first quadword, in the firmware's evaluation order."""
    immutable = q0 & 4
    validated = q0 >> 62 & 1
    asid = q0 >> 51 & 0x3FF
    if not q0 & 1:
        if validated or asid:
            return _INVALID
        return _HV_FIXED if immutable else _HYPERVISOR
    if asid:
        if immutable:
            return _PRE_SWAP if validated else _PRE_GUEST
        return _GUEST_VALID if validated else _GUEST_INVALID
    if validated:
        return _INVALID
    if not immutable:
        return _RECLAIM
    gpa_field = q0 & _GPA_MASK
    marker = (q0 & _MARKER_MASK) >> _MARKER_LSB
    if gpa_field == 0:
        # FIRMWARE is tested before METADATA; the VMSA bit marks a guest context page.
        return _CONTEXT if (q0 >> 61) & 1 else _FIRMWARE
    if marker == _MARKER_METADATA:
        return _METADATA
    if (
        marker == _MARKER_IOMMU
        and gpa_field & ~_MARKER_MASK == 0x1000  # the rest of the GPA field is 1
        and not (q0 >> 61) & 1
    ):
        return _FIRMWARE_IOMMU
    return _INVALID


@record
class RmpEntry:
    """The decoded fields of one RMP entry.

    ``gpa`` is a byte address (GPA bits 50:12).  ``perms`` holds the VMPL0..VMPL3 permission
    masks.  ``subpage_count`` is only meaningful in a 2 MiB-aligned entry: the number of
    assigned 4 KiB entries among the other 511 of its region, which the CPU maintains so that
    a 2 MiB RMPUPDATE can detect overlap.
    """

    assigned: bool = False
    page_size: PageSize = PageSize.SIZE_4K
    immutable: bool = False
    validated: bool = False
    vmsa: bool = False
    asid: int = 0
    gpa: int = 0
    perms: tuple[int, int, int, int] = (0, 0, 0, 0)
    subpage_count: int = 0

    @property
    def state(self) -> PageState:
        """The firmware's page-state name for this entry."""
        return classify(self.to_raw()[0])

    def to_raw(self) -> tuple[int, int]:
        """The entry's two raw quadwords (the lock bit mirrors Immutable)."""
        q0 = (
            int(self.assigned)
            | (int(self.page_size) << L.PAGE_SIZE.lsb)
            | (int(self.immutable) << L.IMMUTABLE.lsb)
            | (self.subpage_count << L.SUBPAGE_COUNT.lsb)
            | (self.gpa & L.GPA.mask)
            | (self.asid << L.ASID.lsb)
            | (int(self.vmsa) << L.VMSA.lsb)
            | (int(self.validated) << L.VALIDATED.lsb)
            | (int(self.immutable) << L.LOCK.lsb)
        )
        q1 = self.perms[0] | self.perms[1] << 8 | self.perms[2] << 16 | self.perms[3] << 24
        return q0, q1

    @classmethod
    def from_raw(cls, q0: int, q1: int) -> RmpEntry:
        """Decode an entry from its two raw quadwords."""
        return cls(
            assigned=bool(q0 & 1),
            page_size=PageSize((q0 >> 1) & 1),
            immutable=bool((q0 >> 2) & 1),
            validated=bool((q0 >> 62) & 1),
            vmsa=bool((q0 >> 61) & 1),
            asid=L.ASID.get(q0),
            gpa=q0 & L.GPA.mask,
            perms=(q1 & 0xFF, (q1 >> 8) & 0xFF, (q1 >> 16) & 0xFF, (q1 >> 24) & 0xFF),
            subpage_count=L.SUBPAGE_COUNT.get(q0),
        )

    def to_bytes(self) -> bytes:
        """The 16 bytes of the raw entry, as they lie in the RMP."""
        q0, q1 = self.to_raw()
        fields = {f.name: f.get(q0) for f in L.RAW_Q0_FIELDS}
        fields.update({f.name: f.get(q1) for f in L.RAW_Q1_FIELDS})
        return L.RAW_ENTRY_LAYOUT.build(fields)

    @classmethod
    def from_bytes(cls, data: bytes) -> RmpEntry:
        """Decode the 16 bytes of a raw entry (reserved bits are ignored, as the CPU does)."""
        f = L.RAW_ENTRY_LAYOUT.parse(data)
        return cls(
            assigned=bool(f[L.ASSIGNED.name]),
            page_size=PageSize(f[L.PAGE_SIZE.name]),
            immutable=bool(f[L.IMMUTABLE.name]),
            validated=bool(f[L.VALIDATED.name]),
            vmsa=bool(f[L.VMSA.name]),
            asid=f[L.ASID.name],
            gpa=f[L.GPA.name] << L.GPA.lsb,
            perms=(
                f[L.PERMS[0].name],
                f[L.PERMS[1].name],
                f[L.PERMS[2].name],
                f[L.PERMS[3].name],
            ),
            subpage_count=f[L.SUBPAGE_COUNT.name],
        )
