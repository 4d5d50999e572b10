"""SNP_LAUNCH_UPDATE: measure and encrypt launch pages (firmware-commands.md §6;
launch-measurement.md §1-§5)."""

from __future__ import annotations

from rmp import PAGE_2M as _2M
from rmp import PageState
from rmp import layout as RL
from sp_emu import measure
from sp_emu.abi.commands import CommandId as C
from sp_emu.abi.launch import PageType
from sp_emu.abi.status import SnpStatus as S
from sp_emu.commands.guests import require_page_aligned
from sp_emu.cpuid import check_cpuid_page
from sp_emu.errors import SnpError
from sp_emu.firmware import Firmware, Request, command
from sp_emu.memory import MemoryKey, Page
from sp_emu.secrets import apply_vmsa_tweak, secrets_page
from sp_emu.state import Activation, GuestContext, GuestState
from vmsa import FIELD_OFFSETS, SevFeatures

NORMAL, VMSA, ZERO = PageType.NORMAL, PageType.VMSA, PageType.ZERO
UNMEASURED, SECRETS, CPUID = PageType.UNMEASURED, PageType.SECRETS, PageType.CPUID
_4K_ONLY = (VMSA, SECRETS, CPUID)
_MEASURED_CONTENTS = (NORMAL, VMSA)
_SIZE = RL.PAGE_SIZE.mask
_GPA = RL.GPA.mask
_IMM = RL.IMMUTABLE.mask | RL.LOCK.mask
_VALIDATED = RL.VALIDATED.mask
_VMSA = RL.VMSA.mask
_ZERO_PAGE = bytes(0x1000)
_ASID_LSB, _ASID_MAX = RL.ASID.lsb, (1 << RL.ASID.width) - 1
_PRE_GUEST = PageState.PRE_GUEST
_LAUNCH, _INACTIVE = GuestState.LAUNCH, Activation.NONE

# VMSA fields the firmware treats specially (launch-measurement.md §3), from the VMSA layout.
VMSA_TSC_SCALE = FIELD_OFFSETS["guest_tsc_scale"][0]  # with GUEST_TSC_OFFSET: hashed as zero
VMSA_TSC_OFFSET = FIELD_OFFSETS["guest_tsc_offset"][0]
VMSA_TWEAK = FIELD_OFFSETS["reg_prot_nonce"][0]
VMSA_SEV_FEATURES = FIELD_OFFSETS["sev_features"][0]
VMSA_ES_SLOT = FIELD_OFFSETS["reserved_0x380"][0]  # SEV-ES CRC slot: 0, all-ones after hashing


def _vmsa_contents(page: Page) -> bytes:
    masked = bytearray(page)
    masked[VMSA_TSC_SCALE : VMSA_TSC_SCALE + 16] = bytes(16)
    return measure.content_hash(masked)


def _vmsa_fixup(fw: Firmware, guest: GuestContext, page: Page) -> bytes:
    """What the firmware writes into a VMSA after hashing it (launch-measurement.md §3): the
    register-protection tweak, then a SecureTSC guest's TSC scale and offset (AFW order; a
    VMSA without SecureTSC keeps the values the host wrote), then the SEV-ES bookkeeping."""
    out = bytearray(page)
    features = int.from_bytes(out[VMSA_SEV_FEATURES : VMSA_SEV_FEATURES + 8], "little")
    if features & SevFeatures.VMSA_REG_PROT:
        tweak = fw.rng.bytes(8)
        out[VMSA_TWEAK : VMSA_TWEAK + 8] = tweak
        apply_vmsa_tweak(out, int.from_bytes(tweak, "little"))
    if features & SevFeatures.SECURE_TSC:
        from sp_emu.securetsc import guest_tsc_scale  # (only SecureTSC guests need it)

        scale = guest_tsc_scale(guest.desired_tsc_freq, fw.state.product)
        out[VMSA_TSC_SCALE : VMSA_TSC_SCALE + 8] = scale.to_bytes(8, "little")
        out[VMSA_TSC_OFFSET : VMSA_TSC_OFFSET + 8] = bytes(8)
    out[VMSA_ES_SLOT : VMSA_ES_SLOT + 8] = bytes(8)
    out[VMSA_ES_SLOT + 8 : VMSA_ES_SLOT + 16] = b"\xff" * 8
    return bytes(out)


def _checks(fw: Firmware, req: Request) -> tuple[GuestContext, int, int, int]:
    """The checks of AFW ``snp_mcmd_launch_update`` in their order; returns the guest, the
    page's first quadword and second quadword, and its page count."""
    f = req.f
    spa = f["page_paddr"]
    page_type = f["page_type"]
    gctx = f["gctx_paddr"]
    # 1. reserved fields and address low bits
    if req.raw is not None:
        req.check_reserved()
    if (gctx | spa) & 0xFFF:
        require_page_aligned(gctx, "GCTX_PADDR")
        require_page_aligned(spa, "PAGE_PADDR")
    # 2-3. platform state, guest context
    fw.require_init()
    guest = fw.guest(gctx)
    # 4. the page must be PRE_GUEST
    state, q0, q1 = fw.page_entry(spa)
    if state is not _PRE_GUEST:
        raise SnpError(S.INVALID_PAGE_STATE, f"the page is {state.name}, not PRE_GUEST")
    # 5-6. page size
    is_2m = bool(q0 & _SIZE)
    if is_2m != bool(f["page_size"]):
        raise SnpError(S.INVALID_PAGE_SIZE, "RMP page size differs from PAGE_SIZE")
    if is_2m and spa % _2M:
        raise SnpError(S.INVALID_ADDRESS, "a 2 MiB page must be 2 MiB aligned")
    # 7. page type
    if not NORMAL <= page_type <= CPUID:
        raise SnpError(S.INVALID_PARAM, f"page type {page_type} is reserved")
    if is_2m and page_type in _4K_ONLY:
        raise SnpError(S.INVALID_PAGE_SIZE, "VMSA, SECRETS and CPUID pages must be 4 KiB")
    # 8-10. guest state, activation, ownership
    if guest.state is not _LAUNCH:
        raise SnpError(S.INVALID_GUEST_STATE, f"guest is {guest.state.name}, not LAUNCH")
    if guest.activation is _INACTIVE:
        raise SnpError(S.INACTIVE, "the guest has no ASID yet")
    if (q0 >> _ASID_LSB) & _ASID_MAX != guest.asid:
        raise SnpError(S.INVALID_PAGE_OWNER, "the page is assigned to another ASID")
    # 11. IMI guests measure only IMI pages
    if guest.imi_en and not f["imi_page"]:
        raise SnpError(S.INVALID_PARAM, "an IMI guest's pages must set IMI_PAGE")
    return guest, q0, q1, 512 if is_2m else 1


@command(C.SNP_LAUNCH_UPDATE, "SNP_LAUNCH_UPDATE; firmware-commands.md §6")
def snp_launch_update(fw: Firmware, req: Request) -> None:
    """Measure one 4 KiB or 2 MiB pre-guest page into the launch digest (one PAGE_INFO per
    4 KiB unit, GPA from the RMP), write what its type calls for, encrypt it with the guest's
    key, and make it a validated guest page (GUEST_VALID)."""
    f = req.f
    guest, q0, q1, units = _checks(fw, req)
    spa = f["page_paddr"]
    page_type = f["page_type"]
    key: MemoryKey = fw.asid_keys[guest.asid]
    # 12. the CPUID page's contents
    if page_type == CPUID:
        result = check_cpuid_page(bytes(fw.memory.page_bytes(spa)))
        if not result.ok:
            corrected = result.corrected

            def write_back() -> None:
                if result.header_ok:
                    fw.memory.write_page(spa, corrected)

            raise SnpError(S.INVALID_PARAM, "; ".join(result.problems), effect=write_back)
    # MEASURE
    perms = (f["vmpl1_perms"], f["vmpl2_perms"], f["vmpl3_perms"])
    imi = bool(f["imi_page"])
    base_gpa = q0 & _GPA
    memory = fw.memory
    if units == 1:
        pages = [spa]
        if page_type == NORMAL:
            contents = [fw.content_hasher.hash_one(memory.page_bytes(spa))]
        elif page_type == VMSA:
            contents = [_vmsa_contents(memory.page_bytes(spa))]
        else:
            contents = [measure.ZERO_CONTENTS]
    else:
        pages = list(range(spa, spa + (units << 12), 0x1000))
        if page_type in _MEASURED_CONTENTS:  # NORMAL (a 2 MiB VMSA page was refused)
            contents = fw.content_hasher.hash_all(list(map(memory.page_bytes, pages)))
        else:
            contents = [measure.ZERO_CONTENTS] * units
    digests = measure.extend_run(guest.ld, contents, page_type, base_gpa, imi, perms)
    imd = guest.imd
    if imi:
        imd = measure.extend_run(imd, contents, page_type, base_gpa, imi_page=True, perms=perms)[-1]
    for observer in fw.measure_observers:
        for i in range(units):
            observer(page_type, base_gpa + (i << 12), contents[i], digests[i])
    # PAGES: write what the type calls for, then encrypt under the guest's key
    if page_type == ZERO:
        for p in pages:
            fw.memory.write_page(p, _ZERO_PAGE, key)
    elif page_type == SECRETS:
        fw.memory.write_page(spa, secrets_page(guest, fw.state.product), key)
    elif page_type == VMSA:
        fw.memory.write_page(spa, _vmsa_fixup(fw, guest, fw.memory.page_bytes(spa)), key)
    elif units == 1:
        memory.reencrypt(spa, key)
    else:
        memory.reencrypt_pages(pages, key)
    new_q0 = (q0 | _VALIDATED) & ~_IMM
    if page_type == VMSA:
        new_q0 |= _VMSA
    new_q1 = (q1 & 0xFF) | perms[0] << 8 | perms[1] << 16 | perms[2] << 24
    fw.rmp.write(spa >> 12, new_q0, new_q1)
    # COMMIT
    guest.ld = digests[-1]
    guest.imd = imd
