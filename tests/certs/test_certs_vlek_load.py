"""SNP_VLEK_LOAD (0xCD), table driven, and the wrapping a cloud provider gets from AMD.

Expected statuses typed from firmware-commands.md §6 SNP_VLEK_LOAD: LENGTH 0x10, version 0
and MBZ -> INVALID_PARAM; TCB_VERSION other than the reported TCB -> BAD_SVN; unwrap failure
-> BAD_MEASUREMENT (FW 1.55).  The KDF is attestation.md §8.3.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.kbkdf import KBKDFHMAC, CounterLocation, Mode

from sp_emu.abi.commands import CommandId as C
from sp_emu.abi.status import SnpStatus as S
from sp_emu.abi.vlek import WRAPPED_VLEK
from sp_emu.certs import ChipCertificates, vlek_wrapping_key, wrap_vlek
from sp_emu.chip import EmulatedChip
from sp_emu.kdf import nist_kdf
from sp_emu.platform import Platform
from sp_emu.products import GENOA, TURIN
from sp_emu.tcb import TcbVersion

MEM = 64 << 20
BLOB = 0x200000
"""Where the host writes the wrapped VLEK (ordinary DRAM)."""
STATUS = 0x300000
GENOA_TCB = TcbVersion(bootloader=7, tee=0, snp=15, microcode=62)
"""Genoa's shipped TCB (products.py); reports carry it until SNP_CONFIG says otherwise."""
LOWER_TCB = TcbVersion(bootloader=7, tee=0, snp=14, microcode=62)
SEED = bytes(range(48))
OTHER_SEED = bytes(range(1, 49))


def platform(product: str = "Genoa", seed: bytes = b"vlek test platform") -> Platform:
    return Platform(memory=MEM, product=product, seed=seed)


def blob_for(p: Platform, tcb: TcbVersion = GENOA_TCB, vlek_seed: bytes = SEED) -> bytes:
    return wrap_vlek(p.fw.chip, tcb, vlek_seed)


def flip(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 1]) + data[offset + 1 :]


def reported_tcb_is(tcb: TcbVersion) -> Callable[[Platform], None]:
    def setup(p: Platform) -> None:
        assert p.run(C.SNP_CONFIG, reported_tcb=tcb.to_int()).ok

    return setup


def snp_init(p: Platform) -> None:
    assert p.run(C.SNP_INIT).ok


def zero_blob(p: Platform) -> bytes:
    """Nothing wrapped, but for the right TCB."""
    return bytes(0x190) + GENOA_TCB.to_int().to_bytes(8, "little") + bytes(0x18)


@dataclass
class Row:
    name: str
    want: S
    blob: Callable[[Platform], bytes] = blob_for
    fields: dict[str, int] = field(default_factory=dict)
    setup: Callable[[Platform], None] | None = None


ROWS = [
    Row("success, SNP UNINIT (no state check in FW 1.55)", S.SUCCESS),
    Row("success, SNP INIT", S.SUCCESS, setup=snp_init),
    Row("LENGTH 0", S.INVALID_PARAM, fields={"length": 0}),
    Row("LENGTH 0x0F", S.INVALID_PARAM, fields={"length": 0x0F}),
    Row("LENGTH 0x11", S.INVALID_PARAM, fields={"length": 0x11}),
    Row("VLEK_WRAPPED_VERSION 1", S.INVALID_PARAM, fields={"vlek_wrapped_version": 1}),
    Row("VLEK_WRAPPED_VERSION 0xFF", S.INVALID_PARAM, fields={"vlek_wrapped_version": 0xFF}),
    Row(
        "bad LENGTH is found before a bad TCB",
        S.INVALID_PARAM,
        blob=lambda p: blob_for(p, LOWER_TCB),
        fields={"length": 8},
    ),
    Row("blob past the end of memory", S.INVALID_ADDRESS, fields={"vlek_wrapped_paddr": MEM}),
    Row(
        "blob runs past the end of memory",
        S.INVALID_ADDRESS,
        fields={"vlek_wrapped_paddr": MEM - 0x100},
    ),
    Row("wrapped for a lower TCB than reported", S.BAD_SVN, blob=lambda p: blob_for(p, LOWER_TCB)),
    Row(
        "TCB_VERSION with a reserved byte set",
        S.BAD_SVN,
        blob=lambda p: flip(blob_for(p), 0x190 + 2),
    ),
    Row(
        "wrapped for the committed TCB, SNP_CONFIG reports a lower one",
        S.BAD_SVN,
        setup=reported_tcb_is(LOWER_TCB),
    ),
    Row(
        "wrapped for the TCB SNP_CONFIG reports",
        S.SUCCESS,
        blob=lambda p: blob_for(p, LOWER_TCB),
        setup=reported_tcb_is(LOWER_TCB),
    ),
    Row("ciphertext byte flipped", S.BAD_MEASUREMENT, blob=lambda p: flip(blob_for(p), 0x10)),
    Row("last ciphertext byte", S.BAD_MEASUREMENT, blob=lambda p: flip(blob_for(p), 0x18F)),
    Row("auth tag flipped", S.BAD_MEASUREMENT, blob=lambda p: flip(blob_for(p), 0x1A0)),
    Row("IV flipped", S.BAD_MEASUREMENT, blob=lambda p: flip(blob_for(p), 0x0)),
    Row(
        "reserved AAD word at 0x198 flipped",
        S.BAD_MEASUREMENT,
        blob=lambda p: flip(blob_for(p), 0x198),
    ),
    Row(
        "reserved word at 0x00C is not authenticated (and not checked)",
        S.SUCCESS,
        blob=lambda p: flip(blob_for(p), 0x0C),
    ),
    Row(
        "wrapped for another chip",
        S.BAD_MEASUREMENT,
        blob=lambda p: wrap_vlek(EmulatedChip(GENOA, b"another chip"), GENOA_TCB, SEED),
    ),
    Row("all zero but the TCB", S.BAD_MEASUREMENT, blob=zero_blob),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_vlek_load(row: Row) -> None:
    p = platform()
    if row.setup is not None:
        row.setup(p)
    p.memory.write(BLOB, row.blob(p))
    fields = {"length": 0x10, "vlek_wrapped_paddr": BLOB, **row.fields}
    before = p.fw.state.snapshot()
    result = p.run(C.SNP_VLEK_LOAD, **fields)
    assert result.status == row.want, result.detail
    if row.want == S.SUCCESS:
        assert p.fw.state.vlek == SEED
    else:
        assert p.fw.state.vlek is None
        assert p.fw.state == before


@pytest.mark.parametrize("offset", [0x05, 0x06, 0x07])
def test_reserved_buffer_bytes_are_invalid_param(offset: int) -> None:
    p = platform()
    p.memory.write(BLOB, blob_for(p))
    raw = bytearray(0x10)
    raw[0:4] = (0x10).to_bytes(4, "little")
    raw[8:16] = BLOB.to_bytes(8, "little")
    assert p.execute(C.SNP_VLEK_LOAD, bytes(raw)).status == S.SUCCESS
    raw[offset] = 1
    q = platform()
    q.memory.write(BLOB, blob_for(q))
    assert q.execute(C.SNP_VLEK_LOAD, bytes(raw)).status == S.INVALID_PARAM
    assert q.fw.state.vlek is None


def test_a_failed_load_keeps_the_previous_vlek() -> None:
    p = platform()
    p.memory.write(BLOB, blob_for(p))
    assert p.run(C.SNP_VLEK_LOAD, length=0x10, vlek_wrapped_paddr=BLOB).ok
    p.memory.write(BLOB, flip(blob_for(p, vlek_seed=OTHER_SEED), 0x20))
    result = p.run(C.SNP_VLEK_LOAD, length=0x10, vlek_wrapped_paddr=BLOB)
    assert result.status == S.BAD_MEASUREMENT
    assert p.fw.state.vlek == SEED
    p.memory.write(BLOB, blob_for(p, vlek_seed=OTHER_SEED))
    assert p.run(C.SNP_VLEK_LOAD, length=0x10, vlek_wrapped_paddr=BLOB).ok
    assert p.fw.state.vlek == OTHER_SEED  # a second load replaces the first


def test_platform_status_shows_the_vlek_and_shutdown_wipes_it() -> None:
    p = platform()
    assert p.run(C.SNP_PLATFORM_STATUS, status_paddr=STATUS).out["vlek_en"] == 0  # type: ignore[index]
    p.memory.write(BLOB, blob_for(p))
    assert p.run(C.SNP_VLEK_LOAD, length=0x10, vlek_wrapped_paddr=BLOB).ok
    assert p.run(C.SNP_PLATFORM_STATUS, status_paddr=STATUS).out["vlek_en"] == 1  # type: ignore[index]
    assert p.run(C.SNP_INIT).ok
    assert p.fw.state.vlek == SEED
    p.cpu.wbinvd()
    assert p.run(C.SNP_DF_FLUSH).ok
    assert p.run(C.SNP_SHUTDOWN).ok
    assert p.fw.state.vlek is None


def test_turin_vlek_load() -> None:
    p = platform("Turin")
    tcb = TURIN.tcb
    p.memory.write(BLOB, wrap_vlek(p.fw.chip, tcb, SEED))
    assert p.run(C.SNP_VLEK_LOAD, length=0x10, vlek_wrapped_paddr=BLOB).ok
    assert p.fw.state.vlek == SEED
    assert WRAPPED_VLEK.parse(wrap_vlek(p.fw.chip, tcb, SEED))["tcb_version"] == tcb.to_int()


def test_the_loaded_vlek_is_the_one_its_certificate_names() -> None:
    p = platform()
    chip = p.fw.chip
    seed = chip.vlek_seed(GENOA_TCB)
    p.memory.write(BLOB, wrap_vlek(chip, GENOA_TCB, seed))
    assert p.run(C.SNP_VLEK_LOAD, length=0x10, vlek_wrapped_paddr=BLOB).ok
    assert p.fw.state.vlek is not None
    loaded = chip.vlek_private_key(p.fw.state.vlek).public_key()
    assert ChipCertificates(chip).vlek_cert(GENOA_TCB).public_key() == loaded


def test_vlek_load_is_replayable_from_bytes() -> None:
    """The raw path and the named-field path agree (one handler)."""
    p = platform()
    p.memory.write(BLOB, blob_for(p))
    raw = (0x10).to_bytes(4, "little") + bytes(4) + BLOB.to_bytes(8, "little")
    assert p.execute(C.SNP_VLEK_LOAD, raw).ok
    assert p.fw.state.vlek == SEED


# --- the wrapping -------------------------------------------------------------------------------
def test_kdf_is_counter_mode_hmac_sha256_with_little_endian_words() -> None:
    key = bytes(range(48))
    want = hmac.new(
        key,
        (1).to_bytes(4, "little") + b"vlek-wrapping-key" + b"\x00" + (256).to_bytes(4, "little"),
        hashlib.sha256,
    ).digest()
    assert nist_kdf(key, b"vlek-wrapping-key") == want
    assert vlek_wrapping_key(key) == want
    # two blocks: block 2 has i = 2
    long = nist_kdf(key, b"L", b"ctx", 40)
    block2 = hmac.new(
        key,
        (2).to_bytes(4, "little") + b"L\x00ctx" + (320).to_bytes(4, "little"),
        hashlib.sha256,
    ).digest()
    assert long[32:] == block2[:8]
    # not the big-endian encoding cryptography's KBKDF uses
    kbkdf = KBKDFHMAC(
        algorithm=hashes.SHA256(),
        mode=Mode.CounterMode,
        length=32,
        rlen=4,
        llen=4,
        location=CounterLocation.BeforeFixed,
        label=b"vlek-wrapping-key",
        context=b"",
        fixed=None,
    )
    assert kbkdf.derive(key) != want


def test_wrap_vlek_layout_and_independent_unwrap() -> None:
    chip = EmulatedChip(GENOA, b"chip")
    blob = wrap_vlek(chip, GENOA_TCB, SEED)
    assert len(blob) == 0x1B0
    assert blob[0x0C:0x10] == bytes(4) and blob[0x198:0x1A0] == bytes(8)
    assert blob[0x190:0x198] == GENOA_TCB.to_int().to_bytes(8, "little")
    key = vlek_wrapping_key(chip.vcek_seed(GENOA_TCB))
    plain = AESGCM(key).decrypt(blob[:12], blob[0x10:0x190] + blob[0x1A0:0x1B0], blob[0x190:0x1A0])
    assert plain == SEED + bytes(0x180 - 48)
    assert wrap_vlek(chip, GENOA_TCB, SEED) == blob  # reproducible
    assert wrap_vlek(chip, GENOA_TCB, SEED, iv=bytes(12))[:12] == bytes(12)


def test_wrap_vlek_refuses_bad_inputs() -> None:
    chip = EmulatedChip(GENOA, b"chip")
    with pytest.raises(ValueError, match="48 bytes"):
        wrap_vlek(chip, GENOA_TCB, bytes(32))
    with pytest.raises(ValueError, match="12 bytes"):
        wrap_vlek(chip, GENOA_TCB, SEED, iv=bytes(16))
    with pytest.raises(ValueError, match="layout"):
        wrap_vlek(chip, TURIN.tcb, SEED)
