"""Guest images for SEV-SNP launches: OVMF, SVSM, kernel hashes, and what QEMU launches.

Pure data: parse and build the structures QEMU reads from firmware images and the table it
writes for direct kernel boot, and list the LAUNCH_UPDATE ranges of a launch in order. This
package neither measures nor talks to the firmware model, and imports nothing else from
``sp_emu`` (only the standard library and :mod:`binlayout`, which declares every structure
once; ``construct`` is not imported).

* :mod:`.ovmf` - footer GUID table, SEV metadata, reset block, hashes-table area.
* :mod:`.sev_hashes` - the kernel/initrd/cmdline hashes table.
* :mod:`.plan` - :class:`LaunchItem` / :class:`LaunchPlan` for a QEMU/OVMF SNP launch.
* :mod:`.svsm` - the same for COCONUT-SVSM in front of OVMF.
* :mod:`.sample` - deterministic built-in sample images.

Every malformed input raises :class:`ImageError` (a :class:`ValueError`).
"""

from __future__ import annotations

from binlayout.lazy import lazy_exports

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .errors import ImageError
    from .guids import (
        GUID_NAMES,
        OVMF_TABLE_FOOTER_GUID,
        SEV_CMDLINE_ENTRY_GUID,
        SEV_ES_RESET_BLOCK_GUID,
        SEV_HASH_TABLE_GUID,
        SEV_HASH_TABLE_HEADER_GUID,
        SEV_INITRD_ENTRY_GUID,
        SEV_KERNEL_ENTRY_GUID,
        SEV_METADATA_GUID,
        SEV_SECRET_BLOCK_GUID,
        SVSM_INFO_GUID,
        TDX_METADATA_GUID,
        guid_name,
    )
    from .ovmf import (
        FOUR_GIB,
        PAGE_SIZE,
        TABLE_END_GAP,
        GpaRange,
        GuidTableEntry,
        MetadataSection,
        OvmfImage,
        SectionType,
        SevMetadata,
        build_guid_table,
        build_ovmf_image,
        build_sev_metadata,
        parse_guid_table,
        parse_ovmf,
        parse_sev_metadata,
    )
    from .plan import (
        BSP_RESET_EIP,
        LaunchItem,
        LaunchPlan,
        PageType,
        VmmType,
        image_launch_item,
        metadata_launch_items,
        section_page_type,
        snp_launch_plan,
    )
    from .sample import (
        SAMPLE_HASHES_TABLE,
        SAMPLE_OVMF_SECTIONS,
        SAMPLE_OVMF_SIZE,
        SAMPLE_RESET_EIP,
        SAMPLE_SVSM_ENTRY_OFFSET,
        SAMPLE_SVSM_SECTIONS,
        SAMPLE_VARS_SIZE,
        build_sample_ovmf,
        build_sample_svsm,
    )
    from .sev_hashes import (
        PADDED_SEV_HASH_TABLE_SIZE,
        SEV_HASH_TABLE_SIZE,
        SevHashes,
        build_sev_hashes_region,
        build_sev_hashes_table,
        cmdline_bytes,
        parse_sev_hashes_table,
    )
    from .svsm import SvsmLayout, svsm_entry_offset, svsm_launch_plan, svsm_layout

_EXPORTS = {
    "BSP_RESET_EIP": "plan",
    "FOUR_GIB": "ovmf",
    "GUID_NAMES": "guids",
    "GpaRange": "ovmf",
    "GuidTableEntry": "ovmf",
    "ImageError": "errors",
    "LaunchItem": "plan",
    "LaunchPlan": "plan",
    "MetadataSection": "ovmf",
    "OVMF_TABLE_FOOTER_GUID": "guids",
    "OvmfImage": "ovmf",
    "PADDED_SEV_HASH_TABLE_SIZE": "sev_hashes",
    "PAGE_SIZE": "ovmf",
    "PageType": "plan",
    "SAMPLE_HASHES_TABLE": "sample",
    "SAMPLE_OVMF_SECTIONS": "sample",
    "SAMPLE_OVMF_SIZE": "sample",
    "SAMPLE_RESET_EIP": "sample",
    "SAMPLE_SVSM_ENTRY_OFFSET": "sample",
    "SAMPLE_SVSM_SECTIONS": "sample",
    "SAMPLE_VARS_SIZE": "sample",
    "SEV_CMDLINE_ENTRY_GUID": "guids",
    "SEV_ES_RESET_BLOCK_GUID": "guids",
    "SEV_HASH_TABLE_GUID": "guids",
    "SEV_HASH_TABLE_HEADER_GUID": "guids",
    "SEV_HASH_TABLE_SIZE": "sev_hashes",
    "SEV_INITRD_ENTRY_GUID": "guids",
    "SEV_KERNEL_ENTRY_GUID": "guids",
    "SEV_METADATA_GUID": "guids",
    "SEV_SECRET_BLOCK_GUID": "guids",
    "SVSM_INFO_GUID": "guids",
    "SectionType": "ovmf",
    "SevHashes": "sev_hashes",
    "SevMetadata": "ovmf",
    "SvsmLayout": "svsm",
    "TABLE_END_GAP": "ovmf",
    "TDX_METADATA_GUID": "guids",
    "VmmType": "plan",
    "build_guid_table": "ovmf",
    "build_ovmf_image": "ovmf",
    "build_sample_ovmf": "sample",
    "build_sample_svsm": "sample",
    "build_sev_hashes_region": "sev_hashes",
    "build_sev_hashes_table": "sev_hashes",
    "build_sev_metadata": "ovmf",
    "cmdline_bytes": "sev_hashes",
    "guid_name": "guids",
    "image_launch_item": "plan",
    "metadata_launch_items": "plan",
    "parse_guid_table": "ovmf",
    "parse_ovmf": "ovmf",
    "parse_sev_hashes_table": "sev_hashes",
    "parse_sev_metadata": "ovmf",
    "section_page_type": "plan",
    "snp_launch_plan": "plan",
    "svsm_entry_offset": "svsm",
    "svsm_launch_plan": "svsm",
    "svsm_layout": "svsm",
}
"""Public name -> the module of this package that defines it, imported on first use: the
command line's start-up loads only the modules a launch needs (not the SVSM layouts or the
sample images, say)."""


__getattr__ = lazy_exports(__name__, {k: f".{v}" for k, v in _EXPORTS.items()}, globals())


__all__ = [
    "BSP_RESET_EIP",
    "FOUR_GIB",
    "GUID_NAMES",
    "OVMF_TABLE_FOOTER_GUID",
    "PADDED_SEV_HASH_TABLE_SIZE",
    "PAGE_SIZE",
    "SAMPLE_HASHES_TABLE",
    "SAMPLE_OVMF_SECTIONS",
    "SAMPLE_OVMF_SIZE",
    "SAMPLE_RESET_EIP",
    "SAMPLE_SVSM_ENTRY_OFFSET",
    "SAMPLE_SVSM_SECTIONS",
    "SAMPLE_VARS_SIZE",
    "SEV_CMDLINE_ENTRY_GUID",
    "SEV_ES_RESET_BLOCK_GUID",
    "SEV_HASH_TABLE_GUID",
    "SEV_HASH_TABLE_HEADER_GUID",
    "SEV_HASH_TABLE_SIZE",
    "SEV_INITRD_ENTRY_GUID",
    "SEV_KERNEL_ENTRY_GUID",
    "SEV_METADATA_GUID",
    "SEV_SECRET_BLOCK_GUID",
    "SVSM_INFO_GUID",
    "TABLE_END_GAP",
    "TDX_METADATA_GUID",
    "GpaRange",
    "GuidTableEntry",
    "ImageError",
    "LaunchItem",
    "LaunchPlan",
    "MetadataSection",
    "OvmfImage",
    "PageType",
    "SectionType",
    "SevHashes",
    "SevMetadata",
    "SvsmLayout",
    "VmmType",
    "build_guid_table",
    "build_ovmf_image",
    "build_sample_ovmf",
    "build_sample_svsm",
    "build_sev_hashes_region",
    "build_sev_hashes_table",
    "build_sev_metadata",
    "cmdline_bytes",
    "guid_name",
    "image_launch_item",
    "metadata_launch_items",
    "parse_guid_table",
    "parse_ovmf",
    "parse_sev_hashes_table",
    "parse_sev_metadata",
    "section_page_type",
    "snp_launch_plan",
    "svsm_entry_offset",
    "svsm_launch_plan",
    "svsm_layout",
]
