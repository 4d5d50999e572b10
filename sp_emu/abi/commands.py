"""SNP firmware command ids (SNP Firmware ABI; Linux ``psp-sev.h`` ``enum sev_cmd``)."""

from __future__ import annotations

from enum import IntEnum

from binlayout.enums import IntEnumBase, fast_enum


@fast_enum(IntEnum)
class CommandId(IntEnumBase):
    """The id the host writes into the mailbox to run an SNP command."""

    SNP_INIT = 0x081
    SNP_SHUTDOWN = 0x082
    SNP_PLATFORM_STATUS = 0x083
    SNP_DF_FLUSH = 0x084
    SNP_INIT_EX = 0x085
    SNP_SHUTDOWN_EX = 0x086
    SNP_DECOMMISSION = 0x090
    SNP_ACTIVATE = 0x091
    SNP_GUEST_STATUS = 0x092
    SNP_GCTX_CREATE = 0x093
    SNP_GUEST_REQUEST = 0x094
    SNP_ACTIVATE_EX = 0x095
    SNP_LAUNCH_START = 0x0A0
    SNP_LAUNCH_UPDATE = 0x0A1
    SNP_LAUNCH_FINISH = 0x0A2
    SNP_DBG_DECRYPT = 0x0B0
    SNP_DBG_ENCRYPT = 0x0B1
    SNP_PAGE_SWAP_OUT = 0x0C0
    SNP_PAGE_SWAP_IN = 0x0C1
    SNP_PAGE_MOVE = 0x0C2
    SNP_PAGE_MD_INIT = 0x0C3
    SNP_PAGE_SET_STATE = 0x0C6
    SNP_PAGE_RECLAIM = 0x0C7
    SNP_PAGE_UNSMASH = 0x0C8
    SNP_CONFIG = 0x0C9
    SNP_DOWNLOAD_FIRMWARE_EX = 0x0CA
    SNP_COMMIT = 0x0CB
    SNP_VLEK_LOAD = 0x0CD
    SNP_FEATURE_INFO = 0x0CE
