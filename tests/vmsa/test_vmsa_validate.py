"""check_vmsa: poke one byte per checked range -> the exact VmsaInvalid field.

In the style of go-sev-guest's ``TestReportMbz``: start from a good page, break one
thing, and require the error to name exactly that thing.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vmsa import (
    CHECKED_RESERVED_FIELDS,
    INT_INJ_MODES,
    QEMU,
    RESERVED_RANGES,
    RESERVED_SEV_FEATURES,
    SevFeatures,
    VmsaInvalid,
    build_bsp,
    check_vmsa,
)
from vmsa.layout import RESERVED_FIELDS
from vmsa.validate import UNCHECKED_RESERVED_FIELDS

GOOD = build_bsp(QEMU, sev_features=0x21, cpu_sig=0x800F12).to_bytes()

# Hand-typed from vmsa-layout.md §2: (field, first byte, last byte) of each checked range.
CHECKED_SPEC: list[tuple[str, int, int]] = [
    ("reserved_0x0c8", 0x0C8, 0x0C9),
    ("reserved_0x0cc", 0x0CC, 0x0CF),
    ("reserved_0x0d8", 0x0D8, 0x13F),
    ("reserved_0x1c0", 0x1C0, 0x1D7),
    ("reserved_0x248", 0x248, 0x267),
    ("reserved_0x298", 0x298, 0x2E7),
    ("reserved_0x320", 0x320, 0x327),
    ("reserved_0x3f0", 0x3F0, 0x3FF),
    ("reserved_0x7c8", 0x7C8, 0x97F),
]


def poke(page: bytes, offset: int, value: int) -> bytes:
    out = bytearray(page)
    out[offset] = value
    return bytes(out)


def with_features(features: int) -> bytes:
    out = bytearray(GOOD)
    out[0x3B0:0x3B8] = features.to_bytes(8, "little")
    return bytes(out)


def field_of(data: bytes, **kwargs: int) -> str:
    with pytest.raises(VmsaInvalid) as err:
        check_vmsa(data, **kwargs)
    return err.value.field


def test_good_page_passes() -> None:
    check_vmsa(GOOD)
    check_vmsa(GOOD, expected_vmpl=0, guest_sev_features=0x21)
    check_vmsa(bytearray(GOOD))
    check_vmsa(memoryview(GOOD))


def test_checked_ranges_are_the_spec_ones() -> None:
    assert list(CHECKED_RESERVED_FIELDS) == [name for name, _, _ in CHECKED_SPEC]
    assert UNCHECKED_RESERVED_FIELDS == ("reserved_0x380", "reserved_0xfc0")
    assert {r.field for r in RESERVED_RANGES} == set(RESERVED_FIELDS)


@pytest.mark.parametrize(("name", "first", "last"), CHECKED_SPEC, ids=[c[0] for c in CHECKED_SPEC])
def test_poke_each_end_of_each_checked_range(name: str, first: int, last: int) -> None:
    for offset in (first, last):
        for value in (0x01, 0x80, 0xFF):
            assert field_of(poke(GOOD, offset, value)) == name
    # One byte either side belongs to a neighbouring field, not to this range.
    for offset in (first - 1, last + 1):
        try:
            check_vmsa(poke(GOOD, offset, 0xFF))
        except VmsaInvalid as err:
            assert err.field != name  # e.g. 0x0CA is VMPL, next to reserved_0x0c8


@given(st.integers(0, 0xFFF), st.integers(1, 0xFF))
def test_any_poke_is_rejected_iff_it_hits_a_checked_range_vmpl_or_features(
    offset: int, value: int
) -> None:
    page = poke(GOOD, offset, value)
    in_range = [n for n, lo, hi in CHECKED_SPEC if lo <= offset <= hi]
    try:
        check_vmsa(page)
    except VmsaInvalid as err:
        if in_range:
            assert err.field == in_range[0]
        else:
            assert err.field in ("vmpl", "sev_features")
    else:
        assert not in_range


@pytest.mark.parametrize("offset", [0x380, 0x388, 0x38F, 0xFC0, 0xFFF])
def test_unchecked_ranges_may_hold_firmware_bookkeeping(offset: int) -> None:
    check_vmsa(poke(GOOD, offset, 0xFF))


def test_snp_firmware_bookkeeping_after_launch_update_is_accepted() -> None:
    out = bytearray(GOOD)
    out[0x388:0x390] = b"\xff" * 8  # the firmware's all-ones at 0x388 (AFW)
    check_vmsa(bytes(out))


def test_wrong_length() -> None:
    assert field_of(GOOD[:-1]) == "length"
    assert field_of(GOOD + b"\0") == "length"
    assert field_of(b"") == "length"


@pytest.mark.parametrize("vmpl", [4, 0x80, 0xFF])
def test_vmpl_above_3(vmpl: int) -> None:
    assert field_of(poke(GOOD, 0xCA, vmpl)) == "vmpl"


@pytest.mark.parametrize(("actual", "expected"), [(0, 1), (1, 0), (3, 2), (2, 3)])
def test_vmpl_differs_from_expected(actual: int, expected: int) -> None:
    page = poke(GOOD, 0xCA, actual)
    check_vmsa(page)
    check_vmsa(page, expected_vmpl=actual)
    assert field_of(page, expected_vmpl=expected) == "vmpl"


def test_expected_vmpl_itself_must_be_valid() -> None:
    with pytest.raises(ValueError):
        check_vmsa(GOOD, expected_vmpl=4)


@pytest.mark.parametrize("features", [0x0, 0x20, 0x4000])
def test_snp_active_missing(features: int) -> None:
    with pytest.raises(VmsaInvalid, match="SNP_ACTIVE") as err:
        check_vmsa(with_features(features))
    assert err.value.field == "sev_features"


@pytest.mark.parametrize("bit", [11, 13, 17, 18, 19, 20, 22, 40, 62, 63])
def test_reserved_feature_bits(bit: int) -> None:
    with pytest.raises(VmsaInvalid, match="reserved") as err:
        check_vmsa(with_features(0x1 | (1 << bit)))
    assert err.value.field == "sev_features"


def test_reserved_feature_mask_from_spec() -> None:
    """Defined bits (vmsa-layout.md §3.1): 0-10, 12, 14, 15, 16, 21."""
    defined = sum(1 << b for b in (*range(11), 12, 14, 15, 16, 21))
    assert ((1 << 64) - 1) & ~defined == RESERVED_SEV_FEATURES


@pytest.mark.parametrize("bit", [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 15, 16, 21])
def test_every_defined_feature_is_accepted(bit: int) -> None:
    check_vmsa(with_features(0x1 | (1 << bit)))


def test_features_must_equal_the_guests() -> None:
    page = with_features(0x21)
    check_vmsa(page, guest_sev_features=0x21)
    assert field_of(page, guest_sev_features=0x1) == "sev_features"
    assert field_of(page, guest_sev_features=0x29) == "sev_features"


def test_pre_2025_kvm_rule_compares_only_injection_modes() -> None:
    page = with_features(0x21)
    check_vmsa(page, guest_sev_features=0x1, features_must_match=INT_INJ_MODES)
    restricted = with_features(0x1 | SevFeatures.RESTRICTED_INJECTION)
    with pytest.raises(VmsaInvalid) as err:
        check_vmsa(restricted, guest_sev_features=0x1, features_must_match=INT_INJ_MODES)
    assert err.value.field == "sev_features"


def test_first_failure_wins_in_documented_order() -> None:
    bad = bytearray(with_features(0x0))
    bad[0xCA] = 9
    bad[0x0C8] = 1
    assert field_of(bytes(bad)) == "vmpl"
    bad[0xCA] = 0
    assert field_of(bytes(bad)) == "sev_features"
    bad[0x3B0] = 1
    assert field_of(bytes(bad)) == "reserved_0x0c8"


def test_error_carries_field_and_reason() -> None:
    err = VmsaInvalid("vmpl", "VMPL 9 is not 0..3")
    assert (err.field, err.reason) == ("vmpl", "VMPL 9 is not 0..3")
    assert str(err) == "vmpl: VMPL 9 is not 0..3"
    assert isinstance(err, ValueError)
