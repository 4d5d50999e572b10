"""SNP_VLEK_LOAD: install a cloud provider's VLEK, wrapped by AMD for this chip
(firmware-commands.md §6 SNP_VLEK_LOAD; attestation.md §8.3).

The blob is opened with AES-256-GCM under a key the chip derives from its VCEK seed for the
blob's TCB_VERSION, which must be the TCB the platform reports (SNP_CONFIG's REPORTED_TCB, or
the committed TCB).  FW 1.55 checks no platform state; the VLEK is wiped by SNP_SHUTDOWN.
"""

from __future__ import annotations

from sp_emu.abi.commands import CommandId as C
from sp_emu.abi.status import SnpStatus as S
from sp_emu.abi.vlek import (
    VLEK_HASHSTICK,
    WRAPPED_VLEK,
    WRAPPED_VLEK_AAD,
    WRAPPED_VLEK_VERSION,
)
from sp_emu.errors import SnpError
from sp_emu.firmware import Firmware, Request, command
from sp_emu.kdf import vlek_wrapping_key
from sp_emu.tcb import TcbVersion

SNP_VLEK_LOAD_LENGTH = 0x10


@command(C.SNP_VLEK_LOAD, "SNP_VLEK_LOAD; firmware-commands.md §6")
def snp_vlek_load(fw: Firmware, req: Request) -> None:
    """Unwrap the VLEK at VLEK_WRAPPED_PADDR and make it the platform's VLEK."""
    f = req.f
    st = fw.state
    # CHECKS (buffer)
    if f["length"] != SNP_VLEK_LOAD_LENGTH:
        raise SnpError(S.INVALID_PARAM, "LENGTH must be 0x10")
    if f["vlek_wrapped_version"] != WRAPPED_VLEK_VERSION:
        raise SnpError(S.INVALID_PARAM, "VLEK_WRAPPED_VERSION must be 0")
    req.check_reserved()
    spa = f["vlek_wrapped_paddr"]
    if not fw.memory.contains(spa, WRAPPED_VLEK.size):
        raise SnpError(S.INVALID_ADDRESS, "the wrapped VLEK is not in system memory")
    raw = fw.memory.read(spa, WRAPPED_VLEK.size)
    blob = WRAPPED_VLEK.parse(raw)
    # CHECKS (the blob is for the TCB the platform reports)
    reported = st.effective_reported_tcb().to_int()
    if blob["tcb_version"] != reported:
        wrapped_for = blob["tcb_version"]
        raise SnpError(
            S.BAD_SVN, f"wrapped for TCB {wrapped_for:#018x}, the platform reports {reported:#018x}"
        )
    tcb = TcbVersion.from_int(blob["tcb_version"], turin_layout=st.product.turin_tcb_layout)
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key = vlek_wrapping_key(fw.chip.vcek_seed(tcb))
    try:
        hashstick = AESGCM(key).decrypt(
            blob["iv"], blob["wrapped"] + blob["auth_tag"], raw[WRAPPED_VLEK_AAD]
        )
    except InvalidTag:
        raise SnpError(S.BAD_MEASUREMENT, "the wrapped VLEK does not authenticate") from None
    # COMMIT
    st.vlek = VLEK_HASHSTICK.parse(hashstick)["vlek_seed"]
