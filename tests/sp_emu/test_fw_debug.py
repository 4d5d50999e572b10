"""SNP_DBG_DECRYPT and SNP_DBG_ENCRYPT, table driven, plus the plaintext round trip through
the guest's key.

Statuses and their order: firmware-commands.md §6 SNP_DBG_DECRYPT / SNP_DBG_ENCRYPT (DECRYPT:
address bits, platform INIT, GCTX, SRC and DST states, SRC owner, POLICY.DEBUG, active;
ENCRYPT: platform INIT first, then address bits, GCTX, DST state only, DST owner, POLICY.DEBUG,
active).  Policy DEBUG is bit 19 (launch-measurement.md §6)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from rmp import PageState, RmpResult
from sp_emu.abi.commands import CommandId as C
from sp_emu.abi.status import SnpStatus as S
from sp_emu.cpu import GuestCpu
from sp_emu.firmware import CommandResult
from sp_emu.platform import Platform
from tests.sp_emu.helpers import (
    ASID,
    BEYOND,
    FW_PAGE,
    FW_PAGE2,
    GCTX,
    GCTX2,
    GUEST_PAGE,
    GUEST_PAGE2,
    HV_PAGE,
    MEM,
    POLICY,
    POLICY_DEBUG,
    REGION,
    SRC_PAGE,
    Check,
    Row,
    Step,
    activated,
    flushed,
    fw_page,
    guest_invalid,
    launched,
    ok,
    platform,
    pre_guest,
    rmpupdate_ok,
    row_params,
    run_row,
    setup,
    state_of,
)

IPS = S.INVALID_PLATFORM_STATE
PLAIN = bytes(range(256)) * 16
GPA = 0x7000


def xts(key: bytes, spa: int, data: bytes, *, decrypt: bool = False) -> bytes:
    """AES-256-XTS with the page address as tweak, computed independently of sp_emu.memory."""
    cipher = Cipher(algorithms.AES(key), modes.XTS((spa & ~0xFFF).to_bytes(16, "little")))
    op = cipher.decryptor() if decrypt else cipher.encryptor()
    return op.update(data) + op.finalize()


def vek(p: Platform, gctx: int = GCTX) -> bytes:
    return p.fw.state.guests[gctx].vek


# --- set-up steps --------------------------------------------------------------------------------
def debug_guest(p: Platform) -> None:
    """A launched DEBUG guest activated (pending) on ASID 1, a plaintext host page at SRC_PAGE
    and a FIRMWARE page at FW_PAGE."""
    activated(p, GCTX, ASID, POLICY_DEBUG)
    p.cpu.host_write(SRC_PAGE, PLAIN)
    fw_page(p, FW_PAGE)


def plain_guest(p: Platform) -> None:
    """The same with a guest whose policy forbids debugging."""
    activated(p, GCTX, ASID, POLICY)
    p.cpu.host_write(SRC_PAGE, PLAIN)
    fw_page(p, FW_PAGE)


def _pre_guest(spa: int = GUEST_PAGE, asid: int = ASID, size: int = 0) -> Step:
    return lambda p: pre_guest(p, spa, asid, GPA if not size else 0x200000, size)


def _encrypted(spa: int = GUEST_PAGE) -> Step:
    """PRE_GUEST page holding PLAIN under the guest key (via SNP_DBG_ENCRYPT)."""

    def step(p: Platform) -> None:
        ok(p.run(C.SNP_DBG_ENCRYPT, gctx_paddr=GCTX, src_paddr=SRC_PAGE, dst_paddr=spa))

    return step


def guest_valid_with_plaintext(p: Platform) -> None:
    """The guest validates its page and writes PLAIN through its key (GUEST_VALID)."""
    guest_invalid(p, GUEST_PAGE, ASID, GPA)
    p.cpu.npt_map(ASID, GPA, GUEST_PAGE)
    assert p.cpu.pvalidate(GuestCpu(ASID), GPA).result is RmpResult.SUCCESS
    p.cpu.guest_write(GuestCpu(ASID), GPA, PLAIN)
    assert state_of(p, GUEST_PAGE) is PageState.GUEST_VALID


def made_immutable(p: Platform) -> None:
    """GUEST_VALID -> PRE_SWAP (host RMPUPDATE with immutable=1, same owner)."""
    rmpupdate_ok(p, GUEST_PAGE, assigned=True, immutable=True, asid=ASID, gpa=GPA)
    assert state_of(p, GUEST_PAGE) is PageState.PRE_SWAP


def other_guest_page(p: Platform) -> None:
    """A PRE_GUEST page of a second guest (ASID 2)."""
    activated(p, GCTX2, 2, POLICY_DEBUG)
    pre_guest(p, GUEST_PAGE2, 2, GPA)


def _plain_firmware_page(p: Platform) -> None:
    p.cpu.host_write(FW_PAGE2, PLAIN)
    fw_page(p, FW_PAGE2)


def _fw(spa: int) -> Step:
    return lambda p: fw_page(p, spa)


# --- checks --------------------------------------------------------------------------------------
def ciphertext_at(spa: int) -> Check:
    """The host sees ciphertext; through the guest key the page reads as PLAIN."""

    def check(p: Platform, r: CommandResult) -> None:
        host = p.cpu.host_read(spa, 0x1000)
        assert host != PLAIN
        assert host == xts(vek(p), spa, PLAIN)
        assert p.memory.read(spa, 0x1000, p.fw.asid_keys[ASID]) == PLAIN
        assert state_of(p, spa & ~0x1FFFFF if spa >= REGION else spa) in (
            PageState.PRE_GUEST,
            PageState.PRE_SWAP,
        )

    return check


def plaintext_at(spa: int, want: bytes = PLAIN) -> Check:
    def check(p: Platform, r: CommandResult) -> None:
        assert p.cpu.host_read(spa, 0x1000) == want
        assert state_of(p, spa) is PageState.FIRMWARE

    return check


def decrypted_raw(p: Platform, r: CommandResult) -> None:
    """A GUEST_INVALID page the host filled before assigning it: DBG_DECRYPT returns those
    DRAM bytes decrypted with the guest key."""
    assert p.cpu.host_read(FW_PAGE, 0x1000) == xts(vek(p), GUEST_PAGE, PLAIN, decrypt=True)


def _host_fill_then_assign(p: Platform) -> None:
    p.cpu.host_write(GUEST_PAGE, PLAIN)
    guest_invalid(p, GUEST_PAGE, ASID, GPA)


def dec(src: int = GUEST_PAGE, dst: int = FW_PAGE, gctx: int = GCTX) -> dict[str, int]:
    return {"gctx_paddr": gctx, "src_paddr": src, "dst_paddr": dst}


def enc(dst: int = GUEST_PAGE, src: int = SRC_PAGE, gctx: int = GCTX) -> dict[str, int]:
    return {"gctx_paddr": gctx, "src_paddr": src, "dst_paddr": dst}


_D, _E = C.SNP_DBG_DECRYPT, C.SNP_DBG_ENCRYPT
_dbg = setup(debug_guest)

# --- SNP_DBG_ENCRYPT -----------------------------------------------------------------------------
ENCRYPT_ROWS = [
    Row(
        "into a PRE_GUEST page",
        setup(debug_guest, _pre_guest()),
        _E,
        enc(),
        check=ciphertext_at(GUEST_PAGE),
    ),
    Row(
        "into a PRE_SWAP page",
        setup(debug_guest, guest_valid_with_plaintext, made_immutable),
        _E,
        enc(),
        check=ciphertext_at(GUEST_PAGE),
    ),
    Row(
        "into a 4K page of a 2 MiB PRE_GUEST page",
        setup(debug_guest, _pre_guest(REGION, size=1)),
        _E,
        enc(REGION + 0x5000),
        check=ciphertext_at(REGION + 0x5000),
    ),
    Row(
        "source state is not checked (FIRMWARE source)",
        setup(debug_guest, _pre_guest(), _plain_firmware_page),
        _E,
        enc(src=FW_PAGE2),
        check=ciphertext_at(GUEST_PAGE),
    ),
    Row("uninit: platform state before address bits", platform, _E, enc(src=SRC_PAGE + 1), IPS),
    Row("uninit", platform, _E, enc(), IPS),
    Row(
        "DST not page aligned",
        setup(debug_guest, _pre_guest()),
        _E,
        enc(GUEST_PAGE + 8),
        S.INVALID_PARAM,
    ),
    Row(
        "SRC not page aligned",
        setup(debug_guest, _pre_guest()),
        _E,
        enc(src=SRC_PAGE + 1),
        S.INVALID_PARAM,
    ),
    Row(
        "GCTX not page aligned",
        setup(debug_guest, _pre_guest()),
        _E,
        enc(gctx=GCTX + 0x80),
        S.INVALID_PARAM,
    ),
    Row(
        "not a context",
        setup(debug_guest, _pre_guest(), _fw(GCTX2)),
        _E,
        enc(gctx=GCTX2),
        S.INVALID_GUEST,
    ),
    Row(
        "DST GUEST_VALID (only during launch)",
        setup(debug_guest, guest_valid_with_plaintext),
        _E,
        enc(),
        S.INVALID_PAGE_STATE,
    ),
    Row(
        "DST GUEST_INVALID",
        setup(debug_guest, lambda p: guest_invalid(p, GUEST_PAGE, ASID, GPA)),
        _E,
        enc(),
        S.INVALID_PAGE_STATE,
    ),
    Row("DST HYPERVISOR", _dbg, _E, enc(), S.INVALID_PAGE_STATE),
    Row("DST FIRMWARE", _dbg, _E, enc(FW_PAGE), S.INVALID_PAGE_STATE),
    Row("DST inside the RMP", _dbg, _E, enc(MEM - 0x1000), S.INVALID_PARAM),
    Row("DST past system memory", _dbg, _E, enc(BEYOND), S.INVALID_ADDRESS),
    Row(
        "DST of another guest",
        setup(debug_guest, other_guest_page),
        _E,
        enc(GUEST_PAGE2),
        S.INVALID_PAGE_OWNER,
    ),
    Row("no DEBUG in policy", setup(plain_guest, _pre_guest()), _E, enc(), S.POLICY_FAILURE),
    Row(
        "owner before policy",
        setup(plain_guest, other_guest_page),
        _E,
        enc(GUEST_PAGE2),
        S.INVALID_PAGE_OWNER,
    ),
    Row(
        "guest never activated: its ASID 0 owns no page",
        setup(lambda p: launched(p, GCTX, POLICY_DEBUG), _pre_guest()),
        _E,
        enc(),
        S.INVALID_PAGE_OWNER,
    ),
    Row(
        "SRC past system memory",
        setup(debug_guest, _pre_guest()),
        _E,
        enc(src=BEYOND),
        S.INVALID_ADDRESS,
    ),
]

# --- SNP_DBG_DECRYPT -----------------------------------------------------------------------------
DECRYPT_ROWS = [
    Row(
        "C-bit set in every address",
        setup(debug_guest, _pre_guest(), _encrypted()),
        _D,
        dec(GUEST_PAGE | 1 << 51, FW_PAGE | 1 << 51, GCTX | 1 << 51),
        check=plaintext_at(FW_PAGE),
    ),
    Row(
        "PRE_GUEST page written by DBG_ENCRYPT",
        setup(debug_guest, _pre_guest(), _encrypted()),
        _D,
        dec(),
        check=plaintext_at(FW_PAGE),
    ),
    Row(
        "GUEST_VALID page written by the guest",
        setup(debug_guest, guest_valid_with_plaintext),
        _D,
        dec(),
        check=plaintext_at(FW_PAGE),
    ),
    Row(
        "PRE_SWAP page",
        setup(debug_guest, guest_valid_with_plaintext, made_immutable),
        _D,
        dec(),
        check=plaintext_at(FW_PAGE),
    ),
    Row(
        "GUEST_INVALID page the host filled",
        setup(debug_guest, _host_fill_then_assign),
        _D,
        dec(),
        check=decrypted_raw,
    ),
    Row(
        "4K page of a 2 MiB guest page",
        setup(debug_guest, _pre_guest(REGION, size=1), _encrypted(REGION + 0x3000)),
        _D,
        dec(REGION + 0x3000),
        check=plaintext_at(FW_PAGE),
    ),
    Row(
        "SRC not page aligned (before platform state)",
        platform,
        _D,
        dec(GUEST_PAGE + 1),
        S.INVALID_PARAM,
    ),
    Row(
        "DST not page aligned",
        setup(debug_guest, _pre_guest()),
        _D,
        dec(dst=FW_PAGE + 0x10),
        S.INVALID_PARAM,
    ),
    Row(
        "GCTX not page aligned",
        setup(debug_guest, _pre_guest()),
        _D,
        dec(gctx=GCTX + 1),
        S.INVALID_PARAM,
    ),
    Row("uninit", platform, _D, dec(), IPS),
    Row(
        "not a context",
        setup(debug_guest, _pre_guest(), _fw(GCTX2)),
        _D,
        dec(gctx=GCTX2),
        S.INVALID_GUEST,
    ),
    Row(
        "context before page states",
        setup(debug_guest, _fw(GCTX2)),
        _D,
        dec(HV_PAGE, gctx=GCTX2),
        S.INVALID_GUEST,
    ),
    Row("SRC HYPERVISOR", _dbg, _D, dec(HV_PAGE), S.INVALID_PAGE_STATE),
    Row("SRC FIRMWARE", _dbg, _D, dec(FW_PAGE, FW_PAGE), S.INVALID_PAGE_STATE),
    Row("SRC CONTEXT", _dbg, _D, dec(GCTX), S.INVALID_PAGE_STATE),
    Row(
        "DST HYPERVISOR",
        setup(debug_guest, _pre_guest()),
        _D,
        dec(dst=HV_PAGE),
        S.INVALID_PAGE_STATE,
    ),
    Row(
        "DST is the guest page itself",
        setup(debug_guest, _pre_guest()),
        _D,
        dec(dst=GUEST_PAGE),
        S.INVALID_PAGE_STATE,
    ),
    Row(
        "DST state before SRC owner",
        setup(debug_guest, other_guest_page),
        _D,
        dec(GUEST_PAGE2, HV_PAGE),
        S.INVALID_PAGE_STATE,
    ),
    Row("SRC inside the RMP", _dbg, _D, dec(MEM - 0x1000), S.INVALID_PARAM),
    Row("SRC past system memory", _dbg, _D, dec(BEYOND), S.INVALID_ADDRESS),
    Row(
        "SRC of another guest",
        setup(debug_guest, other_guest_page),
        _D,
        dec(GUEST_PAGE2),
        S.INVALID_PAGE_OWNER,
    ),
    Row("no DEBUG in policy", setup(plain_guest, _pre_guest()), _D, dec(), S.POLICY_FAILURE),
    Row(
        "owner before policy",
        setup(plain_guest, other_guest_page),
        _D,
        dec(GUEST_PAGE2),
        S.INVALID_PAGE_OWNER,
    ),
    Row(
        "guest never activated: its ASID 0 owns no page",
        setup(lambda p: launched(p, GCTX, POLICY_DEBUG), _fw(FW_PAGE), _pre_guest()),
        _D,
        dec(),
        S.INVALID_PAGE_OWNER,
    ),
]

ROWS = ENCRYPT_ROWS + DECRYPT_ROWS


@pytest.mark.parametrize(("row", "path"), row_params(ROWS))
def test_debug_command(row: Row, path: str) -> None:
    run_row(row, path)


def test_plaintext_round_trip_through_the_guest_key() -> None:
    p = flushed()
    debug_guest(p)
    pre_guest(p, GUEST_PAGE, ASID, GPA)
    # ENCRYPT: host plaintext -> guest page under the guest's key.
    ok(p.run(_E, **enc()))
    host_view = p.cpu.host_read(GUEST_PAGE, 0x1000)
    assert host_view != PLAIN
    assert host_view == xts(vek(p), GUEST_PAGE, PLAIN)
    # DECRYPT: guest page -> FIRMWARE page in plaintext.
    ok(p.run(_D, **dec()))
    assert p.cpu.host_read(FW_PAGE, 0x1000) == PLAIN
    # The guest page itself is unchanged by the read.
    assert p.cpu.host_read(GUEST_PAGE, 0x1000) == host_view
    # Another guest's key does not give the plaintext back.
    activated(p, GCTX2, 2, POLICY_DEBUG)
    assert xts(vek(p, GCTX2), GUEST_PAGE, host_view, decrypt=True) != PLAIN


def test_guest_sees_what_dbg_encrypt_wrote_after_it_validates() -> None:
    """After SNP_PAGE_RECLAIM (PRE_GUEST -> GUEST_INVALID) and PVALIDATE the guest reads the
    plaintext DBG_ENCRYPT put there."""
    p = flushed()
    debug_guest(p)
    pre_guest(p, GUEST_PAGE, ASID, GPA)
    ok(p.run(_E, **enc()))
    ok(p.run(C.SNP_PAGE_RECLAIM, page_paddr=GUEST_PAGE))
    p.cpu.npt_map(ASID, GPA, GUEST_PAGE)
    assert p.cpu.pvalidate(GuestCpu(ASID), GPA).result is RmpResult.SUCCESS
    assert p.cpu.guest_read(GuestCpu(ASID), GPA, 0x1000) == PLAIN
