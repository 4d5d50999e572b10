"""Status codes the SNP firmware returns (SNP Firmware ABI, status table; Linux uapi
``psp-sev.h`` after "crypto: ccp: Fix uapi definitions of PSP errors"; virtee/sev
``src/error.rs``).  Every value is written out by hand and pinned by a test."""

from __future__ import annotations

from enum import IntEnum

from binlayout.enums import IntEnumBase, fast_enum


@fast_enum(IntEnum)
class SnpStatus(IntEnumBase):
    """A firmware command's status (low 16 bits of the mailbox command/response register)."""

    SUCCESS = 0x00
    INVALID_PLATFORM_STATE = 0x01
    INVALID_GUEST_STATE = 0x02
    INVALID_CONFIG = 0x03
    INVALID_LENGTH = 0x04
    ALREADY_OWNED = 0x05
    INVALID_CERTIFICATE = 0x06
    POLICY_FAILURE = 0x07
    INACTIVE = 0x08
    INVALID_ADDRESS = 0x09
    BAD_SIGNATURE = 0x0A
    BAD_MEASUREMENT = 0x0B
    ASID_OWNED = 0x0C
    INVALID_ASID = 0x0D
    WBINVD_REQUIRED = 0x0E
    DFFLUSH_REQUIRED = 0x0F
    INVALID_GUEST = 0x10
    INVALID_COMMAND = 0x11
    ACTIVE = 0x12
    HWERROR_PLATFORM = 0x13
    HWERROR_UNSAFE = 0x14
    UNSUPPORTED = 0x15
    INVALID_PARAM = 0x16
    RESOURCE_LIMIT = 0x17
    SECURE_DATA_INVALID = 0x18
    INVALID_PAGE_SIZE = 0x19
    INVALID_PAGE_STATE = 0x1A
    INVALID_MDATA_ENTRY = 0x1B
    INVALID_PAGE_OWNER = 0x1C
    AEAD_OFLOW = 0x1D
    EXIT_RING_BUFFER = 0x1F
    RMP_INIT_REQUIRED = 0x20
    BAD_SVN = 0x21
    BAD_VERSION = 0x22
    SHUTDOWN_REQUIRED = 0x23
    UPDATE_FAILED = 0x24
    RESTORE_REQUIRED = 0x25
    RMP_INITIALIZATION_FAILED = 0x26
    INVALID_KEY = 0x27
    SHUTDOWN_INCOMPLETE = 0x28
    INCORRECT_BUFFER_LENGTH = 0x30
    EXPAND_BUFFER_LENGTH_REQUEST = 0x31
    SPDM_REQUEST = 0x32
    SPDM_ERROR = 0x33
    IN_USE = 0x3A

    def describe(self) -> str:
        """``NAME (0xNN)``, the way the CLI prints a status."""
        return f"{self.name} ({self.value:#04x})"


def status_name(value: int) -> str:
    """The ABI name of a status value, or ``UNKNOWN_0xNN`` for one the table lacks."""
    try:
        return SnpStatus(value).name
    except ValueError:
        return f"UNKNOWN_{value:#04x}"
