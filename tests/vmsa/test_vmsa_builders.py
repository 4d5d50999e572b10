"""Initial VMSAs per hypervisor profile, checked against sev-snp-measure as an oracle.

sev-snp-measure 0.0.13 (``sevsnpmeasure``) is imported only here, never by ``vmsa``.
"""

from __future__ import annotations

import ast
import hashlib
import inspect

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sevsnpmeasure.sev_mode import SevMode
from sevsnpmeasure.vcpu_types import CPU_SIGS
from sevsnpmeasure.vmm_types import VMMType
from sevsnpmeasure.vmsa import VMSA, VMSA_SVSM

import vmsa.builders
from tests.launch.helpers import VECTOR_QEMU_BSP_VMSA_HASH
from vmsa import (
    EC2,
    GCE,
    PROFILES,
    QEMU,
    QEMU_SVSM,
    RESET_EIP,
    Segment,
    Vmsa,
    VmsaProfile,
    build_ap,
    build_bsp,
    build_lower_vmpl,
    build_vcpus,
    check_vmsa,
    vcpu_signature,
)

ORACLE_VMM: list[tuple[VMMType, VmsaProfile]] = [
    (VMMType.QEMU, QEMU),
    (VMMType.ec2, EC2),
    (VMMType.gce, GCE),
]
VCPU_TYPES = ["EPYC-v4", "EPYC-Rome", "EPYC-Milan", "EPYC-Genoa", "EPYC-Turin"]
SEV_FEATURES = [0x1, 0x21, 0x4001]
AP_EIPS = [0xFFFF_D0C4, 0x0080_B004]


def oracle_pages(vmm: VMMType, *, vcpus: int, ap_eip: int, sig: int, features: int) -> list[bytes]:
    """The VMSA pages sev-snp-measure measures for this guest, in vCPU order."""
    model = VMSA(SevMode.SEV_SNP, ap_eip, sig, features, vmm)
    return list(model.pages(vcpus))


def assert_same_page(ours: Vmsa, theirs: bytes) -> None:
    """Byte equality, with a field-level diff as the failure message."""
    assert ours.diff(Vmsa.from_bytes(theirs)) == []
    assert ours.to_bytes() == theirs


@pytest.mark.parametrize("ap_eip", AP_EIPS, ids=hex)
@pytest.mark.parametrize("features", SEV_FEATURES, ids=hex)
@pytest.mark.parametrize("vcpu_type", VCPU_TYPES)
@pytest.mark.parametrize(("vmm", "profile"), ORACLE_VMM, ids=lambda x: getattr(x, "name", ""))
def test_bsp_and_ap_match_sev_snp_measure(
    vmm: VMMType, profile: VmsaProfile, vcpu_type: str, features: int, ap_eip: int
) -> None:
    sig = vcpu_signature(vcpu_type)
    theirs = oracle_pages(vmm, vcpus=3, ap_eip=ap_eip, sig=sig, features=features)
    bsp = build_bsp(profile, sev_features=features, cpu_sig=sig)
    ap = build_ap(profile, eip=ap_eip, sev_features=features, cpu_sig=sig)
    assert_same_page(bsp, theirs[0])
    assert_same_page(ap, theirs[1])
    assert_same_page(ap, theirs[2])
    ours = build_vcpus(profile, vcpus=3, ap_eip=ap_eip, sev_features=features, cpu_sig=sig)
    assert [v.to_bytes() for v in ours] == theirs


@given(
    pair=st.sampled_from(ORACLE_VMM),
    sig=st.integers(0, 0xFFFF_FFFF),
    features=st.integers(0, (1 << 64) - 1),
    ap_eip=st.integers(1, 0xFFFF_FFFF),
)
def test_random_inputs_match_sev_snp_measure(
    pair: tuple[VMMType, VmsaProfile], sig: int, features: int, ap_eip: int
) -> None:
    vmm, profile = pair
    # sev-snp-measure keys EC2's BSP CS attribute on EIP == reset vector, we key it on
    # the BSP role; the two agree for every AP EIP except the reset vector itself.
    if profile is EC2 and ap_eip == RESET_EIP:
        ap_eip -= 1
    theirs = oracle_pages(vmm, vcpus=2, ap_eip=ap_eip, sig=sig, features=features)
    ours = build_vcpus(profile, vcpus=2, ap_eip=ap_eip, sev_features=features, cpu_sig=sig)
    assert [v.to_bytes() for v in ours] == theirs


def test_svsm_profile_matches_sev_snp_measure_up_to_its_fcw_typo() -> None:
    """sev-snp-measure's SVSM mode loses FCW (launch-measurement.md §9.6)."""
    entry = 0xFFE0_1234
    sig = vcpu_signature("EPYC-Milan")
    theirs = list(VMSA_SVSM(entry, sig, VMMType.QEMU).pages(2))
    ssm_like = QEMU_SVSM.derive(x87_fcw=0)
    assert_same_page(build_bsp(ssm_like, eip=entry, sev_features=1, cpu_sig=sig), theirs[0])
    assert_same_page(build_ap(ssm_like, eip=entry, sev_features=1, cpu_sig=sig), theirs[1])
    ours = build_bsp(QEMU_SVSM, eip=entry, sev_features=1, cpu_sig=sig)
    assert ours.diff(Vmsa.from_bytes(theirs[0])) == [("x87_fcw", 0x37F, 0)]


def test_qemu_bsp_golden_hash() -> None:
    """launch-measurement.md §9.7: SHA-384 of the QEMU BSP VMSA, sig 0x800F12, features 1."""
    page = build_bsp(QEMU, sev_features=0x1, cpu_sig=0x800F12).to_bytes()
    assert hashlib.sha384(page).digest() == VECTOR_QEMU_BSP_VMSA_HASH


def test_vcpu_signatures_match_sev_snp_measure() -> None:
    for name, sig in CPU_SIGS.items():
        assert vcpu_signature(name) == sig


# --- register values typed from the spec tables (vmsa-layout.md §5.1, §9.4) -----------


def test_qemu_reset_state_from_spec() -> None:
    v = build_bsp(QEMU, sev_features=0x1, cpu_sig=0x00A10F10)
    assert v.cs == Segment(0xF000, 0x9B, 0xFFFF, 0xFFFF0000)
    assert v.rip == 0xFFF0
    for reg in (v.ds, v.es, v.fs, v.gs, v.ss):
        assert reg == Segment(0, 0x93, 0xFFFF, 0)
    assert v.gdtr == v.idtr == Segment(0, 0, 0xFFFF, 0)
    assert v.ldtr == Segment(0, 0x82, 0xFFFF, 0)
    assert v.tr == Segment(0, 0x8B, 0xFFFF, 0)
    assert (v.efer, v.cr0, v.cr4, v.cr3, v.cr2) == (0x1000, 0x10, 0x40, 0, 0)
    assert (v.dr7, v.dr6, v.rflags) == (0x400, 0xFFFF0FF0, 0x2)
    assert v.rdx == 0x00A10F10
    assert v.g_pat == 0x0007040600070406
    assert (v.xcr0, v.mxcsr, v.x87_fcw, v.x87_ftw, v.x87_fsw) == (1, 0x1F80, 0x37F, 0, 0)
    assert (v.sev_features, v.vmpl, v.cpl) == (1, 0, 0)
    gprs = ("rax", "rbx", "rcx", "rsp", "rbp", "rsi", "rdi", *(f"r{i}" for i in range(8, 16)))
    assert all(v[r] == 0 for r in gprs)


def test_ec2_deltas_from_spec() -> None:
    bsp = build_bsp(EC2, sev_features=0x1, cpu_sig=0x00A00F11)
    ap = build_ap(EC2, eip=0xFFFFD0C4, sev_features=0x1, cpu_sig=0x00A00F11)
    assert bsp.cs.attrib == 0x9A
    assert ap.cs.attrib == 0x9B
    for v in (bsp, ap):
        assert (v.ss.attrib, v.tr.attrib, v.rdx, v.mxcsr, v.x87_fcw) == (0x92, 0x83, 0x600, 0, 0)
        assert v.g_pat == 0x0007040600070406


def test_gce_deltas_from_spec() -> None:
    v = build_bsp(GCE, sev_features=0x1, cpu_sig=0x00A00F11)
    assert (v.cs.attrib, v.ss.attrib, v.tr.attrib) == (0x9B, 0x93, 0x8B)
    assert (v.g_pat, v.rdx, v.mxcsr, v.x87_fcw) == (0x00070106, 0x600, 0, 0)


@pytest.mark.parametrize("profile", [QEMU, EC2, GCE], ids=lambda p: p.name)
def test_ap_cs_base_and_rip_split_the_eip(profile: VmsaProfile) -> None:
    ap = build_ap(profile, eip=0x0080_B004, sev_features=1, cpu_sig=0x800F12)
    assert (ap.cs.selector, ap.cs.limit) == (0xF000, 0xFFFF)
    assert (ap.cs.base, ap.rip) == (0x0080_0000, 0xB004)
    assert ap.cs.base + ap.rip == 0x0080_B004


def test_svsm_profile_from_spec() -> None:
    v = build_bsp(QEMU_SVSM, eip=0x8080_1000, sev_features=1, cpu_sig=0x800F12)
    assert v.cs == Segment(8, 0xC9B, 0xFFFFFFFF, 0)
    assert v.es == v.ss == v.ds == v.fs == Segment(16, 0xC93, 0xFFFFFFFF, 0)
    assert v.gs == Segment(0, 0x93, 0xFFFF, 0)
    assert (v.cr0, v.rip, v.rdx, v.mxcsr) == (0x11, 0x8080_1000, 0x800F12, 0x1F80)


# --- lower VMPLs and vCPU lists ------------------------------------------------------------


@pytest.mark.parametrize("vmpl", [1, 2, 3])
def test_lower_vmpl_differs_only_in_vmpl(vmpl: int) -> None:
    low = build_lower_vmpl(QEMU, vmpl=vmpl, sev_features=1, cpu_sig=0x800F12)
    assert low.diff(build_bsp(QEMU, sev_features=1, cpu_sig=0x800F12)) == [("vmpl", vmpl, 0)]
    low_ap = build_lower_vmpl(EC2, vmpl=vmpl, eip=0x1000, sev_features=1, cpu_sig=0)
    assert low_ap.replace(vmpl=0) == build_ap(EC2, eip=0x1000, sev_features=1, cpu_sig=0)
    check_vmsa(low, expected_vmpl=vmpl)
    assert low.to_bytes()[0xCA] == vmpl


@pytest.mark.parametrize("vmpl", [0, 4, -1])
def test_lower_vmpl_rejects_vmpl0_and_out_of_range(vmpl: int) -> None:
    with pytest.raises(ValueError):
        build_lower_vmpl(QEMU, vmpl=vmpl, sev_features=1, cpu_sig=0)


def test_build_vcpus() -> None:
    one = build_vcpus(QEMU, vcpus=1, sev_features=1, cpu_sig=0)
    assert one == (build_bsp(QEMU, sev_features=1, cpu_sig=0),)
    four = build_vcpus(GCE, vcpus=4, ap_eip=0xFFFFD0C4, sev_features=1, cpu_sig=0)
    assert len(four) == 4 and four[1] == four[2] == four[3] != four[0]
    with pytest.raises(ValueError):
        build_vcpus(QEMU, vcpus=2, sev_features=1, cpu_sig=0)
    with pytest.raises(ValueError):
        build_vcpus(QEMU, vcpus=0, sev_features=1, cpu_sig=0)


@pytest.mark.parametrize(("eip", "sig"), [(-1, 0), (1 << 64, 0), (0, 1 << 32), (0, -1)])
def test_builders_reject_out_of_range_inputs(eip: int, sig: int) -> None:
    with pytest.raises(ValueError):
        build_ap(QEMU, eip=eip, sev_features=1, cpu_sig=sig)


@pytest.mark.parametrize("profile", list(PROFILES.values()), ids=list(PROFILES))
def test_built_vmsas_pass_validation(profile: VmsaProfile) -> None:
    for v in build_vcpus(profile, vcpus=2, ap_eip=0xFFFFD0C4, sev_features=0x21, cpu_sig=0):
        check_vmsa(v, expected_vmpl=0, guest_sev_features=0x21)


# --- profiles are data --------------------------------------------------------------------


def test_a_new_hypervisor_is_just_data() -> None:
    custom = QEMU.derive(name="custom", g_pat=0x0606060606060606, rdx=0x1234, cr4=0)
    v = build_bsp(custom, sev_features=1, cpu_sig=0x800F12)
    base = build_bsp(QEMU, sev_features=1, cpu_sig=0x800F12)
    assert {f for f, _, _ in v.diff(base)} == {"g_pat", "rdx", "cr4"}


def test_builders_never_branch_on_the_hypervisor() -> None:
    """No profile name and no ``.name`` lookup appears in builders.py (design.md §2.6)."""
    tree = ast.parse(inspect.getsource(vmsa.builders))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
    }
    names = {n.casefold() for n in PROFILES} | {"qemu", "kvm", "ec2", "gce"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            assert node.attr not in ("name", "description")
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            assert id(node) in docstrings or node.value.casefold() not in names
        if isinstance(node, ast.Name):
            assert node.id not in ("QEMU", "EC2", "GCE", "QEMU_SVSM", "PROFILES")


def test_profile_rejects_out_of_range_values() -> None:
    with pytest.raises(ValueError):
        QEMU.derive(g_pat=1 << 64)


def test_profiles_registry() -> None:
    assert set(PROFILES) == {"qemu", "ec2", "gce", "qemu-svsm"}
    assert all(PROFILES[name].name == name for name in PROFILES)
