"""SNP_LAUNCH_FINISH (firmware-commands.md §6; launch-measurement.md §8): the check order
(MBZ, platform, context, guest state incl. IMI guests, activation, then the ID-block checks
1-7 of §8.4), and what a successful finish records.

ID blocks and ID auth pages are packed by hand at the §8 offsets (tests/launch/helpers.py);
signatures are made with ``sp_emu.amd_keys.sign_amd`` over P-384 keys from
``cryptography``."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import pytest

from sp_emu.abi.commands import CommandId as C
from sp_emu.abi.status import SnpStatus as S
from sp_emu.amd_keys import sign_amd
from sp_emu.platform import Platform
from sp_emu.state import Activation, GuestState
from tests.launch.helpers import (
    ASID,
    DATA,
    DEBUG,
    GCTX,
    ID_AUTH_SPA,
    ID_BLOCK_SPA,
    NORMAL,
    PAGE,
    POLICY,
    ZEROS48,
    assert_unchanged,
    capture,
    created,
    digest,
    finish,
    flushed,
    fw_page,
    guest,
    guest_read,
    launch_page,
    ok,
    p384_key,
    pack_id_auth,
    pack_id_block,
    pack_pubkey,
    sha384,
    status_name,
)

ID_KEY = p384_key(0x1D1D_1D1D)
AUTHOR_KEY = p384_key(0xA0A0_7777)
OTHER_KEY = p384_key(0x0707_0707)
HOST_DATA = bytes(range(0x40, 0x60))
FAMILY = b"family-id-012345"
IMAGE = b"image-id-6789abc"
GUEST_POLICY = POLICY | DEBUG


def key_field(key: object, variant: str = "good") -> bytes:
    """The 0x404-byte public key field, well formed or broken as ``variant`` says."""
    pub = key.public_key()  # type: ignore[attr-defined]
    if variant == "good":
        return pack_pubkey(pub)
    if variant == "curve1":
        return pack_pubkey(pub, curve=1)
    if variant == "curve3":
        return pack_pubkey(pub, curve=3)
    if variant == "off_curve":
        raw = bytearray(pack_pubkey(pub))
        y = int.from_bytes(raw[0x4C:0x94], "little") + 1
        raw[0x4C:0x94] = y.to_bytes(72, "little")
        return bytes(raw)
    if variant == "zero":
        return bytes(0x404)
    raise ValueError(variant)


@dataclass(frozen=True)
class Finish:
    """A LAUNCH_FINISH set up to succeed with an ID block and author key, except where a
    field says otherwise."""

    name: str
    want: S
    uninit: bool = False
    gctx: str = "context"  # "context" | "firmware"
    gstate: str = "launch"  # "init" | "launch" | "running"
    active: bool = True
    imi_en: bool = False
    id_block_en: int = 1
    auth_key_en: int = 1
    ld_ok: bool = True
    policy_ok: bool = True
    id_key_algo: int = 1
    auth_key_algo: int = 1
    id_key: str = "good"
    block_sig: str = "good"  # "good" | "other_key" | "other_block" | "zero"
    author_key: str = "good"
    id_key_sig: str = "good"  # "good" | "other_key" | "other_msg"
    version: int = 1
    gctx_off: int = 0
    patch: dict[int, int] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.name


def build(case: Finish) -> Platform:
    p = flushed()
    if case.gctx == "context":
        created(p)
        if case.gstate != "init":
            ok(p.run(C.SNP_LAUNCH_START, gctx_paddr=GCTX, policy=GUEST_POLICY, imi_en=case.imi_en))
            if case.active:
                ok(p.run(C.SNP_ACTIVATE, gctx_paddr=GCTX, asid=ASID))
                launch_page(p, DATA, 0x1000, NORMAL, b"\x42" * PAGE, imi_page=int(case.imi_en))
            if case.gstate == "running":
                ok(finish(p))
    elif case.gctx == "firmware":
        fw_page(p, GCTX)
    ld = digest(p) if GCTX in p.fw.state.guests else ZEROS48
    block = pack_id_block(
        ld if case.ld_ok else b"\x01" * 48,
        GUEST_POLICY if case.policy_ok else POLICY,
        family_id=FAMILY,
        image_id=IMAGE,
        version=case.version,
        guest_svn=0x1234,
    )
    id_key = key_field(ID_KEY, case.id_key)
    signer = OTHER_KEY if case.block_sig == "other_key" else ID_KEY
    signed = bytes([block[0] ^ 1]) + block[1:] if case.block_sig == "other_block" else block
    block_sig = bytes(0x200) if case.block_sig == "zero" else sign_amd(signer, signed)
    key_signer = OTHER_KEY if case.id_key_sig == "other_key" else AUTHOR_KEY
    key_msg = bytes([id_key[0] ^ 1]) + id_key[1:] if case.id_key_sig == "other_msg" else id_key
    auth = pack_id_auth(
        id_key_algo=case.id_key_algo,
        auth_key_algo=case.auth_key_algo,
        id_block_sig=block_sig,
        id_key=id_key,
        id_key_sig=sign_amd(key_signer, key_msg),
        author_key=key_field(AUTHOR_KEY, case.author_key),
    )
    p.cpu.host_write(ID_BLOCK_SPA, block)
    p.cpu.host_write(ID_AUTH_SPA, auth)
    if case.uninit:
        ok(p.run(C.SNP_SHUTDOWN))
    return p


def pack_buffer(case: Finish) -> bytes:
    """0x40 bytes at the §6 offsets: GCTX_PADDR, ID_BLOCK_PADDR, ID_AUTH_PADDR,
    {ID_BLOCK_EN, AUTH_KEY_EN, VCEK_DISABLED}, HOST_DATA."""
    flags = case.id_block_en | case.auth_key_en << 1
    raw = bytearray(
        struct.pack("<QQQQ", GCTX + case.gctx_off, ID_BLOCK_SPA, ID_AUTH_SPA, flags) + HOST_DATA
    )
    for off, value in case.patch.items():
        raw[off] |= value
    return bytes(raw)


IPARAM, IGS, BADSIG = S.INVALID_PARAM, S.INVALID_GUEST_STATE, S.BAD_SIGNATURE

CASES = [
    Finish("ID block and author key", S.SUCCESS),
    Finish("ID block without author key", S.SUCCESS, auth_key_en=0),
    Finish("no ID block", S.SUCCESS, id_block_en=0, auth_key_en=0, ld_ok=False, id_key="zero"),
    # MBZ and address bits
    Finish("GCTX_PADDR bits 11:0", IPARAM, gctx_off=0x20),
    Finish("reserved flag bit 3", IPARAM, patch={0x18: 0x08}),
    Finish("reserved flag byte 0x1F", IPARAM, patch={0x1F: 0x80}),
    Finish("reserved flag + SNP UNINIT", IPARAM, patch={0x1A: 1}, uninit=True, active=False),
    # platform, context
    Finish("SNP UNINIT", S.INVALID_PLATFORM_STATE, uninit=True, active=False),
    Finish("SNP UNINIT + GCTX FIRMWARE", S.INVALID_PLATFORM_STATE, uninit=True, gctx="firmware"),
    Finish("GCTX FIRMWARE", S.INVALID_GUEST, gctx="firmware"),
    Finish("GCTX HYPERVISOR", S.INVALID_GUEST, gctx="hypervisor"),
    # guest state LAUNCH and IMI_EN = 0
    Finish("guest INIT (so also inactive)", IGS, gstate="init", active=False),
    Finish("guest RUNNING (finished twice)", IGS, gstate="running"),
    Finish("IMI guest", IGS, imi_en=True),
    Finish("IMI guest, inactive", IGS, imi_en=True, active=False),
    Finish("IMI guest + bad LD", IGS, imi_en=True, ld_ok=False),
    # activation
    Finish("inactive", S.INACTIVE, active=False),
    Finish("inactive, no ID block", S.INACTIVE, active=False, id_block_en=0),
    Finish("inactive + bad LD", S.INACTIVE, active=False, ld_ok=False),
    # 1. LD
    Finish("1 LD differs", S.BAD_MEASUREMENT, ld_ok=False),
    Finish("1 LD differs + 2 policy differs", S.BAD_MEASUREMENT, ld_ok=False, policy_ok=False),
    Finish("1 LD differs + 5 bad signature", S.BAD_MEASUREMENT, ld_ok=False, block_sig="zero"),
    # 2. policy
    Finish("2 policy differs", S.POLICY_FAILURE, policy_ok=False),
    Finish("2 policy differs + 3 ID_KEY_ALGO 0", S.POLICY_FAILURE, policy_ok=False, id_key_algo=0),
    # 3. algorithms
    Finish("3 ID_KEY_ALGO 0", IPARAM, id_key_algo=0),
    Finish("3 ID_KEY_ALGO 2", IPARAM, id_key_algo=2),
    Finish("3 AUTH_KEY_ALGO 2 with AUTH_KEY_EN", IPARAM, auth_key_algo=2),
    Finish("3 AUTH_KEY_ALGO 2 without AUTH_KEY_EN", S.SUCCESS, auth_key_algo=2, auth_key_en=0),
    Finish("3 ID_KEY_ALGO 2 + 4 bad curve", IPARAM, id_key_algo=2, id_key="curve1"),
    # 4. ID key curve and point
    Finish("4 ID key curve 1", BADSIG, id_key="curve1"),
    Finish("4 ID key curve 3", BADSIG, id_key="curve3"),
    Finish("4 ID key point off the curve", BADSIG, id_key="off_curve"),
    Finish("4 ID key all zero", BADSIG, id_key="zero"),
    # 5. ID block signature
    Finish("5 block signed by another key", BADSIG, block_sig="other_key"),
    Finish("5 signature over other bytes", BADSIG, block_sig="other_block"),
    Finish("5 zero signature", BADSIG, block_sig="zero"),
    Finish("5 zero signature, no author key", BADSIG, block_sig="zero", auth_key_en=0),
    # 7. author key
    Finish("7 author key curve 1", BADSIG, author_key="curve1"),
    Finish("7 author key off the curve", BADSIG, author_key="off_curve"),
    Finish("7 ID key signed by another key", BADSIG, id_key_sig="other_key"),
    Finish("7 ID key signature over other bytes", BADSIG, id_key_sig="other_msg"),
    Finish(
        "7 broken author key ignored without AUTH_KEY_EN",
        S.SUCCESS,
        auth_key_en=0,
        author_key="off_curve",
        id_key_sig="other_key",
    ),
    # FW 1.55 does not check VERSION
    Finish("ID block VERSION 99 accepted", S.SUCCESS, version=99),
]


def _params() -> list[object]:
    out: list[object] = []
    for case in CASES:
        for path in ("bytes",) if case.patch else ("bytes", "typed"):
            out.append(pytest.param(case, path, id=f"{case.name}[{path}]"))
    return out


def _run(p: Platform, case: Finish, path: str) -> S:
    if path == "bytes":
        return S(p.execute(C.SNP_LAUNCH_FINISH, pack_buffer(case)).status)
    result = finish(
        p,
        gctx=GCTX + case.gctx_off,
        id_block_paddr=ID_BLOCK_SPA,
        id_auth_paddr=ID_AUTH_SPA,
        id_block_en=case.id_block_en,
        auth_key_en=case.auth_key_en,
        host_data=HOST_DATA,
    )
    return S(result.status)


@pytest.mark.parametrize(("case", "path"), _params())
def test_launch_finish_check_order(case: Finish, path: str) -> None:
    p = build(case)
    before = capture(p)
    got = _run(p, case, path)
    assert got == case.want, f"{case.name}: got {status_name(got)}, want {case.want.name}"
    if case.want != S.SUCCESS:
        assert_unchanged(p, before, case.name)
        if case.gstate == "launch" and not case.uninit and case.gctx == "context":
            assert guest(p).state is GuestState.LAUNCH
        return
    g = guest(p)
    assert g.state is GuestState.RUNNING
    assert g.activation is Activation.ACTIVE
    assert g.host_data == HOST_DATA
    # a successful finish touches no page and no RMP entry
    after = capture(p)
    assert after.rmp == before.rmp
    assert after.memory == before.memory


# --- what a successful finish records -----------------------------------------------------------
def _success(**changes: object) -> Platform:
    case = Finish("success", S.SUCCESS, **changes)  # type: ignore[arg-type]
    p = build(case)
    assert _run(p, case, "bytes") == S.SUCCESS
    return p


def test_id_block_and_author_key_are_recorded() -> None:
    p = _success()
    g = guest(p)
    assert g.id_block_en and g.author_key_en
    assert g.family_id == FAMILY and g.image_id == IMAGE and g.guest_svn == 0x1234
    assert g.id_key_digest == sha384(pack_pubkey(ID_KEY.public_key()))
    assert g.author_key_digest == sha384(pack_pubkey(AUTHOR_KEY.public_key()))
    assert g.id_block == p.cpu.host_read(ID_BLOCK_SPA, 0x60)
    assert len(g.id_key_digest) == 48


def test_id_block_without_author_key() -> None:
    g = guest(_success(auth_key_en=0))
    assert g.id_block_en and not g.author_key_en
    assert g.id_key_digest == sha384(pack_pubkey(ID_KEY.public_key()))
    assert g.author_key_digest == ZEROS48


def test_no_id_block_leaves_the_id_fields_zero() -> None:
    g = guest(_success(id_block_en=0, auth_key_en=0))
    assert not g.id_block_en and not g.author_key_en
    assert g.family_id == bytes(16) and g.image_id == bytes(16) and g.guest_svn == 0
    assert g.id_key_digest == ZEROS48 and g.author_key_digest == ZEROS48
    assert g.host_data == HOST_DATA


def test_auth_key_en_is_recorded_without_id_block_en() -> None:
    """FW 1.55 quirk (§8.4): AUTHOR_KEY_EN follows AUTH_KEY_EN even with ID_BLOCK_EN = 0;
    nothing is checked and the digests stay zero."""
    g = guest(_success(id_block_en=0, auth_key_en=1, author_key="off_curve", ld_ok=False))
    assert g.author_key_en and not g.id_block_en
    assert g.id_key_digest == ZEROS48 and g.author_key_digest == ZEROS48


def test_vcek_disabled_is_recorded() -> None:
    p = build(Finish("x", S.SUCCESS, id_block_en=0, auth_key_en=0))
    ok(finish(p, vcek_disabled=1))
    assert guest(p).vcek_disabled


def test_finish_completes_the_pending_activation_and_keeps_the_key() -> None:
    p = build(Finish("x", S.SUCCESS))
    assert guest(p).activation is Activation.PENDING
    assert p.fw.state.asid_owner[ASID] == GCTX
    ok(finish(p))
    g = guest(p)
    assert (g.activation, g.asid, g.state) == (Activation.ACTIVE, ASID, GuestState.RUNNING)
    assert guest_read(p, 0x1000, DATA, 16) == b"\x42" * 16
    # no more launch pages once RUNNING
    assert finish(p).status == S.INVALID_GUEST_STATE


def test_id_block_is_read_when_the_command_runs() -> None:
    """The firmware reads the ID block from memory at LAUNCH_FINISH time: a block written
    after LAUNCH_UPDATE of the last page but before the finish is what counts; a block
    matching an earlier digest fails."""
    p = build(Finish("x", S.SUCCESS))
    stale = p.cpu.host_read(ID_BLOCK_SPA, 0x60)
    launch_page(p, DATA + PAGE, 0x2000, NORMAL, b"\x43" * PAGE)
    assert stale[:48] != digest(p)
    result = finish(
        p, id_block_paddr=ID_BLOCK_SPA, id_auth_paddr=ID_AUTH_SPA, id_block_en=1, auth_key_en=1
    )
    assert result.status == S.BAD_MEASUREMENT
