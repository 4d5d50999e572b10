"""Debug commands: SNP_DBG_DECRYPT and SNP_DBG_ENCRYPT, allowed only for guests whose policy
has DEBUG set (firmware-commands.md §6)."""

from __future__ import annotations

from rmp import PageState
from rmp import layout as RL
from sp_emu.abi.commands import CommandId as C
from sp_emu.abi.launch import GuestPolicy
from sp_emu.abi.status import SnpStatus as S
from sp_emu.commands.guests import require_page_aligned
from sp_emu.errors import SnpError, require_state
from sp_emu.firmware import Firmware, Request, command
from sp_emu.memory import MemoryKey
from sp_emu.state import Activation, GuestContext

POLICY_DEBUG = GuestPolicy.DEBUG
_GUEST_PAGES = (
    PageState.PRE_GUEST,
    PageState.PRE_SWAP,
    PageState.GUEST_INVALID,
    PageState.GUEST_VALID,
)


def _guest_page(fw: Firmware, spa: int, allowed: tuple[PageState, ...], what: str) -> int:
    """The RMP entry (q0) governing a guest page named by a debug command.  A 4 KiB entry
    with ASID 0 inside a 2 MiB guest page defers to the 2 MiB-aligned entry (AFW)."""
    fw.page_state(spa)  # address checks
    pfn = fw.rmp.effective_pfn(spa >> 12)
    state = fw.rmp.state(pfn)
    require_state(state, allowed, what)
    return fw.rmp.read_q0(pfn)


def _owner_and_policy(fw: Firmware, guest: GuestContext, q0: int) -> MemoryKey:
    if RL.ASID.get(q0) != guest.asid:
        raise SnpError(S.INVALID_PAGE_OWNER, "the page belongs to another ASID")
    if not guest.policy & POLICY_DEBUG:
        raise SnpError(S.POLICY_FAILURE, "the guest's policy does not allow debugging")
    key = fw.asid_keys.get(guest.asid) if guest.activation is not Activation.NONE else None
    if key is None:
        raise SnpError(S.INACTIVE, "the guest is not activated")
    return key


@command(C.SNP_DBG_DECRYPT, "SNP_DBG_DECRYPT; firmware-commands.md §6")
def snp_dbg_decrypt(fw: Firmware, req: Request) -> None:
    """Decrypt one 4 KiB guest page (SRC) into a FIRMWARE page (DST)."""
    f = req.f
    # CHECKS (AFW order: addresses first, then the platform state)
    for name in ("gctx_paddr", "src_paddr", "dst_paddr"):
        require_page_aligned(f[name], name.upper())
    fw.require_init()
    guest = fw.guest(f["gctx_paddr"])
    # PAGES
    q0 = _guest_page(fw, f["src_paddr"], _GUEST_PAGES, "the source page")
    require_state(fw.page_state(f["dst_paddr"]), (PageState.FIRMWARE,), "the destination page")
    key = _owner_and_policy(fw, guest, q0)
    # COMMIT
    plain = fw.memory.read(f["src_paddr"], 0x1000, key)
    fw.memory.write_page(f["dst_paddr"], plain)


@command(C.SNP_DBG_ENCRYPT, "SNP_DBG_ENCRYPT; firmware-commands.md §6")
def snp_dbg_encrypt(fw: Firmware, req: Request) -> None:
    """Encrypt one 4 KiB host page (SRC) into an immutable guest page (DST) under the
    guest's key; only during launch (DST PRE_GUEST or PRE_SWAP)."""
    f = req.f
    # CHECKS (AFW order: the platform state first, then addresses)
    fw.require_init()
    for name in ("gctx_paddr", "src_paddr", "dst_paddr"):
        require_page_aligned(f[name], name.upper())
    guest = fw.guest(f["gctx_paddr"])
    # PAGES
    q0 = _guest_page(
        fw, f["dst_paddr"], (PageState.PRE_GUEST, PageState.PRE_SWAP), "the destination page"
    )
    key = _owner_and_policy(fw, guest, q0)
    if not fw.memory.contains(f["src_paddr"], 0x1000):
        raise SnpError(S.INVALID_ADDRESS, "the source page is not system memory")
    # COMMIT
    plain = fw.memory.read(f["src_paddr"], 0x1000)
    fw.memory.write_page(f["dst_paddr"], plain, key)
