"""The built-in sample images: deterministic, fast, and read the same by sev-snp-measure."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest

from sp_emu.images import (
    SAMPLE_HASHES_TABLE,
    SAMPLE_OVMF_SECTIONS,
    SAMPLE_RESET_EIP,
    ImageError,
    build_sample_ovmf,
    build_sample_svsm,
    parse_ovmf,
    snp_launch_plan,
)
from sp_emu.images.sample import SAMPLE_OVMF_SIZE

#: SHA-256 of the 256 KiB sample OVMF; changes only when the sample is changed on purpose.
SAMPLE_SHA256 = "2ee06b8442903fa84417f63fd891331057c810c1d2db68e8f731528a4b29bd81"


def test_deterministic() -> None:
    first = build_sample_ovmf()
    build_sample_ovmf.cache_clear()
    assert build_sample_ovmf() == first
    # Pin the content so an accidental change to the sample is noticed.
    assert hashlib.sha256(first).hexdigest() == SAMPLE_SHA256


def test_pages_are_distinct(sample_bytes: bytes) -> None:
    pages = {sample_bytes[i : i + 0x1000] for i in range(0, len(sample_bytes), 0x1000)}
    assert len(pages) == len(sample_bytes) // 0x1000


def test_other_sizes() -> None:
    big = build_sample_ovmf(0x100000)
    img = parse_ovmf(big)
    assert img.load_gpa == 0xFFF00000
    assert img.sections == SAMPLE_OVMF_SECTIONS
    assert snp_launch_plan(img).items[0].length == 0x100000
    with pytest.raises(ImageError, match="64 KiB multiple"):
        build_sample_ovmf(0x1000)


def test_sevsnpmeasure_reads_sample_like_we_do(sample_path: Path) -> None:
    ovmf_mod = pytest.importorskip("sevsnpmeasure.ovmf")
    theirs = ovmf_mod.OVMF(str(sample_path))
    ours = parse_ovmf(sample_path.read_bytes())
    assert theirs.gpa() == ours.load_gpa == 0x1_0000_0000 - SAMPLE_OVMF_SIZE
    assert theirs.size() == ours.size
    assert theirs._table == {str(e.guid): e.data for e in ours.guid_table}
    assert [(m.gpa, m.size, m.section_type_int) for m in theirs.metadata_items()] == [
        (s.gpa, s.size, s.section_type) for s in ours.sections
    ]
    assert theirs.sev_es_reset_eip() == ours.sev_es_reset_eip == SAMPLE_RESET_EIP
    assert theirs.sev_hashes_table_gpa() == SAMPLE_HASHES_TABLE.gpa
    assert theirs.is_sev_hashes_table_supported() == ours.supports_kernel_hashes


def test_sample_svsm_parses() -> None:
    img = parse_ovmf(build_sample_svsm(), end_gpa=0x1_0000_0000)
    assert img.entry(uuid.UUID("a789a612-0597-4c4b-a49f-cbb1fe9d1ddd")) is not None
    assert img.sev_es_reset_eip is None
