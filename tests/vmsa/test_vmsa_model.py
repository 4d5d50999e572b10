"""The typed view: round trips, diff, JSON, construction checks."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vmsa import FIELD_OFFSETS, Segment, SevFeatures, Vmsa, VmsaInvalid
from vmsa.layout import FIELD_KINDS, FIELD_NAMES, VMSA_LAYOUT

segments = st.builds(
    Segment,
    selector=st.integers(0, 0xFFFF),
    attrib=st.integers(0, 0xFFFF),
    limit=st.integers(0, 0xFFFF_FFFF),
    base=st.integers(0, (1 << 64) - 1),
)


def _field_strategy(name: str) -> st.SearchStrategy[Any]:
    """Zero (the default, so examples shrink to the zero page) or any value of the field."""
    kind = FIELD_KINDS[name]
    size = FIELD_OFFSETS[name][1]
    if kind == "segment":
        return st.just(Segment()) | segments
    if kind == "bytes":
        return st.just(bytes(size)) | st.binary(min_size=size, max_size=size)
    return st.just(0) | st.integers(0, (1 << (8 * size)) - 1)


vmsas = st.builds(Vmsa, **{name: _field_strategy(name) for name in FIELD_NAMES})
"""Any Vmsa: every field drawn independently, zero or over its full range."""

pokes = st.dictionaries(st.integers(0, 0xFFF), st.integers(1, 0xFF), max_size=64)
"""Sparse edits of the zero page: offset -> non-zero byte."""


@given(vmsas)
def test_round_trip_through_bytes(v: Vmsa) -> None:
    page = v.to_bytes()
    assert len(page) == 0x1000
    assert Vmsa.from_bytes(page) == v


@given(pokes)
def test_any_page_parses_and_rebuilds_identically(edits: dict[int, int]) -> None:
    page = bytearray(0x1000)
    for offset, value in edits.items():
        page[offset] = value
    assert Vmsa.from_bytes(page).to_bytes() == page


@settings(suppress_health_check=[HealthCheck.large_base_example])
@given(st.binary(min_size=0x1000, max_size=0x1000))
def test_dense_random_page_round_trips(page: bytes) -> None:
    assert Vmsa.from_bytes(page).to_bytes() == page


@given(vmsas)
def test_model_bytes_equal_layout_bytes(v: Vmsa) -> None:
    """to_bytes packs the declaration's wire values: building the named fields, through the
    checked codec or the construct form, gives the same page."""
    values: dict[str, Any] = {}
    for name in FIELD_NAMES:
        value = v[name]
        if isinstance(value, Segment):
            values.update({f"{name}_{k}": m for k, m in value.to_dict().items()})
        else:
            values[name] = value
    assert VMSA_LAYOUT.build(values) == v.to_bytes()
    assert VMSA_LAYOUT.struct.build(values) == v.to_bytes()
    assert VMSA_LAYOUT.parse(v.to_bytes()) == values


@given(vmsas)
def test_round_trip_through_json(v: Vmsa) -> None:
    text = json.dumps(v.to_dict())
    assert Vmsa.from_dict(json.loads(text)) == v
    assert Vmsa.from_dict(json.loads(json.dumps(v.to_dict(omit_zero=True)))) == v


@given(vmsas)
def test_repr_evaluates_back(v: Vmsa) -> None:
    assert eval(repr(v), {"Vmsa": Vmsa, "Segment": Segment}) == v


@given(vmsas, vmsas)
def test_diff_is_empty_iff_equal_and_names_changed_fields(a: Vmsa, b: Vmsa) -> None:
    d = a.diff(b)
    assert (d == []) == (a == b)
    changes: dict[str, Any] = {}
    for field, mine, theirs in d:
        assert mine != theirs
        if "." in field:
            reg, member = field.split(".")
            seg = changes.get(reg, a[reg])
            changes[reg] = Segment(**{**seg.to_dict(), member: theirs})
        else:
            changes[field] = theirs
    assert a.replace(**changes) == b


def test_field_lands_at_its_offset() -> None:
    v = Vmsa(sev_features=0x21, vmpl=2, cs=Segment(0xF000, 0x9B, 0xFFFF, 0xFFFF0000))
    page = v.to_bytes()
    assert page[0x3B0:0x3B8] == (0x21).to_bytes(8, "little")
    assert page[0x0CA] == 2
    assert page[0x010:0x020] == bytes.fromhex("00f09b00ffff00000000ffff00000000")
    assert page.count(0) == 0x1000 - 8  # 0x21, 2, and f0 9b ff ff ff ff in CS


def test_default_is_the_zero_page() -> None:
    assert Vmsa().to_bytes() == bytes(0x1000)
    assert Vmsa.from_bytes(bytes(0x1000)) == Vmsa()
    assert repr(Vmsa()) == "Vmsa()"
    assert Vmsa().to_dict(omit_zero=True) == {}


def test_diff_reports_segment_members() -> None:
    a = Vmsa(cs=Segment(0xF000, 0x9B, 0xFFFF, 0xFFFF0000), rdx=1)
    b = a.replace(cs=Segment(0xF000, 0x9A, 0xFFFF, 0xFFFF0000), rdx=2)
    assert a.diff(b) == [("cs.attrib", 0x9B, 0x9A), ("rdx", 1, 2)]


def test_getitem() -> None:
    v = Vmsa(rip=0xFFF0)
    assert v["rip"] == 0xFFF0
    with pytest.raises(KeyError):
        v["nope"]


def test_wrong_length_is_vmsa_invalid() -> None:
    with pytest.raises(VmsaInvalid) as err:
        Vmsa.from_bytes(bytes(0xFFF))
    assert err.value.field == "length"


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"vmpl": 0x100}, ValueError),
        ({"rip": 1 << 64}, ValueError),
        ({"mxcsr": -1}, ValueError),
        ({"x87_fcw": 0x1_0000}, ValueError),
        ({"rip": "0"}, TypeError),
        ({"rip": True}, TypeError),
        ({"fpreg_x87": bytes(79)}, ValueError),
        ({"fpreg_x87": 0}, TypeError),
        ({"cs": 0}, TypeError),
    ],
)
def test_construction_rejects_bad_values(changes: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        Vmsa(**changes)


def test_unknown_field_rejected() -> None:
    with pytest.raises(TypeError):
        Vmsa(fcw=0x37F)  # type: ignore[call-arg]  # the sev-snp-measure SVSM-mode typo
    with pytest.raises(ValueError):
        Vmsa.from_dict({"fcw": 0x37F})


def test_segment_checks() -> None:
    with pytest.raises(ValueError):
        Segment(selector=0x1_0000)
    with pytest.raises(ValueError):
        Segment.from_dict({"flags": 1})


def test_values_are_normalised_to_plain_types() -> None:
    v = Vmsa(sev_features=SevFeatures.SNP_ACTIVE, fpreg_ki=bytearray(64))  # type: ignore[arg-type]
    assert type(v.sev_features) is int
    assert type(v.fpreg_ki) is bytes
    assert v == Vmsa(sev_features=1)


def test_hashable_and_frozen() -> None:
    v = Vmsa(rip=1)
    assert hash(v) == hash(Vmsa(rip=1))
    with pytest.raises(AttributeError):
        v.rip = 2  # type: ignore[misc]


def test_replace_then_round_trip_through_bytes() -> None:
    v = Vmsa(cs=Segment(0xF000, 0x9B, 0xFFFF, 0xFFFF0000), rip=0xFFF0)
    changed = v.replace(rdx=1)
    assert Vmsa.from_bytes(changed.to_bytes()) == changed != v
    assert changed.diff(v) == [("rdx", 1, 0)]
