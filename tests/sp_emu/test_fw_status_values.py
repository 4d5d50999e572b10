"""Every status value and command id pinned against the ABI tables, typed by hand from
``shared/reference/firmware-commands.md`` §3 (status codes) and §2 (command ids)."""

from __future__ import annotations

import pytest

from sp_emu.abi.commands import CommandId
from sp_emu.abi.status import SnpStatus, status_name

# firmware-commands.md §3.  0x1E is unassigned; 0x29-0x2F and 0x34 are not in the table.
STATUS_TABLE = {
    "SUCCESS": 0x00,
    "INVALID_PLATFORM_STATE": 0x01,
    "INVALID_GUEST_STATE": 0x02,
    "INVALID_CONFIG": 0x03,
    "INVALID_LENGTH": 0x04,
    "ALREADY_OWNED": 0x05,
    "INVALID_CERTIFICATE": 0x06,
    "POLICY_FAILURE": 0x07,
    "INACTIVE": 0x08,
    "INVALID_ADDRESS": 0x09,
    "BAD_SIGNATURE": 0x0A,
    "BAD_MEASUREMENT": 0x0B,
    "ASID_OWNED": 0x0C,
    "INVALID_ASID": 0x0D,
    "WBINVD_REQUIRED": 0x0E,
    "DFFLUSH_REQUIRED": 0x0F,
    "INVALID_GUEST": 0x10,
    "INVALID_COMMAND": 0x11,
    "ACTIVE": 0x12,
    "HWERROR_PLATFORM": 0x13,
    "HWERROR_UNSAFE": 0x14,
    "UNSUPPORTED": 0x15,
    "INVALID_PARAM": 0x16,
    "RESOURCE_LIMIT": 0x17,
    "SECURE_DATA_INVALID": 0x18,
    "INVALID_PAGE_SIZE": 0x19,
    "INVALID_PAGE_STATE": 0x1A,
    "INVALID_MDATA_ENTRY": 0x1B,
    "INVALID_PAGE_OWNER": 0x1C,
    "AEAD_OFLOW": 0x1D,
    "EXIT_RING_BUFFER": 0x1F,
    "RMP_INIT_REQUIRED": 0x20,
    "BAD_SVN": 0x21,
    "BAD_VERSION": 0x22,
    "SHUTDOWN_REQUIRED": 0x23,
    "UPDATE_FAILED": 0x24,
    "RESTORE_REQUIRED": 0x25,
    "RMP_INITIALIZATION_FAILED": 0x26,
    "INVALID_KEY": 0x27,
    "SHUTDOWN_INCOMPLETE": 0x28,
    "INCORRECT_BUFFER_LENGTH": 0x30,
    "EXPAND_BUFFER_LENGTH_REQUEST": 0x31,
    "SPDM_REQUEST": 0x32,
    "SPDM_ERROR": 0x33,
    "IN_USE": 0x3A,
}

# firmware-commands.md §2: the SNP commands (bold rows), 0x081-0x0CE.
COMMAND_TABLE = {
    "SNP_INIT": 0x081,
    "SNP_SHUTDOWN": 0x082,
    "SNP_PLATFORM_STATUS": 0x083,
    "SNP_DF_FLUSH": 0x084,
    "SNP_INIT_EX": 0x085,
    "SNP_SHUTDOWN_EX": 0x086,
    "SNP_DECOMMISSION": 0x090,
    "SNP_ACTIVATE": 0x091,
    "SNP_GUEST_STATUS": 0x092,
    "SNP_GCTX_CREATE": 0x093,
    "SNP_GUEST_REQUEST": 0x094,
    "SNP_ACTIVATE_EX": 0x095,
    "SNP_LAUNCH_START": 0x0A0,
    "SNP_LAUNCH_UPDATE": 0x0A1,
    "SNP_LAUNCH_FINISH": 0x0A2,
    "SNP_DBG_DECRYPT": 0x0B0,
    "SNP_DBG_ENCRYPT": 0x0B1,
    "SNP_PAGE_SWAP_OUT": 0x0C0,
    "SNP_PAGE_SWAP_IN": 0x0C1,
    "SNP_PAGE_MOVE": 0x0C2,
    "SNP_PAGE_MD_INIT": 0x0C3,
    "SNP_PAGE_SET_STATE": 0x0C6,
    "SNP_PAGE_RECLAIM": 0x0C7,
    "SNP_PAGE_UNSMASH": 0x0C8,
    "SNP_CONFIG": 0x0C9,
    "SNP_DOWNLOAD_FIRMWARE_EX": 0x0CA,
    "SNP_COMMIT": 0x0CB,
    "SNP_VLEK_LOAD": 0x0CD,
    "SNP_FEATURE_INFO": 0x0CE,
}


@pytest.mark.parametrize(("name", "value"), list(STATUS_TABLE.items()))
def test_status_value(name: str, value: int) -> None:
    assert SnpStatus[name].value == value
    assert SnpStatus(value).name == name
    assert status_name(value) == name


def test_status_table_is_exactly_the_abi_table() -> None:
    assert {s.name: s.value for s in SnpStatus} == STATUS_TABLE


@pytest.mark.parametrize("value", [0x1E, 0x29, 0x2F, 0x34, 0x40, 0xFFFF])
def test_unassigned_status_values_have_no_name(value: int) -> None:
    with pytest.raises(ValueError):
        SnpStatus(value)
    assert status_name(value) == f"UNKNOWN_{value:#04x}"


def test_status_describe() -> None:
    assert SnpStatus.INVALID_PARAM.describe() == "INVALID_PARAM (0x16)"
    assert SnpStatus.SUCCESS.describe() == "SUCCESS (0x00)"


@pytest.mark.parametrize(("name", "value"), list(COMMAND_TABLE.items()))
def test_command_id(name: str, value: int) -> None:
    assert CommandId[name].value == value
    assert CommandId(value).name == name


def test_command_table_is_exactly_the_abi_table() -> None:
    assert {c.name: c.value for c in CommandId} == COMMAND_TABLE


@pytest.mark.parametrize("value", [0x0C4, 0x0C5, 0x0CC, 0x001, 0x080, 0x087, 0x0D0])
def test_unassigned_or_non_snp_ids_are_not_snp_commands(value: int) -> None:
    with pytest.raises(ValueError):
        CommandId(value)
