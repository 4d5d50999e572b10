"""CPUID signatures (launch-measurement.md §9.5) and SEV_FEATURES bits (vmsa-layout.md §3.1)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sevsnpmeasure.vcpu_types import cpu_sig as oracle_cpu_sig

from vmsa import (
    INT_INJ_MODES,
    VCPU_SIGNATURES,
    SevFeatures,
    cpu_signature,
    decode_cpu_signature,
    vcpu_signature,
)
from vmsa.features import DEFINED_SEV_FEATURES, features_from_sev_status

# Hand-typed from launch-measurement.md §9.5.
SPEC_SIGNATURES: dict[str, int] = {
    **dict.fromkeys(["EPYC", "EPYC-v1", "EPYC-v2", "EPYC-v3", "EPYC-v4", "EPYC-IBPB"], 0x00800F12),
    **dict.fromkeys(["EPYC-Rome", "EPYC-Rome-v1", "EPYC-Rome-v2", "EPYC-Rome-v3"], 0x00830F10),
    **dict.fromkeys(["EPYC-Milan", "EPYC-Milan-v1", "EPYC-Milan-v2"], 0x00A00F11),
    **dict.fromkeys(["EPYC-Genoa", "EPYC-Genoa-v1"], 0x00A10F10),
    "EPYC-Turin": 0x00B00F00,
}


def test_table_matches_spec() -> None:
    assert dict(VCPU_SIGNATURES) == SPEC_SIGNATURES


@pytest.mark.parametrize(
    ("fms", "sig"),
    [((23, 1, 2), 0x00800F12), ((23, 49, 0), 0x00830F10), ((25, 1, 1), 0x00A00F11),
     ((25, 17, 0), 0x00A10F10), ((26, 0, 0), 0x00B00F00), ((6, 0xF, 3), 0x0000_06F3),
     ((0xF, 0x41, 2), 0x0004_0F12), ((0x10E, 0xFF, 0xF), 0x0FFF_0FFF)],
)  # fmt: skip
def test_signature_encoding(fms: tuple[int, int, int], sig: int) -> None:
    assert cpu_signature(*fms) == sig
    assert decode_cpu_signature(sig) == fms


@given(st.integers(0xF, 0x10E), st.integers(0, 0xFF), st.integers(0, 0xF))
def test_matches_sev_snp_measure_for_extended_families(family: int, model: int, step: int) -> None:
    assert cpu_signature(family, model, step) == oracle_cpu_sig(family, model, step)


@given(st.integers(0, 0x10E), st.integers(0, 0xFF), st.integers(0, 0xF))
def test_decode_inverts_encode(family: int, model: int, step: int) -> None:
    if family < 0xF and model > 0xF:
        with pytest.raises(ValueError):
            cpu_signature(family, model, step)
    else:
        assert decode_cpu_signature(cpu_signature(family, model, step)) == (family, model, step)


@pytest.mark.parametrize(
    "fms", [(-1, 0, 0), (0x10F, 0, 0), (0x19, 0x100, 0), (0x19, 0, 0x10), (6, 0x10, 0)]
)
def test_unencodable_inputs(fms: tuple[int, int, int]) -> None:
    with pytest.raises(ValueError):
        cpu_signature(*fms)


def test_vcpu_signature_lookup() -> None:
    assert vcpu_signature("EPYC-Milan") == 0x00A00F11
    assert vcpu_signature("epyc-genoa") == 0x00A10F10
    with pytest.raises(KeyError, match="EPYC-Genoa"):
        vcpu_signature("EPYC-Zen9")


# Hand-typed from vmsa-layout.md §3.1.
SPEC_FEATURE_BITS: dict[str, int] = {
    "SNP_ACTIVE": 0,
    "VTOM": 1,
    "REFLECT_VC": 2,
    "RESTRICTED_INJECTION": 3,
    "ALTERNATE_INJECTION": 4,
    "DEBUG_SWAP": 5,
    "PREVENT_HOST_IBS": 6,
    "BTB_ISOLATION": 7,
    "VMPL_SSS": 8,
    "SECURE_TSC": 9,
    "VMGEXIT_PARAMETER": 10,
    "IBS_VIRTUALIZATION": 12,
    "VMSA_REG_PROT": 14,
    "SMT_PROTECTION": 15,
    "SECURE_AVIC": 16,
    "IBPB_ON_ENTRY": 21,
}


def test_feature_bits_match_spec() -> None:
    assert {m.name: m.value.bit_length() - 1 for m in SevFeatures} == SPEC_FEATURE_BITS
    assert all(m.value == 1 << SPEC_FEATURE_BITS[str(m.name)] for m in SevFeatures)
    assert int(DEFINED_SEV_FEATURES) == sum(1 << b for b in SPEC_FEATURE_BITS.values())
    assert int(INT_INJ_MODES) == 0b11000


def test_sev_status_msr_shift() -> None:
    # SEV_STATUS: bit 0 SEV, 1 SEV-ES, 2 SNP, then SEV_FEATURES bit n at bit n + 2.
    msr = 0b111 | (1 << (5 + 2))
    assert features_from_sev_status(msr) == SevFeatures.SNP_ACTIVE | SevFeatures.DEBUG_SWAP
    with pytest.raises(ValueError):
        features_from_sev_status(1 << 64)
