"""SNP_DOWNLOAD_FIRMWARE_EX and SNP_COMMIT, table driven: the running (current) firmware
version and TCB change on download, the committed ones only on commit.

Statuses: firmware-commands.md §6 SNP_DOWNLOAD_FIRMWARE_EX / SNP_COMMIT (FW 1.55 order:
legacy SEV UNINIT, MBZ, FW_PADDR 32-byte alignment; LENGTH unchecked; COMMIT LENGTH = 4) and
§3 (BAD_SIGNATURE, BAD_SVN, BAD_VERSION, UPDATE_FAILED).  The emulated image format is
``sp_emu.fwimage`` (the real one is AMD-signed)."""

from __future__ import annotations

from typing import Any

import pytest

from sp_emu.abi.commands import CommandId as C
from sp_emu.abi.status import SnpStatus as S
from sp_emu.firmware import CommandResult
from sp_emu.fwimage import FirmwareImage
from sp_emu.platform import Platform
from tests.sp_emu.helpers import (
    GCTX,
    GENOA_TCB,
    IMAGE,
    MEM,
    Check,
    Row,
    Step,
    created,
    download,
    flushed,
    guest_status,
    ok,
    platform,
    platform_status,
    row_params,
    run_row,
    setup,
    tcb,
)

IPS = S.INVALID_PLATFORM_STATE
NEWER = tcb(snp=16)
OLDER = tcb(snp=14)


def _image(
    api: tuple[int, int, int] = (1, 55, 26),
    tcb_value: int = NEWER,
    product: str = "Genoa",
    *,
    corrupt: int | None = None,
    at: int = IMAGE,
) -> Step:
    """Write an image to host memory (``corrupt``: flip that byte, breaking the digest)."""

    def step(p: Platform) -> None:
        data = bytearray(FirmwareImage(product, *api, tcb_value).to_bytes())
        if corrupt is not None:
            data[corrupt] ^= 0x01
        p.cpu.host_write(at, bytes(data))

    return step


def _download(**kw: Any) -> Step:
    return lambda p: download(p, **kw)


def _legacy(p: Platform) -> None:
    p.fw.state.legacy_sev_state = 1


def dl(at: int = IMAGE, commit: int = 0, length: int = 0x18, fw_len: int = 0x60) -> dict[str, int]:
    return {"length": length, "fw_paddr": at, "fw_len": fw_len, "commit": commit}


def versions(
    current: tuple[int, int, int],
    current_tcb: int,
    committed: tuple[int, int, int],
    committed_tcb: int,
) -> Check:
    """PLATFORM_STATUS reports the running firmware; REPORTED_TCB defaults to the committed
    TCB (§6 SNP_PLATFORM_STATUS)."""

    def check(p: Platform, r: CommandResult) -> None:
        st = platform_status(p)
        assert (st["api_major"], st["api_minor"], st["build_id"]) == current
        assert st["current_tcb"] == current_tcb
        assert st["reported_tcb"] == committed_tcb
        fw = p.fw.state
        assert fw.committed_api == committed
        assert fw.committed_tcb.to_int() == committed_tcb

    return check


SHIPPED = (1, 55, 25)
_DL, _CM = C.SNP_DOWNLOAD_FIRMWARE_EX, C.SNP_COMMIT

UPDATE_ROWS = [
    Row(
        "newer image, uninit",
        setup(_image(), base=platform),
        _DL,
        dl(),
        check=versions((1, 55, 26), NEWER, SHIPPED, GENOA_TCB),
    ),
    Row(
        "newer image while SNP is INIT (live update)",
        setup(_image()),
        _DL,
        dl(),
        check=versions((1, 55, 26), NEWER, SHIPPED, GENOA_TCB),
    ),
    Row(
        "newer image with COMMIT",
        setup(_image(), base=platform),
        _DL,
        dl(commit=1),
        check=versions((1, 55, 26), NEWER, (1, 55, 26), NEWER),
    ),
    Row(
        "same version and TCB as committed",
        setup(_image(SHIPPED, GENOA_TCB), base=platform),
        _DL,
        dl(),
        check=versions(SHIPPED, GENOA_TCB, SHIPPED, GENOA_TCB),
    ),
    Row(
        "back to the committed firmware after an uncommitted update",
        setup(
            _download(tcb_value=NEWER, api=(1, 56, 1)), _image(SHIPPED, GENOA_TCB), base=platform
        ),
        _DL,
        dl(),
        check=versions(SHIPPED, GENOA_TCB, SHIPPED, GENOA_TCB),
    ),
    Row(
        "newer API minor, lower build",
        setup(_image((1, 56, 1), GENOA_TCB), base=platform),
        _DL,
        dl(),
        check=versions((1, 56, 1), GENOA_TCB, SHIPPED, GENOA_TCB),
    ),
    Row(
        "LENGTH is not checked (FW 1.55)",
        setup(_image(), base=platform),
        _DL,
        dl(length=0),
        check=versions((1, 55, 26), NEWER, SHIPPED, GENOA_TCB),
    ),
    Row("legacy SEV initialised", setup(_image(), _legacy, base=platform), _DL, dl(), IPS),
    Row(
        "legacy SEV before MBZ",
        setup(_image(), _legacy, base=platform),
        _DL,
        dl(),
        IPS,
        patch={0x04: 1},
    ),
    Row(
        "reserved word 0x04",
        setup(_image(), base=platform),
        _DL,
        dl(),
        S.INVALID_PARAM,
        patch={0x04: 1},
    ),
    Row(
        "reserved flag bit 1",
        setup(_image(), base=platform),
        _DL,
        dl(),
        S.INVALID_PARAM,
        patch={0x14: 2},
    ),
    Row(
        "MBZ before FW_PADDR alignment",
        setup(_image(at=IMAGE + 8), base=platform),
        _DL,
        dl(IMAGE + 8),
        S.INVALID_PARAM,
        patch={0x17: 0x80},
    ),
    Row(
        "FW_PADDR not 32-byte aligned",
        setup(_image(at=IMAGE + 8), base=platform),
        _DL,
        dl(IMAGE + 8),
        S.INVALID_ADDRESS,
    ),
    Row(
        "FW_PADDR 32-byte aligned, not page aligned",
        setup(_image(at=IMAGE + 0x20), base=platform),
        _DL,
        dl(IMAGE + 0x20),
        check=versions((1, 55, 26), NEWER, SHIPPED, GENOA_TCB),
    ),
    Row(
        "digest does not match",
        setup(_image(corrupt=0x1C), base=platform),
        _DL,
        dl(),
        S.BAD_SIGNATURE,
    ),
    Row("not an image", platform, _DL, dl(), S.BAD_SIGNATURE),
    Row("truncated image", setup(_image(), base=platform), _DL, dl(fw_len=0x5F), S.BAD_SIGNATURE),
    Row(
        "image for another product",
        setup(_image(product="Milan"), base=platform),
        _DL,
        dl(),
        S.UPDATE_FAILED,
    ),
    Row(
        "older version than committed",
        setup(_image((1, 55, 24), NEWER), base=platform),
        _DL,
        dl(),
        S.BAD_VERSION,
    ),
    Row(
        "older API minor than committed",
        setup(_image((1, 54, 99), NEWER), base=platform),
        _DL,
        dl(),
        S.BAD_VERSION,
    ),
    Row(
        "TCB below committed (SNP SVN)",
        setup(_image((1, 55, 26), OLDER), base=platform),
        _DL,
        dl(),
        S.BAD_SVN,
    ),
    Row(
        "TCB below committed (microcode)",
        setup(_image(tcb_value=tcb(snp=16, microcode=61)), base=platform),
        _DL,
        dl(),
        S.BAD_SVN,
    ),
    Row(
        "below a newly committed TCB",
        setup(_download(tcb_value=NEWER, commit=1), _image(SHIPPED, GENOA_TCB), base=platform),
        _DL,
        dl(),
        S.BAD_VERSION,
    ),
    Row(
        "committed TCB is the floor",
        setup(_download(tcb_value=NEWER, commit=1), _image((1, 55, 27), GENOA_TCB), base=platform),
        _DL,
        dl(),
        S.BAD_SVN,
    ),
    Row("image runs past system memory", platform, _DL, dl(MEM - 0x40), S.INVALID_ADDRESS),
]

COMMIT_ROWS = [
    Row(
        "commit the running firmware",
        setup(_download(api=(1, 56, 2), tcb_value=NEWER), base=platform),
        _CM,
        {"length": 4},
        check=versions((1, 56, 2), NEWER, (1, 56, 2), NEWER),
    ),
    Row(
        "commit with nothing downloaded",
        platform,
        _CM,
        {"length": 4},
        check=versions(SHIPPED, GENOA_TCB, SHIPPED, GENOA_TCB),
    ),
    Row(
        "no platform state requirement",
        setup(_download(tcb_value=NEWER)),
        _CM,
        {"length": 4},
        check=versions((1, 55, 26), NEWER, (1, 55, 26), NEWER),
    ),
    Row(
        "LENGTH 0",
        setup(_download(tcb_value=NEWER), base=platform),
        _CM,
        {"length": 0},
        S.INVALID_PARAM,
    ),
    Row(
        "LENGTH 8",
        setup(_download(tcb_value=NEWER), base=platform),
        _CM,
        {"length": 8},
        S.INVALID_PARAM,
    ),
]

ROWS = UPDATE_ROWS + COMMIT_ROWS


@pytest.mark.parametrize(("row", "path"), row_params(ROWS))
def test_update_command(row: Row, path: str) -> None:
    run_row(row, path)


def test_committed_vs_current_through_a_sequence() -> None:
    p = platform()
    download(p, api=(1, 55, 30), tcb_value=NEWER)
    assert platform_status(p)["current_tcb"] == NEWER
    assert platform_status(p)["reported_tcb"] == GENOA_TCB  # still the committed one
    # Not committed: going back is allowed...
    download(p, api=SHIPPED, tcb_value=GENOA_TCB)
    assert platform_status(p)["current_tcb"] == GENOA_TCB
    # ... until a commit raises the floor.
    download(p, api=(1, 55, 30), tcb_value=NEWER)
    ok(p.run(C.SNP_COMMIT, length=4))
    download(p, api=SHIPPED, tcb_value=GENOA_TCB, want=S.BAD_VERSION)
    download(p, api=(1, 55, 31), tcb_value=GENOA_TCB, want=S.BAD_SVN)
    assert platform_status(p)["reported_tcb"] == NEWER


def test_new_guests_record_the_committed_tcb() -> None:
    p = flushed()
    download(p, tcb_value=NEWER)
    created(p, GCTX)
    assert p.fw.state.guests[GCTX].launch_tcb == GENOA_TCB
    ok(p.run(C.SNP_COMMIT, length=4))
    created(p, 0x105000)
    assert p.fw.state.guests[0x105000].launch_tcb == NEWER
    assert guest_status(p, GCTX)["state"] == 0
