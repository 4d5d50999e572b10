"""Firmware update commands: SNP_DOWNLOAD_FIRMWARE_EX and SNP_COMMIT (firmware-commands.md §6).

The running firmware's version and TCB change when an image is downloaded; the committed
ones (the floor an update may not go below, and what reports call COMMITTED_TCB) change only
on SNP_COMMIT, or on a download with COMMIT set.
"""

from __future__ import annotations

from sp_emu.abi.commands import CommandId as C
from sp_emu.abi.status import SnpStatus as S
from sp_emu.errors import SnpError
from sp_emu.firmware import Firmware, Request, command
from sp_emu.fwimage import FirmwareImage
from sp_emu.tcb import TcbVersion


@command(C.SNP_DOWNLOAD_FIRMWARE_EX, "SNP_DOWNLOAD_FIRMWARE_EX; firmware-commands.md §6")
def snp_download_firmware_ex(fw: Firmware, req: Request) -> None:
    """Install the emulated firmware image at FW_PADDR (live: SNP may stay INIT)."""
    f = req.f
    st = fw.state
    # CHECKS (FW 1.55 order: legacy SEV state, MBZ, FW_PADDR alignment; LENGTH unchecked)
    if st.legacy_sev_state:
        raise SnpError(S.INVALID_PLATFORM_STATE, "legacy SEV must be UNINIT")
    req.check_reserved()
    if f["fw_paddr"] % 32:
        raise SnpError(S.INVALID_ADDRESS, "FW_PADDR must be 32-byte aligned")
    if not fw.memory.contains(f["fw_paddr"], f["fw_len"]):
        raise SnpError(S.INVALID_ADDRESS, "the image is not in system memory")
    try:
        image = FirmwareImage.from_bytes(fw.memory.read(f["fw_paddr"], f["fw_len"]))
    except ValueError as err:
        raise SnpError(S.BAD_SIGNATURE, f"image rejected: {err}") from None
    if image.product != st.product.name:
        raise SnpError(S.UPDATE_FAILED, f"image is for {image.product}, not {st.product.name}")
    turin = st.product.turin_tcb_layout
    if TcbVersion.reserved_bits(image.tcb, turin_layout=turin):
        raise SnpError(S.UPDATE_FAILED, "image TCB has reserved bytes set")
    tcb = TcbVersion.from_int(image.tcb, turin_layout=turin)
    if (image.api_major, image.api_minor, image.build) < st.committed_api:
        raise SnpError(S.BAD_VERSION, "image is older than the committed firmware")
    if not st.committed_tcb.le(tcb):
        raise SnpError(S.BAD_SVN, "image TCB is below the committed TCB")
    # COMMIT
    st.api_major, st.api_minor, st.build = image.api_major, image.api_minor, image.build
    st.current_tcb = tcb
    if f["commit"]:
        _commit(fw)


def _commit(fw: Firmware) -> None:
    st = fw.state
    st.committed_api = (st.api_major, st.api_minor, st.build)
    st.committed_tcb = st.current_tcb


@command(C.SNP_COMMIT, "SNP_COMMIT; firmware-commands.md §6")
def snp_commit(fw: Firmware, req: Request) -> None:
    """Commit the running firmware: its version and TCB become the committed ones."""
    # CHECKS
    if req.f["length"] != 4:
        raise SnpError(S.INVALID_PARAM, "LENGTH must be 4")
    # COMMIT
    _commit(fw)
