"""Guest-context commands: SNP_GCTX_CREATE, SNP_ACTIVATE(_EX), SNP_DECOMMISSION and
SNP_GUEST_STATUS (firmware-commands.md §6)."""

from __future__ import annotations

from rmp import PageState
from rmp import layout as RL
from sp_emu.abi.commands import CommandId as C
from sp_emu.abi.launch import GuestPolicy
from sp_emu.abi.status import SnpStatus as S
from sp_emu.abi.structures import GUEST_STATUS_OUT
from sp_emu.errors import SnpError, require_state
from sp_emu.firmware import Firmware, Request, command, crosses_page
from sp_emu.memory import MemoryKey
from sp_emu.state import Activation, GuestContext, GuestState

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

POLICY_SINGLE_SOCKET = GuestPolicy.SINGLE_SOCKET


def require_page_aligned(value: int, name: str) -> None:
    """INVALID_PARAM when an address field has any of bits 11:0 set."""
    if value & 0xFFF:
        raise SnpError(S.INVALID_PARAM, f"{name} {value:#x} is not page aligned")


@command(C.SNP_GCTX_CREATE, "SNP_GCTX_CREATE; firmware-commands.md §6")
def snp_gctx_create(fw: Firmware, req: Request) -> None:
    """Turn a FIRMWARE page into a guest context page (CONTEXT) holding a new guest in
    state INIT with a fresh memory-encryption key."""
    gctx = req.f["gctx_paddr"]
    # CHECKS
    require_page_aligned(gctx, "GCTX_PADDR")
    fw.require_init()
    # PAGES
    require_state(fw.page_state(gctx), (PageState.FIRMWARE,), "the context page")
    q0, q1 = fw.rmp.read(gctx >> 12)
    if q0 & RL.PAGE_SIZE.mask:
        raise SnpError(S.INVALID_PAGE_SIZE, "the context page is a 2 MiB page")
    if gctx >= fw.dram_limit:
        raise SnpError(S.INVALID_CONFIG, "the context page is not DRAM")
    # COMMIT
    fw.rmp.write(gctx >> 12, q0 | RL.VMSA.mask, q1)
    fw.memory.write_page(gctx, bytes(0x1000), fw.firmware_key)
    st = fw.state
    fw.state.guests[gctx] = GuestContext(
        gctx_paddr=gctx,
        vek=fw.rng.bytes(64),
        launch_tcb=st.committed_tcb.to_int(),
        fw_api=(st.api_major, st.api_minor, st.build),
    )


def _activation_common(
    fw: Firmware, guest: GuestContext, asid: int, *, check_rmp: bool = True
) -> None:
    """Checks SNP_ACTIVATE(_EX) makes once the context is known (AFW
    ``mcmd_activate_common``).  SNP_ACTIVATE_EX skips the RMP check (``check_rmp``) when the
    guest is already active; every other check applies to a re-activation too."""
    st = fw.state
    if guest.state not in (GuestState.LAUNCH, GuestState.RUNNING):
        raise SnpError(S.INVALID_GUEST_STATE, f"guest is {guest.state.name}")
    if check_rmp and 0 < asid < RL.ASID_LIMIT and fw.rmp.asid_pages(asid):
        raise SnpError(S.INVALID_CONFIG, f"RMP pages are already assigned to ASID {asid}")
    if guest.policy & POLICY_SINGLE_SOCKET and st.product.sockets > 1:
        raise SnpError(S.POLICY_FAILURE, "SINGLE_SOCKET guest on a multi-socket platform")
    if not 0 < asid <= st.max_asid:
        raise SnpError(S.INVALID_ASID, f"ASID {asid} is not an SNP ASID")


def _bind(fw: Firmware, guest: GuestContext, asid: int) -> None:
    guest.asid = asid
    guest.activation = (
        Activation.ACTIVE if guest.state is GuestState.RUNNING else Activation.PENDING
    )
    fw.state.asid_owner[asid] = guest.gctx_paddr
    fw.asid_keys[asid] = MemoryKey(f"guest@{guest.gctx_paddr:#x}", guest.vek)


@command(C.SNP_ACTIVATE, "SNP_ACTIVATE; firmware-commands.md §6")
def snp_activate(fw: Firmware, req: Request) -> None:
    """Bind the guest to an ASID and install its key; during LAUNCH the binding stays
    pending until SNP_LAUNCH_FINISH."""
    f = req.f
    # CHECKS
    req.check_reserved()
    require_page_aligned(f["gctx_paddr"], "GCTX_PADDR")
    fw.require_init()
    guest = fw.guest(f["gctx_paddr"])
    asid = f["asid"]
    _activation_common(fw, guest, asid)
    st = fw.state
    if asid in st.asid_owner:
        raise SnpError(S.ASID_OWNED, f"ASID {asid} is already bound to a guest")
    if guest.activation is not Activation.NONE:
        raise SnpError(S.ACTIVE, "guest is already activated with another ASID")
    if asid in st.dirty_asids:
        raise SnpError(S.DFFLUSH_REQUIRED, f"ASID {asid} needs WBINVD and SNP_DF_FLUSH")
    # COMMIT
    _bind(fw, guest, asid)


SNP_ACTIVATE_EX_LENGTH = 0x20


@command(C.SNP_ACTIVATE_EX, "SNP_ACTIVATE_EX; firmware-commands.md §6")
def snp_activate_ex(fw: Firmware, req: Request) -> None:
    """SNP_ACTIVATE naming the APIC IDs (CCXs) the guest may run on."""
    f = req.f
    st = fw.state
    # CHECKS
    if not st.product.activate_ex:
        raise SnpError(S.UNSUPPORTED, "this firmware has no SNP_ACTIVATE_EX")
    if f["length"] != SNP_ACTIVATE_EX_LENGTH:
        # The status for a wrong EX_LEN is not public; INVALID_LENGTH is the natural reading.
        raise SnpError(S.INVALID_LENGTH, "EX_LEN must be 0x20")
    req.check_reserved()
    require_page_aligned(f["gctx_paddr"], "GCTX_PADDR")
    fw.require_init()
    guest = fw.guest(f["gctx_paddr"])
    asid = f["asid"]
    numids = f["numids"]
    if not 1 <= numids <= st.product.max_activate_ex_ids:
        raise SnpError(S.INVALID_PARAM, f"NUMIDS {numids} is out of range")
    if not fw.memory.contains(f["ids_paddr"], 4 * numids):
        raise SnpError(S.INVALID_ADDRESS, "the APIC ID list is not in system memory")
    first = guest.activation is Activation.NONE
    _activation_common(fw, guest, asid, check_rmp=first)
    if first:
        if asid in st.dirty_asids:
            raise SnpError(S.DFFLUSH_REQUIRED, f"ASID {asid} needs WBINVD and SNP_DF_FLUSH")
        if asid in st.asid_owner:
            raise SnpError(S.ASID_OWNED, f"ASID {asid} is not clean on every CCX")
    elif asid != guest.asid:
        raise SnpError(S.ACTIVE, "guest is already activated with another ASID")
    raw = fw.memory.read(f["ids_paddr"], 4 * numids)
    ids = tuple(int.from_bytes(raw[i : i + 4], "little") for i in range(0, len(raw), 4))
    # COMMIT
    if guest.activation is Activation.NONE:
        _bind(fw, guest, asid)
    guest.apic_ids = tuple(sorted(set(guest.apic_ids) | set(ids)))


@command(C.SNP_DECOMMISSION, "SNP_DECOMMISSION; firmware-commands.md §6")
def snp_decommission(fw: Firmware, req: Request) -> None:
    """Destroy the guest: its ASID becomes dirty (WBINVD and DF_FLUSH before reuse) and the
    context page returns to FIRMWARE.  Its pages keep their RMP entries."""
    gctx = req.f["gctx_paddr"]
    # CHECKS
    require_page_aligned(gctx, "GCTX_PADDR")
    fw.require_init()
    guest = fw.guest(gctx)
    # COMMIT
    st = fw.state
    if guest.activation is not Activation.NONE:
        st.dirty_asids.add(guest.asid)
        st.asid_owner.pop(guest.asid, None)
        fw.asid_keys.pop(guest.asid, None)
        if guest.state is GuestState.RUNNING:
            st.wbinvd_done = False  # its cores ran the guest: WBINVD is needed again
    del st.guests[gctx]
    q0, q1 = fw.rmp.read(gctx >> 12)
    fw.rmp.write(gctx >> 12, q0 & ~RL.VMSA.mask, q1)


@command(C.SNP_GUEST_STATUS, "SNP_GUEST_STATUS; firmware-commands.md §6")
def snp_guest_status(fw: Firmware, req: Request) -> dict[str, Any]:
    """Write the guest's policy, ASID, state and VCEK-disabled bit to STATUS_PADDR."""
    f = req.f
    spa = f["status_paddr"]
    # CHECKS (the address checks come before the platform state)
    require_page_aligned(f["gctx_paddr"], "GCTX_PADDR")
    if crosses_page(spa, GUEST_STATUS_OUT.size):
        raise SnpError(S.INVALID_PARAM, "status structure crosses a page")
    fw.require_init()
    guest = fw.guest(f["gctx_paddr"])
    # PAGES
    fw.require_output_page(spa, GUEST_STATUS_OUT.size, "status")
    # OUTPUT
    out = {
        "policy": guest.policy,
        "asid": guest.asid if guest.activation is not Activation.NONE else 0,
        "state": int(guest.state),
        "vcek_disabled": int(guest.vcek_disabled),
    }
    fw.memory.write(spa, GUEST_STATUS_OUT.build(out))
    return out
