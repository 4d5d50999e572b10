"""SNP_PAGE_MD_INIT, SNP_PAGE_MOVE, SNP_PAGE_SWAP_OUT and SNP_PAGE_SWAP_IN, table driven, plus
the round trips (swap out and back in, move) seen from the guest.

Statuses and order: firmware-commands.md §6 (MD_INIT: GCTX CONTEXT, page FIRMWARE, guest
LAUNCH/RUNNING; MOVE: guest LAUNCH/RUNNING and active, page sizes, then the two cases, else
INVALID_PAGE_STATE).  Where the reference is silent (address alignment first, policy
PAGE_SWAP_DISABLE after the activation check, the SWAP checks, the metadata entry statuses)
the rows follow the choices documented in sp_emu/commands/page_swap.py.  Page states:
rmp-and-instructions.md §3.
"""

from __future__ import annotations

from typing import Any

import pytest

from rmp import PageState, RmpResult
from rmp import layout as RL
from sp_emu.abi.commands import CommandId as C
from sp_emu.abi.launch import GuestPolicy
from sp_emu.abi.status import SnpStatus as S
from sp_emu.abi.swap import GCTX_ROOT_MDATA_OFFSET, GCTX_SWAP_IV_OFFSET, MDATA_ENTRY
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
    METADATA_Q0,
    POLICY,
    REGION,
    Check,
    Row,
    Step,
    activated,
    assert_unchanged,
    capture,
    created,
    flushed,
    fw_page,
    launched,
    ok,
    platform,
    pre_guest,
    raw_entry,
    rmpupdate_ok,
    row_params,
    run_row,
    setup,
    state_of,
)

IPS = S.INVALID_PLATFORM_STATE
PLAIN = bytes(range(256)) * 16
GPA = 0x7000
GPA2 = 0x9000
MD_PAGE = 0x140000
MD_PAGE2 = 0x141000
OTHER_PAGE = 0x132000
ENTRY = MD_PAGE + 0x40
SW_DATA = 0x1122_3344_5566_7788


# --- set-up steps --------------------------------------------------------------------------------
def guest(p: Platform) -> None:
    """A launched guest activated (pending) on ASID 1."""
    activated(p, GCTX, ASID, POLICY)


def swap_disabled(p: Platform, gctx: int = GCTX) -> None:
    """Policy PAGE_SWAP_DISABLE set in the context (the emulated products' LAUNCH_START does
    not accept bit 25 yet, so it is set directly)."""
    p.fw.state.guests[gctx].policy |= GuestPolicy.PAGE_SWAP_DISABLE


def validated_page(spa: int = GUEST_PAGE, gpa: int = GPA, data: bytes = PLAIN) -> Step:
    """The guest validates a private page at ``gpa`` and writes ``data`` (GUEST_VALID), and
    the host then makes it immutable (PRE_SWAP)."""

    def step(p: Platform) -> None:
        rmpupdate_ok(p, spa, assigned=True, asid=ASID, gpa=gpa)
        p.cpu.npt_map(ASID, gpa, spa)
        assert p.cpu.pvalidate(GuestCpu(ASID), gpa).result is RmpResult.SUCCESS
        p.cpu.guest_write(GuestCpu(ASID), gpa, data)
        rmpupdate_ok(p, spa, assigned=True, immutable=True, asid=ASID, gpa=gpa)
        assert state_of(p, spa) is PageState.PRE_SWAP

    return step


def _pre_guest(spa: int = GUEST_PAGE2, asid: int = ASID, gpa: int = GPA2, size: int = 0) -> Step:
    return lambda p: pre_guest(p, spa, asid, gpa, size)


def _fw(spa: int, size: int = 0) -> Step:
    return lambda p: fw_page(p, spa, size)


def md_init(spa: int = MD_PAGE, gctx: int = GCTX) -> Step:
    def step(p: Platform) -> None:
        fw_page(p, spa)
        ok(p.run(C.SNP_PAGE_MD_INIT, gctx_paddr=gctx, page_paddr=spa))

    return step


def other_guest(p: Platform) -> None:
    """A second guest on ASID 2 with a PRE_GUEST page at OTHER_PAGE and a metadata page."""
    activated(p, GCTX2, 2, POLICY)
    pre_guest(p, OTHER_PAGE, 2, GPA)
    md_init(MD_PAGE2, GCTX2)(p)


def swap_out_fields(**kw: Any) -> dict[str, Any]:
    fields = {
        "gctx_paddr": GCTX,
        "src_paddr": GUEST_PAGE,
        "dst_paddr": HV_PAGE,
        "mdata_paddr": ENTRY,
        "software_data": SW_DATA,
    }
    fields.update(kw)
    return fields


def swap_in_fields(**kw: Any) -> dict[str, Any]:
    fields = {
        "gctx_paddr": GCTX,
        "src_paddr": HV_PAGE,
        "dst_paddr": GUEST_PAGE2,
        "mdata_paddr": ENTRY,
    }
    fields.update(kw)
    return fields


def swapped_out(**kw: Any) -> Step:
    def step(p: Platform) -> None:
        ok(p.run(C.SNP_PAGE_SWAP_OUT, **swap_out_fields(**kw)))

    return step


def entry_at(p: Platform, at: int = ENTRY) -> dict[str, Any]:
    return dict(MDATA_ENTRY.parse(p.memory.read(at, 0x40, p.fw.firmware_key)))


def _tamper_ciphertext(p: Platform) -> None:
    data = bytearray(p.cpu.host_read(HV_PAGE, 0x1000))
    data[100] ^= 1
    p.cpu.host_write(HV_PAGE, bytes(data))


def _tamper_entry_gpa(p: Platform) -> None:
    """Change the recorded GPA (as if the host could write the entry): the tag covers it."""
    e = entry_at(p)
    e["gpa_pfn"] ^= 1
    p.memory.write(ENTRY, MDATA_ENTRY.build(e), p.fw.firmware_key)


def _iv_exhausted(p: Platform) -> None:
    p.memory.write(GCTX + GCTX_SWAP_IV_OFFSET, b"\xff" * 8, p.fw.firmware_key)


def _used_entry(p: Platform) -> None:
    e = entry_at(p)
    e["valid"] = 1
    p.memory.write(ENTRY, MDATA_ENTRY.build(e), p.fw.firmware_key)


_base = setup(guest, validated_page(), md_init())
_swapped = setup(guest, validated_page(), md_init(), swapped_out(), _pre_guest())


# --- checks --------------------------------------------------------------------------------------
def _md_init_done(spa: int = MD_PAGE) -> Check:
    def check(p: Platform, r: CommandResult) -> None:
        q0, _ = raw_entry(p, spa)
        assert state_of(p, spa) is PageState.METADATA
        assert q0 == METADATA_Q0 | GCTX  # marker 1 in GPA bits 50:48 + the context's pfn
        assert p.memory.read(spa, 0x1000, p.fw.firmware_key) == bytes(0x1000)

    return check


def _moved_guest_page(want: PageState, src_was: bytes | None = None) -> Check:
    def check(p: Platform, r: CommandResult) -> None:
        key = p.fw.asid_keys[ASID]
        assert state_of(p, GUEST_PAGE2) is want
        assert state_of(p, GUEST_PAGE) is PageState.GUEST_INVALID
        q0, _ = raw_entry(p, GUEST_PAGE2)
        assert RL.GPA.get(q0) << 12 == GPA
        if src_was is not None:
            assert p.memory.read(GUEST_PAGE2, 0x1000, key) == src_was
            assert p.cpu.host_read(GUEST_PAGE2, 0x1000) != p.cpu.host_read(GUEST_PAGE, 0x1000)

    return check


def _moved_metadata(p: Platform, r: CommandResult) -> None:
    assert state_of(p, FW_PAGE) is PageState.METADATA
    assert state_of(p, MD_PAGE) is PageState.FIRMWARE
    assert raw_entry(p, FW_PAGE)[0] == METADATA_Q0 | GCTX


def _swapped_out_check(at: int = ENTRY) -> Check:
    def check(p: Platform, r: CommandResult) -> None:
        e = entry_at(p, at)
        assert e["valid"] == 1 and e["page_validated"] == 1 and e["vmsa"] == 0
        assert e["gpa_pfn"] << 12 == GPA and e["software_data"] == SW_DATA
        assert e["iv"] == 1
        assert p.cpu.host_read(HV_PAGE, 0x1000) != PLAIN
        assert state_of(p, GUEST_PAGE) is PageState.GUEST_INVALID

    return check


def _swapped_in_check(p: Platform, r: CommandResult) -> None:
    assert state_of(p, GUEST_PAGE2) is PageState.GUEST_VALID
    assert RL.GPA.get(raw_entry(p, GUEST_PAGE2)[0]) << 12 == GPA
    assert p.memory.read(GUEST_PAGE2, 0x1000, p.fw.asid_keys[ASID]) == PLAIN
    assert entry_at(p)["valid"] == 0


# --- rows ----------------------------------------------------------------------------------------
def md(page: int = MD_PAGE, gctx: int = GCTX) -> dict[str, int]:
    return {"gctx_paddr": gctx, "page_paddr": page}


def mv(
    src: int = GUEST_PAGE, dst: int = GUEST_PAGE2, gctx: int = GCTX, size: int = 0
) -> dict[str, int]:
    return {"gctx_paddr": gctx, "src_paddr": src, "dst_paddr": dst, "page_size": size}


_MD, _MV, _OUT, _IN = C.SNP_PAGE_MD_INIT, C.SNP_PAGE_MOVE, C.SNP_PAGE_SWAP_OUT, C.SNP_PAGE_SWAP_IN
_g = setup(guest, _fw(MD_PAGE))

MD_INIT_ROWS = [
    Row("FIRMWARE -> METADATA (LAUNCH)", _g, _MD, md(), check=_md_init_done()),
    Row(
        "not activated is fine",
        setup(lambda p: launched(p), _fw(MD_PAGE)),
        _MD,
        md(),
        check=_md_init_done(),
    ),
    Row("PAGE_PADDR not page aligned", _g, _MD, md(MD_PAGE + 8), S.INVALID_PARAM),
    Row("GCTX_PADDR not page aligned", _g, _MD, md(gctx=GCTX + 8), S.INVALID_PARAM),
    Row("uninit", platform, _MD, md(), IPS),
    Row(
        "not a context",
        setup(guest, _fw(MD_PAGE), _fw(GCTX2)),
        _MD,
        md(gctx=GCTX2),
        S.INVALID_GUEST,
    ),
    Row("page HYPERVISOR", setup(guest), _MD, md(), S.INVALID_PAGE_STATE),
    Row("page already METADATA", setup(guest, md_init()), _MD, md(), S.INVALID_PAGE_STATE),
    Row("page inside the RMP", _g, _MD, md(MEM - 0x1000), S.INVALID_PARAM),
    Row("page past system memory", _g, _MD, md(BEYOND), S.INVALID_ADDRESS),
    Row("page is 2 MiB", setup(guest, _fw(REGION, 1)), _MD, md(REGION), S.INVALID_PAGE_SIZE),
    Row("guest INIT", setup(lambda p: created(p), _fw(MD_PAGE)), _MD, md(), S.INVALID_GUEST_STATE),
    Row(
        "page state before guest state",
        setup(lambda p: created(p)),
        _MD,
        md(),
        S.INVALID_PAGE_STATE,
    ),
]

_mvg = setup(guest, validated_page(), _pre_guest())
MOVE_ROWS = [
    Row(
        "PRE_SWAP -> PRE_GUEST: DST GUEST_VALID",
        _mvg,
        _MV,
        mv(),
        check=_moved_guest_page(PageState.GUEST_VALID, PLAIN),
    ),
    Row(
        "PRE_GUEST -> PRE_GUEST: DST GUEST_INVALID",
        setup(guest, _pre_guest(GUEST_PAGE, gpa=GPA), _pre_guest()),
        _MV,
        mv(),
        check=_moved_guest_page(PageState.GUEST_INVALID),
    ),
    Row(
        "METADATA -> FIRMWARE: roles swapped",
        setup(guest, md_init(), _fw(FW_PAGE)),
        _MV,
        mv(MD_PAGE, FW_PAGE),
        check=_moved_metadata,
    ),
    Row("reserved bit of the flags word", _mvg, _MV, mv(), S.INVALID_PARAM, patch={0x08: 2}),
    Row("reserved word 0x0C", _mvg, _MV, mv(), S.INVALID_PARAM, patch={0x0C: 1}),
    Row("SRC not page aligned", _mvg, _MV, mv(src=GUEST_PAGE + 8), S.INVALID_PARAM),
    Row("DST not page aligned", _mvg, _MV, mv(dst=GUEST_PAGE2 + 8), S.INVALID_PARAM),
    Row("SRC equals DST", _mvg, _MV, mv(dst=GUEST_PAGE), S.INVALID_PARAM),
    Row("uninit", platform, _MV, mv(), IPS),
    Row("not a context", setup(guest, _fw(GCTX2)), _MV, mv(gctx=GCTX2), S.INVALID_GUEST),
    Row("guest INIT", setup(lambda p: created(p)), _MV, mv(), S.INVALID_GUEST_STATE),
    Row("guest not activated", setup(lambda p: launched(p)), _MV, mv(), S.INACTIVE),
    Row(
        "PAGE_SWAP_DISABLE",
        setup(guest, swap_disabled, validated_page(), _pre_guest()),
        _MV,
        mv(),
        S.POLICY_FAILURE,
    ),
    Row("policy before page states", setup(guest, swap_disabled), _MV, mv(), S.POLICY_FAILURE),
    Row("SRC inside the RMP", _mvg, _MV, mv(src=MEM - 0x1000), S.INVALID_PARAM),
    Row("DST past system memory", _mvg, _MV, mv(dst=BEYOND), S.INVALID_ADDRESS),
    Row("PAGE_SIZE 2 MiB for 4 KiB pages", _mvg, _MV, mv(size=1), S.INVALID_PAGE_SIZE),
    Row(
        "page size before page state",
        setup(guest),
        _MV,
        mv(size=1),
        S.INVALID_PAGE_SIZE,
    ),
    Row(
        "SRC GUEST_VALID (mutable)",
        setup(
            guest,
            validated_page(),
            lambda p: p.run(C.SNP_PAGE_RECLAIM, page_paddr=GUEST_PAGE),
            _pre_guest(),
        ),
        _MV,
        mv(),
        S.INVALID_PAGE_STATE,
    ),
    Row("DST HYPERVISOR", setup(guest, validated_page()), _MV, mv(), S.INVALID_PAGE_STATE),
    Row(
        "DST PRE_SWAP",
        setup(guest, validated_page(), validated_page(GUEST_PAGE2, GPA2)),
        _MV,
        mv(),
        S.INVALID_PAGE_STATE,
    ),
    Row(
        "DST of another guest",
        setup(guest, validated_page(), other_guest),
        _MV,
        mv(dst=OTHER_PAGE),
        S.INVALID_PAGE_STATE,
    ),
    Row(
        "METADATA of another guest",
        setup(guest, other_guest, _fw(FW_PAGE)),
        _MV,
        mv(MD_PAGE2, FW_PAGE),
        S.INVALID_PAGE_STATE,
    ),
    Row(
        "METADATA to a PRE_GUEST page",
        setup(guest, md_init(), _pre_guest()),
        _MV,
        mv(MD_PAGE, GUEST_PAGE2),
        S.INVALID_PAGE_STATE,
    ),
]

_o = swap_out_fields
SWAP_OUT_ROWS = [
    Row("PRE_SWAP page into a metadata page", _base, _OUT, _o(), check=_swapped_out_check()),
    Row(
        "entry in the guest context (ROOT_MDATA_EN)",
        setup(guest, validated_page()),
        _OUT,
        _o(mdata_paddr=0, root_mdata_en=1),
        check=_swapped_out_check(GCTX + GCTX_ROOT_MDATA_OFFSET),
    ),
    Row("reserved flag bit", _base, _OUT, _o(), S.INVALID_PARAM, patch={0x28: 0x20}),
    Row("PAGE_TYPE 3", _base, _OUT, _o(swap_page_type=3), S.INVALID_PARAM),
    Row("SRC not page aligned", _base, _OUT, _o(src_paddr=GUEST_PAGE + 8), S.INVALID_PARAM),
    Row("MDATA_PADDR not 64-byte aligned", _base, _OUT, _o(mdata_paddr=ENTRY + 8), S.INVALID_PARAM),
    Row("uninit", platform, _OUT, _o(), IPS),
    Row("not a context", setup(guest, _fw(GCTX2)), _OUT, _o(gctx_paddr=GCTX2), S.INVALID_GUEST),
    Row("guest INIT", setup(lambda p: created(p)), _OUT, _o(), S.INVALID_GUEST_STATE),
    Row("guest not activated", setup(lambda p: launched(p)), _OUT, _o(), S.INACTIVE),
    Row("PAGE_SWAP_DISABLE", setup(swap_disabled, base=_base), _OUT, _o(), S.POLICY_FAILURE),
    Row("SRC HYPERVISOR", setup(guest, md_init()), _OUT, _o(), S.INVALID_PAGE_STATE),
    Row(
        "SRC of another guest",
        setup(guest, md_init(), other_guest),
        _OUT,
        _o(src_paddr=OTHER_PAGE),
        S.INVALID_PAGE_STATE,
    ),
    Row("PAGE_TYPE VMSA for a data page", _base, _OUT, _o(swap_page_type=2), S.INVALID_PAGE_STATE),
    Row("PAGE_SIZE 2 MiB for a 4 KiB page", _base, _OUT, _o(page_size=1), S.INVALID_PAGE_SIZE),
    Row(
        "DST FIRMWARE",
        setup(_fw(FW_PAGE), base=_base),
        _OUT,
        _o(dst_paddr=FW_PAGE),
        S.INVALID_PAGE_STATE,
    ),
    Row("DST past system memory", _base, _OUT, _o(dst_paddr=BEYOND), S.INVALID_ADDRESS),
    Row(
        "entry in a FIRMWARE page",
        setup(_fw(FW_PAGE), base=_base),
        _OUT,
        _o(mdata_paddr=FW_PAGE),
        S.INVALID_PAGE_STATE,
    ),
    Row(
        "entry in another guest's metadata page",
        setup(other_guest, base=_base),
        _OUT,
        _o(mdata_paddr=MD_PAGE2),
        S.INVALID_PAGE_STATE,
    ),
    Row(
        "metadata page holding its own entry",
        _base,
        _OUT,
        _o(src_paddr=MD_PAGE, swap_page_type=1),
        S.INVALID_PARAM,
    ),
    Row("entry already VALID", setup(_used_entry, base=_base), _OUT, _o(), S.INVALID_MDATA_ENTRY),
    Row("IV counter exhausted", setup(_iv_exhausted, base=_base), _OUT, _o(), S.AEAD_OFLOW),
]

_i = swap_in_fields
SWAP_IN_ROWS = [
    Row("into a PRE_GUEST page", _swapped, _IN, _i(), check=_swapped_in_check),
    Row("reserved flag bit", _swapped, _IN, _i(), S.INVALID_PARAM, patch={0x29: 1}),
    Row("DST not page aligned", _swapped, _IN, _i(dst_paddr=GUEST_PAGE2 + 8), S.INVALID_PARAM),
    Row("uninit", platform, _IN, _i(), IPS),
    Row(
        "not a context",
        setup(_fw(GCTX2), base=_swapped),
        _IN,
        _i(gctx_paddr=GCTX2),
        S.INVALID_GUEST,
    ),
    Row(
        "guest INIT",
        setup(lambda p: created(p, GCTX2), base=_swapped),
        _IN,
        _i(gctx_paddr=GCTX2),
        S.INVALID_GUEST_STATE,
    ),
    Row(
        "guest not activated",
        setup(lambda p: launched(p, GCTX2), base=_swapped),
        _IN,
        _i(gctx_paddr=GCTX2),
        S.INACTIVE,
    ),
    Row("PAGE_SWAP_DISABLE", setup(swap_disabled, base=_swapped), _IN, _i(), S.POLICY_FAILURE),
    Row("DST HYPERVISOR", _swapped, _IN, _i(dst_paddr=OTHER_PAGE), S.INVALID_PAGE_STATE),
    Row(
        "DST of another guest",
        setup(other_guest, base=_swapped),
        _IN,
        _i(dst_paddr=OTHER_PAGE),
        S.INVALID_PAGE_STATE,
    ),
    Row("PAGE_SIZE 2 MiB for a 4 KiB page", _swapped, _IN, _i(page_size=1), S.INVALID_PAGE_SIZE),
    Row(
        "entry in a FIRMWARE page",
        setup(_fw(FW_PAGE), base=_swapped),
        _IN,
        _i(mdata_paddr=FW_PAGE),
        S.INVALID_PAGE_STATE,
    ),
    Row("entry not VALID", _swapped, _IN, _i(mdata_paddr=ENTRY + 0x40), S.INVALID_MDATA_ENTRY),
    Row("entry is not a VMSA's", _swapped, _IN, _i(swap_page_type=2), S.INVALID_MDATA_ENTRY),
    Row(
        "ciphertext tampered with",
        setup(_tamper_ciphertext, base=_swapped),
        _IN,
        _i(),
        S.BAD_MEASUREMENT,
    ),
    Row(
        "entry GPA changed (authenticated)",
        setup(_tamper_entry_gpa, base=_swapped),
        _IN,
        _i(),
        S.BAD_MEASUREMENT,
    ),
    Row(
        "replayed entry",
        setup(
            lambda p: ok(p.run(_IN, **_i())),
            _pre_guest(OTHER_PAGE),
            base=_swapped,
        ),
        _IN,
        _i(dst_paddr=OTHER_PAGE),
        S.INVALID_MDATA_ENTRY,
    ),
]

ROWS = MD_INIT_ROWS + MOVE_ROWS + SWAP_OUT_ROWS + SWAP_IN_ROWS


@pytest.mark.parametrize(("row", "path"), row_params(ROWS))
def test_page_swap_command(row: Row, path: str) -> None:
    run_row(row, path)


# --- round trips ---------------------------------------------------------------------------------
def _read_as_guest(p: Platform, spa: int, gpa: int = GPA) -> bytes:
    p.cpu.npt_map(ASID, gpa, spa)
    return p.cpu.guest_read(GuestCpu(ASID), gpa, 0x1000)


@pytest.mark.parametrize("root", [False, True])
def test_swap_out_and_in_restores_plaintext_and_rmp(root: bool) -> None:
    p = flushed()
    guest(p)
    validated_page()(p)
    md_init()(p)
    # A VMPL3 permission word the firmware must carry through the entry.
    q0_pre, q1_pre = raw_entry(p, GUEST_PAGE)
    q1 = q1_pre | 0x0300_0000
    p.rmp.write(GUEST_PAGE >> 12, q0_pre, q1)
    mdata: dict[str, Any] = {"mdata_paddr": 0, "root_mdata_en": 1} if root else {}
    ok(p.run(_OUT, **swap_out_fields(**mdata)))
    assert PLAIN[:64] not in p.cpu.host_read(HV_PAGE, 0x1000)
    # The host gives the old page back and prepares a new one at some other GPA.
    rmpupdate_ok(p, GUEST_PAGE, assigned=False)
    pre_guest(p, GUEST_PAGE2, ASID, GPA2)
    ok(p.run(_IN, **swap_in_fields(**mdata)))
    q0, q1_after = raw_entry(p, GUEST_PAGE2)
    assert (q0, q1_after) == (
        q0_pre & ~(RL.IMMUTABLE.mask | RL.LOCK.mask),
        q1,
    )  # GPA, ASID, Validated, VMSA, perms restored
    assert _read_as_guest(p, GUEST_PAGE2) == PLAIN
    # The entry is spent.
    pre_guest(p, OTHER_PAGE, ASID, GPA2)
    before = capture(p)
    assert (
        p.run(_IN, **swap_in_fields(dst_paddr=OTHER_PAGE, **mdata)).status == S.INVALID_MDATA_ENTRY
    )
    assert_unchanged(p, before, "replay")


def test_swap_in_place_and_iv_advances() -> None:
    p = flushed()
    guest(p)
    validated_page()(p)
    validated_page(OTHER_PAGE, GPA2, PLAIN[::-1])(p)
    md_init()(p)
    ok(p.run(_OUT, **swap_out_fields()))
    ok(
        p.run(
            _OUT,
            **swap_out_fields(src_paddr=OTHER_PAGE, dst_paddr=FW_PAGE2, mdata_paddr=ENTRY + 0x40),
        )
    )
    assert [entry_at(p)["iv"], entry_at(p, ENTRY + 0x40)["iv"]] == [1, 2]
    # In place: the host copies the ciphertext into the page it then assigns to the guest.
    rmpupdate_ok(p, OTHER_PAGE, assigned=False)
    p.cpu.host_write(GUEST_PAGE2, p.cpu.host_read(FW_PAGE2, 0x1000))
    pre_guest(p, GUEST_PAGE2, ASID, 0)
    ok(p.run(_IN, **swap_in_fields(src_paddr=0, mdata_paddr=ENTRY + 0x40, swap_in_place=1)))
    assert _read_as_guest(p, GUEST_PAGE2, GPA2) == PLAIN[::-1]


def test_move_keeps_the_guest_visible_plaintext() -> None:
    p = flushed()
    guest(p)
    validated_page()(p)
    pre_guest(p, GUEST_PAGE2, ASID, GPA2)
    old_host_view = p.cpu.host_read(GUEST_PAGE, 0x1000)
    ok(p.run(_MV, **mv()))
    assert state_of(p, GUEST_PAGE2) is PageState.GUEST_VALID
    assert state_of(p, GUEST_PAGE) is PageState.GUEST_INVALID
    # Re-encrypted for its new address: the ciphertext differs, the plaintext does not.
    assert p.cpu.host_read(GUEST_PAGE2, 0x1000) != old_host_view
    assert _read_as_guest(p, GUEST_PAGE2) == PLAIN


def test_md_init_then_metadata_move_keeps_the_entries() -> None:
    p = flushed()
    guest(p)
    validated_page()(p)
    md_init()(p)
    ok(p.run(_OUT, **swap_out_fields()))
    fw_page(p, FW_PAGE)
    ok(p.run(_MV, **mv(MD_PAGE, FW_PAGE)))
    assert state_of(p, FW_PAGE) is PageState.METADATA
    assert state_of(p, MD_PAGE) is PageState.FIRMWARE
    # The old page no longer holds entries; the moved one does.
    pre_guest(p, GUEST_PAGE2, ASID, GPA2)
    before = capture(p)
    assert p.run(_IN, **swap_in_fields()).status == S.INVALID_PAGE_STATE
    assert_unchanged(p, before, "old metadata page")
    ok(p.run(_IN, **swap_in_fields(mdata_paddr=FW_PAGE + 0x40)))
    assert _read_as_guest(p, GUEST_PAGE2) == PLAIN


def test_metadata_page_swaps_out_and_back_in() -> None:
    """PAGE_TYPE 1: a metadata page (holding an entry) is itself swapped out with its entry in
    the guest context, then swapped back into a FIRMWARE page that becomes METADATA."""
    p = flushed()
    guest(p)
    validated_page()(p)
    md_init()(p)
    ok(p.run(_OUT, **swap_out_fields()))
    root: dict[str, Any] = {"mdata_paddr": 0, "root_mdata_en": 1, "swap_page_type": 1}
    ok(p.run(_OUT, **swap_out_fields(src_paddr=MD_PAGE, dst_paddr=FW_PAGE2, **root)))
    assert state_of(p, MD_PAGE) is PageState.FIRMWARE
    fw_page(p, FW_PAGE)
    ok(p.run(_IN, **swap_in_fields(src_paddr=FW_PAGE2, dst_paddr=FW_PAGE, **root)))
    assert raw_entry(p, FW_PAGE)[0] == METADATA_Q0 | GCTX
    pre_guest(p, GUEST_PAGE2, ASID, GPA2)
    ok(p.run(_IN, **swap_in_fields(mdata_paddr=FW_PAGE + 0x40)))
    assert _read_as_guest(p, GUEST_PAGE2) == PLAIN
