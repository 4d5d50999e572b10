"""The launch digest as the firmware computes it (launch-measurement.md §1-§3, §9.7).

Every digest here is read from the firmware's guest context after real SNP_LAUNCH_UPDATE
commands, and compared with the §9.7 vectors (hand-copied) or with the test's own
``struct``-packed PAGE_INFO chain (tests/launch/helpers.py)."""

from __future__ import annotations

import pytest

import vmsa
from sp_emu.measure import ContentHasher
from sp_emu.platform import Platform
from tests.launch.helpers import (
    DATA,
    KVM_VMSA_GPA,
    MIB2,
    NORMAL,
    PAGE,
    REGION,
    SECRETS,
    UNMEASURED,
    VECTOR_NORMAL_GPA0,
    VECTOR_QEMU_BSP_VMSA_HASH,
    VECTOR_QEMU_BSP_VMSA_LD,
    VECTOR_SECRETS_80D000,
    VECTOR_ZERO_800000,
    VMSA,
    ZERO,
    ZEROS48,
    digest,
    entry,
    guest,
    launch_page,
    ready,
    ref_extend,
    ref_page_info,
    sha384,
)


def qemu_bsp_vmsa() -> bytes:
    return vmsa.build_bsp(vmsa.QEMU, sev_features=1, cpu_sig=0x800F12).to_bytes()


def _observe(p: Platform) -> list[tuple[int, int, bytes, bytes]]:
    seen: list[tuple[int, int, bytes, bytes]] = []
    p.fw.measure_observers.append(lambda *unit: seen.append(unit))
    return seen


# --- §9.7 vectors through the firmware ----------------------------------------------------------
@pytest.mark.parametrize(
    ("page_type", "gpa", "data", "want"),
    [
        pytest.param(NORMAL, 0x0, bytes(PAGE), VECTOR_NORMAL_GPA0, id="NORMAL-zero-page-gpa0"),
        pytest.param(ZERO, 0x800000, b"", VECTOR_ZERO_800000, id="ZERO-0x800000"),
        pytest.param(SECRETS, 0x80D000, b"", VECTOR_SECRETS_80D000, id="SECRETS-0x80D000"),
        pytest.param(VMSA, KVM_VMSA_GPA, None, VECTOR_QEMU_BSP_VMSA_LD, id="QEMU-BSP-VMSA"),
    ],
)
def test_section_9_7_vector_through_launch_update(
    page_type: int, gpa: int, data: bytes | None, want: bytes
) -> None:
    p = ready()
    assert digest(p) == ZEROS48  # LD starts as 48 zero bytes
    launch_page(p, DATA, gpa, page_type, qemu_bsp_vmsa() if data is None else data)
    assert digest(p) == want


def test_zero_page_vector_ignores_host_content() -> None:
    """A ZERO page's content is not measured: host garbage gives the same vector."""
    p = ready()
    launch_page(p, DATA, 0x800000, ZERO, b"\xa5" * PAGE)
    assert digest(p) == VECTOR_ZERO_800000


def test_qemu_bsp_vmsa_contents_hash_is_the_vector() -> None:
    """The CONTENTS the firmware put in the VMSA's PAGE_INFO is §9.7's page hash."""
    page = qemu_bsp_vmsa()
    assert sha384(page) == VECTOR_QEMU_BSP_VMSA_HASH
    p = ready()
    seen = _observe(p)
    launch_page(p, DATA, KVM_VMSA_GPA, VMSA, page)
    assert seen == [(VMSA, KVM_VMSA_GPA, VECTOR_QEMU_BSP_VMSA_HASH, VECTOR_QEMU_BSP_VMSA_LD)]


def test_vectors_chain_in_launch_order() -> None:
    """Four updates in one launch: the digest is the chain of the four PAGE_INFOs."""
    p = ready()
    page = qemu_bsp_vmsa()
    launch_page(p, DATA, 0x0, NORMAL, bytes(PAGE))
    launch_page(p, DATA + PAGE, 0x800000, ZERO)
    launch_page(p, DATA + 2 * PAGE, 0x80D000, SECRETS)
    launch_page(p, DATA + 3 * PAGE, KVM_VMSA_GPA, VMSA, page)
    ld = VECTOR_NORMAL_GPA0
    ld = ref_extend(ld, ZEROS48, ZERO, 0x800000)
    ld = ref_extend(ld, ZEROS48, SECRETS, 0x80D000)
    ld = ref_extend(ld, VECTOR_QEMU_BSP_VMSA_HASH, VMSA, KVM_VMSA_GPA)
    assert digest(p) == ld


def test_measured_gpa_comes_from_the_rmp_entry() -> None:
    """The command carries no GPA: PAGE_INFO.GPA is what RMPUPDATE recorded, whatever the
    page's system address."""
    a, b = ready(), ready()
    launch_page(a, DATA, 0x800000, ZERO)
    launch_page(b, REGION + 0x37000, 0x800000, ZERO)
    assert digest(a) == digest(b) == VECTOR_ZERO_800000


# --- 2 MiB pages ---------------------------------------------------------------------------------
def _two_mib_data() -> bytes:
    return b"".join(i.to_bytes(2, "little") * (PAGE // 2) for i in range(512))


@pytest.mark.parametrize("page_type", [NORMAL, ZERO, UNMEASURED])
@pytest.mark.parametrize("threads", [1, 2])
def test_two_mib_update_equals_512_small_ones(page_type: int, threads: int) -> None:
    data = _two_mib_data()
    gpa = 0x4000_0000
    big = ready()
    big.fw.content_hasher = ContentHasher(threads)
    seen = _observe(big)
    launch_page(big, REGION, gpa, page_type, data, page_size=1)

    small = ready()
    for i in range(512):
        chunk = data[i * PAGE : (i + 1) * PAGE]
        launch_page(small, DATA + i * PAGE, gpa + i * PAGE, page_type, chunk)

    ld = ZEROS48
    for i in range(512):
        chunk = data[i * PAGE : (i + 1) * PAGE]
        contents = sha384(chunk) if page_type == NORMAL else ZEROS48
        ld = ref_extend(ld, contents, page_type, gpa + i * PAGE)
    assert digest(big) == digest(small) == ld
    # one PAGE_INFO per 4 KiB unit, GPA advancing by 0x1000
    assert [u[1] for u in seen] == [gpa + i * PAGE for i in range(512)]
    big.fw.content_hasher.close()


def test_two_mib_update_uses_the_rmp_gpa_of_the_2mib_entry() -> None:
    p = ready()
    launch_page(p, REGION, 0x60_0000, ZERO, page_size=1)
    ld = ZEROS48
    for i in range(512):
        ld = ref_extend(ld, ZEROS48, ZERO, 0x60_0000 + i * PAGE)
    assert digest(p) == ld
    assert entry(p, REGION).page_size == 1


# --- VMPL permissions -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "perms", [(0x1F, 0, 0), (0, 0x1F, 0), (0, 0, 0x1F), (0x01, 0x03, 0x0F), (0x1F, 0x1F, 0x1F)]
)
def test_vmpl_permissions_are_measured_at_0x65_0x66_0x67(perms: tuple[int, int, int]) -> None:
    data = bytes(range(256)) * 16
    p = ready()
    launch_page(p, DATA, 0x3000, NORMAL, data, perms=perms)
    # the PAGE_INFO packed independently, byte by byte at the §1.1 offsets
    info = bytearray(0x70)
    info[0x30:0x60] = sha384(data)
    info[0x60:0x62] = (0x70).to_bytes(2, "little")
    info[0x62] = NORMAL
    info[0x65], info[0x66], info[0x67] = perms
    info[0x68:0x70] = (0x3000).to_bytes(8, "little")
    assert digest(p) == sha384(bytes(info))
    assert digest(p) == ref_extend(ZEROS48, sha384(data), NORMAL, 0x3000, perms=perms)
    # not the zero-permission digest, and not sev-snp-measure's reversed byte order
    assert digest(p) != ref_extend(ZEROS48, sha384(data), NORMAL, 0x3000)
    reversed_info = bytearray(info)
    reversed_info[0x64:0x68] = bytes((perms[2], perms[1], perms[0], 0))
    assert digest(p) != sha384(bytes(reversed_info))
    # and the RMP entry carries them: VMPL1..3 bytes of the permission word
    assert entry(p, DATA).perms[1:] == perms


def test_permissions_of_a_2mib_update_apply_to_every_unit() -> None:
    p = ready()
    perms = (0x03, 0x01, 0x00)
    launch_page(p, REGION, 0x20_0000, UNMEASURED, page_size=1, perms=perms)
    ld = ZEROS48
    for i in range(512):
        ld = ref_extend(ld, ZEROS48, UNMEASURED, 0x20_0000 + i * PAGE, perms=perms)
    assert digest(p) == ld


# --- IMI pages and the IMD chain (§1.3) ---------------------------------------------------------
def test_imi_pages_extend_both_chains() -> None:
    """A non-IMI guest may still send IMI pages: LD measures every page (IMI bit set in the
    PAGE_INFO of IMI pages); the IMD chain measures only the IMI pages."""
    p = ready()
    a, b, c = b"\x01" * PAGE, b"\x02" * PAGE, b"\x03" * PAGE
    launch_page(p, DATA, 0x1000, NORMAL, a)
    assert guest(p).imd == ZEROS48
    launch_page(p, DATA + PAGE, 0x2000, NORMAL, b, imi_page=1, perms=(1, 0, 0))
    launch_page(p, DATA + 2 * PAGE, 0x3000, ZERO, c, imi_page=1)

    ld = ref_extend(ZEROS48, sha384(a), NORMAL, 0x1000)
    ld = ref_extend(ld, sha384(b), NORMAL, 0x2000, imi=True, perms=(1, 0, 0))
    ld = ref_extend(ld, ZEROS48, ZERO, 0x3000, imi=True)
    imd = ref_extend(ZEROS48, sha384(b), NORMAL, 0x2000, imi=True, perms=(1, 0, 0))
    imd = ref_extend(imd, ZEROS48, ZERO, 0x3000, imi=True)
    assert digest(p) == ld
    assert guest(p).imd == imd
    # the IMI PAGE_INFO differs from the plain one only in byte 0x63
    plain = ref_page_info(ZEROS48, ZEROS48, ZERO, 0x3000)
    imi = ref_page_info(ZEROS48, ZEROS48, ZERO, 0x3000, imi=True)
    assert [i for i in range(0x70) if plain[i] != imi[i]] == [0x63]


def test_imi_guest_chains() -> None:
    """An IMI_EN guest measures only IMI pages; its IMD equals its LD when it started from
    zero and every page was an IMI page."""
    p = ready(imi_en=1)
    assert guest(p).imi_en
    launch_page(p, DATA, 0x1000, NORMAL, b"\x11" * PAGE, imi_page=1)
    launch_page(p, REGION, 0x20_0000, ZERO, page_size=1, imi_page=1)
    ld = ref_extend(ZEROS48, sha384(b"\x11" * PAGE), NORMAL, 0x1000, imi=True)
    for i in range(512):
        ld = ref_extend(ld, ZEROS48, ZERO, 0x20_0000 + i * PAGE, imi=True)
    assert digest(p) == ld
    assert guest(p).imd == ld


def test_two_mib_region_data_is_hashed_per_unit() -> None:
    """Changing one byte in unit 300 of a 2 MiB NORMAL page changes the digest as the
    reference chain predicts (the firmware hashes each 4 KiB unit on its own)."""
    data = bytearray(MIB2)
    data[300 * PAGE + 5] = 1
    p = ready()
    launch_page(p, REGION, 0, NORMAL, bytes(data), page_size=1)
    ld = ZEROS48
    for i in range(512):
        ld = ref_extend(ld, sha384(bytes(data[i * PAGE : (i + 1) * PAGE])), NORMAL, i * PAGE)
    assert digest(p) == ld
