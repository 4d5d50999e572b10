"""Guest-context commands, table driven: SNP_GCTX_CREATE, SNP_ACTIVATE, SNP_ACTIVATE_EX,
SNP_DECOMMISSION and SNP_GUEST_STATUS.

Statuses and their order: firmware-commands.md §6 (SNP_GCTX_CREATE check table; SNP_ACTIVATE
/ SNP_ACTIVATE_EX check list; SNP_DECOMMISSION; SNP_GUEST_STATUS check order) and §4.2."""

from __future__ import annotations

import pytest

from rmp import PageState
from sp_emu.abi.commands import CommandId as C
from sp_emu.abi.status import SnpStatus as S
from sp_emu.firmware import CommandResult
from sp_emu.platform import Platform
from sp_emu.state import Activation, GuestState
from tests.sp_emu.helpers import (
    ASID,
    ASID2,
    BEYOND,
    FW_PAGE,
    FW_PAGE2,
    GCTX,
    GCTX2,
    GCTX3,
    GUEST_PAGE,
    HV_PAGE,
    LIST_PAGE,
    MEM,
    POLICY,
    Check,
    Row,
    Step,
    activated,
    created,
    flush,
    flushed,
    fw_page,
    guest_invalid,
    guest_status,
    initialised,
    launched,
    ok,
    platform,
    platform_status,
    pre_guest,
    row_params,
    run_row,
    setup,
    state_of,
    with_product,
)

IPS = S.INVALID_PLATFORM_STATE
SINGLE_SOCKET = 1 << 20
C_BIT = 1 << 51  # may be set in any address; the firmware ignores it (§1)
MAX_ASID = 1006  # the platform's default max_asid (trace-v1.md "The platform")


def _fw(spa: int, page_size: int = 0) -> Step:
    return lambda p: fw_page(p, spa, page_size)


def _run(cmd: C, **fields: object) -> Step:
    return lambda p: ok(p.run(cmd, **fields))


def _launched(gctx: int = GCTX, policy: int = POLICY) -> Step:
    return lambda p: launched(p, gctx, policy)


def _activated(gctx: int = GCTX, asid: int = ASID, policy: int = POLICY) -> Step:
    return lambda p: activated(p, gctx, asid, policy)


def _created(gctx: int = GCTX) -> Step:
    return lambda p: created(p, gctx)


def _asid_page(asid: int, spa: int = GUEST_PAGE) -> Step:
    """An RMP page assigned to ``asid`` (so the CPU's per-ASID count is not zero)."""
    return lambda p: pre_guest(p, spa, asid=asid, gpa=0x1000)


def _sockets(n: int) -> Step:
    return lambda p: with_product(p, sockets=n)


def _no_activate_ex(p: Platform) -> None:
    with_product(p, activate_ex=False)


def _ids(*ids: int) -> Step:
    return lambda p: p.cpu.host_write(LIST_PAGE, b"".join(i.to_bytes(4, "little") for i in ids))


# --- checks --------------------------------------------------------------------------------------
def context_made(gctx: int) -> Check:
    def check(p: Platform, r: CommandResult) -> None:
        assert state_of(p, gctx) is PageState.CONTEXT
        assert p.memory.read(gctx, 0x1000) != bytes(0x1000)  # zeroed under the firmware key
        st = guest_status(p, gctx)
        assert (st["state"], st["asid"], st["policy"]) == (GuestState.INIT, 0, 0)
        assert p.fw.state.guests[gctx].launch_tcb == p.fw.state.committed_tcb.to_int()
        assert platform_status(p)["guest_count"] == 0  # not launched yet

    return check


def bound(gctx: int, asid: int, activation: Activation = Activation.PENDING) -> Check:
    def check(p: Platform, r: CommandResult) -> None:
        g = p.fw.state.guests[gctx]
        assert (g.asid, g.activation) == (asid, activation)
        assert p.fw.state.asid_owner[asid] == gctx
        assert asid in p.fw.asid_keys
        assert guest_status(p, gctx)["asid"] == asid

    return check


def apic_ids(gctx: int, asid: int, ids: tuple[int, ...]) -> Check:
    def check(p: Platform, r: CommandResult) -> None:
        bound(gctx, asid)(p, r)
        assert p.fw.state.guests[gctx].apic_ids == ids

    return check


def decommissioned(gctx: int, dirty_asid: int | None = None, count: int = 0) -> Check:
    def check(p: Platform, r: CommandResult) -> None:
        assert state_of(p, gctx) is PageState.FIRMWARE  # CONTEXT -> FIRMWARE, VMSA bit clear
        assert gctx not in p.fw.state.guests
        assert p.run(C.SNP_GUEST_STATUS, gctx_paddr=gctx, status_paddr=FW_PAGE2).status == (
            S.INVALID_GUEST
        )
        assert platform_status(p)["guest_count"] == count
        if dirty_asid is not None:
            assert dirty_asid in p.fw.state.dirty_asids
            assert dirty_asid not in p.fw.state.asid_owner
            assert dirty_asid not in p.fw.asid_keys
            # The ASID needs DF_FLUSH before reuse; the guest never ran, so no WBINVD.
            launched(p, GCTX3)
            assert p.run(C.SNP_ACTIVATE, gctx_paddr=GCTX3, asid=dirty_asid).status == (
                S.DFFLUSH_REQUIRED
            )
            ok(p.run(C.SNP_DF_FLUSH))
            ok(p.run(C.SNP_ACTIVATE, gctx_paddr=GCTX3, asid=dirty_asid))
        # The page can be made a context again.
        ok(p.run(C.SNP_GCTX_CREATE, gctx_paddr=gctx))

    return check


def pages_kept(p: Platform, r: CommandResult) -> None:
    assert state_of(p, GCTX) is PageState.FIRMWARE
    assert state_of(p, GUEST_PAGE) is PageState.GUEST_INVALID
    assert p.rmp.entry(GUEST_PAGE >> 12).asid == ASID
    # The dead guest's page still counts for its ASID: a new guest cannot take it.
    flush(p)
    launched(p, GCTX3)
    assert p.run(C.SNP_ACTIVATE, gctx_paddr=GCTX3, asid=ASID).status == S.INVALID_CONFIG


def status_is(spa: int, policy: int, asid: int, state: int, vcek_disabled: int = 0) -> Check:
    def check(p: Platform, r: CommandResult) -> None:
        raw = p.memory.read(spa, 0x20)
        assert int.from_bytes(raw[0x00:0x08], "little") == policy
        assert int.from_bytes(raw[0x08:0x0C], "little") == asid
        assert raw[0x0C] == state
        assert raw[0x0D:0x10] == bytes(3)
        assert int.from_bytes(raw[0x10:0x14], "little") == vcek_disabled
        assert raw[0x14:0x20] == bytes(12)
        assert r.out == {
            "policy": policy,
            "asid": asid,
            "state": state,
            "vcek_disabled": vcek_disabled,
        }

    return check


# --- SNP_GCTX_CREATE -----------------------------------------------------------------------------
_GC = C.SNP_GCTX_CREATE
GCTX_CREATE_ROWS = [
    Row("FIRMWARE page", setup(_fw(GCTX)), _GC, {"gctx_paddr": GCTX}, check=context_made(GCTX)),
    Row(
        "two guests",
        setup(_fw(GCTX2), _created(GCTX)),
        _GC,
        {"gctx_paddr": GCTX2},
        check=context_made(GCTX2),
    ),
    Row(
        "C-bit set in GCTX_PADDR",
        setup(_fw(GCTX)),
        _GC,
        {"gctx_paddr": GCTX | C_BIT},
        check=context_made(GCTX),
    ),
    Row("GCTX_PADDR bit 0", setup(_fw(GCTX)), _GC, {"gctx_paddr": GCTX | 1}, S.INVALID_PARAM),
    Row("GCTX_PADDR bit 11", setup(_fw(GCTX)), _GC, {"gctx_paddr": GCTX | 0x800}, S.INVALID_PARAM),
    Row(
        "address bits before platform state",
        platform,
        _GC,
        {"gctx_paddr": GCTX | 0x10},
        S.INVALID_PARAM,
    ),
    Row("uninit", platform, _GC, {"gctx_paddr": GCTX}, IPS),
    Row(
        "uninit, FIRMWARE page kept from an earlier init",
        setup(_fw(GCTX), flush, _run(C.SNP_SHUTDOWN)),
        _GC,
        {"gctx_paddr": GCTX},
        IPS,
    ),
    Row("HYPERVISOR page", flushed, _GC, {"gctx_paddr": GCTX}, S.INVALID_PAGE_STATE),
    Row(
        "already a CONTEXT page", setup(_created()), _GC, {"gctx_paddr": GCTX}, S.INVALID_PAGE_STATE
    ),
    Row(
        "RECLAIM page",
        setup(_fw(GCTX), _run(C.SNP_PAGE_RECLAIM, page_paddr=GCTX)),
        _GC,
        {"gctx_paddr": GCTX},
        S.INVALID_PAGE_STATE,
    ),
    Row(
        "PRE_GUEST page",
        setup(_asid_page(5, GCTX)),
        _GC,
        {"gctx_paddr": GCTX},
        S.INVALID_PAGE_STATE,
    ),
    Row(
        "HV_FIXED page (legacy VGA window)",
        flushed,
        _GC,
        {"gctx_paddr": 0xA0000},
        S.INVALID_PAGE_STATE,
    ),
    Row(
        "FIRMWARE_IOMMU page",
        flushed,
        _GC,
        lambda p: {"gctx_paddr": p.map.iommu_base},
        S.INVALID_PAGE_STATE,
    ),
    Row(
        "2 MiB FIRMWARE page",
        setup(_fw(0x400000, page_size=1)),
        _GC,
        {"gctx_paddr": 0x400000},
        S.INVALID_PAGE_SIZE,
    ),
    Row("inside the RMP", flushed, _GC, {"gctx_paddr": MEM - 0x1000}, S.INVALID_PARAM),
    Row("past system memory", flushed, _GC, {"gctx_paddr": BEYOND}, S.INVALID_ADDRESS),
]

# --- SNP_ACTIVATE --------------------------------------------------------------------------------
_A = C.SNP_ACTIVATE


def act(asid: int = ASID, gctx: int = GCTX) -> dict[str, int]:
    return {"gctx_paddr": gctx, "asid": asid}


ACTIVATE_ROWS = [
    Row("launched guest", setup(_launched()), _A, act(), check=bound(GCTX, ASID)),
    Row("max ASID", setup(_launched()), _A, act(MAX_ASID), check=bound(GCTX, MAX_ASID)),
    Row(
        "second guest, other ASID",
        setup(_activated(), _launched(GCTX2)),
        _A,
        act(ASID2, GCTX2),
        check=bound(GCTX2, ASID2),
    ),
    # 1. MBZ / address bits
    Row(
        "C-bit set in GCTX_PADDR",
        setup(_launched()),
        _A,
        act(gctx=GCTX | C_BIT),
        check=bound(GCTX, ASID),
    ),
    Row("GCTX_PADDR not page aligned", setup(_launched()), _A, act(gctx=GCTX | 8), S.INVALID_PARAM),
    # 2. platform INIT
    Row("uninit", platform, _A, act(), IPS),
    # 3. GCTX CONTEXT
    Row("FIRMWARE page, no context", setup(_fw(GCTX)), _A, act(), S.INVALID_GUEST),
    Row("HYPERVISOR page", flushed, _A, act(), S.INVALID_GUEST),
    Row(
        "decommissioned guest",
        setup(_launched(), _run(C.SNP_DECOMMISSION, gctx_paddr=GCTX)),
        _A,
        act(),
        S.INVALID_GUEST,
    ),
    # 4. guest state LAUNCH or RUNNING
    Row("guest INIT (no LAUNCH_START)", setup(_created()), _A, act(), S.INVALID_GUEST_STATE),
    Row("guest INIT, ASID 0", setup(_created()), _A, act(0), S.INVALID_GUEST_STATE),
    # 5. no RMP page assigned to the ASID
    Row("ASID has an RMP page", setup(_launched(), _asid_page(ASID)), _A, act(), S.INVALID_CONFIG),
    Row(
        "ASID has a GUEST_INVALID page",
        setup(_launched(), lambda p: guest_invalid(p, GUEST_PAGE, ASID, 0x2000)),
        _A,
        act(),
        S.INVALID_CONFIG,
    ),
    Row(
        "RMP check before the ASID range",
        setup(_launched(), _asid_page(MAX_ASID + 1)),
        _A,
        act(MAX_ASID + 1),
        S.INVALID_CONFIG,
    ),
    Row(
        "RMP check before ASID_OWNED",
        setup(_activated(), _launched(GCTX2), _asid_page(ASID)),
        _A,
        act(ASID, GCTX2),
        S.INVALID_CONFIG,
    ),
    # 6. SINGLE_SOCKET on a multi-socket platform
    Row(
        "SINGLE_SOCKET with two sockets",
        setup(_sockets(2), _launched(policy=POLICY | SINGLE_SOCKET)),
        _A,
        act(),
        S.POLICY_FAILURE,
    ),
    Row(
        "SINGLE_SOCKET with one socket",
        setup(_launched(policy=POLICY | SINGLE_SOCKET)),
        _A,
        act(),
        check=bound(GCTX, ASID),
    ),
    Row(
        "policy before the ASID range",
        setup(_sockets(2), _launched(policy=POLICY | SINGLE_SOCKET)),
        _A,
        act(0),
        S.POLICY_FAILURE,
    ),
    # 7. ASID range
    Row("ASID 0", setup(_launched()), _A, act(0), S.INVALID_ASID),
    Row("ASID above max", setup(_launched()), _A, act(MAX_ASID + 1), S.INVALID_ASID),
    Row("ASID 2048", setup(_launched()), _A, act(2048), S.INVALID_ASID),
    Row("ASID 0xFFFFFFFF", setup(_launched()), _A, act(0xFFFFFFFF), S.INVALID_ASID),
    Row("smaller max_asid", lambda: launched(flushed(max_asid=16)), _A, act(17), S.INVALID_ASID),
    # 8. ASID allocated or in use by any guest (also the caller's own)
    Row(
        "ASID owned by another guest",
        setup(_activated(), _launched(GCTX2)),
        _A,
        act(ASID, GCTX2),
        S.ASID_OWNED,
    ),
    Row("re-activate with its own ASID", setup(_activated()), _A, act(), S.ASID_OWNED),
    # 9. already active, different free ASID
    Row("already active, other ASID", setup(_activated()), _A, act(ASID2), S.ACTIVE),
    Row(
        "ACTIVE before DFFLUSH_REQUIRED",
        setup(_activated(GCTX2, ASID2), _run(C.SNP_DECOMMISSION, gctx_paddr=GCTX2), _activated()),
        _A,
        act(ASID2),
        S.ACTIVE,
    ),
    # 10. ASID dirty
    Row(
        "right after SNP_INIT", setup(_launched(), base=initialised), _A, act(), S.DFFLUSH_REQUIRED
    ),
    Row(
        "WBINVD but no DF_FLUSH",
        setup(lambda p: p.cpu.wbinvd(), _launched(), base=initialised),
        _A,
        act(),
        S.DFFLUSH_REQUIRED,
    ),
    Row(
        "ASID of a decommissioned guest",
        setup(_activated(), _run(C.SNP_DECOMMISSION, gctx_paddr=GCTX), _launched(GCTX2)),
        _A,
        act(ASID, GCTX2),
        S.DFFLUSH_REQUIRED,
    ),
    Row(
        "ASID of a decommissioned guest, flushed",
        setup(_activated(), _run(C.SNP_DECOMMISSION, gctx_paddr=GCTX), _launched(GCTX2), flush),
        _A,
        act(ASID, GCTX2),
        check=bound(GCTX2, ASID),
    ),
]


# --- SNP_ACTIVATE_EX -----------------------------------------------------------------------------
_AX = C.SNP_ACTIVATE_EX


def ax(asid: int = ASID, gctx: int = GCTX, numids: int = 1, length: int = 0x20) -> dict[str, int]:
    return {
        "length": length,
        "gctx_paddr": gctx,
        "asid": asid,
        "numids": numids,
        "ids_paddr": LIST_PAGE,
    }


def _ax(asid: int = ASID, gctx: int = GCTX) -> Step:
    return _run(_AX, **ax(asid, gctx))


ACTIVATE_EX_ROWS = [
    Row("launched guest", setup(_launched(), _ids(0)), _AX, ax(), check=apic_ids(GCTX, ASID, (0,))),
    Row(
        "two APIC IDs",
        setup(_launched(), _ids(4, 2)),
        _AX,
        ax(numids=2),
        check=apic_ids(GCTX, ASID, (2, 4)),
    ),
    Row(
        "re-activation, same ASID, adds CCXs",
        setup(_launched(), _ids(0), _ax(), _ids(8)),
        _AX,
        ax(),
        check=apic_ids(GCTX, ASID, (0, 8)),
    ),
    Row(
        "re-activation skips the RMP check",
        setup(_launched(), _ids(0), _ax(), _asid_page(ASID), _ids(8)),
        _AX,
        ax(),
        check=apic_ids(GCTX, ASID, (0, 8)),
    ),
    Row(
        "no firmware support",
        setup(_no_activate_ex, _launched(), _ids(0)),
        _AX,
        ax(),
        S.UNSUPPORTED,
    ),
    Row(
        "EX_LEN 0x1C (status unconfirmed: INVALID_LENGTH)",
        setup(_launched(), _ids(0)),
        _AX,
        ax(length=0x1C),
        S.INVALID_LENGTH,
    ),
    Row("EX_LEN 0", setup(_launched(), _ids(0)), _AX, ax(length=0), S.INVALID_LENGTH),
    Row(
        "reserved word 0x04",
        setup(_launched(), _ids(0)),
        _AX,
        ax(),
        S.INVALID_PARAM,
        patch={0x04: 1},
    ),
    Row(
        "GCTX_PADDR not page aligned",
        setup(_launched(), _ids(0)),
        _AX,
        ax(gctx=GCTX | 0x100),
        S.INVALID_PARAM,
    ),
    Row("uninit", platform, _AX, ax(), IPS),
    Row("not a context", setup(_fw(GCTX), _ids(0)), _AX, ax(), S.INVALID_GUEST),
    Row("NUMIDS 0", setup(_launched(), _ids(0)), _AX, ax(numids=0), S.INVALID_PARAM),
    Row(
        "NUMIDS above the firmware maximum",
        setup(_launched(), _ids(0)),
        _AX,
        ax(numids=257),
        S.INVALID_PARAM,
    ),
    Row("guest INIT", setup(_created(), _ids(0)), _AX, ax(), S.INVALID_GUEST_STATE),
    Row(
        "ASID has an RMP page",
        setup(_launched(), _ids(0), _asid_page(ASID)),
        _AX,
        ax(),
        S.INVALID_CONFIG,
    ),
    Row(
        "SINGLE_SOCKET with two sockets",
        setup(_sockets(2), _launched(policy=POLICY | SINGLE_SOCKET), _ids(0)),
        _AX,
        ax(),
        S.POLICY_FAILURE,
    ),
    Row("ASID 0", setup(_launched(), _ids(0)), _AX, ax(0), S.INVALID_ASID),
    Row("ASID above max", setup(_launched(), _ids(0)), _AX, ax(MAX_ASID + 1), S.INVALID_ASID),
    Row("ASID dirty", setup(_launched(), _ids(0), base=initialised), _AX, ax(), S.DFFLUSH_REQUIRED),
    Row(
        "ASID in use by another guest",
        setup(_activated(), _launched(GCTX2), _ids(0)),
        _AX,
        ax(ASID, GCTX2),
        S.ASID_OWNED,
    ),
    Row("re-activation, other ASID", setup(_launched(), _ids(0), _ax()), _AX, ax(ASID2), S.ACTIVE),
    Row(
        "re-activation, ASID 0: range before ACTIVE",
        setup(_launched(), _ids(0), _ax()),
        _AX,
        ax(0),
        S.INVALID_ASID,
    ),
    Row(
        "re-activation, SINGLE_SOCKET on two sockets",
        setup(_launched(policy=POLICY | SINGLE_SOCKET), _ids(0), _ax(), _sockets(2)),
        _AX,
        ax(),
        S.POLICY_FAILURE,
    ),
    Row(
        "re-activation of a guest bound by SNP_ACTIVATE",
        setup(_activated(), _ids(3)),
        _AX,
        ax(),
        check=apic_ids(GCTX, ASID, (3,)),
    ),
]

# --- SNP_DECOMMISSION ----------------------------------------------------------------------------
_D = C.SNP_DECOMMISSION
DECOMMISSION_ROWS = [
    Row("created guest", setup(_created()), _D, {"gctx_paddr": GCTX}, check=decommissioned(GCTX)),
    Row(
        "launched guest",
        setup(_launched(), _launched(GCTX2)),
        _D,
        {"gctx_paddr": GCTX},
        check=decommissioned(GCTX, count=1),
    ),
    Row(
        "activated guest: ASID dirty",
        setup(_activated()),
        _D,
        {"gctx_paddr": GCTX},
        check=decommissioned(GCTX, ASID),
    ),
    Row(
        "guest pages keep their RMP entries",
        setup(_activated(), lambda p: guest_invalid(p, GUEST_PAGE, ASID, 0x3000)),
        _D,
        {"gctx_paddr": GCTX},
        check=pages_kept,
    ),
    Row(
        "GCTX_PADDR not page aligned",
        setup(_created()),
        _D,
        {"gctx_paddr": GCTX + 1},
        S.INVALID_PARAM,
    ),
    Row(
        "address bits before platform state",
        platform,
        _D,
        {"gctx_paddr": GCTX + 0x40},
        S.INVALID_PARAM,
    ),
    Row(
        "C-bit set in GCTX_PADDR",
        setup(_activated()),
        _D,
        {"gctx_paddr": GCTX | C_BIT},
        check=decommissioned(GCTX, ASID),
    ),
    Row("uninit", platform, _D, {"gctx_paddr": GCTX}, IPS),
    Row("FIRMWARE page", setup(_fw(GCTX)), _D, {"gctx_paddr": GCTX}, S.INVALID_GUEST),
    Row("HYPERVISOR page", flushed, _D, {"gctx_paddr": GCTX}, S.INVALID_GUEST),
    Row(
        "twice",
        setup(_created(), _run(_D, gctx_paddr=GCTX)),
        _D,
        {"gctx_paddr": GCTX},
        S.INVALID_GUEST,
    ),
    Row(
        "context left from before SNP_SHUTDOWN",
        setup(_created(), _run(C.SNP_SHUTDOWN), _run(C.SNP_INIT_EX)),
        _D,
        {"gctx_paddr": GCTX},
        S.INVALID_GUEST,
    ),
]

# --- SNP_GUEST_STATUS ----------------------------------------------------------------------------
_GS = C.SNP_GUEST_STATUS


def gs(gctx: int = GCTX, out: int = FW_PAGE) -> dict[str, int]:
    return {"gctx_paddr": gctx, "status_paddr": out}


GUEST_STATUS_ROWS = [
    Row(
        "created guest",
        setup(_created(), _fw(FW_PAGE)),
        _GS,
        gs(),
        check=status_is(FW_PAGE, 0, 0, 0),
    ),
    Row(
        "launched guest",
        setup(_launched(policy=POLICY | 0x0137), _fw(FW_PAGE)),
        _GS,
        gs(),
        check=status_is(FW_PAGE, POLICY | 0x0137, 0, 1),
    ),
    Row(
        "activated guest",
        setup(_activated(asid=7), _fw(FW_PAGE)),
        _GS,
        gs(),
        check=status_is(FW_PAGE, POLICY, 7, 1),
    ),
    Row(
        "end of the page",
        setup(_created(), _fw(FW_PAGE)),
        _GS,
        gs(out=FW_PAGE + 0xFE0),
        check=status_is(FW_PAGE + 0xFE0, 0, 0, 0),
    ),
    Row("GCTX_PADDR not page aligned (before state)", platform, _GS, gs(GCTX + 4), S.INVALID_PARAM),
    Row(
        "status crosses a page (before state)",
        platform,
        _GS,
        gs(out=FW_PAGE + 0xFE1),
        S.INVALID_PARAM,
    ),
    Row(
        "status crosses a page",
        setup(_created(), _fw(FW_PAGE)),
        _GS,
        gs(out=FW_PAGE + 0xFF8),
        S.INVALID_PARAM,
    ),
    Row(
        "C-bit set in both addresses",
        setup(_created(), _fw(FW_PAGE)),
        _GS,
        gs(GCTX | C_BIT, FW_PAGE + 0x40 | C_BIT),
        check=status_is(FW_PAGE + 0x40, 0, 0, 0),
    ),
    Row("uninit", platform, _GS, gs(), IPS),
    Row("not a context", setup(_fw(GCTX), _fw(FW_PAGE)), _GS, gs(), S.INVALID_GUEST),
    Row("guest before status page", setup(_fw(GCTX)), _GS, gs(out=HV_PAGE), S.INVALID_GUEST),
    Row("status page HYPERVISOR", setup(_created()), _GS, gs(out=HV_PAGE), S.INVALID_PAGE_STATE),
    Row("status page CONTEXT", setup(_created()), _GS, gs(out=GCTX), S.INVALID_PAGE_STATE),
    Row(
        "status page inside the RMP", setup(_created()), _GS, gs(out=MEM - 0x2000), S.INVALID_PARAM
    ),
]

ROWS = GCTX_CREATE_ROWS + ACTIVATE_ROWS + ACTIVATE_EX_ROWS + DECOMMISSION_ROWS + GUEST_STATUS_ROWS


@pytest.mark.parametrize(("row", "path"), row_params(ROWS))
def test_guest_command(row: Row, path: str) -> None:
    run_row(row, path)


def test_guest_count_follows_launch_and_decommission() -> None:
    p = flushed()
    launched(p, GCTX)
    launched(p, GCTX2)
    created(p, GCTX3)
    assert platform_status(p)["guest_count"] == 2
    ok(p.run(C.SNP_DECOMMISSION, gctx_paddr=GCTX3))
    assert platform_status(p)["guest_count"] == 2
    ok(p.run(C.SNP_DECOMMISSION, gctx_paddr=GCTX))
    assert platform_status(p)["guest_count"] == 1


def test_activation_installs_the_guest_key_only() -> None:
    p = activated(flushed(), GCTX, ASID)
    launched(p, GCTX2)
    assert set(p.fw.asid_keys) == {ASID}
    ok(p.run(C.SNP_ACTIVATE, gctx_paddr=GCTX2, asid=ASID2))
    assert p.fw.asid_keys[ASID].key != p.fw.asid_keys[ASID2].key
    ok(p.run(C.SNP_DECOMMISSION, gctx_paddr=GCTX))
    assert set(p.fw.asid_keys) == {ASID2}
