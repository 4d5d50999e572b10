"""The attestation layouts pinned against the reference tables (attestation.md §1, §2, §4, §7,
§8.3), with every offset typed by hand, and the report version chosen per product/firmware."""

from __future__ import annotations

import pytest

from binlayout import BufferLayout
from sp_emu.abi.messages import (
    CERT_TABLE_ENTRY,
    KEY_MIX_DATA,
    MSG_HEADER,
    MSG_KEY_REQ,
    MSG_KEY_RSP,
    MSG_REPORT_REQ,
    MSG_REPORT_RSP,
    MSG_TSC_INFO_REQ,
    MSG_TSC_INFO_RSP,
    MsgType,
)
from sp_emu.abi.report import REPORT_LAYOUTS, REPORT_V2, REPORT_V3, REPORT_V5
from sp_emu.attestation.cert_table import ARK_GUID, ASK_GUID, CRL_GUID, VCEK_GUID, VLEK_GUID
from sp_emu.attestation.report import ReportFormatError, parse_report
from sp_emu.products import GENOA, MILAN, TURIN, Product

# (offset, size, name) of ATTESTATION_REPORT fields present in every version (§4 table).
REPORT_COMMON = [
    (0x000, 4, "version"),
    (0x004, 4, "guest_svn"),
    (0x008, 8, "policy"),
    (0x010, 16, "family_id"),
    (0x020, 16, "image_id"),
    (0x030, 4, "vmpl"),
    (0x034, 4, "signature_algo"),
    (0x038, 8, "current_tcb"),
    (0x040, 8, "platform_info"),
    (0x050, 64, "report_data"),
    (0x090, 48, "measurement"),
    (0x0C0, 32, "host_data"),
    (0x0E0, 48, "id_key_digest"),
    (0x110, 48, "author_key_digest"),
    (0x140, 32, "report_id"),
    (0x160, 32, "report_id_ma"),
    (0x180, 8, "reported_tcb"),
    (0x1A0, 64, "chip_id"),
    (0x1E0, 8, "committed_tcb"),
    (0x1E8, 1, "current_build"),
    (0x1E9, 1, "current_minor"),
    (0x1EA, 1, "current_major"),
    (0x1EC, 1, "committed_build"),
    (0x1ED, 1, "committed_minor"),
    (0x1EE, 1, "committed_major"),
    (0x1F0, 8, "launch_tcb"),
    (0x2A0, 72, "signature_r"),
    (0x2E8, 72, "signature_s"),
]
REPORT_CPUID = [(0x188, 1, "cpuid_fam_id"), (0x189, 1, "cpuid_mod_id"), (0x18A, 1, "cpuid_step")]
REPORT_MIT = [(0x1F8, 8, "launch_mit_vector"), (0x200, 8, "current_mit_vector")]
# 0x048 bits: 0 AUTHOR_KEY_EN, 1 MASK_CHIP_KEY, 4:2 SIGNING_KEY.
SIGNER_BITS = [("author_key_en", 0, 1), ("mask_chip_key", 1, 1), ("signing_key", 2, 3)]


def assert_fields(layout: BufferLayout, expected: list[tuple[int, int, str]]) -> None:
    for offset, size, name in expected:
        info = layout.fields[name]
        assert (info.offset, info.size) == (offset, size), name
        if not info.blob:
            assert (info.lsb, info.width) == (0, 8 * size), name


@pytest.mark.parametrize(
    ("layout", "extra"),
    [(REPORT_V2, []), (REPORT_V3, REPORT_CPUID), (REPORT_V5, REPORT_CPUID + REPORT_MIT)],
    ids=["v2", "v3", "v5"],
)
def test_report_layout_offsets(layout: BufferLayout, extra: list[tuple[int, int, str]]) -> None:
    assert layout.size == 0x4A0
    assert_fields(layout, REPORT_COMMON + extra)
    for name, lsb, width in SIGNER_BITS:
        info = layout.fields[name]
        assert (info.offset, info.size, info.lsb, info.width) == (0x048, 4, lsb, width)
    expected = {n for _, _, n in REPORT_COMMON + extra} | {n for n, _, _ in SIGNER_BITS}
    assert set(layout.fields) == expected


RESERVED_EVERYWHERE = [0x04C, 0x04F, 0x18B, 0x19F, 0x1EB, 0x1EF, 0x208, 0x29F, 0x330, 0x49F]


@pytest.mark.parametrize("version", [2, 3, 4, 5])
def test_report_reserved_bytes_by_version(version: int) -> None:
    """Fields are reserved before their version: poke one byte per reserved range."""
    layout = REPORT_LAYOUTS[version]
    base = bytearray(0x4A0)
    base[0:4] = version.to_bytes(4, "little")
    reserved = list(RESERVED_EVERYWHERE)
    if version < 3:
        reserved += [0x188, 0x189, 0x18A]
    if version < 5:
        reserved += [0x1F8, 0x1FF, 0x200, 0x207]
    for offset in reserved:
        poked = bytearray(base)
        poked[offset] = 1
        assert layout.first_reserved_violation(bytes(poked)) == offset, hex(offset)
        with pytest.raises(ReportFormatError):
            parse_report(bytes(poked))
    # the 0x048 word: bits 31:5 reserved
    poked = bytearray(base)
    poked[0x048] = 0x20
    assert layout.first_reserved_violation(bytes(poked)) == 0x048
    assert parse_report(bytes(base))["version"] == version


def test_report_version_fields_land_where_the_table_says() -> None:
    fields = {
        "version": 5,
        "cpuid_fam_id": 0x1A,
        "cpuid_mod_id": 0x02,
        "cpuid_step": 0x01,
        "launch_mit_vector": 0x1122334455667788,
        "current_mit_vector": 0x99,
        "signing_key": 7,
        "author_key_en": 1,
    }
    raw = REPORT_V5.build(fields)
    assert raw[0x188:0x18B] == bytes([0x1A, 0x02, 0x01])
    assert raw[0x1F8:0x200] == (0x1122334455667788).to_bytes(8, "little")
    assert raw[0x200:0x208] == (0x99).to_bytes(8, "little")
    assert raw[0x048:0x04C] == (7 << 2 | 1).to_bytes(4, "little")
    assert parse_report(raw) == REPORT_V5.parse(raw)


def test_unknown_report_versions_are_malformed() -> None:
    for version in (0, 1, 6):
        with pytest.raises(ReportFormatError):
            parse_report(version.to_bytes(4, "little") + bytes(0x49C))
    with pytest.raises(ReportFormatError):
        parse_report(bytes(0x49F))


def test_message_header_layout() -> None:
    assert MSG_HEADER.size == 0x60
    assert_fields(
        MSG_HEADER,
        [
            (0x00, 16, "authtag"),
            (0x20, 8, "msg_seqno"),
            (0x30, 1, "algo"),
            (0x31, 1, "hdr_version"),
            (0x32, 2, "hdr_size"),
            (0x34, 1, "msg_type"),
            (0x35, 1, "msg_version"),
            (0x36, 2, "msg_size"),
            (0x3C, 1, "msg_vmpck"),
        ],
    )
    # bytes 0x10..0x1F, 0x28..0x2F, 0x38..0x3B and 0x3D..0x5F are reserved
    assert MSG_HEADER.reserved_ranges == ((0x10, 0x10), (0x28, 8), (0x38, 4), (0x3D, 0x23))


def test_payload_layouts() -> None:
    assert MSG_REPORT_REQ.size == 0x60
    assert_fields(MSG_REPORT_REQ, [(0x00, 64, "report_data"), (0x40, 4, "vmpl")])
    key_sel = MSG_REPORT_REQ.fields["key_sel"]
    assert (key_sel.offset, key_sel.lsb, key_sel.width) == (0x44, 0, 2)
    assert MSG_REPORT_RSP.size == 0x4C0
    assert_fields(
        MSG_REPORT_RSP, [(0x00, 4, "status"), (0x04, 4, "report_size"), (0x20, 0x4A0, "report")]
    )
    assert MSG_KEY_REQ.size == 0x20
    assert_fields(
        MSG_KEY_REQ,
        [
            (0x08, 8, "guest_field_select"),
            (0x10, 4, "vmpl"),
            (0x14, 4, "guest_svn"),
            (0x18, 8, "tcb_version"),
        ],
    )
    root, sel = MSG_KEY_REQ.fields["root_key_select"], MSG_KEY_REQ.fields["key_sel"]
    assert (root.offset, root.lsb, root.width, sel.lsb, sel.width) == (0, 0, 1, 1, 2)
    assert MSG_KEY_RSP.size == 0x40
    assert_fields(MSG_KEY_RSP, [(0x00, 4, "status"), (0x20, 32, "derived_key")])
    assert MSG_TSC_INFO_REQ.size == 0x80 and not MSG_TSC_INFO_REQ.fields
    assert MSG_TSC_INFO_RSP.size == 0x80
    assert_fields(
        MSG_TSC_INFO_RSP,
        [
            (0x00, 4, "status"),
            (0x08, 8, "guest_tsc_scale"),
            (0x10, 8, "guest_tsc_offset"),
            (0x18, 4, "tsc_factor"),
        ],
    )


def test_key_mix_data_layout() -> None:
    assert KEY_MIX_DATA.size == 0xA8
    assert_fields(
        KEY_MIX_DATA,
        [
            (0x08, 8, "guest_field_select"),
            (0x10, 4, "vmpl"),
            (0x14, 4, "guest_svn"),
            (0x18, 8, "tcb_version"),
            (0x20, 8, "guest_policy"),
            (0x28, 16, "image_id"),
            (0x38, 16, "family_id"),
            (0x48, 32, "measurement"),
            (0x68, 32, "host_data"),
            (0x88, 32, "idblock_key"),
        ],
    )


def test_message_types() -> None:
    expected = {
        "CPUID_REQ": 1,
        "KEY_REQ": 3,
        "REPORT_REQ": 5,
        "EXPORT_REQ": 7,
        "IMPORT_REQ": 9,
        "ABSORB_REQ": 11,
        "VMRK_REQ": 13,
        "ABSORB_NOMA_REQ": 15,
        "TSC_INFO_REQ": 17,
    }
    for name, value in expected.items():
        assert MsgType[name] == value
        assert MsgType[name.replace("_REQ", "_RSP")] == value + 1


def test_cert_table_entry_and_guids() -> None:
    assert CERT_TABLE_ENTRY.size == 24
    assert_fields(CERT_TABLE_ENTRY, [(0x00, 16, "guid"), (0x10, 4, "offset"), (0x14, 4, "length")])
    # RFC 4122 (big-endian) byte order, as go-sev-guest and virtee/sev write them
    assert VCEK_GUID.bytes == bytes.fromhex("63da758de6644564adc5f4b93be8accd")
    assert VLEK_GUID.bytes == bytes.fromhex("a8074bc2a25a483eaae639c045a0b8a1")
    assert ASK_GUID.bytes == bytes.fromhex("4ab7b379bbac4fe4a02f05aef327c782")
    assert ARK_GUID.bytes == bytes.fromhex("c0b406a4a803495297433fb6014cd0ae")
    assert CRL_GUID.bytes == bytes.fromhex("92f81bc358114d3d97ffd19f88dc67ea")


@pytest.mark.parametrize(
    ("product", "firmware", "version"),
    [
        (MILAN, (1, 55, 21), 2),
        (MILAN, (1, 55, 30), 2),
        (MILAN, (1, 55, 31), 4),
        (MILAN, (1, 58, 0), 5),
        (GENOA, (1, 55, 25), 2),
        (GENOA, (1, 55, 39), 2),
        (GENOA, (1, 55, 40), 3),
        (GENOA, (1, 57, 1), 3),
        (GENOA, (1, 58, 1), 5),
        (TURIN, (1, 55, 99), 2),
        (TURIN, (1, 58, 3), 5),
    ],
)
def test_report_version_by_product_and_firmware(
    product: Product, firmware: tuple[int, int, int], version: int
) -> None:
    assert product.report_version(*firmware) == version
