"""Page move and swap commands: SNP_PAGE_MD_INIT, SNP_PAGE_MOVE, SNP_PAGE_SWAP_OUT and
SNP_PAGE_SWAP_IN (firmware-commands.md §6; page states rmp-and-instructions.md §3).

The reference gives the buffers, the states and (for MD_INIT and MOVE) the checks; where it
is silent the choices below are sp-emu's and are marked "choice" in the comments:

* Address fields must have bits 11:0 clear (INVALID_PARAM; MDATA_PADDR only 64-byte aligned),
  checked before the platform state, as for SNP_DBG_DECRYPT.
* MOVE and SWAP check, in order: guest state LAUNCH/RUNNING (INVALID_GUEST_STATE), active
  (INACTIVE), then policy PAGE_SWAP_DISABLE (POLICY_FAILURE), then the pages.  A guest page of
  another ASID is INVALID_PAGE_STATE (MOVE: "otherwise INVALID_PAGE_STATE"; SWAP follows).
* SWAP_OUT takes a PRE_GUEST or PRE_SWAP guest page (the entry's PAGE_VALIDATED records
  which), a VMSA page for PAGE_TYPE 2 (the RMP VMSA bit must agree with PAGE_TYPE), or a
  METADATA page of the guest for PAGE_TYPE 1.  The source then becomes GUEST_INVALID (a
  metadata source becomes FIRMWARE, zeroed); DST must be HYPERVISOR and receives the
  ciphertext.  An entry that is already VALID is refused (INVALID_MDATA_ENTRY).
* The page is sealed with AES-256-GCM under the guest's OEK; the IV is a per-guest counter
  (kept in the context page, :mod:`sp_emu.abi.swap`), the 96-bit nonce is the u64 IV little
  endian followed by four zero bytes, and the AAD is entry bytes 0x20-0x2F (flags/GPA and
  VMPL permissions, VALID set).  AMD's construction is not public.
* SWAP_IN: an entry that is not VALID or whose PAGE_SIZE/METADATA/VMSA flags disagree with
  the request is INVALID_MDATA_ENTRY; a tag mismatch is BAD_MEASUREMENT (as for an unwrap
  failure in SNP_VLEK_LOAD).  A data/VMSA page goes into a PRE_GUEST page of the guest, which
  takes the entry's GPA, VMSA bit and permissions and becomes GUEST_VALID or GUEST_INVALID
  (as MOVE's destination); a metadata page goes into a FIRMWARE page, which becomes
  METADATA.  The entry's VALID bit is then cleared, so it cannot be replayed.
  SWAP_IN_PLACE reads the ciphertext from DST itself (SRC_PADDR ignored).
* Metadata entries and metadata pages are read and written through the firmware's key.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from rmp import PAGE_4K as PAGE
from rmp import PageState
from rmp import layout as RL
from rmp.entry import FirmwareMarker
from sp_emu.abi.commands import CommandId as C
from sp_emu.abi.launch import GuestPolicy
from sp_emu.abi.status import SnpStatus as S
from sp_emu.abi.swap import (
    GCTX_ROOT_MDATA_OFFSET,
    GCTX_SWAP_IV_OFFSET,
    MDATA_ENTRY,
    MDATA_ENTRY_AAD,
    MDATA_ENTRY_SIZE,
    SWAP_PAGE_METADATA,
    SWAP_PAGE_VMSA,
)
from sp_emu.commands.guests import require_page_aligned
from sp_emu.errors import SnpError, require_state
from sp_emu.firmware import Firmware, Request, command
from sp_emu.memory import MemoryKey
from sp_emu.state import Activation, GuestContext, GuestState

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_IMM = RL.IMMUTABLE.mask | RL.LOCK.mask
_METADATA_MARKER = int(FirmwareMarker.METADATA) << RL.FW_MARKER.lsb
_U64_MAX = (1 << 64) - 1


def _pages(page_size: int) -> int:
    return 512 if page_size else 1


# --- shared checks ---------------------------------------------------------------------------
def _swap_guest(fw: Firmware, gctx: int) -> tuple[GuestContext, MemoryKey]:
    """The guest of a MOVE/SWAP command: LAUNCH or RUNNING (INVALID_GUEST_STATE), active
    (INACTIVE) and allowing swapping (POLICY_FAILURE); with its memory key."""
    guest = fw.guest(gctx)
    if guest.state not in (GuestState.LAUNCH, GuestState.RUNNING):
        raise SnpError(S.INVALID_GUEST_STATE, f"the guest is {guest.state.name}")
    key = fw.asid_keys.get(guest.asid) if guest.activation is not Activation.NONE else None
    if key is None:
        raise SnpError(S.INACTIVE, "the guest is not activated")
    if guest.policy & GuestPolicy.PAGE_SWAP_DISABLE:
        raise SnpError(S.POLICY_FAILURE, "the guest's policy sets PAGE_SWAP_DISABLE")
    return guest, key


def _metadata_of(q0: int, gctx: int) -> bool:
    """Whether a METADATA entry records ``gctx`` as its owning context page."""
    return (q0 & RL.GPA.mask & ~RL.FW_MARKER.mask) == gctx


def _require_size(q0: int, page_size: int, what: str) -> None:
    if bool(q0 & RL.PAGE_SIZE.mask) != bool(page_size):
        raise SnpError(S.INVALID_PAGE_SIZE, f"{what}'s RMP page size differs from PAGE_SIZE")


def _copy_pages(fw: Firmware, src: int, dst: int, n: int, key: MemoryKey | None) -> None:
    """Copy ``n`` pages, reading SRC and writing DST through ``key`` (re-encryption: the
    memory encryption is tweaked by the system physical address)."""
    for i in range(n):
        fw.memory.write_page(dst + i * PAGE, fw.memory.read(src + i * PAGE, PAGE, key), key)


# --- SNP_PAGE_MD_INIT ------------------------------------------------------------------------
@command(C.SNP_PAGE_MD_INIT, "SNP_PAGE_MD_INIT; firmware-commands.md §6")
def snp_page_md_init(fw: Firmware, req: Request) -> None:
    """Turn a FIRMWARE page into a zeroed METADATA page of a guest (RMP GPA field: marker 1
    and the guest context page's page number)."""
    f = req.f
    gctx, page = f["gctx_paddr"], f["page_paddr"]
    # CHECKS
    require_page_aligned(gctx, "GCTX_PADDR")
    require_page_aligned(page, "PAGE_PADDR")
    fw.require_init()
    guest = fw.guest(gctx)
    # PAGES
    require_state(fw.page_state(page), (PageState.FIRMWARE,), "the metadata page")
    q0, q1 = fw.rmp.read(page >> 12)
    if q0 & RL.PAGE_SIZE.mask:  # choice: metadata pages are 4 KiB
        raise SnpError(S.INVALID_PAGE_SIZE, "the metadata page is a 2 MiB page")
    if guest.state not in (GuestState.LAUNCH, GuestState.RUNNING):
        raise SnpError(S.INVALID_GUEST_STATE, f"the guest is {guest.state.name}")
    # COMMIT
    fw.memory.write_page(page, bytes(PAGE), fw.firmware_key)
    fw.rmp.write(page >> 12, (q0 & ~RL.GPA.mask) | _METADATA_MARKER | gctx, q1)


# --- SNP_PAGE_MOVE ---------------------------------------------------------------------------
@command(C.SNP_PAGE_MOVE, "SNP_PAGE_MOVE; firmware-commands.md §6")
def snp_page_move(fw: Firmware, req: Request) -> None:
    """Move an immutable guest page (SRC PRE_GUEST/PRE_SWAP -> DST PRE_GUEST, contents
    re-encrypted at DST) or a metadata page (SRC METADATA -> DST FIRMWARE) of a guest."""
    f = req.f
    gctx, src, dst, size = f["gctx_paddr"], f["src_paddr"], f["dst_paddr"], f["page_size"]
    # CHECKS
    req.check_reserved()
    for name in ("gctx_paddr", "src_paddr", "dst_paddr"):
        require_page_aligned(f[name], name.upper())
    if src == dst:  # choice: a page cannot be moved onto itself
        raise SnpError(S.INVALID_PARAM, "SRC_PADDR equals DST_PADDR")
    fw.require_init()
    guest, key = _swap_guest(fw, gctx)
    # PAGES
    src_state = fw.page_state(src)
    dst_state = fw.page_state(dst)
    sq0, sq1 = fw.rmp.read(src >> 12)
    dq0, dq1 = fw.rmp.read(dst >> 12)
    _require_size(sq0, size, "the source page")
    _require_size(dq0, size, "the destination page")
    n = _pages(size)
    if (
        src_state in (PageState.PRE_GUEST, PageState.PRE_SWAP)
        and dst_state is PageState.PRE_GUEST
        and RL.ASID.get(sq0) == RL.ASID.get(dq0) == guest.asid
    ):
        # COMMIT: DST takes SRC's GPA, VMSA bit and permissions and becomes mutable; SRC
        # becomes GUEST_INVALID (its contents are left as they are: choice).
        _copy_pages(fw, src, dst, n, key)
        copied = RL.GPA.mask | RL.VMSA.mask | RL.VALIDATED.mask
        fw.rmp.write(dst >> 12, (dq0 & ~(copied | _IMM)) | (sq0 & copied), sq1)
        fw.rmp.write(src >> 12, sq0 & ~(_IMM | RL.VALIDATED.mask), sq1)
        return
    if (
        src_state is PageState.METADATA
        and _metadata_of(sq0, gctx)
        and dst_state is PageState.FIRMWARE
    ):
        # COMMIT: swap roles; the old metadata page is zeroed (choice).
        _copy_pages(fw, src, dst, n, fw.firmware_key)
        fw.memory.write_page(src, bytes(PAGE), fw.firmware_key)
        fw.rmp.write(dst >> 12, dq0 | (sq0 & RL.GPA.mask), dq1)
        fw.rmp.write(src >> 12, sq0 & ~RL.GPA.mask, sq1)
        return
    raise SnpError(
        S.INVALID_PAGE_STATE,
        f"cannot move a {src_state.name} page to a {dst_state.name} page for this guest",
    )


# --- SNP_PAGE_SWAP_OUT / SNP_PAGE_SWAP_IN ----------------------------------------------------
def _swap_checks(fw: Firmware, req: Request) -> tuple[GuestContext, MemoryKey, int]:
    """The buffer, platform and guest checks both SWAP commands make; returns the guest, its
    memory key and where its metadata entry lives."""
    f = req.f
    req.check_reserved()
    if f["swap_page_type"] == 3:
        raise SnpError(S.INVALID_PARAM, "PAGE_TYPE 3 is reserved")
    for name in ("gctx_paddr", "src_paddr", "dst_paddr"):
        require_page_aligned(f[name], name.upper())
    if not f["root_mdata_en"] and f["mdata_paddr"] % MDATA_ENTRY_SIZE:
        raise SnpError(S.INVALID_PARAM, "MDATA_PADDR is not 64-byte aligned")
    fw.require_init()
    guest, key = _swap_guest(fw, f["gctx_paddr"])
    # The entry lives in the guest context (ROOT_MDATA_EN; MDATA_PADDR is then ignored) or
    # in a METADATA page of this guest (checked with the other pages: _check_mdata_page).
    if f["root_mdata_en"]:
        return guest, key, int(f["gctx_paddr"]) + GCTX_ROOT_MDATA_OFFSET
    return guest, key, int(f["mdata_paddr"])


def _check_mdata_page(fw: Firmware, req: Request, at: int) -> None:
    if req.f["root_mdata_en"]:
        return
    state = fw.page_state(at)
    if state is not PageState.METADATA or not _metadata_of(
        fw.rmp.read_q0(at >> 12), req.f["gctx_paddr"]
    ):
        raise SnpError(S.INVALID_PAGE_STATE, "MDATA_PADDR is not in a metadata page of the guest")


def _swap_source_ok(state: PageState, q0: int, page_type: int, gctx: int, asid: int) -> bool:
    if page_type == SWAP_PAGE_METADATA:
        return state is PageState.METADATA and _metadata_of(q0, gctx)
    return (
        state in (PageState.PRE_GUEST, PageState.PRE_SWAP)
        and RL.ASID.get(q0) == asid
        and bool(q0 & RL.VMSA.mask) == (page_type == SWAP_PAGE_VMSA)
    )


def _nonce(iv: int) -> bytes:
    return iv.to_bytes(8, "little") + bytes(4)


@command(C.SNP_PAGE_SWAP_OUT, "SNP_PAGE_SWAP_OUT; firmware-commands.md §6")
def snp_page_swap_out(fw: Firmware, req: Request) -> None:
    """Seal an immutable guest (or metadata) page with AES-256-GCM under the guest's OEK into
    a host page and record how to restore it in a metadata entry."""
    f = req.f
    gctx, src, dst = f["gctx_paddr"], f["src_paddr"], f["dst_paddr"]
    size, page_type = f["page_size"], f["swap_page_type"]
    # CHECKS
    guest, key, at = _swap_checks(fw, req)
    # PAGES
    src_state = fw.page_state(src)
    sq0, sq1 = fw.rmp.read(src >> 12)
    if not _swap_source_ok(src_state, sq0, page_type, gctx, guest.asid):
        raise SnpError(S.INVALID_PAGE_STATE, f"cannot swap out a {src_state.name} source page")
    _require_size(sq0, size, "the source page")
    n = _pages(size)
    for i in range(n):
        require_state(
            fw.page_state(dst + i * PAGE), (PageState.HYPERVISOR,), "the destination page"
        )
    _check_mdata_page(fw, req, at)
    if not f["root_mdata_en"] and at >> 12 == src >> 12:
        raise SnpError(S.INVALID_PARAM, "the metadata entry lies in the page swapped out")
    if MDATA_ENTRY.parse(fw.memory.read(at, MDATA_ENTRY_SIZE, fw.firmware_key))["valid"]:
        raise SnpError(S.INVALID_MDATA_ENTRY, "the metadata entry is already in use")
    iv_at = gctx + GCTX_SWAP_IV_OFFSET
    last_iv = int.from_bytes(fw.memory.read(iv_at, 8, fw.firmware_key), "little")
    if last_iv == _U64_MAX:
        raise SnpError(S.AEAD_OFLOW, "the guest's swap IV counter is exhausted")
    # COMMIT
    metadata = page_type == SWAP_PAGE_METADATA
    page_key = fw.firmware_key if metadata else key
    plain = b"".join(fw.memory.read(src + i * PAGE, PAGE, page_key) for i in range(n))
    iv = last_iv + 1
    entry: dict[str, Any] = {
        "software_data": f["software_data"],
        "iv": iv,
        "auth_tag": bytes(16),
        "valid": 1,
        "page_validated": int(bool(sq0 & RL.VALIDATED.mask)),
        "vmsa": int(bool(sq0 & RL.VMSA.mask)),
        "metadata": int(metadata),
        "page_size": size,
        "gpa_pfn": 0 if metadata else RL.GPA.get(sq0),
        "vmpl_perms": 0 if metadata else sq1,
    }
    aad = MDATA_ENTRY.build(entry)[MDATA_ENTRY_AAD]
    sealed = AESGCM(guest.oek).encrypt(_nonce(iv), plain, aad)
    entry["auth_tag"] = sealed[-16:]
    for i in range(n):
        fw.memory.write_page(dst + i * PAGE, sealed[i * PAGE : (i + 1) * PAGE])
    fw.memory.write(iv_at, iv.to_bytes(8, "little"), fw.firmware_key)
    fw.memory.write(at, MDATA_ENTRY.build(entry), fw.firmware_key)
    if metadata:  # the metadata page goes back to the firmware, zeroed
        fw.memory.write_page(src, bytes(PAGE), fw.firmware_key)
        fw.rmp.write(src >> 12, sq0 & ~RL.GPA.mask, sq1)
    else:  # the guest page is gone from the guest: PRE_GUEST/PRE_SWAP -> GUEST_INVALID
        fw.rmp.write(src >> 12, sq0 & ~(_IMM | RL.VALIDATED.mask), sq1)


@command(C.SNP_PAGE_SWAP_IN, "SNP_PAGE_SWAP_IN; firmware-commands.md §6")
def snp_page_swap_in(fw: Firmware, req: Request) -> None:
    """Authenticate and decrypt a swapped-out page back into a guest (or firmware) page and
    restore the RMP attributes its metadata entry recorded."""
    f = req.f
    gctx, dst = f["gctx_paddr"], f["dst_paddr"]
    size, page_type = f["page_size"], f["swap_page_type"]
    src = dst if f["swap_in_place"] else f["src_paddr"]
    # CHECKS
    guest, key, at = _swap_checks(fw, req)
    # PAGES
    metadata = page_type == SWAP_PAGE_METADATA
    dst_state = fw.page_state(dst)
    dq0, dq1 = fw.rmp.read(dst >> 12)
    if metadata:
        dst_ok = dst_state is PageState.FIRMWARE
    else:
        dst_ok = dst_state is PageState.PRE_GUEST and RL.ASID.get(dq0) == guest.asid
    if not dst_ok:
        raise SnpError(S.INVALID_PAGE_STATE, f"cannot swap into a {dst_state.name} page")
    _require_size(dq0, size, "the destination page")
    n = _pages(size)
    if not fw.memory.contains(src, n * PAGE):
        raise SnpError(S.INVALID_ADDRESS, "the source pages are not system memory")
    _check_mdata_page(fw, req, at)
    raw_entry = fw.memory.read(at, MDATA_ENTRY_SIZE, fw.firmware_key)
    entry = MDATA_ENTRY.parse(raw_entry)
    if (
        not entry["valid"]
        or entry["page_size"] != size
        or entry["metadata"] != int(metadata)
        or entry["vmsa"] != int(page_type == SWAP_PAGE_VMSA)
    ):
        raise SnpError(S.INVALID_MDATA_ENTRY, "the metadata entry does not describe this page")
    sealed = b"".join(fw.memory.read(src + i * PAGE, PAGE) for i in range(n))
    try:
        plain = AESGCM(guest.oek).decrypt(
            _nonce(entry["iv"]), sealed + entry["auth_tag"], raw_entry[MDATA_ENTRY_AAD]
        )
    except InvalidTag:
        raise SnpError(S.BAD_MEASUREMENT, "the swapped page fails authentication") from None
    # COMMIT
    page_key = fw.firmware_key if metadata else key
    for i in range(n):
        fw.memory.write_page(dst + i * PAGE, plain[i * PAGE : (i + 1) * PAGE], page_key)
    fw.memory.write(at, MDATA_ENTRY.build({**entry, "valid": 0}), fw.firmware_key)
    if metadata:
        fw.rmp.write(dst >> 12, dq0 | _METADATA_MARKER | gctx, dq1)
        return
    restored = (entry["gpa_pfn"] << RL.GPA.lsb) & RL.GPA.mask
    if entry["vmsa"]:
        restored |= RL.VMSA.mask
    if entry["page_validated"]:
        restored |= RL.VALIDATED.mask
    keep = dq0 & ~(RL.GPA.mask | RL.VMSA.mask | RL.VALIDATED.mask | _IMM)
    fw.rmp.write(dst >> 12, keep | restored, entry["vmpl_perms"])
