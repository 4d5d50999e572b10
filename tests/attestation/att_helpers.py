"""Shared builders for the attestation tests.

Everything that pins the ABI is typed by hand from ``shared/reference/attestation.md`` and
``firmware-commands.md`` §6 -- header offsets, the AAD range, the IV, payload offsets, status
values -- and built with ``struct`` and ``cryptography``, not with the emulator's layouts, so
that a wrong layout in the emulator cannot agree with a wrong test.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from rmp import RmpResult
from sp_emu.abi.commands import CommandId as C
from sp_emu.attestation import GuestMessenger, GuestRequestHost
from sp_emu.firmware import CommandResult
from sp_emu.hypervisors import KVM_QEMU, LaunchOptions, LaunchResult, launch
from sp_emu.images import PageType
from sp_emu.images.plan import snp_launch_plan
from sp_emu.images.sample import build_sample_ovmf
from sp_emu.platform import Platform
from sp_emu.state import GuestContext

PAGE = 0x1000
MEM = 128 << 20

# --- statuses (firmware-commands.md §3) ------------------------------------------------------
SUCCESS = 0x00
INVALID_PLATFORM_STATE = 0x01
INVALID_GUEST_STATE = 0x02
INVALID_ADDRESS = 0x09
BAD_MEASUREMENT = 0x0B
INVALID_GUEST = 0x10
INVALID_PARAM = 0x16
INVALID_PAGE_SIZE = 0x19
INVALID_PAGE_STATE = 0x1A
AEAD_OFLOW = 0x1D
INVALID_KEY = 0x27

# --- message types (attestation.md §1.4) ---------------------------------------------------------
CPUID_REQ, KEY_REQ, KEY_RSP, REPORT_REQ, REPORT_RSP = 1, 3, 4, 5, 6
TSC_INFO_REQ, TSC_INFO_RSP = 17, 18

_SAMPLE_PLAN = snp_launch_plan(build_sample_ovmf())
SECRETS_GPA = next(i.gpa for i in _SAMPLE_PLAN.items if i.page_type == PageType.SECRETS)


@dataclass
class Guest:
    """A launched guest with a host-side request handler and a guest driver on VMPCK0."""

    p: Platform
    launch: LaunchResult
    host: GuestRequestHost
    driver: GuestMessenger
    certs: dict[str, bytes] = field(default_factory=dict)

    @property
    def gctx(self) -> int:
        return self.launch.gctx

    @property
    def ctx(self) -> GuestContext:
        return self.p.fw.state.guests[self.launch.gctx]

    def driver_for(self, vmpck_id: int) -> GuestMessenger:
        return GuestMessenger.from_guest_memory(self.p, self.launch.asid, SECRETS_GPA, vmpck_id)


def launched_guest(
    product: str = "Genoa",
    *,
    certs: dict[str, bytes] | None = None,
    opts: LaunchOptions | None = None,
    **platform: Any,
) -> Guest:
    """The sample OVMF launched on a fresh platform the way KVM/QEMU do (guest RUNNING)."""
    p = Platform(memory=MEM, product=product, **platform)
    result = launch(p, _SAMPLE_PLAN, KVM_QEMU, opts or LaunchOptions())
    host = GuestRequestHost(p, result.gctx, certs=certs)
    driver = GuestMessenger.from_guest_memory(p, result.asid, SECRETS_GPA, 0)
    return Guest(p, result, host, driver, dict(certs or {}))


# --- an independent message encoder / decoder ----------------------------------------------------
def header(
    *,
    seqno: int,
    msg_type: int,
    msg_size: int,
    vmpck: int = 0,
    version: int = 1,
    algo: int = 1,
    hdr_version: int = 1,
    hdr_size: int = 0x60,
) -> bytearray:
    """A 0x60-byte header with a zero tag (attestation.md §1.1 offsets)."""
    h = bytearray(0x60)
    struct.pack_into("<Q", h, 0x20, seqno)
    struct.pack_into("<BBHBBH", h, 0x30, algo, hdr_version, hdr_size, msg_type, version, msg_size)
    h[0x3C] = vmpck
    return h


def seal(key: bytes, hdr: bytearray, payload: bytes) -> bytes:
    """AES-256-GCM: IV = LE64(seqno) || 0^4, AAD = header[0x30:0x60], tag at header[0:16]."""
    seqno = struct.unpack_from("<Q", hdr, 0x20)[0]
    iv = struct.pack("<Q", seqno) + bytes(4)
    out = AESGCM(key).encrypt(iv, payload, bytes(hdr[0x30:0x60]))
    h = bytearray(hdr)
    h[0:16] = out[-16:]
    return bytes(h) + out[:-16]


def request(
    key: bytes,
    payload: bytes,
    *,
    seqno: int,
    msg_type: int = REPORT_REQ,
    vmpck: int = 0,
    **hdr: Any,
) -> bytes:
    """A sealed request message (header + ciphertext)."""
    h = header(seqno=seqno, msg_type=msg_type, msg_size=len(payload), vmpck=vmpck, **hdr)
    return seal(key, h, payload)


def open_response(key: bytes, message: bytes) -> tuple[dict[str, int], bytes]:
    """Header fields and decrypted payload of a response written by the firmware."""
    seqno = struct.unpack_from("<Q", message, 0x20)[0]
    algo, hdr_version, hdr_size, msg_type, version, msg_size = struct.unpack_from(
        "<BBHBBH", message, 0x30
    )
    fields = {
        "seqno": seqno,
        "algo": algo,
        "hdr_version": hdr_version,
        "hdr_size": hdr_size,
        "msg_type": msg_type,
        "version": version,
        "msg_size": msg_size,
        "vmpck": message[0x3C],
    }
    iv = struct.pack("<Q", seqno) + bytes(4)
    body = message[0x60 : 0x60 + msg_size] + message[0:16]
    return fields, AESGCM(key).decrypt(iv, body, message[0x30:0x60])


def report_req(report_data: bytes = b"", vmpl: int = 0, key_sel: int = 0) -> bytes:
    """MSG_REPORT_REQ (0x60): REPORT_DATA at 0, VMPL at 0x40, KEY_SEL at 0x44."""
    return report_data.ljust(64, b"\0") + struct.pack("<II", vmpl, key_sel) + bytes(24)


def key_req(
    *,
    root: int = 0,
    key_sel: int = 0,
    gfs: int = 0,
    vmpl: int = 0,
    svn: int = 0,
    tcb: int = 0,
) -> bytes:
    """MSG_KEY_REQ (0x20)."""
    return struct.pack("<IIQIIQ", root | key_sel << 1, 0, gfs, vmpl, svn, tcb)


# --- running SNP_GUEST_REQUEST directly ---------------------------------------------------------
def fw_page(p: Platform, spa: int, *, page_size: int = 0) -> int:
    rc = p.cpu.rmpupdate(spa, assigned=True, immutable=True, page_size=page_size)
    assert rc is RmpResult.SUCCESS, rc
    return spa


def run_request(
    g: Guest, message: bytes, *, req_spa: int | None = None, rsp_spa: int | None = None
) -> CommandResult:
    """Put ``message`` at ``req_spa`` (default: the host's request page) and run
    SNP_GUEST_REQUEST with the host's FIRMWARE response page."""
    req_spa = g.host.req_spa if req_spa is None else req_spa
    rsp_spa = g.host.rsp_spa if rsp_spa is None else rsp_spa
    g.p.memory.write(req_spa, message)
    return g.p.run(C.SNP_GUEST_REQUEST, gctx_paddr=g.gctx, req_paddr=req_spa, res_paddr=rsp_spa)


def response_page(g: Guest, rsp_spa: int | None = None) -> bytes:
    return g.p.memory.read(g.host.rsp_spa if rsp_spa is None else rsp_spa, PAGE)


# --- verifying a report with cryptography alone --------------------------------------------------
def verify_with_cryptography(report: bytes, public_key: ec.EllipticCurvePublicKey) -> None:
    """Raise InvalidSignature unless R (0x2A0) / S (0x2E8), little endian, sign 0x000..0x29F."""
    r = int.from_bytes(report[0x2A0 : 0x2A0 + 72], "little")
    s = int.from_bytes(report[0x2E8 : 0x2E8 + 72], "little")
    public_key.verify(encode_dss_signature(r, s), report[:0x2A0], ec.ECDSA(hashes.SHA384()))


def u32(data: bytes, offset: int) -> int:
    return int(struct.unpack_from("<I", data, offset)[0])


def u64(data: bytes, offset: int) -> int:
    return int(struct.unpack_from("<Q", data, offset)[0])
