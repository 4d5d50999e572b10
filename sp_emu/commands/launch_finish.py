"""SNP_LAUNCH_FINISH: check the ID block, record HOST_DATA and move the guest to RUNNING
(firmware-commands.md §6; launch-measurement.md §8)."""

from __future__ import annotations

from sp_emu.abi.commands import CommandId as C
from sp_emu.abi.launch import ALGO_ECDSA_P384_SHA384, ID_AUTH, ID_BLOCK
from sp_emu.abi.status import SnpStatus as S
from sp_emu.commands.guests import require_page_aligned
from sp_emu.digests import sha384
from sp_emu.errors import SnpError
from sp_emu.firmware import Firmware, Request, command
from sp_emu.state import Activation, GuestContext, GuestState


def _read(fw: Firmware, spa: int, length: int, what: str) -> bytes:
    if not fw.memory.contains(spa, length):
        raise SnpError(S.INVALID_ADDRESS, f"the {what} is not in system memory")
    return fw.memory.read(spa, length)


def check_id_block(
    guest: GuestContext, block: bytes, auth: bytes, auth_key_en: bool
) -> tuple[dict[str, object], bytes, bytes]:
    """The ID-block checks in AFW order; returns the block's fields and the ID-key and
    author-key digests (the latter zero without AUTH_KEY_EN)."""
    from sp_emu.amd_keys import BadKey, public_key_from_amd, verify_amd

    fields = ID_BLOCK.parse(block)
    a = ID_AUTH.parse(auth)
    # 1-2. the guest owner's expectations
    if fields["ld"] != guest.ld:
        raise SnpError(S.BAD_MEASUREMENT, "ID block digest differs from the launch digest")
    if fields["policy"] != guest.policy:
        raise SnpError(S.POLICY_FAILURE, "ID block policy differs from the guest's policy")
    # 3. algorithms
    if a["id_key_algo"] != ALGO_ECDSA_P384_SHA384 or (
        auth_key_en and a["auth_key_algo"] != ALGO_ECDSA_P384_SHA384
    ):
        raise SnpError(S.INVALID_PARAM, "ID_KEY_ALGO/AUTH_KEY_ALGO must be 1 (ECDSA P-384)")
    # 4-5. the ID key signs the ID block
    try:
        id_key = public_key_from_amd(a["id_key"])
    except BadKey as err:
        raise SnpError(S.BAD_SIGNATURE, f"ID key: {err}") from None
    if not verify_amd(id_key, a["id_block_sig"], block):
        raise SnpError(S.BAD_SIGNATURE, "the ID block signature does not verify")
    # 6. the ID key's digest
    id_digest = sha384(a["id_key"]).digest()
    author_digest = bytes(48)
    # 7. the author key signs the ID key
    if auth_key_en:
        try:
            author = public_key_from_amd(a["author_key"])
        except BadKey as err:
            raise SnpError(S.BAD_SIGNATURE, f"author key: {err}") from None
        if not verify_amd(author, a["id_key_sig"], a["id_key"]):
            raise SnpError(S.BAD_SIGNATURE, "the ID key signature does not verify")
        author_digest = sha384(a["author_key"]).digest()
    return fields, id_digest, author_digest


@command(C.SNP_LAUNCH_FINISH, "SNP_LAUNCH_FINISH; firmware-commands.md §6")
def snp_launch_finish(fw: Firmware, req: Request) -> None:
    """End the launch: with ID_BLOCK_EN, check the ID block against the launch digest and
    policy and its signatures; store HOST_DATA and the key digests; complete a pending
    activation; the guest becomes RUNNING."""
    f = req.f
    # CHECKS
    require_page_aligned(f["gctx_paddr"], "GCTX_PADDR")
    req.check_reserved()
    fw.require_init()
    guest = fw.guest(f["gctx_paddr"])
    if guest.state is not GuestState.LAUNCH or guest.imi_en:
        raise SnpError(S.INVALID_GUEST_STATE, "the guest is not in a launch it can finish")
    if guest.activation is Activation.NONE:
        raise SnpError(S.INACTIVE, "the guest has no ASID")
    id_fields: dict[str, object] | None = None
    id_digest = author_digest = bytes(48)
    if f["id_block_en"]:
        block = _read(fw, f["id_block_paddr"], ID_BLOCK.size, "ID block")
        auth = _read(fw, f["id_auth_paddr"], ID_AUTH.size, "ID authentication page")
        id_fields, id_digest, author_digest = check_id_block(
            guest, block, auth, bool(f["auth_key_en"])
        )
    # COMMIT
    guest.host_data = bytes(f["host_data"])
    guest.id_block_en = bool(f["id_block_en"])
    # FW 1.55 records AUTH_KEY_EN even without an ID block (launch-measurement.md §8.4).
    guest.author_key_en = bool(f["auth_key_en"])
    guest.vcek_disabled = bool(f["vcek_disabled"])
    if id_fields is not None:
        guest.id_block = bytes(_read(fw, f["id_block_paddr"], ID_BLOCK.size, "ID block"))
        guest.family_id = bytes(id_fields["family_id"])  # type: ignore[call-overload]
        guest.image_id = bytes(id_fields["image_id"])  # type: ignore[call-overload]
        guest.guest_svn = int(id_fields["guest_svn"])  # type: ignore[call-overload]
        guest.id_key_digest = id_digest
        guest.author_key_digest = author_digest
    if guest.activation is Activation.PENDING:
        guest.activation = Activation.ACTIVE
    guest.state = GuestState.RUNNING
