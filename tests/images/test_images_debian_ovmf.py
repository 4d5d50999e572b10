"""Debian's real OVMF builds (package ``ovmf``), compared with sev-snp-measure. Skipped if absent.

Debian 12's OVMF.fd (edk2 2022.11) carries SEV metadata but no SNP_KERNEL_HASHES section and
a zero hashes-table base; OVMF_CODE_4M.fd carries a footer table without SEV metadata.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sp_emu.images import (
    TDX_METADATA_GUID,
    ImageError,
    LaunchPlan,
    SevHashes,
    VmmType,
    parse_ovmf,
    snp_launch_plan,
)


def compare_parse(path: Path) -> Any:
    ovmf_mod = pytest.importorskip("sevsnpmeasure.ovmf")
    theirs = ovmf_mod.OVMF(str(path))
    ours = parse_ovmf(path.read_bytes())
    assert theirs.gpa() == ours.load_gpa
    assert theirs._table == {str(e.guid): e.data for e in ours.guid_table}
    assert [(m.gpa, m.size, m.section_type_int) for m in theirs.metadata_items()] == [
        (s.gpa, s.size, s.section_type) for s in ours.sections
    ]
    assert theirs.sev_es_reset_eip() == ours.sev_es_reset_eip
    assert theirs.sev_hashes_table_gpa() == (ours.hashes_table.gpa if ours.hashes_table else None)
    return ours


def test_parse_matches_sev_snp_measure(debian_ovmf: Path) -> None:
    ours = compare_parse(debian_ovmf)
    assert ours.entry(TDX_METADATA_GUID) is not None
    assert ours.metadata is not None


@pytest.mark.parametrize("vmm", [VmmType.QEMU, VmmType.EC2, VmmType.GCE])
def test_plan_matches_sev_snp_measure(
    debian_ovmf: Path,
    ssm_recorder: Callable[..., Any],
    expand: Callable[[LaunchPlan], list[Any]],
    digest: Callable[[list[Any]], bytes],
    vmm: VmmType,
) -> None:
    guest = pytest.importorskip("sevsnpmeasure.guest")
    vmm_types = pytest.importorskip("sevsnpmeasure.vmm_types")
    ld, theirs = ssm_recorder(
        guest.snp_calc_launch_digest,
        0,
        0x800F12,
        str(debian_ovmf),
        "",
        "",
        "",
        1,
        "",
        vmm_types.VMMType[vmm.value],
    )
    plan = snp_launch_plan(debian_ovmf.read_bytes(), vmm=vmm)
    assert expand(plan) == theirs
    assert digest(expand(plan)) == ld


def test_kernel_hashes_unsupported(debian_ovmf: Path) -> None:
    image = parse_ovmf(debian_ovmf.read_bytes())
    assert not image.supports_kernel_hashes
    with pytest.raises(ImageError, match=r"hashes table area is invalid \(base=0x0"):
        snp_launch_plan(image, kernel_hashes=SevHashes.from_inputs(b"k"))


def test_code_4m_has_no_sev_metadata() -> None:
    path = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
    if not path.is_file():
        pytest.skip("OVMF_CODE_4M.fd not installed")
    ours = compare_parse(path)
    assert ours.metadata is None
    # sev-snp-measure would measure it without sections; QEMU refuses SNP without metadata.
    with pytest.raises(ImageError, match="no OVMF SEV metadata offset"):
        snp_launch_plan(ours)
