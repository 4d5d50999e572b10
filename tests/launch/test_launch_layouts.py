"""The launch structures pinned against the ABI tables of launch-measurement.md: PAGE_INFO
(§1.1), the secrets page (§5), the CPUID page and entry (§4), the ID block (§8.1), the ID
authentication page (§8.2) and AMD's ECDSA public key and signature (§8.3).

Every offset below is typed by hand from those tables.  Each layout is checked three ways:
its declared fields, the bytes it builds from distinct marker values (read back with
``struct`` at the hand-typed offsets), and its reserved (must-be-zero) ranges."""

from __future__ import annotations

import struct

import pytest

from binlayout import BufferLayout
from sp_emu import amd_keys, measure
from sp_emu.abi.launch import (
    CPUID_ENTRY,
    CPUID_MAX_ENTRIES,
    CPUID_PAGE_HEADER,
    ECDSA_PUBKEY,
    ECDSA_SIGNATURE,
    ID_AUTH,
    ID_BLOCK,
    PAGE_INFO,
    SECRETS_PAGE,
)
from tests.launch.helpers import p384_key, pack_pubkey, ref_page_info

# (name, offset, size in bytes) for whole words and byte strings;
# (name, offset, word size, lsb, width) for bit fields.
Field = tuple[str, int, int] | tuple[str, int, int, int, int]

TABLES: dict[str, tuple[BufferLayout, int, list[Field], list[tuple[int, int]]]] = {
    # layout, total size, fields, reserved ranges (offset, length)
    "PAGE_INFO": (
        PAGE_INFO,
        0x70,
        [
            ("digest_cur", 0x00, 48),
            ("contents", 0x30, 48),
            ("length", 0x60, 2),
            ("page_type", 0x62, 1),
            ("imi_page", 0x63, 1, 0, 1),
            ("vmpl1_perms", 0x65, 1),
            ("vmpl2_perms", 0x66, 1),
            ("vmpl3_perms", 0x67, 1),
            ("gpa", 0x68, 8),
        ],
        [(0x64, 1)],
    ),
    "SECRETS_PAGE": (
        SECRETS_PAGE,
        0x1000,
        [
            ("version", 0x000, 4),
            ("imi_en", 0x004, 4, 0, 1),
            ("fms", 0x008, 4),
            ("gosvw", 0x010, 16),
            ("vmpck0", 0x020, 32),
            ("vmpck1", 0x040, 32),
            ("vmpck2", 0x060, 32),
            ("vmpck3", 0x080, 32),
            ("guest_os_area", 0x0A0, 96),
            ("vmsa_tweak_bitmap", 0x100, 64),
            ("svsm_area", 0x140, 32),
            ("tsc_factor", 0x160, 4),
        ],
        [(0x00C, 4), (0x164, 0xE9C)],
    ),
    "CPUID page header": (CPUID_PAGE_HEADER, 0x10, [("count", 0x00, 4)], [(0x04, 4), (0x08, 8)]),
    "CPUID entry": (
        CPUID_ENTRY,
        0x30,
        [
            ("eax_in", 0x00, 4),
            ("ecx_in", 0x04, 4),
            ("xcr0_in", 0x08, 8),
            ("xss_in", 0x10, 8),
            ("eax", 0x18, 4),
            ("ebx", 0x1C, 4),
            ("ecx", 0x20, 4),
            ("edx", 0x24, 4),
        ],
        [(0x28, 8)],
    ),
    "ID_BLOCK": (
        ID_BLOCK,
        0x60,
        [
            ("ld", 0x00, 48),
            ("family_id", 0x30, 16),
            ("image_id", 0x40, 16),
            ("version", 0x50, 4),
            ("guest_svn", 0x54, 4),
            ("policy", 0x58, 8),
        ],
        [],
    ),
    "ID_AUTH": (
        ID_AUTH,
        0x1000,
        [
            ("id_key_algo", 0x000, 4),
            ("auth_key_algo", 0x004, 4),
            ("id_block_sig", 0x040, 0x200),
            ("id_key", 0x240, 0x404),
            ("id_key_sig", 0x680, 0x200),
            ("author_key", 0x880, 0x404),
        ],
        [(0x008, 0x38), (0x644, 0x3C), (0xC84, 0x37C)],
    ),
    "ECDSA public key": (
        ECDSA_PUBKEY,
        0x404,
        [("curve", 0x000, 4), ("qx", 0x004, 72), ("qy", 0x04C, 72)],
        [(0x094, 0x404 - 0x094)],
    ),
    "ECDSA signature": (
        ECDSA_SIGNATURE,
        0x200,
        [("r", 0x000, 72), ("s", 0x048, 72)],
        [(0x090, 0x200 - 0x090)],
    ),
}


def _marker(name: str, size: int) -> bytes:
    """A distinct, non-zero value for each field."""
    seed = sum(name.encode()) & 0xFF or 1
    return bytes((seed + i) & 0xFF or 0x5A for i in range(size))


@pytest.mark.parametrize("name", list(TABLES))
def test_declared_fields_match_the_table(name: str) -> None:
    layout, size, fields, _ = TABLES[name]
    assert layout.size == size
    assert set(layout.fields) == {f[0] for f in fields}, "fields missing or extra"
    for f in fields:
        info = layout.fields[f[0]]
        if len(f) == 3:
            assert (info.offset, info.size, info.lsb, info.width) == (f[1], f[2], 0, 8 * f[2]), f
        else:
            assert (info.offset, info.size, info.lsb, info.width) == f[1:], f


@pytest.mark.parametrize("name", list(TABLES))
def test_built_bytes_land_at_the_table_offsets(name: str) -> None:
    layout, size, fields, reserved = TABLES[name]
    values: dict[str, object] = {}
    for f in fields:
        if len(f) == 3:
            raw = _marker(f[0], f[2])
            info = layout.fields[f[0]]
            values[f[0]] = raw if info.blob else int.from_bytes(raw, "little")
        else:
            values[f[0]] = 1
    data = layout.build(values)
    assert len(data) == size
    for f in fields:
        if len(f) == 3:
            assert data[f[1] : f[1] + f[2]] == _marker(f[0], f[2]), f"{f[0]} at {f[1]:#x}"
        else:
            word = int.from_bytes(data[f[1] : f[1] + f[2]], "little")
            assert word == 1 << f[3], f"{f[0]} bit {f[3]} of the word at {f[1]:#x}"
    for off, length in reserved:
        assert data[off : off + length] == bytes(length), f"reserved {off:#x}"
    assert layout.parse(data) == values


@pytest.mark.parametrize("name", list(TABLES))
def test_every_reserved_byte_is_reported(name: str) -> None:
    layout, size, fields, reserved = TABLES[name]
    clean = bytes(size)
    assert layout.first_reserved_violation(clean) is None
    for off, length in reserved:
        for pos in (off, off + length - 1):
            dirty = bytearray(clean)
            dirty[pos] = 0x80
            assert layout.first_reserved_violation(bytes(dirty)) == pos, f"{name} {pos:#x}"
    # a defined field is never reported as reserved
    for f in fields:
        dirty = bytearray(clean)
        dirty[f[1]] = 1 if len(f) == 3 else 1 << f[3]
        assert layout.first_reserved_violation(bytes(dirty)) is None, f[0]


def test_page_info_bit_fields_of_byte_0x63() -> None:
    """Byte 0x63: bit 0 IMI_PAGE, bits 7:1 zero (reserved)."""
    for bit in range(1, 8):
        data = bytearray(0x70)
        data[0x63] = 1 << bit
        assert PAGE_INFO.first_reserved_violation(bytes(data)) == 0x63


def test_page_info_vmpl_bytes_follow_afw_csvsm_oak_order() -> None:
    """0x64 reserved, 0x65 VMPL1, 0x66 VMPL2, 0x67 VMPL3 - not sev-snp-measure's reversed
    VMPL3, VMPL2, VMPL1, 0 order (launch-measurement.md §1.1 discrepancy note)."""
    ld, contents = bytes(range(48)), bytes(range(48, 96))
    info = measure.page_info(ld, contents, 1, 0x1234_5000, imi_page=True, perms=(0x11, 0x22, 0x33))
    assert len(info) == 0x70
    assert info[0x00:0x30] == ld
    assert info[0x30:0x60] == contents
    assert struct.unpack_from("<H", info, 0x60)[0] == 0x70
    assert info[0x62] == 1
    assert info[0x63] == 1
    assert info[0x64:0x68] == bytes((0x00, 0x11, 0x22, 0x33))
    assert struct.unpack_from("<Q", info, 0x68)[0] == 0x1234_5000
    assert info == ref_page_info(ld, contents, 1, 0x1234_5000, imi=True, perms=(0x11, 0x22, 0x33))
    assert PAGE_INFO.parse(info)["vmpl1_perms"] == 0x11
    assert PAGE_INFO.parse(info)["vmpl3_perms"] == 0x33


def test_sev_snp_measure_serialisation_agrees_only_for_zero_permissions() -> None:
    """sev-snp-measure hard-codes zero permissions, so its PAGE_INFO is ours for zero perms
    (the discrepancy is harmless there)."""
    from sevsnpmeasure.gctx import GCTX

    g = GCTX()
    g.update_normal_pages(0x5000, bytes(range(256)) * 16)
    ours = measure.extend(bytes(48), measure.content_hash(bytes(range(256)) * 16), 1, 0x5000)
    assert g.ld() == ours


def test_cpuid_table_size() -> None:
    """COUNT <= 64; the table occupies 0x10 + 64 x 0x30 = 0xC10 bytes."""
    assert CPUID_MAX_ENTRIES == 64
    assert CPUID_PAGE_HEADER.size + CPUID_MAX_ENTRIES * CPUID_ENTRY.size == 0xC10


def test_public_key_encoding_matches_the_hand_packed_one() -> None:
    key = p384_key(0x1234567).public_key()
    encoded = amd_keys.public_key_to_amd(key)
    assert encoded == pack_pubkey(key)
    assert struct.unpack_from("<I", encoded, 0)[0] == 2  # CURVE: 2 = P-384
    n = key.public_numbers()
    assert int.from_bytes(encoded[0x004:0x04C], "little") == n.x
    assert int.from_bytes(encoded[0x04C:0x094], "little") == n.y
    assert encoded[0x004 + 48 : 0x04C] == bytes(24)  # zero padded from 48 to 72 bytes
    assert amd_keys.public_key_from_amd(encoded).public_numbers() == n


def test_signature_encoding_is_r_then_s_little_endian() -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    priv = p384_key(0xABCDEF)
    sig = amd_keys.sign_amd(priv, b"message")
    assert len(sig) == 0x200
    r = int.from_bytes(sig[0x000:0x048], "little")
    s = int.from_bytes(sig[0x048:0x090], "little")
    assert sig[0x030:0x048] == bytes(24) and sig[0x078:0x090] == bytes(24)
    assert sig[0x090:] == bytes(0x200 - 0x090)
    # an independent verify of the decoded (R, S)
    priv.public_key().verify(encode_dss_signature(r, s), b"message", ec.ECDSA(hashes.SHA384()))
