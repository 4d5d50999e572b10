"""What a successful SNP_LAUNCH_UPDATE does to the page, per page type
(launch-measurement.md §2-§5, firmware-commands.md §6 "Effect on success"), and the CPUID
page's failure path (§4): the corrected table written back in plaintext."""

from __future__ import annotations

import struct

import pytest

import vmsa
from rmp import PageState, RmpFault
from sp_emu.abi.commands import CommandId as C
from sp_emu.abi.status import SnpStatus as S
from tests.launch.helpers import (
    ASID,
    CPUID,
    DATA,
    GCTX,
    KVM_VMSA_GPA,
    MIB2,
    NORMAL,
    PAGE,
    REGION,
    SECRETS,
    UNMEASURED,
    VMSA,
    ZERO,
    ZEROS48,
    assert_unchanged,
    capture,
    digest,
    entry,
    guest,
    guest_read,
    launch_page,
    pre_guest,
    ready,
    ref_extend,
    sha384,
    state_of,
    update,
)

GPA = 0x9000
HOST_DATA = bytes((i * 7 + 3) & 0xFF for i in range(PAGE))
"""What the host writes into every launch page before RMPUPDATE."""

VENDOR = (0x68747541, 0x444D4163, 0x69746E65)  # EBX "Auth", ECX "cAMD", EDX "enti"


def cpuid_entry(
    leaf: int, eax: int = 0, ebx: int = 0, ecx: int = 0, edx: int = 0, rsvd: int = 0
) -> bytes:
    """A 0x30-byte CPUID entry at the §4 offsets (ECX_IN, XCR0_IN, XSS_IN zero)."""
    return struct.pack("<IIQQIIIIQ", leaf, 0, 0, 0, eax, ebx, ecx, edx, rsvd)


def cpuid_page(entries: list[bytes], *, count: int | None = None, tail: bytes = b"") -> bytes:
    header = struct.pack("<IIQ", len(entries) if count is None else count, 0, 0)
    body = header + b"".join(entries)
    body += tail
    return body + b"\xcc" * (PAGE - len(body))  # bytes past the table are ignored


GOOD_TABLE = [
    cpuid_entry(0x0, 0x10, VENDOR[0], VENDOR[1], VENDOR[2]),
    cpuid_entry(0x1, 0x00A10F11, 0, 0x80000000, 0),
    cpuid_entry(0x8000_0000, 0x8000_0028, VENDOR[0], VENDOR[1], VENDOR[2]),
    cpuid_entry(0x8000_001F, 0x1B, 0x33 | 1 << 6),
]


# --- RMP and memory after each page type ---------------------------------------------------------
def _qemu_vmsa(features: int = 1) -> bytes:
    return vmsa.build_bsp(vmsa.QEMU, sev_features=features, cpu_sig=0x800F12).to_bytes()


@pytest.mark.parametrize("page_type", [NORMAL, ZERO, UNMEASURED, SECRETS, CPUID, VMSA])
def test_page_becomes_guest_valid_with_the_given_permissions(page_type: int) -> None:
    p = ready()
    data = {CPUID: cpuid_page(GOOD_TABLE), VMSA: _qemu_vmsa()}.get(page_type, HOST_DATA)
    gpa = KVM_VMSA_GPA if page_type == VMSA else GPA
    perms = (0x1F, 0x0B, 0x01)
    launch_page(p, DATA, gpa, page_type, data, perms=perms)
    e = entry(p, DATA)
    assert state_of(p, DATA) is PageState.GUEST_VALID
    assert (e.assigned, e.validated, e.immutable) == (True, True, False)
    assert (e.asid, e.gpa, e.page_size) == (ASID, gpa, 0)
    assert e.perms[1:] == perms
    assert e.vmsa == (page_type == VMSA)
    # the host may no longer write the page
    with pytest.raises(RmpFault):
        p.cpu.host_write(DATA, b"x")


@pytest.mark.parametrize("page_type", [NORMAL, UNMEASURED])
def test_host_sees_ciphertext_guest_sees_the_host_plaintext(page_type: int) -> None:
    p = ready()
    launch_page(p, DATA, GPA, page_type, HOST_DATA)
    assert p.cpu.host_read(DATA, PAGE) != HOST_DATA
    assert guest_read(p, GPA, DATA) == HOST_DATA
    assert guest_read(p, GPA + 0x123, DATA + 0x123, 16) == HOST_DATA[0x123:0x133]


def test_zero_page_reads_as_zeros_to_the_guest() -> None:
    p = ready()
    launch_page(p, DATA, GPA, ZERO, HOST_DATA)
    assert guest_read(p, GPA, DATA) == bytes(PAGE)
    assert p.cpu.host_read(DATA, PAGE) not in (bytes(PAGE), HOST_DATA)
    assert digest(p) == ref_extend(ZEROS48, ZEROS48, ZERO, GPA)


def test_unmeasured_page_content_is_not_hashed() -> None:
    a, b = ready(), ready()
    launch_page(a, DATA, GPA, UNMEASURED, HOST_DATA)
    launch_page(b, DATA, GPA, UNMEASURED, b"\x00" * PAGE)
    assert digest(a) == digest(b) == ref_extend(ZEROS48, ZEROS48, UNMEASURED, GPA)


@pytest.mark.parametrize("page_type", [NORMAL, ZERO, UNMEASURED])
def test_two_mib_page_is_one_guest_valid_2mib_entry(page_type: int) -> None:
    p = ready()
    data = bytes(range(256)) * (MIB2 // 256)
    launch_page(p, REGION, 0x20_0000, page_type, data, page_size=1, perms=(1, 2, 3))
    e = entry(p, REGION)
    assert state_of(p, REGION) is PageState.GUEST_VALID
    assert (e.page_size, e.validated, e.perms[1:]) == (1, True, (1, 2, 3))
    for unit in (0, 1, 300, 511):
        seen = guest_read(p, 0x20_0000 + unit * PAGE, REGION + unit * PAGE, 64)
        want = bytes(64) if page_type == ZERO else data[unit * PAGE : unit * PAGE + 64]
        assert seen == want, unit
    assert p.cpu.host_read(REGION + 300 * PAGE, 64) != data[300 * PAGE : 300 * PAGE + 64]


# --- the secrets page (§5) -----------------------------------------------------------------------
TWEAK_BITMAP = bytes.fromhex(
    "00 00 00 00 00 80 00 88  00 00 00 00 EE FF 00 00  F0 FF FF FF FF FF FF FF  "
    "FF 3F 00 00 00 00 00 00  00 00 00 00 00 00 FF FF  FF FF FF FF FF FF FF FF  "
    "FF FF FF FF FF FF FF FF  FF FF FF FF FF FF FF 00"
)  # launch-measurement.md §5, hand-copied (FW 1.55)


@pytest.mark.parametrize(
    ("product", "fms"),
    # CPUID Fn0000_0001_EAX of the product's family/model/stepping, by the §9.5 formula
    [("Genoa", 0x00A10F11), ("Milan", 0x00A00F11), ("Turin", 0x00B00F21)],
)
def test_secrets_page_contents(product: str, fms: int) -> None:
    gosvw = bytes(range(0xA0, 0xB0))
    p = ready(product, gosvw=gosvw)
    launch_page(p, DATA, GPA, SECRETS, HOST_DATA)  # host content is replaced
    page = guest_read(p, GPA, DATA)
    version, imi_word, got_fms, rsvd = struct.unpack_from("<IIII", page, 0)
    assert (version, imi_word, got_fms, rsvd) == (3, 0, fms, 0)
    assert page[0x010:0x020] == gosvw
    vmpcks = [page[0x020 + 32 * i : 0x040 + 32 * i] for i in range(4)]
    assert all(k != bytes(32) for k in vmpcks)
    assert len(set(vmpcks)) == 4
    assert tuple(vmpcks) == guest(p).vmpck
    assert page[0x0A0:0x100] == bytes(0x60)  # guest-OS area left zero
    assert page[0x100:0x140] == TWEAK_BITMAP
    assert page[0x140:0x160] == bytes(0x20)  # SVSM area left zero
    assert struct.unpack_from("<I", page, 0x160)[0] == 200  # TSC_FACTOR
    assert page[0x164:] == bytes(PAGE - 0x164)
    assert p.cpu.host_read(DATA, PAGE) != page
    assert digest(p) == ref_extend(ZEROS48, ZEROS48, SECRETS, GPA)


def test_secrets_page_records_imi_en() -> None:
    p = ready(imi_en=1)
    launch_page(p, DATA, GPA, SECRETS, imi_page=1)
    page = guest_read(p, GPA, DATA)
    assert struct.unpack_from("<I", page, 4)[0] == 1


def test_two_guests_get_different_vmpcks() -> None:
    from tests.launch.helpers import GCTX2, activated

    p = ready()
    activated(p, GCTX2, asid=2)
    launch_page(p, DATA, GPA, SECRETS)
    launch_page(p, DATA + PAGE, GPA, SECRETS, asid=2, gctx=GCTX2)
    a = guest_read(p, GPA, DATA)[0x20:0xA0]
    b = guest_read(p, GPA, DATA + PAGE, asid=2)[0x20:0xA0]
    assert a != b


# --- VMSA pages (§3) -----------------------------------------------------------------------------
def test_vmsa_fixup_after_hashing() -> None:
    """The firmware hashes the page as given, then writes 0 at 0x380..0x387 and all-ones
    at 0x388..0x38F; nothing else changes (SEV_FEATURES without VmsaRegProt/SecureTSC)."""
    page = bytearray(_qemu_vmsa())
    page[0x380:0x390] = bytes(range(1, 17))  # whatever the host left there is hashed
    p = ready()
    launch_page(p, DATA, KVM_VMSA_GPA, VMSA, bytes(page))
    assert digest(p) == ref_extend(ZEROS48, sha384(bytes(page)), VMSA, KVM_VMSA_GPA)
    seen = guest_read(p, KVM_VMSA_GPA, DATA)
    assert seen[0x380:0x388] == bytes(8)
    assert seen[0x388:0x390] == b"\xff" * 8
    assert seen[:0x380] == page[:0x380]
    assert seen[0x390:] == page[0x390:]


def test_vmsa_tsc_fields_are_hashed_as_zero() -> None:
    """GUEST_TSC_SCALE (0x2F0) and GUEST_TSC_OFFSET (0x2F8) do not affect the digest."""
    plain = _qemu_vmsa()
    tsc = bytearray(plain)
    tsc[0x2F0:0x300] = struct.pack("<QQ", 0x0123_4567_89AB_CDEF, 0xFEDC_BA98_7654_3210)
    a, b = ready(), ready()
    launch_page(a, DATA, KVM_VMSA_GPA, VMSA, plain)
    launch_page(b, DATA, KVM_VMSA_GPA, VMSA, bytes(tsc))
    assert digest(a) == digest(b)
    assert digest(b) == ref_extend(ZEROS48, sha384(plain), VMSA, KVM_VMSA_GPA)
    # the neighbours of the TSC fields are hashed
    for off in (0x2EF, 0x300):
        c = bytearray(plain)
        c[off] ^= 1
        q = ready()
        launch_page(q, DATA, KVM_VMSA_GPA, VMSA, bytes(c))
        assert digest(q) != digest(a), hex(off)


def test_vmsa_secure_tsc_fields_written_after_hashing() -> None:
    """SEV_FEATURES.SecureTSC (bit 9): the page is hashed with the TSC fields as zero, then
    the firmware writes GUEST_TSC_SCALE for LAUNCH_START's DESIRED_TSC_FREQ and
    GUEST_TSC_OFFSET = 0 over whatever the host left there."""
    page = bytearray(_qemu_vmsa(1 | 1 << 9))
    page[0x2F0:0x300] = struct.pack("<QQ", 0x1111, 0x2222)
    p = ready(desired_tsc_freq=2_000_000)  # kHz: a 2 GHz guest TSC
    launch_page(p, DATA, KVM_VMSA_GPA, VMSA, bytes(page))
    hashed = bytearray(page)
    hashed[0x2F0:0x300] = bytes(16)
    assert digest(p) == ref_extend(ZEROS48, sha384(bytes(hashed)), VMSA, KVM_VMSA_GPA)
    seen = guest_read(p, KVM_VMSA_GPA, DATA)
    # By hand: 2,000,000 kHz over Genoa's 99,800 kHz reference is 20 remainder 4,000; the
    # 32-bit fraction 4,000 * 2**32 / 99,800 = 172,142,977.8 rounds up to 172,142,978.
    assert struct.unpack_from("<QQ", seen, 0x2F0) == ((20 << 32) | 172_142_978, 0)
    assert seen[:0x2F0] == page[:0x2F0]


def test_vmsa_without_secure_tsc_keeps_the_host_tsc_fields() -> None:
    page = bytearray(_qemu_vmsa())
    page[0x2F0:0x300] = struct.pack("<QQ", 0x1111, 0x2222)
    p = ready(desired_tsc_freq=2_000_000)
    launch_page(p, DATA, KVM_VMSA_GPA, VMSA, bytes(page))
    seen = guest_read(p, KVM_VMSA_GPA, DATA)
    assert struct.unpack_from("<QQ", seen, 0x2F0) == (0x1111, 0x2222)


def test_vmsa_register_protection_tweak() -> None:
    """SEV_FEATURES.VmsaRegProt (bit 14): after hashing, the firmware writes a random
    8-byte tweak at 0x300 and XORs every quadword the secrets-page bitmap names with it."""
    page = bytearray(_qemu_vmsa(1 | 1 << 14))
    for q in range(512):  # give every quadword a distinct value to see the XOR
        if not 0x2F0 <= 8 * q < 0x310 and not 0x380 <= 8 * q < 0x390 and 8 * q != 0x3B0:
            page[8 * q : 8 * q + 8] = (q * 0x0101_0101_0101 + 1).to_bytes(8, "little")
    page[0x300:0x308] = bytes(8)
    p = ready()
    launch_page(p, DATA, KVM_VMSA_GPA, VMSA, bytes(page))
    assert digest(p) == ref_extend(ZEROS48, sha384(bytes(page)), VMSA, KVM_VMSA_GPA)
    seen = guest_read(p, KVM_VMSA_GPA, DATA)
    tweak = int.from_bytes(seen[0x300:0x308], "little")
    assert tweak != 0
    bitmap = int.from_bytes(TWEAK_BITMAP, "little")
    for q in range(512):
        off = 8 * q
        if off in (0x300, 0x380, 0x388):
            continue
        before = int.from_bytes(page[off : off + 8], "little")
        after = int.from_bytes(seen[off : off + 8], "little")
        want = before ^ tweak if bitmap >> q & 1 else before
        assert after == want, f"quadword at {off:#x}"
    # named protected registers (vmsa-layout.md): RIP, RSP, RAX, RCX
    for off in (0x178, 0x1D8, 0x1F8, 0x308):
        assert bitmap >> (off // 8) & 1


# --- the CPUID page (§4) -------------------------------------------------------------------------
def test_valid_cpuid_page_is_encrypted_unchanged() -> None:
    p = ready()
    table = cpuid_page(GOOD_TABLE)
    launch_page(p, DATA, GPA, CPUID, table)
    assert guest_read(p, GPA, DATA) == table
    assert digest(p) == ref_extend(ZEROS48, ZEROS48, CPUID, GPA)


def test_unchecked_leaves_and_slots_past_count_are_accepted() -> None:
    """Leaves outside 0x0-0xFFFF and 0x8000_0000-0x8000_FFFF are not checked; entries past
    COUNT are not part of the table; COUNT 64 is allowed."""
    hv = cpuid_entry(0x4000_0000, 0xDEAD, 0xBEEF, 1, 2)
    past = cpuid_entry(0x0, 0xFFFF_FFFF, 1, 2, 3, rsvd=5)  # slot 64 would be bad if read
    p = ready()
    launch_page(p, DATA, GPA, CPUID, cpuid_page([*GOOD_TABLE, hv]))
    q = ready()
    launch_page(q, DATA, GPA, CPUID, cpuid_page([hv] * 64, tail=past))


@pytest.mark.parametrize(
    ("bad", "fixed"),
    [
        pytest.param(
            cpuid_entry(0x0, 0x10, 0x756E6547, 0x6C65746E, 0x49656E69),
            cpuid_entry(0x0, 0x10, *VENDOR),
            id="leaf 0 vendor GenuineIntel",
        ),
        pytest.param(
            cpuid_entry(0x0, 0x20, *VENDOR),
            cpuid_entry(0x0, 0x10, *VENDOR),
            id="leaf 0 max leaf too high",
        ),
        pytest.param(
            cpuid_entry(0x8000_0000, 0x8000_0030, *VENDOR),
            cpuid_entry(0x8000_0000, 0x8000_0028, *VENDOR),
            id="leaf 0x80000000 max extended leaf too high",
        ),
        pytest.param(
            cpuid_entry(0x8000_001F, 0x1B, 0x2F | 1 << 6),
            cpuid_entry(0x8000_001F, 0x1B, 0x33 | 1 << 6),
            id="C-bit position 47",
        ),
        pytest.param(
            cpuid_entry(0x1, 0x00A10F11, rsvd=1),
            None,  # what the firmware puts in the reserved quadword is not documented
            id="reserved quadword",
        ),
    ],
)
def test_cpuid_policy_violation_writes_back_the_corrected_table(
    bad: bytes, fixed: bytes | None
) -> None:
    p = ready()
    index = 2
    entries = list(GOOD_TABLE)
    entries[index] = bad
    host = cpuid_page(entries)
    pre_guest(p, DATA, GPA, data=host)
    rmp_before = p.rmp.snapshot()
    ld_before = digest(p)
    result = update(p, DATA, CPUID)
    assert result.status == S.INVALID_PARAM
    # not encrypted, not measured, the RMP unchanged (still PRE_GUEST)
    assert p.memory.page_key(DATA) is None
    assert p.rmp.snapshot() == rmp_before
    assert state_of(p, DATA) is PageState.PRE_GUEST
    assert digest(p) == ld_before
    seen = p.cpu.host_read(DATA, PAGE)
    if fixed is None:
        # every output register and every other byte of the page are as the host wrote them
        rsvd = 0x10 + index * 0x30 + 0x28
        assert seen[:rsvd] + seen[rsvd + 8 :] == host[:rsvd] + host[rsvd + 8 :]
        return
    entries[index] = fixed
    corrected = cpuid_page(entries)
    # the host page now holds the corrected table, in plaintext, rest of the page untouched
    assert seen == corrected
    # the corrected table now passes
    assert update(p, DATA, CPUID).status == S.SUCCESS
    assert guest_read(p, GPA, DATA) == corrected


def test_every_bad_entry_is_corrected_at_once() -> None:
    entries = [
        cpuid_entry(0x0, 0x99, 1, 2, 3),
        cpuid_entry(0x8000_001F, 0, 0),
    ]
    p = ready()
    pre_guest(p, DATA, GPA, data=cpuid_page(entries))
    assert update(p, DATA, CPUID).status == S.INVALID_PARAM
    want = cpuid_page([cpuid_entry(0x0, 0x10, *VENDOR), cpuid_entry(0x8000_001F, 0, 51)])
    assert p.cpu.host_read(DATA, PAGE) == want


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(struct.pack("<IIQ", 4, 1, 0), id="reserved 0x04"),
        pytest.param(struct.pack("<IIQ", 4, 0, 1 << 63), id="reserved 0x08"),
        pytest.param(struct.pack("<IIQ", 65, 0, 0), id="COUNT 65"),
    ],
)
def test_cpuid_header_violation_writes_nothing_back(header: bytes) -> None:
    """A bad header is INVALID_PARAM with nothing written back - even when an entry breaks
    the policy too."""
    entries = [cpuid_entry(0x0, 0x10, 1, 2, 3), *GOOD_TABLE[1:]]
    page = header + cpuid_page(entries)[0x10:]
    p = ready()
    pre_guest(p, DATA, GPA, data=page)
    before = capture(p)
    assert update(p, DATA, CPUID).status == S.INVALID_PARAM
    assert_unchanged(p, before, "CPUID header")
    assert p.cpu.host_read(DATA, PAGE) == page


def test_rejected_cpuid_page_follows_the_kvm_recovery() -> None:
    """KVM's reaction (§4): SNP_PAGE_RECLAIM (PRE_GUEST -> GUEST_INVALID), RMPUPDATE back to
    the host, which then reads the corrected page."""
    p = ready()
    bad = cpuid_page([cpuid_entry(0x8000_001F, 0x1B, 0x2F)])
    pre_guest(p, DATA, GPA, data=bad)
    assert update(p, DATA, CPUID).status == S.INVALID_PARAM
    assert p.run(C.SNP_PAGE_RECLAIM, page_paddr=DATA).status == S.SUCCESS
    assert state_of(p, DATA) is PageState.GUEST_INVALID
    p.cpu.rmpupdate(DATA)
    assert state_of(p, DATA) is PageState.HYPERVISOR
    assert p.cpu.host_read(DATA, PAGE) == cpuid_page([cpuid_entry(0x8000_001F, 0x1B, 0x33)])
    assert guest(p, GCTX).ld == ZEROS48
