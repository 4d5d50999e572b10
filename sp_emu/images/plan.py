"""The ordered list of memory ranges a QEMU/OVMF SEV-SNP launch hands to SNP_LAUNCH_UPDATE.

This is data only: which GPA range, which LAUNCH_UPDATE page type, which plaintext (if the
page type uses host content). Nothing here hashes or talks to the firmware; the hypervisor
model turns items into LAUNCH_UPDATE calls and the firmware model measures them.

Order (QEMU queues launch updates and replays them at launch-finish time; sev-snp-measure
``snp_calc_launch_digest`` follows it; launch-measurement.md §9.1):

1. The whole firmware image as NORMAL pages over ``[4 GiB - size, 4 GiB)``.
2. Each SEV metadata section in table order, with the page type QEMU maps it to:
   SNP_SEC_MEM → ZERO, SNP_SECRETS → SECRETS, CPUID → CPUID, SVSM_CAA → ZERO,
   SNP_KERNEL_HASHES → NORMAL holding the hashes table (ZERO without kernel hashes).
3. (Not here.) One VMSA per vCPU, measured by KVM at launch finish.

Two cloud VMMs differ and are modelled as sev-snp-measure models them: GCE launches
SNP_SEC_MEM as UNMEASURED, and EC2 launches CPUID sections after all other sections.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import Enum

from binlayout.enums import EnumBase, fast_enum
from binlayout.records import record
from sp_emu.abi.launch import PageType

from .errors import ImageError
from .guids import SEV_HASH_TABLE_GUID
from .layout import SEV_METADATA_HEADER_SIZE, SEV_METADATA_SECTION_SIZE
from .ovmf import PAGE_SIZE, MetadataSection, OvmfImage, SectionType, parse_ovmf

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

    from .sev_hashes import SevHashes

__all__ = [
    "BSP_RESET_EIP",
    "LaunchItem",
    "LaunchPlan",
    "PageType",
    "VmmType",
    "image_launch_item",
    "metadata_launch_items",
    "section_page_type",
    "snp_launch_plan",
]

#: Architectural x86 reset address, where the BSP starts in OVMF's reset vector.
BSP_RESET_EIP: Final = 0xFFFF_FFF0


@fast_enum(Enum)
class VmmType(EnumBase):
    """Which VMM's launch sequence to reproduce (names as sev-snp-measure's ``--vmm-type``)."""

    QEMU = "QEMU"
    EC2 = "ec2"
    GCE = "gce"


@record
class LaunchItem:
    """One LAUNCH_UPDATE range: ``length`` bytes from ``gpa`` launched as ``page_type``.

    ``data`` is the plaintext the host supplies for NORMAL (and UNMEASURED image) pages;
    it is ``None`` when the firmware ignores or replaces the content (ZERO, SECRETS), and
    for CPUID, whose content is the VMM's CPUID table rather than anything in the image.
    GPA and length are 4 KiB multiples; the firmware handles the range page by page.
    """

    gpa: int
    page_type: PageType
    data: bytes | None
    length: int
    label: str = ""

    def __post_init__(self) -> None:
        if self.gpa % PAGE_SIZE or self.length % PAGE_SIZE or self.length <= 0:
            raise ImageError(
                f"launch item {self.label or '?'}: GPA {self.gpa:#x} / length "
                f"{self.length:#x} are not positive 4 KiB multiples"
            )
        if self.data is not None and len(self.data) != self.length:
            raise ImageError(
                f"launch item {self.label or '?'}: {len(self.data):#x} data bytes "
                f"for length {self.length:#x}"
            )

    @property
    def page_count(self) -> int:
        """Number of 4 KiB pages in the range."""
        return self.length // PAGE_SIZE

    @property
    def end(self) -> int:
        """First GPA after the range."""
        return self.gpa + self.length

    def pages(self) -> Iterator[tuple[int, bytes | None]]:
        """Yield ``(gpa, 4 KiB plaintext or None)`` for each page, ascending."""
        for index in range(self.page_count):
            offset = index * PAGE_SIZE
            chunk = None if self.data is None else self.data[offset : offset + PAGE_SIZE]
            yield self.gpa + offset, chunk


@record
class LaunchPlan:
    """Launch items in LAUNCH_UPDATE order, plus the start addresses the VMSAs need.

    ``bsp_eip`` and ``ap_eip`` are where the boot processor and the application processors
    start (for OVMF: the x86 reset vector and the SEV-ES reset block address).
    """

    items: tuple[LaunchItem, ...]
    bsp_eip: int
    ap_eip: int

    @property
    def page_count(self) -> int:
        """Total number of 4 KiB LAUNCH_UPDATE units (excluding VMSAs)."""
        return sum(item.page_count for item in self.items)


def image_launch_item(image: OvmfImage, label: str = "OVMF image") -> LaunchItem:
    """The whole image as NORMAL pages at its load GPA."""
    return LaunchItem(image.load_gpa, PageType.NORMAL, image.data, image.size, label)


def section_page_type(
    section: MetadataSection, *, vmm: VmmType = VmmType.QEMU, kernel_hashes: bool = False
) -> PageType:
    """The LAUNCH_UPDATE page type a VMM uses for a metadata section.

    Raises :class:`ImageError` for a section TYPE that QEMU/sev-snp-measure do not know.
    """
    kind = section.kind
    if kind is SectionType.SNP_SEC_MEM:
        return PageType.UNMEASURED if vmm is VmmType.GCE else PageType.ZERO
    if kind is SectionType.SNP_SECRETS:
        return PageType.SECRETS
    if kind is SectionType.CPUID:
        return PageType.CPUID
    if kind is SectionType.SVSM_CAA:
        return PageType.ZERO
    if kind is SectionType.SNP_KERNEL_HASHES:
        return PageType.NORMAL if kernel_hashes else PageType.ZERO
    raise ImageError(f"unknown SEV metadata section type {section.section_type:#x}")


def _section_offset(image: OvmfImage, index: int) -> int | None:
    if image.metadata is None:
        return None
    return image.metadata.offset + SEV_METADATA_HEADER_SIZE + index * SEV_METADATA_SECTION_SIZE


def _check_section(image: OvmfImage, index: int, section: MetadataSection) -> None:
    where = _section_offset(image, index)
    label = f"SEV metadata section {index} ({section.name})"
    if section.kind is None:
        raise ImageError(f"{label}: unknown section type", offset=where)
    if section.gpa % PAGE_SIZE or section.size % PAGE_SIZE or section.size == 0:
        raise ImageError(
            f"{label}: GPA {section.gpa:#x} and size {section.size:#x} must be "
            "non-empty 4 KiB multiples",
            offset=where,
        )
    if section.kind in (SectionType.SNP_SECRETS, SectionType.CPUID) and section.size != PAGE_SIZE:
        raise ImageError(f"{label}: size {section.size:#x} is not one page", offset=where)


def _check_hashes_area(image: OvmfImage) -> int:
    """QEMU's checks before it builds a hashes table; returns the table GPA."""
    from .sev_hashes import PADDED_SEV_HASH_TABLE_SIZE  # only direct kernel boot needs it

    area = image.hashes_table
    entry = image.entry(SEV_HASH_TABLE_GUID)
    if area is None or entry is None:
        raise ImageError("kernel hashes requested but the image has no SEV hash table block")
    if area.gpa == 0 or area.size < PADDED_SEV_HASH_TABLE_SIZE:
        raise ImageError(
            f"kernel hashes requested but the image's hashes table area is invalid "
            f"(base={area.gpa:#x} size={area.size:#x})",
            offset=entry.offset,
        )
    if not any(s.kind is SectionType.SNP_KERNEL_HASHES for s in image.sections):
        raise ImageError(
            "kernel hashes requested but the SEV metadata has no SNP_KERNEL_HASHES section"
        )
    return area.gpa


def metadata_launch_items(
    image: OvmfImage,
    *,
    kernel_hashes: SevHashes | None = None,
    vmm: VmmType = VmmType.QEMU,
) -> list[LaunchItem]:
    """Launch items for the image's SEV metadata sections, in the VMM's order.

    Sections are checked first (known type, page-aligned, secrets/CPUID exactly one page);
    with ``kernel_hashes`` the image must name a valid hashes-table area and carry an
    SNP_KERNEL_HASHES section.
    """
    sections = image.sections
    for index, section in enumerate(sections):
        _check_section(image, index, section)
    table_gpa = _check_hashes_area(image) if kernel_hashes is not None else 0
    first: list[LaunchItem] = []
    later: list[LaunchItem] = []
    for index, section in enumerate(sections):
        page_type = section_page_type(section, vmm=vmm, kernel_hashes=kernel_hashes is not None)
        data = None
        if page_type is PageType.NORMAL and kernel_hashes is not None:
            from .sev_hashes import build_sev_hashes_region

            data = build_sev_hashes_region(kernel_hashes, table_gpa, section.size)
        item = LaunchItem(
            section.gpa, page_type, data, section.size, f"metadata[{index}] {section.name}"
        )
        if vmm is VmmType.EC2 and section.kind is SectionType.CPUID:
            later.append(item)
        else:
            first.append(item)
    return first + later


def snp_launch_plan(
    image: OvmfImage | bytes,
    *,
    kernel_hashes: SevHashes | None = None,
    vmm: VmmType = VmmType.QEMU,
) -> LaunchPlan:
    """The launch plan of an SNP guest booting OVMF (optionally with direct kernel boot).

    Accepts a parsed image or raw image bytes (parsed to end at 4 GiB). Like QEMU, it
    requires SEV metadata and an SEV-ES reset block; raises :class:`ImageError` otherwise.
    """
    parsed = image if isinstance(image, OvmfImage) else parse_ovmf(image)
    parsed.require_metadata()
    ap_eip = parsed.require_reset_eip()
    items = [image_launch_item(parsed)]
    items += metadata_launch_items(parsed, kernel_hashes=kernel_hashes, vmm=vmm)
    return LaunchPlan(items=tuple(items), bsp_eip=BSP_RESET_EIP, ap_eip=ap_eip)
