"""What a COCONUT-SVSM launch under QEMU contributes to LAUNCH_UPDATE (``snp:svsm`` mode).

QEMU maps three flash images downwards from 4 GiB: OVMF code (unit 0) ending at 4 GiB, the
OVMF variable store (unit 1) right below it, and the SVSM image (unit 2) right below the
variable store. The SVSM image uses the OVMF footer-table format; its SVSM info entry
(GUID a789a612-...) gives the entry point as an offset from the SVSM load GPA, and its own
SEV metadata names the secrets, CPUID and pre-validated pages. The SVSM then validates
and boots OVMF itself, so OVMF's metadata is not used.

Launch order (sev-snp-measure ``svsm_calc_launch_digest``, launch-measurement.md §9.6):

1. OVMF as NORMAL pages over ``[4 GiB - ovmf_size, 4 GiB)``.
2. The SVSM image as NORMAL pages, ending where the variable store begins.
3. The SVSM's SEV metadata sections, with QEMU's type mapping (no kernel hashes).
4. (Not here.) One VMSA per vCPU, every one starting at the SVSM entry point in 32-bit
   protected mode. The variable store itself is not measured.
"""

from __future__ import annotations

from binlayout.records import record

from .errors import ImageError
from .guids import SVSM_INFO_GUID
from .layout import U32_ENTRY, U32_ENTRY_SIZE
from .ovmf import FOUR_GIB, PAGE_SIZE, OvmfImage, parse_ovmf
from .plan import LaunchItem, LaunchPlan, PageType, metadata_launch_items

__all__ = [
    "SvsmLayout",
    "svsm_entry_offset",
    "svsm_launch_plan",
    "svsm_layout",
]


@record
class SvsmLayout:
    """Where QEMU places OVMF, its variable store and the SVSM, and where vCPUs start.

    ``ovmf_data`` occupies ``[ovmf_gpa, 4 GiB)``, the variable store
    ``[vars_gpa, ovmf_gpa)`` and the parsed SVSM image ``[svsm.load_gpa, vars_gpa)``.
    """

    ovmf_data: bytes
    vars_size: int
    svsm: OvmfImage
    entry_eip: int

    @property
    def ovmf_gpa(self) -> int:
        """Load GPA of OVMF (it ends at 4 GiB)."""
        return FOUR_GIB - len(self.ovmf_data)

    @property
    def vars_gpa(self) -> int:
        """Load GPA of the OVMF variable store (it ends where OVMF begins)."""
        return self.ovmf_gpa - self.vars_size


def svsm_entry_offset(image: OvmfImage) -> int:
    """The SVSM entry point's offset from the SVSM load GPA (the SVSM info entry).

    Raises :class:`ImageError` if the image has no SVSM info entry or it is too short.
    """
    entry = image.require_entry(SVSM_INFO_GUID)
    if len(entry.data) < U32_ENTRY_SIZE:
        raise ImageError(
            f"{entry.name} entry holds {len(entry.data)} bytes, needs at least {U32_ENTRY_SIZE}",
            offset=entry.offset,
        )
    return int(U32_ENTRY.parse(entry.data)["value"])


def svsm_layout(ovmf: OvmfImage | bytes, svsm: OvmfImage | bytes, vars_size: int) -> SvsmLayout:
    """Place OVMF, a variable store of ``vars_size`` bytes and the SVSM image below 4 GiB.

    OVMF is only loaded and measured, so raw bytes need no footer table. ``svsm`` (bytes or
    an image parsed at any GPA) is parsed to end at the variable store.
    """
    ovmf_data = ovmf.data if isinstance(ovmf, OvmfImage) else bytes(ovmf)
    if not ovmf_data or len(ovmf_data) % PAGE_SIZE:
        raise ImageError(f"OVMF image size {len(ovmf_data):#x} is not a positive 4 KiB multiple")
    if vars_size < 0 or vars_size % PAGE_SIZE:
        raise ImageError(f"OVMF variable store size {vars_size:#x} is not a 4 KiB multiple")
    vars_gpa = FOUR_GIB - len(ovmf_data) - vars_size
    svsm_data = svsm.data if isinstance(svsm, OvmfImage) else bytes(svsm)
    parsed = parse_ovmf(svsm_data, end_gpa=vars_gpa)
    entry = parsed.load_gpa + svsm_entry_offset(parsed)
    return SvsmLayout(ovmf_data=ovmf_data, vars_size=vars_size, svsm=parsed, entry_eip=entry)


def svsm_launch_plan(
    ovmf: OvmfImage | bytes, svsm: OvmfImage | bytes, vars_size: int
) -> LaunchPlan:
    """The launch plan of an SNP guest running COCONUT-SVSM in front of OVMF.

    Requires SEV metadata in the SVSM image (QEMU needs it to launch SNP). Both the BSP and
    the APs start at the SVSM entry point.
    """
    layout = svsm_layout(ovmf, svsm, vars_size)
    layout.svsm.require_metadata()
    items = [
        LaunchItem(
            layout.ovmf_gpa, PageType.NORMAL, layout.ovmf_data, len(layout.ovmf_data), "OVMF image"
        ),
        LaunchItem(
            layout.svsm.load_gpa,
            PageType.NORMAL,
            layout.svsm.data,
            layout.svsm.size,
            "SVSM image",
        ),
    ]
    items += metadata_launch_items(layout.svsm)
    return LaunchPlan(items=tuple(items), bsp_eip=layout.entry_eip, ap_eip=layout.entry_eip)
