"""Launch plans: hand-derived order and types, errors, and sev-snp-measure as oracle."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sp_emu.images import (
    BSP_RESET_EIP,
    SAMPLE_OVMF_SECTIONS,
    GpaRange,
    ImageError,
    LaunchItem,
    LaunchPlan,
    MetadataSection,
    PageType,
    SectionType,
    SevHashes,
    VmmType,
    build_ovmf_image,
    build_sev_hashes_table,
    parse_ovmf,
    snp_launch_plan,
)

NORMAL, ZERO, UNMEASURED = PageType.NORMAL, PageType.ZERO, PageType.UNMEASURED
SECRETS, CPUID = PageType.SECRETS, PageType.CPUID

# (gpa, type, length) by hand from the sample's metadata (see test_images_ovmf.py).
SAMPLE_QEMU = [
    (0xFFFC0000, NORMAL, 0x40000),
    (0x800000, ZERO, 0x9000),
    (0x80A000, ZERO, 0x2000),
    (0x80D000, SECRETS, 0x1000),
    (0x80E000, CPUID, 0x1000),
    (0x80F000, ZERO, 0x1000),
    (0x810000, ZERO, 0x10000),
    (0x80C000, ZERO, 0x1000),
]


def shape(plan: LaunchPlan) -> list[tuple[int, PageType, int]]:
    return [(i.gpa, i.page_type, i.length) for i in plan.items]


def test_sample_plan_without_kernel(sample_bytes: bytes) -> None:
    plan = snp_launch_plan(sample_bytes)
    assert shape(plan) == SAMPLE_QEMU
    assert plan.items[0].data == sample_bytes
    assert all(item.data is None for item in plan.items[1:])
    assert plan.bsp_eip == BSP_RESET_EIP == 0xFFFFFFF0
    assert plan.ap_eip == 0x80B004
    assert plan.page_count == 64 + 9 + 2 + 1 + 1 + 1 + 16 + 1
    assert [i.label for i in plan.items][:2] == ["OVMF image", "metadata[0] SNP_SEC_MEM"]


def test_sample_plan_with_kernel(sample_bytes: bytes) -> None:
    hashes = SevHashes.from_inputs(b"bzImage", b"initrd", "console=ttyS0")
    plan = snp_launch_plan(parse_ovmf(sample_bytes), kernel_hashes=hashes)
    expected = [*SAMPLE_QEMU[:-1], (0x80C000, NORMAL, 0x1000)]
    assert shape(plan) == expected
    page = plan.items[-1].data
    assert page is not None
    table = build_sev_hashes_table(hashes)
    assert page == bytes(0xC00) + table + bytes(0x1000 - 0xC00 - len(table))


def test_gce_launches_sec_mem_unmeasured(sample_bytes: bytes) -> None:
    plan = snp_launch_plan(sample_bytes, vmm=VmmType.GCE)
    types = [t for _, t, _ in shape(plan)]
    assert types == [NORMAL, UNMEASURED, UNMEASURED, SECRETS, CPUID, ZERO, UNMEASURED, ZERO]


def test_ec2_launches_cpuid_last(sample_bytes: bytes) -> None:
    plan = snp_launch_plan(sample_bytes, vmm=VmmType.EC2)
    assert shape(plan) == [*SAMPLE_QEMU[:4], *SAMPLE_QEMU[5:], SAMPLE_QEMU[4]]


def test_launch_item_pages() -> None:
    item = LaunchItem(0x2000, NORMAL, bytes(range(256)) * 32, 0x2000, "x")
    pages = list(item.pages())
    assert [g for g, _ in pages] == [0x2000, 0x3000]
    assert pages[1][1] == (bytes(range(256)) * 16)
    assert item.end == 0x4000
    assert list(LaunchItem(0, ZERO, None, 0x1000).pages()) == [(0, None)]


@pytest.mark.parametrize(
    ("gpa", "data", "length", "message"),
    [
        (0x800, None, 0x1000, "not positive 4 KiB multiples"),
        (0x1000, None, 0x800, "not positive 4 KiB multiples"),
        (0x1000, None, 0, "not positive 4 KiB multiples"),
        (0x1000, b"x", 0x1000, "0x1 data bytes for length 0x1000"),
    ],
)
def test_launch_item_validation(gpa: int, data: bytes | None, length: int, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        LaunchItem(gpa, NORMAL, data, length, "t")


# --- errors ----------------------------------------------------------------------------


HASHES_AREA = GpaRange(0x80CC00, 0x400)


def image_with(
    sections: list[MetadataSection] | None,
    *,
    reset: int | None = 0x80B004,
    hashes: GpaRange | None = HASHES_AREA,
) -> bytes:
    return build_ovmf_image(bytes(0x10000), sections=sections, reset_eip=reset, hashes_table=hashes)


def test_requires_metadata() -> None:
    with pytest.raises(ImageError, match="no OVMF SEV metadata offset"):
        snp_launch_plan(image_with(None))


def test_requires_reset_block() -> None:
    with pytest.raises(ImageError, match="no SEV-ES reset block"):
        snp_launch_plan(image_with(list(SAMPLE_OVMF_SECTIONS), reset=None))


def test_unknown_section_type_is_rejected_with_its_offset() -> None:
    image = parse_ovmf(
        image_with([MetadataSection(0x800000, 0x1000, 1), MetadataSection(0x801000, 0x1000, 9)])
    )
    assert image.metadata is not None
    with pytest.raises(ImageError, match=r"section 1 \(TYPE_0x9\): unknown section type") as info:
        snp_launch_plan(image)
    assert info.value.offset == image.metadata.offset + 16 + 12


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (MetadataSection(0x800800, 0x1000, 1), "must be non-empty 4 KiB multiples"),
        (MetadataSection(0x800000, 0x1800, 1), "must be non-empty 4 KiB multiples"),
        (MetadataSection(0x800000, 0, 4), "must be non-empty 4 KiB multiples"),
        (MetadataSection(0x800000, 0x2000, 2), r"size 0x2000 is not one page"),
        (MetadataSection(0x800000, 0x2000, 3), r"size 0x2000 is not one page"),
    ],
)
def test_bad_sections(section: MetadataSection, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        snp_launch_plan(image_with([section]))


def test_kernel_needs_kernel_hashes_section() -> None:
    no_hashes_section = [
        s for s in SAMPLE_OVMF_SECTIONS if s.kind is not SectionType.SNP_KERNEL_HASHES
    ]
    image = image_with(no_hashes_section)
    snp_launch_plan(image)  # fine without a kernel
    with pytest.raises(ImageError, match="no SNP_KERNEL_HASHES section"):
        snp_launch_plan(image, kernel_hashes=SevHashes.from_inputs(b"k"))


@pytest.mark.parametrize(
    ("hashes", "message"),
    [
        (None, "has no SEV hash table block"),
        (GpaRange(0, 0x400), r"area is invalid \(base=0x0 size=0x400\)"),
        (GpaRange(0x80CC00, 0xAF), r"area is invalid \(base=0x80cc00 size=0xaf\)"),
    ],
)
def test_kernel_needs_valid_hashes_area(hashes: GpaRange | None, message: str) -> None:
    image = image_with(list(SAMPLE_OVMF_SECTIONS), hashes=hashes)
    with pytest.raises(ImageError, match=message):
        snp_launch_plan(image, kernel_hashes=SevHashes.from_inputs(b"k"))


def test_kernel_hashes_table_must_fit_in_section() -> None:
    image = image_with(list(SAMPLE_OVMF_SECTIONS), hashes=GpaRange(0x80CF80, 0x400))
    with pytest.raises(ImageError, match="does not fit"):
        snp_launch_plan(image, kernel_hashes=SevHashes.from_inputs(b"k"))


# --- oracle: sev-snp-measure ------------------------------------------------------------

VMMS = [VmmType.QEMU, VmmType.EC2, VmmType.GCE]
KERNELS: list[tuple[bytes, bytes | None, str | None] | None] = [
    None,
    (b"vmlinuz" * 1000, None, None),
    (b"vmlinuz", b"initramfs" * 500, "console=ttyS0 root=/dev/vda"),
]


def ssm_vmm(vmm: VmmType) -> Any:
    vmm_types = pytest.importorskip("sevsnpmeasure.vmm_types")
    return vmm_types.VMMType[vmm.value]


@pytest.mark.parametrize("vmm", VMMS)
@pytest.mark.parametrize("kernel", KERNELS)
def test_plan_matches_sev_snp_measure(
    tmp_path: Path,
    sample_path: Path,
    ssm_recorder: Callable[..., Any],
    expand: Callable[[LaunchPlan], list[Any]],
    digest: Callable[[list[Any]], bytes],
    vmm: VmmType,
    kernel: tuple[bytes, bytes | None, str | None] | None,
) -> None:
    guest = pytest.importorskip("sevsnpmeasure.guest")
    kpath = ipath = ""
    append = ""
    hashes = None
    if kernel is not None:
        kdata, idata, append_or_none = kernel
        append = append_or_none or ""
        (tmp_path / "k").write_bytes(kdata)
        kpath = str(tmp_path / "k")
        if idata is not None:
            (tmp_path / "i").write_bytes(idata)
            ipath = str(tmp_path / "i")
        hashes = SevHashes.from_inputs(kdata, idata, append_or_none)
    # vcpus=0: sev-snp-measure measures no VMSA, leaving exactly the image-derived items.
    ld, theirs = ssm_recorder(
        guest.snp_calc_launch_digest,
        0,
        0x800F12,
        str(sample_path),
        kpath,
        ipath,
        append,
        1,
        "",
        ssm_vmm(vmm),
    )
    plan = snp_launch_plan(sample_path.read_bytes(), kernel_hashes=hashes, vmm=vmm)
    ours = expand(plan)
    assert ours == theirs
    assert digest(ours) == ld


# sev-snp-measure 0.0.13, `--mode snp --vcpus 1 --vcpu-type EPYC-v4 --ovmf SAMPLE`
SAMPLE_SNP_DIGEST_1VCPU_EPYC_V4 = (
    "ed5072f098c8e3df966bd597e17a8707130606aafe6281f7f1522f7ffbbd7219"
    "19df80c8517046e104580149c19f1368"
)


def test_sample_full_digest_vector(sample_path: Path) -> None:
    """Pins the oracle vector for the sample image, and that the sample stays the same."""
    guest = pytest.importorskip("sevsnpmeasure.guest")
    ld = guest.snp_calc_launch_digest(1, 0x800F12, str(sample_path), "", "", "", 1, "")
    assert ld.hex() == SAMPLE_SNP_DIGEST_1VCPU_EPYC_V4


def test_vmsa_chain_continues_from_plan_digest(
    sample_bytes: bytes,
    expand: Callable[[LaunchPlan], list[Any]],
    digest: Callable[[list[Any]], bytes],
) -> None:
    """Plan digest + sev-snp-measure's BSP VMSA at 0xFFFFFFFFF000 = the full digest vector."""
    vmsa_mod = pytest.importorskip("sevsnpmeasure.vmsa")
    sev_mode = pytest.importorskip("sevsnpmeasure.sev_mode")
    vmm_types = pytest.importorskip("sevsnpmeasure.vmm_types")
    import hashlib

    plan = snp_launch_plan(sample_bytes)
    vmsa = vmsa_mod.VMSA(sev_mode.SevMode.SEV_SNP, plan.ap_eip, 0x800F12, 1, vmm_types.VMMType.QEMU)
    page = next(iter(vmsa.pages(1)))
    updates = [*expand(plan), (2, 0xFFFFFFFFF000, hashlib.sha384(page).digest())]
    assert digest(updates).hex() == SAMPLE_SNP_DIGEST_1VCPU_EPYC_V4
