"""Guest messages: the SNP_GUEST_REQUEST message header, the payloads of the message types the
emulator models, the MSG_KEY_REQ key-derivation context and the extended-request certificate
table entry (attestation.md §1, §2, §7, §8).

Every layout is declared once here; offsets and widths are typed from the reference tables.
Gaps are reserved.  The header's bytes 0x10..0x1F (the unused half of the 32-byte AUTHTAG
field) and its other reserved bytes are not checked by the firmware (AFW checks only the
fields listed in firmware-commands.md §6); the payloads' reserved bytes are.
"""

from __future__ import annotations

import enum

from binlayout import Bits, BufferLayout, bits, blob, u8, u16, u32, u64


class MsgType(enum.IntEnum):
    """MSG_TYPE of a guest message (attestation.md §1.4): requests odd, responses = +1."""

    INVALID = 0
    CPUID_REQ = 1
    CPUID_RSP = 2
    KEY_REQ = 3
    KEY_RSP = 4
    REPORT_REQ = 5
    REPORT_RSP = 6
    EXPORT_REQ = 7
    EXPORT_RSP = 8
    IMPORT_REQ = 9
    IMPORT_RSP = 10
    ABSORB_REQ = 11
    ABSORB_RSP = 12
    VMRK_REQ = 13
    VMRK_RSP = 14
    ABSORB_NOMA_REQ = 15
    ABSORB_NOMA_RSP = 16
    TSC_INFO_REQ = 17
    TSC_INFO_RSP = 18


AEAD_ALGO_AES_256_GCM = 1
"""Header ALGO: the only algorithm (0 is invalid)."""
HDR_VERSION = 1
HDR_SIZE = 0x60
MSG_VERSION = 1
"""The only MSG_VERSION of every message type in FW 1.55 (and what the firmware answers)."""
AUTHTAG_LEN = 16
MAX_PAYLOAD = 0x1000 - HDR_SIZE
"""A message (header + payload) must fit in its 4 KiB page."""

MSG_HEADER = BufferLayout(
    "guest message header",
    HDR_SIZE,
    (
        blob(0x00, AUTHTAG_LEN, "authtag"),
        u64(0x20, "msg_seqno"),
        u8(0x30, "algo"),
        u8(0x31, "hdr_version"),
        u16(0x32, "hdr_size"),
        u8(0x34, "msg_type"),
        u8(0x35, "msg_version"),
        u16(0x36, "msg_size"),
        u8(0x3C, "msg_vmpck"),
    ),
)
"""The 0x60-byte header in front of every request and response payload."""
AAD_START = 0x30
"""The AES-GCM additional data is header bytes 0x30..0x5F (ALGO to the end)."""

# --- MSG_REPORT_REQ / MSG_REPORT_RSP (§2.1) -------------------------------------------------------
MSG_REPORT_REQ = BufferLayout(
    "MSG_REPORT_REQ",
    0x60,
    (
        blob(0x00, 64, "report_data"),
        u32(0x40, "vmpl"),
        bits(0x44, 4, Bits("key_sel", 0, 2)),
    ),
)
REPORT_SIZE = 0x4A0
MSG_REPORT_RSP = BufferLayout(
    "MSG_REPORT_RSP",
    0x4C0,
    (u32(0x00, "status"), u32(0x04, "report_size"), blob(0x20, REPORT_SIZE, "report")),
)

# KEY_SEL values of MSG_REPORT_REQ and MSG_KEY_REQ (AFW).
KEY_SEL_VLEK_OR_VCEK = 0
"""The VLEK if one is loaded, else the VCEK."""
KEY_SEL_VCEK = 1
KEY_SEL_VLEK = 2
KEY_SEL_RESERVED = 3

# --- MSG_KEY_REQ / MSG_KEY_RSP (§2.2) -------------------------------------------------------------
MSG_KEY_REQ = BufferLayout(
    "MSG_KEY_REQ",
    0x20,
    (
        bits(0x00, 4, Bits("root_key_select", 0), Bits("key_sel", 1, 2)),
        u64(0x08, "guest_field_select"),
        u32(0x10, "vmpl"),
        u32(0x14, "guest_svn"),
        u64(0x18, "tcb_version"),
    ),
)
"""The FW 1.55 request (0x20 bytes).  The FW 1.58 extension with LAUNCH_MIT_VECTOR at 0x20
is not modelled (GUEST_FIELD_SELECT bit 6 is refused as unknown, as FW 1.55 does)."""
MSG_KEY_RSP = BufferLayout(
    "MSG_KEY_RSP", 0x40, (u32(0x00, "status"), blob(0x20, 32, "derived_key"))
)

# GUEST_FIELD_SELECT bits (§8.1).
GFS_POLICY = 1 << 0
GFS_IMAGE_ID = 1 << 1
GFS_FAMILY_ID = 1 << 2
GFS_MEASUREMENT = 1 << 3
GFS_GUEST_SVN = 1 << 4
GFS_TCB_VERSION = 1 << 5
GFS_ALL = (1 << 6) - 1
"""Every bit FW 1.55 knows; any other bit is INVALID_PARAM."""

KEY_MIX_DATA = BufferLayout(
    "MSG_KEY_REQ mix data",
    0xA8,
    (
        bits(0x00, 4, Bits("root_key_select", 0), Bits("idblock_key_select", 1, 2)),
        u64(0x08, "guest_field_select"),
        u32(0x10, "vmpl"),
        u32(0x14, "guest_svn"),
        u64(0x18, "tcb_version"),
        u64(0x20, "guest_policy"),
        blob(0x28, 16, "image_id"),
        blob(0x38, 16, "family_id"),
        blob(0x48, 32, "measurement"),
        blob(0x68, 32, "host_data"),
        blob(0x88, 32, "idblock_key"),
    ),
)
"""The KDF context the firmware builds for MSG_KEY_REQ (§8.3; FW 1.55 ``snp_mix_data``)."""
IDBLOCK_KEY_NONE = 0
IDBLOCK_KEY_ID = 1
IDBLOCK_KEY_AUTHOR = 2

# --- MSG_TSC_INFO_REQ / MSG_TSC_INFO_RSP (§2.4) ---------------------------------------------------
MSG_TSC_INFO_REQ = BufferLayout("MSG_TSC_INFO_REQ", 0x80, ())
"""128 reserved bytes."""
MSG_TSC_INFO_RSP = BufferLayout(
    "MSG_TSC_INFO_RSP",
    0x80,
    (
        u32(0x00, "status"),
        u64(0x08, "guest_tsc_scale"),
        u64(0x10, "guest_tsc_offset"),
        u32(0x18, "tsc_factor"),
    ),
)

REQUEST_LAYOUTS: dict[MsgType, BufferLayout] = {
    MsgType.REPORT_REQ: MSG_REPORT_REQ,
    MsgType.KEY_REQ: MSG_KEY_REQ,
    MsgType.TSC_INFO_REQ: MSG_TSC_INFO_REQ,
}
"""The request payload of every message type the emulator answers."""
RESPONSE_LAYOUTS: dict[MsgType, BufferLayout] = {
    MsgType.REPORT_RSP: MSG_REPORT_RSP,
    MsgType.KEY_RSP: MSG_KEY_RSP,
    MsgType.TSC_INFO_RSP: MSG_TSC_INFO_RSP,
}

# --- extended request certificate table (§7) ------------------------------------------------------
CERT_TABLE_ENTRY = BufferLayout(
    "certificate table entry",
    0x18,
    (blob(0x00, 16, "guid"), u32(0x10, "offset"), u32(0x14, "length")),
)
"""One entry; the table ends with an all-zero entry.  GUIDs are in RFC 4122 byte order."""
