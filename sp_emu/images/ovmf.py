"""OVMF firmware images: the footer GUID table, the SEV metadata and where QEMU loads them.

QEMU maps the firmware image (``-bios`` or pflash unit 0) so that it ends at 4 GiB; the x86
reset vector sits in its last 16 bytes. Just below that, EDK2's reset-vector module places a
"GUIDed structure" table that QEMU reads before launch (``pc_system_parse_ovmf_flash``):

* The table ends 0x20 bytes before the end of the image. Its last 18 bytes are the footer
  ``{u16 SIZE, GUID 96b582de-...}`` where SIZE is the size of the whole table.
* Walking backwards from the footer, every entry is ``DATA || u16 SIZE || GUID`` where SIZE
  counts DATA plus the 18-byte trailer.
* The SEV metadata entry gives the offset, from the end of the image, of an "ASEV" header
  followed by ``{u32 GPA, u32 SIZE, u32 TYPE}`` section descriptors. QEMU launches each
  section with a page type chosen by TYPE (see :mod:`sp_emu.images.plan`).

Facts: launch-measurement.md §9.1-9.2; EDK2 ``OvmfPkg/ResetVector``; QEMU
``hw/i386/pc_sysfw_ovmf.c`` and ``target/i386/sev.c``.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum

from binlayout import BufferLayout
from binlayout.enums import IntEnumBase, fast_enum
from binlayout.records import field, record

from .errors import ImageError
from .guids import (
    OVMF_TABLE_FOOTER_GUID,
    SEV_ES_RESET_BLOCK_GUID,
    SEV_HASH_TABLE_GUID,
    SEV_METADATA_GUID,
    SEV_SECRET_BLOCK_GUID,
    Guid,
    guid_name,
)
from .layout import (
    GPA_RANGE_ENTRY,
    GPA_RANGE_ENTRY_SIZE,
    GUID_TABLE_TRAILER,
    GUID_TABLE_TRAILER_SIZE,
    SEV_METADATA_HEADER,
    SEV_METADATA_HEADER_SIZE,
    SEV_METADATA_SECTION,
    SEV_METADATA_SECTION_SIZE,
    U32_ENTRY,
    U32_ENTRY_SIZE,
    guid_from_bytes,
    guid_to_bytes,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final
    from uuid import UUID

__all__ = [
    "FOUR_GIB",
    "PAGE_SIZE",
    "SEV_METADATA_SIGNATURE",
    "SEV_METADATA_VERSION",
    "TABLE_END_GAP",
    "GpaRange",
    "GuidTableEntry",
    "MetadataSection",
    "OvmfImage",
    "SectionType",
    "SevMetadata",
    "build_guid_table",
    "build_ovmf_image",
    "build_sev_metadata",
    "parse_guid_table",
    "parse_ovmf",
    "parse_sev_metadata",
]

#: QEMU maps the firmware so that it ends here (the x86 reset vector is at 4 GiB - 16).
FOUR_GIB: Final = 1 << 32
#: Granule of SNP_LAUNCH_UPDATE and of QEMU's flash mapping.
PAGE_SIZE: Final = 0x1000
#: The footer table ends this many bytes before the end of the image (AP entry jump,
#: "VTF" signature and the reset vector occupy the last 32 bytes).
TABLE_END_GAP: Final = 0x20
#: Signature of the SEV metadata header.
SEV_METADATA_SIGNATURE: Final = b"ASEV"
#: The only SEV metadata version QEMU and sev-snp-measure accept.
SEV_METADATA_VERSION: Final = 1


@fast_enum(IntEnum)
class SectionType(IntEnumBase):
    """TYPE field of an OVMF SEV metadata section (EDK2 ``OvmfSevMetadata.asm``)."""

    #: Memory the VMM must pre-validate (QEMU: ZERO pages; GCE: UNMEASURED pages).
    SNP_SEC_MEM = 1
    #: The SNP secrets page (launched as page type SECRETS; the PSP fills it).
    SNP_SECRETS = 2
    #: The CPUID page (launched as page type CPUID with the VMM's CPUID table).
    CPUID = 3
    #: The SVSM calling area (launched as ZERO pages).
    SVSM_CAA = 4
    #: Page(s) holding the kernel hashes table (NORMAL with hashes, else ZERO).
    SNP_KERNEL_HASHES = 0x10


@record
class GuidTableEntry:
    """One entry of the footer GUID table.

    ``offset`` is the image offset of the first data byte; the 18-byte trailer follows the
    data, at ``offset + len(data)``.
    """

    guid: Guid
    data: bytes
    offset: int

    @property
    def name(self) -> str:
        """Readable name of the entry's GUID."""
        return guid_name(self.guid)


@record
class MetadataSection:
    """One SEV metadata section descriptor: guest-physical range and its TYPE."""

    gpa: int
    size: int
    section_type: int

    @property
    def kind(self) -> SectionType | None:
        """The TYPE as :class:`SectionType`, or ``None`` for a type QEMU does not know."""
        try:
            return SectionType(self.section_type)
        except ValueError:
            return None

    @property
    def end(self) -> int:
        """First GPA after the section."""
        return self.gpa + self.size

    @property
    def name(self) -> str:
        """The type's name, or ``TYPE_0x..`` for an unknown type."""
        kind = self.kind
        return kind.name if kind is not None else f"TYPE_{self.section_type:#x}"


@record
class SevMetadata:
    """The "ASEV" SEV metadata block: where it is in the image and its sections in order."""

    offset: int
    version: int
    sections: tuple[MetadataSection, ...]


@record
class GpaRange:
    """A guest-physical area ``[gpa, gpa + size)`` named by a footer-table entry."""

    gpa: int
    size: int


@record
class OvmfImage:
    """A parsed OVMF (or SVSM) image and the launch facts QEMU takes from it.

    ``end_gpa`` is where the image ends in guest-physical memory (4 GiB for OVMF); the image
    occupies ``[load_gpa, end_gpa)``. Optional facts are ``None`` when the image does not
    carry the corresponding footer-table entry.
    """

    data: bytes = field(repr=False)
    end_gpa: int
    guid_table: tuple[GuidTableEntry, ...]
    metadata: SevMetadata | None
    sev_es_reset_eip: int | None
    hashes_table: GpaRange | None
    launch_secret: GpaRange | None

    @property
    def size(self) -> int:
        """Image size in bytes."""
        return len(self.data)

    @property
    def load_gpa(self) -> int:
        """GPA of the first image byte (``end_gpa - size``)."""
        return self.end_gpa - len(self.data)

    @property
    def sections(self) -> tuple[MetadataSection, ...]:
        """SEV metadata sections in table order (empty without SEV metadata)."""
        return () if self.metadata is None else self.metadata.sections

    @property
    def supports_kernel_hashes(self) -> bool:
        """True if the image names a non-zero hashes-table area (QEMU's precondition)."""
        return self.hashes_table is not None and self.hashes_table.gpa != 0

    def entry(self, guid: Guid | UUID) -> GuidTableEntry | None:
        """The footer-table entry with this GUID, or ``None``."""
        for item in self.guid_table:
            if item.guid == guid:
                return item
        return None

    def require_entry(self, guid: Guid | UUID) -> GuidTableEntry:
        """The footer-table entry with this GUID; :class:`ImageError` if it is missing."""
        found = self.entry(guid)
        if found is None:
            raise self._missing(guid)
        return found

    def require_reset_eip(self) -> int:
        """The SEV-ES AP reset address; :class:`ImageError` if the image has no reset block."""
        if self.sev_es_reset_eip is None:
            raise self._missing(SEV_ES_RESET_BLOCK_GUID)
        return self.sev_es_reset_eip

    def require_metadata(self) -> SevMetadata:
        """The SEV metadata; :class:`ImageError` if the image has none."""
        if self.metadata is None:
            raise self._missing(SEV_METADATA_GUID)
        return self.metadata

    def _missing(self, guid: Guid | UUID) -> ImageError:
        return ImageError(
            f"footer table has no {guid_name(guid)} entry",
            offset=self.size - TABLE_END_GAP - GUID_TABLE_TRAILER_SIZE,
        )


# --- parsing ---------------------------------------------------------------------------


def _parse_at(layout: BufferLayout, data: bytes, offset: int, what: str) -> dict[str, Any]:
    """The fields of ``layout`` at ``data[offset:]``; :class:`ImageError` if it does not fit."""
    size = layout.size
    if offset < 0 or offset + size > len(data):
        raise ImageError(f"{what} ({size} bytes) does not fit in the image", offset=offset)
    return layout.parse(data[offset : offset + size])


def _trailer_at(data: bytes, offset: int, what: str) -> tuple[int, Guid]:
    """The ``(SIZE, GUID)`` of the footer-table trailer at ``offset``."""
    fields = _parse_at(GUID_TABLE_TRAILER, data, offset, what)
    return int(fields["size"]), guid_from_bytes(fields["guid"])


def parse_guid_table(data: bytes) -> tuple[GuidTableEntry, ...]:
    """Parse the footer GUID table at the end of an image; entries in address order.

    The footer entry itself is not returned. Raises :class:`ImageError` if the image is too
    short, has no footer GUID (not an OVMF image), if the table or an entry claims more bytes
    than there are, if bytes are left over that do not form an entry, or if a GUID repeats.
    """
    image_size = len(data)
    footer_off = image_size - TABLE_END_GAP - GUID_TABLE_TRAILER_SIZE
    if footer_off < 0:
        raise ImageError(
            f"image is {image_size:#x} bytes, too short for an OVMF footer table "
            f"(needs at least {TABLE_END_GAP + GUID_TABLE_TRAILER_SIZE:#x})",
            offset=0,
        )
    table_size, footer_guid = _trailer_at(data, footer_off, "footer table trailer")
    if footer_guid != OVMF_TABLE_FOOTER_GUID:
        raise ImageError(
            f"not an OVMF image: footer GUID {OVMF_TABLE_FOOTER_GUID} not found "
            f"(found {footer_guid})",
            offset=footer_off,
        )
    table_end = image_size - TABLE_END_GAP
    table_start = table_end - table_size
    if table_size < GUID_TABLE_TRAILER_SIZE:
        raise ImageError(
            f"footer table size {table_size} is smaller than the "
            f"{GUID_TABLE_TRAILER_SIZE}-byte footer itself",
            offset=footer_off,
        )
    if table_start < 0:
        raise ImageError(
            f"truncated image: footer table size {table_size:#x} reaches "
            f"{-table_start:#x} bytes before the start of the image",
            offset=footer_off,
        )
    entries: list[GuidTableEntry] = []
    pos = footer_off
    while pos > table_start:
        room = pos - table_start
        if room < GUID_TABLE_TRAILER_SIZE:
            raise ImageError(
                f"{room} stray bytes at the start of the footer table do not form an entry",
                offset=table_start,
            )
        trailer_off = pos - GUID_TABLE_TRAILER_SIZE
        entry_size, guid = _trailer_at(data, trailer_off, "footer table entry")
        if not GUID_TABLE_TRAILER_SIZE <= entry_size <= room:
            raise ImageError(
                f"footer table entry {guid} has size {entry_size}, outside "
                f"{GUID_TABLE_TRAILER_SIZE}..{room} (truncated table?)",
                offset=trailer_off,
            )
        data_off = pos - entry_size
        if any(e.guid == guid for e in entries):
            raise ImageError(f"footer table repeats GUID {guid_name(guid)}", offset=trailer_off)
        entries.append(GuidTableEntry(guid, bytes(data[data_off:trailer_off]), data_off))
        pos = data_off
    entries.reverse()
    return tuple(entries)


def parse_sev_metadata(data: bytes, offset_from_end: int) -> SevMetadata:
    """Parse the "ASEV" SEV metadata that starts ``offset_from_end`` bytes before the end.

    Checks what QEMU and sev-snp-measure check (signature, version 1, SIZE bounds) and that
    SIZE really holds NUM_ITEMS descriptors. Raises :class:`ImageError` otherwise.
    """
    start = len(data) - offset_from_end
    if offset_from_end > len(data) or start + SEV_METADATA_HEADER_SIZE > len(data):
        raise ImageError(
            f"SEV metadata offset {offset_from_end:#x} from the end points outside "
            f"the {len(data):#x}-byte image",
            offset=max(start, 0),
        )
    header = _parse_at(SEV_METADATA_HEADER, data, start, "SEV metadata header")
    signature, size, version, num_items = (
        header["signature"],
        header["size"],
        header["version"],
        header["num_items"],
    )
    if signature != SEV_METADATA_SIGNATURE:
        raise ImageError(
            f"bad SEV metadata signature {signature!r} (expected {SEV_METADATA_SIGNATURE!r})",
            offset=start,
        )
    if version != SEV_METADATA_VERSION:
        raise ImageError(
            f"unsupported SEV metadata version {version} (expected {SEV_METADATA_VERSION})",
            offset=start,
        )
    needed = SEV_METADATA_HEADER_SIZE + num_items * SEV_METADATA_SECTION_SIZE
    if size < needed:
        raise ImageError(
            f"SEV metadata size {size:#x} cannot hold its {num_items} sections (needs {needed:#x})",
            offset=start,
        )
    if start + size > len(data):
        raise ImageError(
            f"SEV metadata (size {size:#x}) runs past the end of the image",
            offset=start,
        )
    first = start + SEV_METADATA_HEADER_SIZE
    sections = tuple(
        MetadataSection(**_parse_at(SEV_METADATA_SECTION, data, offset, "SEV metadata section"))
        for offset in range(first, start + needed, SEV_METADATA_SECTION_SIZE)
    )
    return SevMetadata(offset=start, version=version, sections=sections)


def _u32_entry(entry: GuidTableEntry) -> int:
    if len(entry.data) < U32_ENTRY_SIZE:
        raise ImageError(
            f"{entry.name} entry holds {len(entry.data)} bytes, needs at least {U32_ENTRY_SIZE}",
            offset=entry.offset,
        )
    return int(U32_ENTRY.parse(entry.data)["value"])


def _range_entry(entry: GuidTableEntry) -> GpaRange:
    need = GPA_RANGE_ENTRY_SIZE
    if len(entry.data) < need:
        raise ImageError(
            f"{entry.name} entry holds {len(entry.data)} bytes, needs at least {need}",
            offset=entry.offset,
        )
    parsed = GPA_RANGE_ENTRY.parse(entry.data)
    return GpaRange(parsed["gpa"], parsed["size"])


def parse_ovmf(data: bytes, *, end_gpa: int = FOUR_GIB) -> OvmfImage:
    """Parse an OVMF-style image that QEMU maps to end at ``end_gpa`` (default 4 GiB).

    Requires a footer GUID table (see :func:`parse_guid_table`). SEV metadata, the SEV-ES
    reset block, the hashes-table area and the secret area are optional; when present they
    are decoded and checked. The image size must be a multiple of 4 KiB, as QEMU requires
    for flash images (``-bios`` additionally requires 64 KiB multiples).
    """
    data = bytes(data)
    if len(data) % PAGE_SIZE:
        raise ImageError(f"image size {len(data):#x} is not a multiple of 4 KiB", offset=0)
    if len(data) > end_gpa:
        raise ImageError(
            f"image of {len(data):#x} bytes does not fit below GPA {end_gpa:#x}", offset=0
        )
    table = parse_guid_table(data)
    by_guid = {e.guid: e for e in table}
    metadata = None
    if SEV_METADATA_GUID in by_guid:
        metadata = parse_sev_metadata(data, _u32_entry(by_guid[SEV_METADATA_GUID]))
    reset = by_guid.get(SEV_ES_RESET_BLOCK_GUID)
    hashes = by_guid.get(SEV_HASH_TABLE_GUID)
    secret = by_guid.get(SEV_SECRET_BLOCK_GUID)
    return OvmfImage(
        data=data,
        end_gpa=end_gpa,
        guid_table=table,
        metadata=metadata,
        sev_es_reset_eip=None if reset is None else _u32_entry(reset),
        hashes_table=None if hashes is None else _range_entry(hashes),
        launch_secret=None if secret is None else _range_entry(secret),
    )


# --- building --------------------------------------------------------------------------


def build_guid_table(entries: Sequence[tuple[Guid | UUID, bytes]]) -> bytes:
    """Build a footer GUID table (entries in address order, then the footer).

    The result must be placed so that it ends :data:`TABLE_END_GAP` bytes before the end
    of the image.
    """
    total = sum(len(payload) for _, payload in entries)
    total += (len(entries) + 1) * GUID_TABLE_TRAILER_SIZE
    if total > 0xFFFF:
        raise ImageError(f"footer table of {total:#x} bytes overflows its u16 size field")
    out = bytearray()
    for guid, payload in entries:
        out += payload + _trailer(len(payload) + GUID_TABLE_TRAILER_SIZE, guid)
    out += _trailer(total, OVMF_TABLE_FOOTER_GUID)
    return bytes(out)


def _trailer(size: int, guid: Guid | UUID) -> bytes:
    return GUID_TABLE_TRAILER.build({"size": size, "guid": guid_to_bytes(guid)})


def build_sev_metadata(sections: Sequence[MetadataSection]) -> bytes:
    """Build an "ASEV" SEV metadata block (version 1) holding ``sections`` in order."""
    size = SEV_METADATA_HEADER_SIZE + len(sections) * SEV_METADATA_SECTION_SIZE
    header = SEV_METADATA_HEADER.build(
        {
            "signature": SEV_METADATA_SIGNATURE,
            "size": size,
            "version": SEV_METADATA_VERSION,
            "num_items": len(sections),
        }
    )
    return header + b"".join(
        SEV_METADATA_SECTION.build({"gpa": s.gpa, "size": s.size, "section_type": s.section_type})
        for s in sections
    )


def build_ovmf_image(
    body: bytes,
    *,
    sections: Sequence[MetadataSection] | None = None,
    reset_eip: int | None = None,
    hashes_table: GpaRange | None = None,
    launch_secret: GpaRange | None = None,
    extra_entries: Sequence[tuple[Guid | UUID, bytes]] = (),
) -> bytes:
    """Return ``body`` with SEV metadata and a footer GUID table written into its tail.

    Layout produced (like EDK2's reset-vector module): ``[body][ASEV metadata, 16-byte
    aligned][zero padding][footer table][last 32 bytes of body kept]``. The table holds, in
    address order, ``extra_entries``, the SEV metadata offset (if ``sections`` is given),
    the hashes-table block, the secret block and the SEV-ES reset block (each if given).
    """
    size = len(body)
    entries: list[tuple[Guid | UUID, bytes]] = list(extra_entries)
    meta = b"" if sections is None else build_sev_metadata(sections)
    trailing: list[tuple[Guid | UUID, bytes]] = []
    if hashes_table is not None:
        trailing.append((SEV_HASH_TABLE_GUID, _range_bytes(hashes_table)))
    if launch_secret is not None:
        trailing.append((SEV_SECRET_BLOCK_GUID, _range_bytes(launch_secret)))
    if reset_eip is not None:
        trailing.append((SEV_ES_RESET_BLOCK_GUID, U32_ENTRY.build({"value": reset_eip})))
    meta_entry = U32_ENTRY_SIZE + GUID_TABLE_TRAILER_SIZE if sections is not None else 0
    table_len = (
        sum(len(p) + GUID_TABLE_TRAILER_SIZE for _, p in entries + trailing)
        + meta_entry
        + GUID_TABLE_TRAILER_SIZE
    )
    table_start = size - TABLE_END_GAP - table_len
    meta_start = (table_start - len(meta)) & ~0xF
    if meta_start < 0:
        raise ImageError(f"image body of {size:#x} bytes is too small for its footer table")
    if sections is not None:
        entries.append((SEV_METADATA_GUID, U32_ENTRY.build({"value": size - meta_start})))
    table = build_guid_table(entries + trailing)
    assert len(table) == table_len
    tail = bytes(meta) + bytes(table_start - meta_start - len(meta)) + table
    return bytes(body[:meta_start]) + tail + bytes(body[size - TABLE_END_GAP :])


def _range_bytes(area: GpaRange) -> bytes:
    return GPA_RANGE_ENTRY.build({"gpa": area.gpa, "size": area.size})
