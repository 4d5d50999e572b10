"""Kernel hashes table: hand layout, round trip, errors, and sev-snp-measure as oracle."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sp_emu.images import (
    PADDED_SEV_HASH_TABLE_SIZE,
    SEV_HASH_TABLE_SIZE,
    ImageError,
    SevHashes,
    build_sev_hashes_region,
    build_sev_hashes_table,
    cmdline_bytes,
    parse_sev_hashes_table,
)

SHA256_EMPTY = bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
SHA256_NUL = bytes.fromhex("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")


def test_sizes() -> None:
    assert SEV_HASH_TABLE_SIZE == 168 == 16 + 2 + 3 * 50
    assert PADDED_SEV_HASH_TABLE_SIZE == 176


def test_cmdline_bytes() -> None:
    assert cmdline_bytes(None) == b"\x00"
    assert cmdline_bytes("") == b"\x00"
    assert cmdline_bytes("console=ttyS0") == b"console=ttyS0\x00"
    assert cmdline_bytes(b"a b") == b"a b\x00"
    assert cmdline_bytes("é") == b"\xc3\xa9\x00"


def test_from_inputs_defaults() -> None:
    h = SevHashes.from_inputs(b"kernel")
    assert h.kernel == hashlib.sha256(b"kernel").digest()
    assert h.initrd == SHA256_EMPTY
    assert h.cmdline == SHA256_NUL


def test_digest_length_checked() -> None:
    with pytest.raises(ValueError, match="initrd digest must be 32 bytes"):
        SevHashes(kernel=bytes(32), initrd=bytes(31), cmdline=bytes(32))


def test_table_hand_layout() -> None:
    h = SevHashes(kernel=b"K" * 32, initrd=b"I" * 32, cmdline=b"C" * 32)
    t = build_sev_hashes_table(h)
    assert len(t) == 176
    # header GUID 9438d606-4f22-4cc9-b479-a793d411fd21 in EFI byte order, then LENGTH 168
    assert t[0:16] == bytes.fromhex("06d63894224fc94cb479a793d411fd21")
    assert struct.unpack_from("<H", t, 0x10)[0] == 168
    expected = [
        (0x12, "d82dd09720bd944caa78e7714d36ab2a", b"C"),  # cmdline 97d02dd8-...
        (0x44, "31f7ba442f3ad74b9af141e29169781d", b"I"),  # initrd 44baf731-...
        (0x76, "3794e74dd2ab7f42b835d5b172d2045b", b"K"),  # kernel 4de79437-...
    ]
    for off, guid_hex, fill in expected:
        assert t[off : off + 16] == bytes.fromhex(guid_hex)
        assert struct.unpack_from("<H", t, off + 16)[0] == 50
        assert t[off + 18 : off + 50] == fill * 32
    assert t[0xA8:] == bytes(8)


def test_round_trip() -> None:
    h = SevHashes.from_inputs(b"\x7fELF kernel", b"initrd", "root=/dev/vda")
    assert parse_sev_hashes_table(build_sev_hashes_table(h)) == h


def test_region_places_table_at_page_offset() -> None:
    h = SevHashes.from_inputs(b"k")
    region = build_sev_hashes_region(h, 0x80CC00, 0x1000)
    assert len(region) == 0x1000
    assert region[:0xC00] == bytes(0xC00)
    assert region[0xC00 : 0xC00 + 176] == build_sev_hashes_table(h)
    assert region[0xC00 + 176 :] == bytes(0x1000 - 0xC00 - 176)
    # A two-page section: QEMU still uses the table's offset within its page.
    region = build_sev_hashes_region(h, 0x80D010, 0x2000)
    assert region[0x10 : 0x10 + 176] == build_sev_hashes_table(h)
    assert len(region) == 0x2000


def test_region_too_small() -> None:
    h = SevHashes.from_inputs(b"k")
    with pytest.raises(ImageError, match=r"page offset 0xfc0 does not fit in the 0x1000-byte"):
        build_sev_hashes_region(h, 0x80CFC0, 0x1000)


def test_parse_errors() -> None:
    good = build_sev_hashes_table(SevHashes.from_inputs(b"k"))
    with pytest.raises(ImageError, match="hashes table is 100 bytes, needs 176"):
        parse_sev_hashes_table(good[:100])
    with pytest.raises(ImageError, match="header GUID") as info:
        parse_sev_hashes_table(b"\x00" + good[1:])
    assert info.value.offset == 0
    with pytest.raises(ImageError, match="LENGTH is 169") as info:
        parse_sev_hashes_table(good[:0x10] + struct.pack("<H", 169) + good[0x12:])
    assert info.value.offset == 0x10
    with pytest.raises(ImageError, match="initrd entry has GUID") as info:
        parse_sev_hashes_table(good[:0x44] + b"\xff" + good[0x45:])
    assert info.value.offset == 0x44
    with pytest.raises(ImageError, match="kernel entry length is 51") as info:
        parse_sev_hashes_table(good[:0x86] + struct.pack("<H", 51) + good[0x88:])
    assert info.value.offset == 0x86


# --- oracle: sev-snp-measure's SevHashes ------------------------------------------------

CASES = [
    (b"kernel-only", None, None),
    (b"kernel", b"initrd contents", None),
    (b"kernel", None, "console=ttyS0 earlyprintk=serial"),
    (b"\x00" * 5000, b"\xff" * 70000, "root=/dev/vda1 ro quiet"),
    (b"", b"", ""),
]


def ssm_table(tmp: Path, kernel: bytes, initrd: bytes | None, cmdline: str | None) -> object:
    sev_hashes = pytest.importorskip("sevsnpmeasure.sev_hashes")
    kpath = tmp / "kernel"
    kpath.write_bytes(kernel)
    ipath = ""
    if initrd is not None:
        (tmp / "initrd").write_bytes(initrd)
        ipath = str(tmp / "initrd")
    return sev_hashes.SevHashes(str(kpath), ipath, cmdline or "")


@pytest.mark.parametrize(("kernel", "initrd", "cmdline"), CASES)
def test_table_matches_sev_snp_measure(
    tmp_path: Path, kernel: bytes, initrd: bytes | None, cmdline: str | None
) -> None:
    theirs = ssm_table(tmp_path, kernel, initrd, cmdline)
    ours = SevHashes.from_inputs(kernel, initrd, cmdline)
    assert build_sev_hashes_table(ours) == theirs.construct_table()  # type: ignore[attr-defined]
    for offset in (0, 0xC00, 0xF50):
        page = build_sev_hashes_region(ours, 0x80C000 + offset, 0x1000)
        assert page == theirs.construct_page(offset)  # type: ignore[attr-defined]


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kernel=st.binary(max_size=300),
    initrd=st.one_of(st.none(), st.binary(max_size=300)),
    cmdline=st.one_of(st.none(), st.text(max_size=40).filter(lambda s: "\x00" not in s)),
)
def test_table_matches_sev_snp_measure_random(
    tmp_path: Path, kernel: bytes, initrd: bytes | None, cmdline: str | None
) -> None:
    theirs = ssm_table(tmp_path, kernel, initrd, cmdline)
    ours = SevHashes.from_inputs(kernel, initrd, cmdline)
    assert build_sev_hashes_table(ours) == theirs.construct_table()  # type: ignore[attr-defined]
