"""snp:svsm mode: placement, order, entry point, errors, and sev-snp-measure as oracle."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sp_emu.images import (
    SAMPLE_OVMF_SIZE,
    SAMPLE_SVSM_ENTRY_OFFSET,
    SAMPLE_VARS_SIZE,
    SVSM_INFO_GUID,
    ImageError,
    LaunchPlan,
    MetadataSection,
    PageType,
    build_ovmf_image,
    build_sample_svsm,
    parse_ovmf,
    svsm_entry_offset,
    svsm_launch_plan,
    svsm_layout,
)

SVSM_SIZE = 0x10000
# By hand: OVMF [4G-0x40000, 4G), vars [.. - 0x84000), SVSM ends where vars begin.
OVMF_GPA = 0x1_0000_0000 - SAMPLE_OVMF_SIZE  # 0xFFFC0000
VARS_GPA = OVMF_GPA - SAMPLE_VARS_SIZE  # 0xFFF3C000
SVSM_GPA = VARS_GPA - SVSM_SIZE  # 0xFFF2C000


def test_layout_by_hand(sample_bytes: bytes) -> None:
    layout = svsm_layout(sample_bytes, build_sample_svsm(), SAMPLE_VARS_SIZE)
    assert (layout.ovmf_gpa, layout.vars_gpa, layout.svsm.load_gpa) == (
        0xFFFC0000,
        0xFFF3C000,
        0xFFF2C000,
    )
    assert layout.svsm.end_gpa == VARS_GPA
    assert layout.entry_eip == SVSM_GPA + SAMPLE_SVSM_ENTRY_OFFSET == 0xFFF2D000
    assert svsm_entry_offset(layout.svsm) == 0x1000


def test_plan_by_hand(sample_bytes: bytes) -> None:
    svsm = build_sample_svsm()
    plan = svsm_launch_plan(parse_ovmf(sample_bytes), svsm, SAMPLE_VARS_SIZE)
    assert [(i.gpa, i.page_type, i.length) for i in plan.items] == [
        (OVMF_GPA, PageType.NORMAL, SAMPLE_OVMF_SIZE),
        (SVSM_GPA, PageType.NORMAL, SVSM_SIZE),
        (0x800000, PageType.ZERO, 0x10000),
        (0x810000, PageType.SECRETS, 0x1000),
        (0x811000, PageType.CPUID, 0x1000),
        (0x812000, PageType.ZERO, 0x1000),
    ]
    assert plan.items[0].data == sample_bytes
    assert plan.items[1].data == svsm
    assert plan.bsp_eip == plan.ap_eip == 0xFFF2D000


def test_ovmf_needs_no_footer_in_svsm_mode() -> None:
    plan = svsm_launch_plan(bytes(0x2000), build_sample_svsm(), 0)
    assert plan.items[0].gpa == 0xFFFFE000
    assert plan.items[1].gpa == 0xFFFFE000 - SVSM_SIZE


@pytest.mark.parametrize(
    ("ovmf", "vars_size", "message"),
    [
        (bytes(0x1800), 0, "OVMF image size 0x1800 is not a positive 4 KiB multiple"),
        (b"", 0, "OVMF image size 0x0"),
        (bytes(0x1000), 0x800, "variable store size 0x800 is not a 4 KiB multiple"),
        (bytes(0x1000), -0x1000, "variable store size"),
    ],
)
def test_bad_layout_inputs(ovmf: bytes, vars_size: int, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        svsm_layout(ovmf, build_sample_svsm(), vars_size)


def test_svsm_without_info_entry() -> None:
    svsm = build_ovmf_image(bytes(0x4000), sections=[MetadataSection(0x800000, 0x1000, 2)])
    with pytest.raises(ImageError, match=r"no SVSM info \(a789a612-"):
        svsm_launch_plan(bytes(0x1000), svsm, 0)


def test_svsm_info_entry_too_short() -> None:
    svsm = build_ovmf_image(bytes(0x4000), extra_entries=[(SVSM_INFO_GUID, b"\x01")])
    with pytest.raises(ImageError, match=r"SVSM info .* holds 1 bytes"):
        svsm_layout(bytes(0x1000), svsm, 0)


def test_svsm_without_metadata() -> None:
    svsm = build_ovmf_image(bytes(0x4000), extra_entries=[(SVSM_INFO_GUID, bytes(4))])
    with pytest.raises(ImageError, match="no OVMF SEV metadata offset"):
        svsm_launch_plan(bytes(0x1000), svsm, 0)


def test_svsm_that_is_not_an_image() -> None:
    with pytest.raises(ImageError, match="not an OVMF image"):
        svsm_launch_plan(bytes(0x1000), bytes(0x4000), 0)


def test_matches_sev_snp_measure(
    sample_path: Path,
    svsm_path: Path,
    ssm_recorder: Callable[..., Any],
    expand: Callable[[LaunchPlan], list[Any]],
    digest: Callable[[list[Any]], bytes],
) -> None:
    guest = pytest.importorskip("sevsnpmeasure.guest")
    ovmf_mod = pytest.importorskip("sevsnpmeasure.ovmf")
    ld, theirs = ssm_recorder(
        guest.svsm_calc_launch_digest,
        0,
        0x800F12,
        str(sample_path),
        SAMPLE_VARS_SIZE,
        str(svsm_path),
        False,
    )
    plan = svsm_launch_plan(sample_path.read_bytes(), svsm_path.read_bytes(), SAMPLE_VARS_SIZE)
    assert expand(plan) == theirs
    assert digest(expand(plan)) == ld
    ssm_ovmf = ovmf_mod.OVMF(str(sample_path))
    ssm_svsm = ovmf_mod.SVSM(str(svsm_path), end_at=ssm_ovmf.gpa() - SAMPLE_VARS_SIZE)
    assert ssm_svsm.sev_es_reset_eip() == plan.bsp_eip
    assert ssm_svsm.gpa() == plan.items[1].gpa
