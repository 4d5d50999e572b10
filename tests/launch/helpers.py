"""Shared builders for the launch tests: small platforms driven to each launch stage, the
launch commands, an independent PAGE_INFO/launch-digest reference, ID block and ID auth
builders, and a before/after probe.

Every constant here (page types, PAGE_INFO and ID_AUTH offsets, policy bits, statuses) is
typed by hand from ``shared/reference/launch-measurement.md`` and
``firmware-commands.md`` §6; nothing is derived from the emulator's own tables.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import struct
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from rmp import PageState, RmpEntry, RmpResult
from sp_emu.abi.commands import CommandId as C
from sp_emu.abi.status import SnpStatus as S
from sp_emu.cpu import GuestCpu
from sp_emu.firmware import CommandResult
from sp_emu.platform import Platform
from sp_emu.state import GuestContext, PlatformState

MEM = 64 << 20
"""Every test platform: 64 MiB (free DRAM from 1 MiB to 32 MiB)."""
PAGE = 0x1000
MIB2 = 0x200000

# --- fixed system addresses (ordinary DRAM) ---------------------------------------------------
GCTX = 0x101000
GCTX2 = 0x102000
GCTX3 = 0x103000
HV_PAGE = 0x120000
"""A page that stays HYPERVISOR."""
ID_BLOCK_SPA = 0x121000
ID_AUTH_SPA = 0x122000
DATA = 0x200000
"""First of the 4 KiB pages the tests launch (DATA, DATA + 0x1000, ...)."""
REGION = 0x400000
"""A 2 MiB-aligned region for 2 MiB launch pages."""
REGION2 = 0x600000
REGION3 = 0x800000
REGION4 = 0xA00000
IN_RMP = MEM - 0x100000
"""An address inside the RMP (which the platform puts near the top of memory)."""

# --- launch-measurement.md §2 page types ------------------------------------------------------
NORMAL, VMSA, ZERO, UNMEASURED, SECRETS, CPUID = 1, 2, 3, 4, 5, 6
TYPE_NAMES = {1: "NORMAL", 2: "VMSA", 3: "ZERO", 4: "UNMEASURED", 5: "SECRETS", 6: "CPUID"}

# --- launch-measurement.md §6 policy bits -------------------------------------------------------
POLICY = 0x30000
"""SMT | RSVD_MBO, ABI 0.0 (QEMU's default)."""
SMT = 1 << 16
RSVD_MBO = 1 << 17
MIGRATE_MA = 1 << 18
DEBUG = 1 << 19
SINGLE_SOCKET = 1 << 20
CXL_ALLOW = 1 << 21
AES_256_XTS = 1 << 22
RAPL_DIS = 1 << 23
CIPHERTEXT_HIDING = 1 << 24
PAGE_SWAP_DISABLE = 1 << 25

ASID = 1
ASID2 = 2
KVM_VMSA_GPA = 0xFFFFFFFFF000
ZEROS48 = bytes(48)


# --- platforms ----------------------------------------------------------------------------------
def ok(result: CommandResult) -> CommandResult:
    assert result.status == S.SUCCESS, f"{S(result.status).name}: {result.detail}"
    return result


def status_name(status: int) -> str:
    return S(status).name


def flushed(product: str = "Genoa", **kw: Any) -> Platform:
    """A 64 MiB platform with SNP_INIT, WBINVD and SNP_DF_FLUSH done (every ASID clean)."""
    p = Platform(memory=MEM, product=product, **kw)
    ok(p.run(C.SNP_INIT))
    p.cpu.wbinvd()
    ok(p.run(C.SNP_DF_FLUSH))
    return p


def with_product(p: Platform, **changes: Any) -> Platform:
    """Change a product trait (e.g. ``cxl_allow=True``) of a built platform."""
    p.fw.state.product = dataclasses.replace(p.fw.state.product, **changes)
    return p


def rmpupdate_ok(p: Platform, spa: int, **kw: Any) -> None:
    rc = p.cpu.rmpupdate(spa, **kw)
    assert rc is RmpResult.SUCCESS, f"RMPUPDATE {spa:#x} {kw}: {rc!r}"


def fw_page(p: Platform, spa: int) -> int:
    """HYPERVISOR -> FIRMWARE (assigned, ASID 0, immutable)."""
    rmpupdate_ok(p, spa, assigned=True, immutable=True)
    return spa


def pre_guest(
    p: Platform, spa: int, gpa: int, *, asid: int = ASID, page_size: int = 0, data: bytes = b""
) -> int:
    """Write ``data`` (host plaintext) then RMPUPDATE the page to PRE_GUEST at ``gpa``."""
    if data:
        p.cpu.host_write(spa, data)
    rmpupdate_ok(p, spa, assigned=True, immutable=True, asid=asid, gpa=gpa, page_size=page_size)
    return spa


def created(p: Platform, gctx: int = GCTX) -> Platform:
    """A context page made and SNP_GCTX_CREATE done (guest INIT)."""
    fw_page(p, gctx)
    ok(p.run(C.SNP_GCTX_CREATE, gctx_paddr=gctx))
    return p


def launched(p: Platform, gctx: int = GCTX, policy: int = POLICY, **fields: Any) -> Platform:
    """SNP_GCTX_CREATE then SNP_LAUNCH_START (guest LAUNCH, not activated)."""
    created(p, gctx)
    ok(p.run(C.SNP_LAUNCH_START, gctx_paddr=gctx, policy=policy, **fields))
    return p


def activated(
    p: Platform, gctx: int = GCTX, asid: int = ASID, policy: int = POLICY, **fields: Any
) -> Platform:
    """A launched guest bound (pending) to ``asid``."""
    launched(p, gctx, policy, **fields)
    ok(p.run(C.SNP_ACTIVATE, gctx_paddr=gctx, asid=asid))
    return p


def ready(product: str = "Genoa", **start: Any) -> Platform:
    """A flushed platform with guest GCTX launched and activated on ASID 1."""
    return activated(flushed(product), **start)


def guest(p: Platform, gctx: int = GCTX) -> GuestContext:
    return p.fw.state.guests[gctx]


def digest(p: Platform, gctx: int = GCTX) -> bytes:
    """The guest's launch digest, read from the firmware's guest context."""
    return guest(p, gctx).ld


def update(
    p: Platform,
    spa: int,
    page_type: int,
    *,
    gctx: int = GCTX,
    page_size: int = 0,
    imi_page: int = 0,
    perms: tuple[int, int, int] = (0, 0, 0),
) -> CommandResult:
    """SNP_LAUNCH_UPDATE of the page at ``spa`` (typed path)."""
    return p.run(
        C.SNP_LAUNCH_UPDATE,
        gctx_paddr=gctx,
        page_paddr=spa,
        page_type=page_type,
        page_size=page_size,
        imi_page=imi_page,
        vmpl1_perms=perms[0],
        vmpl2_perms=perms[1],
        vmpl3_perms=perms[2],
    )


def launch_page(
    p: Platform,
    spa: int,
    gpa: int,
    page_type: int,
    data: bytes = b"",
    *,
    page_size: int = 0,
    perms: tuple[int, int, int] = (0, 0, 0),
    imi_page: int = 0,
    asid: int = ASID,
    gctx: int = GCTX,
) -> None:
    """Host write, RMPUPDATE to PRE_GUEST and a successful LAUNCH_UPDATE."""
    pre_guest(p, spa, gpa, asid=asid, page_size=page_size, data=data)
    ok(update(p, spa, page_type, gctx=gctx, page_size=page_size, perms=perms, imi_page=imi_page))


def finish(p: Platform, gctx: int = GCTX, **fields: Any) -> CommandResult:
    return p.run(C.SNP_LAUNCH_FINISH, gctx_paddr=gctx, **fields)


def entry(p: Platform, spa: int) -> RmpEntry:
    return p.rmp.entry(spa >> 12)


def state_of(p: Platform, spa: int) -> PageState:
    return p.rmp.state(spa >> 12)


def guest_read(p: Platform, gpa: int, spa: int, length: int = PAGE, *, asid: int = ASID) -> bytes:
    """Map ``gpa`` onto ``spa`` in the guest's nested page table and read it privately."""
    p.cpu.npt_map(asid, gpa & ~0xFFF, spa & ~0xFFF)
    return p.cpu.guest_read(GuestCpu(asid), gpa, length)


# --- independent PAGE_INFO reference (launch-measurement.md §1.1) ------------------------------
_INFO = struct.Struct("<48s48sHBBBBBBQ")
"""digest, contents, length, type, imi byte, reserved byte, VMPL1, VMPL2, VMPL3, GPA."""
assert _INFO.size == 0x70


def ref_page_info(
    ld: bytes,
    contents: bytes,
    page_type: int,
    gpa: int,
    *,
    imi: bool = False,
    perms: tuple[int, int, int] = (0, 0, 0),
) -> bytes:
    return _INFO.pack(ld, contents, 0x70, page_type, int(imi), 0, *perms, gpa)


def ref_extend(
    ld: bytes,
    contents: bytes,
    page_type: int,
    gpa: int,
    *,
    imi: bool = False,
    perms: tuple[int, int, int] = (0, 0, 0),
) -> bytes:
    info = ref_page_info(ld, contents, page_type, gpa, imi=imi, perms=perms)
    return hashlib.sha384(info).digest()


def sha384(data: bytes) -> bytes:
    return hashlib.sha384(data).digest()


# --- ID block / ID auth (launch-measurement.md §8), packed by hand -----------------------------
def p384_key(n: int) -> ec.EllipticCurvePrivateKey:
    """A deterministic P-384 private key (scalar ``n``)."""
    return ec.derive_private_key(n, ec.SECP384R1())


def pack_pubkey(key: ec.EllipticCurvePublicKey, curve: int = 2) -> bytes:
    """AMD's 0x404-byte ECDSA public key: CURVE u32, QX[72] LE, QY[72] LE, reserved zero."""
    n = key.public_numbers()
    out = struct.pack("<I", curve) + n.x.to_bytes(72, "little") + n.y.to_bytes(72, "little")
    return out + bytes(0x404 - len(out))


def pack_id_block(
    ld: bytes,
    policy: int,
    *,
    family_id: bytes = b"F" * 16,
    image_id: bytes = b"I" * 16,
    version: int = 1,
    guest_svn: int = 7,
) -> bytes:
    """The 0x60-byte ID block: LD, FAMILY_ID, IMAGE_ID, VERSION, GUEST_SVN, POLICY."""
    return ld + family_id + image_id + struct.pack("<IIQ", version, guest_svn, policy)


def pack_id_auth(
    *,
    id_key_algo: int = 1,
    auth_key_algo: int = 1,
    id_block_sig: bytes = bytes(0x200),
    id_key: bytes = bytes(0x404),
    id_key_sig: bytes = bytes(0x200),
    author_key: bytes = bytes(0x404),
) -> bytes:
    """The 0x1000-byte ID authentication page at the §8.2 offsets."""
    page = bytearray(0x1000)
    struct.pack_into("<II", page, 0, id_key_algo, auth_key_algo)
    page[0x040:0x240] = id_block_sig
    page[0x240:0x644] = id_key
    page[0x680:0x880] = id_key_sig
    page[0x880:0xC84] = author_key
    return bytes(page)


# --- before/after probe -------------------------------------------------------------------------
@dataclass
class Snapshot:
    rmp: dict[int, tuple[int, int]]
    memory: dict[int, tuple[bytes, str | None]]
    state: PlatformState


def capture(p: Platform) -> Snapshot:
    return Snapshot(p.rmp.snapshot(), p.memory.fingerprint(), copy.deepcopy(p.fw.state))


def assert_unchanged(p: Platform, before: Snapshot, what: str = "") -> None:
    """The RMP, memory and every firmware record (guest digests included) are as before."""
    after = capture(p)
    assert after.rmp == before.rmp, f"{what}: RMP changed"
    assert after.memory == before.memory, f"{what}: memory changed"
    for gctx, g in before.state.guests.items():
        assert after.state.guests[gctx].ld == g.ld, f"{what}: digest changed"
        assert after.state.guests[gctx].imd == g.imd, f"{what}: IMD changed"
    assert after.state == before.state, f"{what}: firmware state changed"


# launch-measurement.md §9.7 (sev-snp-measure v0.0.13), typed by hand.
VECTOR_NORMAL_GPA0 = bytes.fromhex(
    "9d13634b6014bb21cf059b2dc694e7bff01a8a7137041100"
    "cd2b695f3d10fb687267b97808b27f8f471d943bc6f53a20"
)
VECTOR_ZERO_800000 = bytes.fromhex(
    "4472405c6dbc65e5629805f2be1b3df74eb119841eff1246"
    "6c24f43e67083c23df5e645b2742b6d9aa0f943e095cebaa"
)
VECTOR_SECRETS_80D000 = bytes.fromhex(
    "e82e99caf82a32c31ec5070eef9e2135866d8f7de60d7568"
    "14f3bd8c989c1e826622e0a97dad026c6d9d81818780e6a2"
)
VECTOR_QEMU_BSP_VMSA_HASH = bytes.fromhex(
    "77920c4c629ff47e90c0e174fc1ad0eb6fa664f88cd47394"
    "88058a8c6cb1a77b3856f55378e9518d0da99452d51c553a"
)
VECTOR_QEMU_BSP_VMSA_LD = bytes.fromhex(
    "108432463da76821f35c5daf2f7aecc0ce9ce88652de5f70"
    "f638c7a0345c11f2f80025654b80e7be10a9fe0ee1b75f33"
)
