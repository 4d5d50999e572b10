"""MSG_KEY_REQ key derivation (attestation.md §8.3).

The derived key is ``nist_kdf(root, "gmsg-keyreq", mix_data)``:

* KDF: NIST SP 800-108 counter mode with HMAC-SHA-256 as the PRF.  Block ``i`` (from 1) is
  ``HMAC(root, LE32(i) || label || 0x00 || context || LE32(L))`` with ``L`` the output length
  in bits; the output is the first ``L/8`` bytes of the blocks (AFW ``nist_kdf.c``).
* root: the guest's VMRK (ROOT_KEY_SELECT = 1); else per KEY_SEL the loaded VLEK's secret or
  the VCEK seed -- that of the REPORTED_TCB (the VCEK the firmware signs reports with, which
  SNP_CONFIG re-derives), or of the requested TCB_VERSION when GUEST_FIELD_SELECT bit 5 is set.
  The emulator's VCEK seed is ``EmulatedChip.vcek_seed(tcb)`` (48 bytes); a loaded VLEK's
  secret is the bytes ``PlatformState.vlek`` holds.
* context: the 0xA8-byte mix data (``KEY_MIX_DATA``): the selected guest fields, with VMPL,
  HOST_DATA and the ID/author key digest always included.  MEASUREMENT contributes only its
  first 32 bytes (the FW 1.55 field is 32 bytes).

Everything is deterministic: the same chip seed, guest and request give the same key.
"""

from __future__ import annotations

from sp_emu.abi.messages import (
    GFS_FAMILY_ID,
    GFS_GUEST_SVN,
    GFS_IMAGE_ID,
    GFS_MEASUREMENT,
    GFS_POLICY,
    GFS_TCB_VERSION,
    IDBLOCK_KEY_AUTHOR,
    IDBLOCK_KEY_ID,
    IDBLOCK_KEY_NONE,
    KEY_MIX_DATA,
    KEY_SEL_VCEK,
    KEY_SEL_VLEK,
    KEY_SEL_VLEK_OR_VCEK,
)
from sp_emu.chip import EmulatedChip
from sp_emu.kdf import nist_kdf
from sp_emu.state import GuestContext, PlatformState
from sp_emu.tcb import TcbVersion

KEY_REQ_LABEL = b"gmsg-keyreq"
DERIVED_KEY_LEN = 32


def idblock_key_select(guest: GuestContext) -> int:
    """Which ID-block key digest the mix data carries: the author key's when AUTHOR_KEY_EN,
    else the ID key's when an ID block was given, else none."""
    if guest.author_key_en:
        return IDBLOCK_KEY_AUTHOR
    if guest.id_block_en:
        return IDBLOCK_KEY_ID
    return IDBLOCK_KEY_NONE


def key_mix_data(
    guest: GuestContext,
    *,
    root_key_select: int,
    guest_field_select: int,
    vmpl: int,
    guest_svn: int = 0,
    tcb_version: int = 0,
) -> bytes:
    """The 0xA8-byte KDF context for a MSG_KEY_REQ that passed its checks."""
    gfs = guest_field_select
    select = idblock_key_select(guest)
    digest = {
        IDBLOCK_KEY_ID: guest.id_key_digest,
        IDBLOCK_KEY_AUTHOR: guest.author_key_digest,
    }.get(select, bytes(32))
    return KEY_MIX_DATA.build(
        {
            "root_key_select": root_key_select,
            "idblock_key_select": select,
            "guest_field_select": gfs,
            "vmpl": vmpl,
            "guest_svn": guest_svn if gfs & GFS_GUEST_SVN else 0,
            "tcb_version": tcb_version if gfs & GFS_TCB_VERSION else 0,
            "guest_policy": guest.policy if gfs & GFS_POLICY else 0,
            "image_id": guest.image_id if gfs & GFS_IMAGE_ID else bytes(16),
            "family_id": guest.family_id if gfs & GFS_FAMILY_ID else bytes(16),
            "measurement": guest.ld[:32] if gfs & GFS_MEASUREMENT else bytes(32),
            "host_data": guest.host_data,
            "idblock_key": digest[:32],
        }
    )


def key_root(
    state: PlatformState,
    chip: EmulatedChip,
    guest: GuestContext,
    *,
    root_key_select: int,
    key_sel: int,
    tcb: TcbVersion | None = None,
) -> bytes | None:
    """The root secret for a MSG_KEY_REQ, or None when KEY_SEL names no available key.

    ``tcb`` is the requested TCB_VERSION when GUEST_FIELD_SELECT bit 5 is set (already
    checked against the committed TCB); otherwise the VCEK is that of the REPORTED_TCB.
    """
    if root_key_select:
        return guest.vmrk
    vcek = chip.vcek_seed(tcb if tcb is not None else state.effective_reported_tcb())
    if key_sel == KEY_SEL_VLEK_OR_VCEK:
        return state.vlek if state.vlek is not None else vcek
    if key_sel == KEY_SEL_VCEK:
        return vcek
    if key_sel == KEY_SEL_VLEK:
        return state.vlek
    return None


def derive_key(root: bytes, mix_data: bytes) -> bytes:
    """The 32-byte key MSG_KEY_RSP returns."""
    return nist_kdf(root, KEY_REQ_LABEL, mix_data, DERIVED_KEY_LEN)
