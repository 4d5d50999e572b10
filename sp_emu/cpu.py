"""The CPU as hypervisor and guests see it: SNP instructions and memory accesses, with the
RMP checks the hardware makes, on one :class:`~sp_emu.platform.Platform`."""

from __future__ import annotations

import rmp
from binlayout.records import record
from rmp import Access, FaultVector, RmpCheck, RmpFault, RmpResult
from sp_emu.memory import MemoryKey

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sp_emu.guest.vmrun import ExitHandler, RunningVcpu, Vmcb
    from sp_emu.platform import Platform


class VmrunFailed(Exception):
    """VMRUN failed: no guest can run on this ASID (no key is installed), or (the subclass
    :class:`sp_emu.guest.vmrun.VmrunError`) a check on the VMSA page failed."""


@record
class GuestCpu:
    """A vCPU of the guest on ``asid``, running at ``vmpl``."""

    asid: int
    vmpl: int = 0


class Cpu:
    """Instructions and accesses; host ones run with ASID 0."""

    def __init__(self, platform: Platform) -> None:
        self._p = platform

    # --- host --------------------------------------------------------------------------------
    def rmpupdate(
        self,
        spa: int,
        *,
        assigned: bool = False,
        page_size: int = 0,
        immutable: bool = False,
        asid: int = 0,
        gpa: int = 0,
    ) -> RmpResult:
        """RMPUPDATE from the hypervisor (see :func:`rmp.rmpupdate`)."""
        if self._p.recording is not None:
            self._p.record(
                {
                    "op": "rmpupdate",
                    "spa": spa,
                    "assigned": bool(assigned),
                    "page_size": "2M" if page_size else "4K",
                    "immutable": bool(immutable),
                    "asid": asid,
                    "gpa": gpa,
                }
            )
        return rmp.rmpupdate(
            self._p.rmp,
            spa,
            gpa=gpa,
            assigned=assigned,
            page_size=page_size,
            immutable=immutable,
            asid=asid,
        )

    def psmash(self, spa: int) -> RmpResult:
        """PSMASH from the hypervisor."""
        if self._p.recording is not None:
            self._p.record({"op": "psmash", "spa": spa})
        return rmp.psmash(self._p.rmp, spa)

    def rmpread(self, spa: int) -> tuple[RmpResult, rmp.RmpReadout | None]:
        """RMPREAD from the hypervisor (the instruction exists from Zen 5; the emulator offers
        it on every product so that tools can inspect the RMP)."""
        if self._p.recording is not None:
            self._p.record({"op": "rmpread", "spa": spa})
        return rmp.rmpread(self._p.rmp, spa)

    def wbinvd(self) -> None:
        """WBINVD on every core: lets SNP_DF_FLUSH proceed."""
        if self._p.recording is not None:
            self._p.record({"op": "wbinvd"})
        self._p.fw.state.wbinvd_done = True

    def host_write(self, spa: int, data: bytes) -> None:
        """A hypervisor write: raises RmpFault (#PF) if a page written is assigned."""
        if self._p.recording is not None:
            self._p.record({"op": "write", "spa": spa, "data": bytes(data).hex()})
        end = spa + len(data)
        page = spa & ~0xFFF
        self._p.memory._check(spa, len(data))
        table = self._p.rmp
        if table.any_assigned(page >> 12, ((end + 0xFFF) >> 12) - (page >> 12)):
            while page < end:  # find the page that faults
                rmp.check_host_write(table, page)
                page += 0x1000
        self._p.memory.write(spa, data)

    def host_read(self, spa: int, length: int) -> bytes:
        """A hypervisor read: a guest's private page reads as ciphertext."""
        if self._p.recording is not None:
            self._p.record({"op": "read", "spa": spa, "length": length})
        return self._p.memory.read(spa, length)

    def npt_map(self, asid: int, gpa: int, spa: int, page_size: int = 0, count: int = 1) -> None:
        """Map guest ``asid``'s ``gpa`` onto ``spa`` in its nested page table."""
        if self._p.recording is not None:
            self._p.record(
                {
                    "op": "npt_map",
                    "asid": asid,
                    "gpa": gpa,
                    "spa": spa,
                    "page_size": "2M" if page_size else "4K",
                    "count": count,
                }
            )
        self._p.npt.map(asid, gpa, spa, page_size, count)

    def vmrun(self, vmcb: Vmcb, exit_handler: ExitHandler | None = None) -> RunningVcpu:
        """VMRUN of an SNP vCPU from the VMSA page ``vmcb.vmsa_pa`` (see
        :mod:`sp_emu.guest.vmrun`); raises VmrunError naming the failed check.  Not recorded:
        the trace format has no VMRUN step."""
        from sp_emu.guest.vmrun import vmrun

        return vmrun(self._p, vmcb, exit_handler)

    # --- guest -------------------------------------------------------------------------------
    def _key(self, asid: int) -> MemoryKey:
        key = self._p.fw.asid_keys.get(asid)
        if key is None:
            raise VmrunFailed(f"no activated guest runs on ASID {asid}")
        return key

    def _guest_spa(self, vcpu: GuestCpu, gpa: int) -> int:
        """Where ``vcpu``'s guest reaches ``gpa``, for an instruction it executes (VmrunFailed
        when no guest runs on its ASID)."""
        self._key(vcpu.asid)
        return self._translate(vcpu.asid, gpa)[0]

    def _translate(self, asid: int, gpa: int) -> tuple[int, int]:
        t = self._p.npt.translate(asid, gpa)
        if t is None:
            # Not an RMP fault: the nested page table has no mapping (error code P=0).
            raise RmpFault(FaultVector.NPF, RmpCheck.NOT_COVERED, gpa >> 12, 0)
        return t.spa, t.page_size

    def pvalidate(
        self, vcpu: GuestCpu, gpa: int, *, page_size: int = 0, validate: bool = True
    ) -> rmp.PvalidateOutcome:
        """PVALIDATE by the guest (raises RmpFault on a fault)."""
        if self._p.recording is not None:
            self._p.record(
                {
                    "op": "pvalidate",
                    "asid": vcpu.asid,
                    "vmpl": vcpu.vmpl,
                    "gpa": gpa,
                    "page_size": "2M" if page_size else "4K",
                    "validate": bool(validate),
                }
            )
        spa = self._guest_spa(vcpu, gpa)
        return rmp.pvalidate(
            self._p.rmp,
            spa,
            gpa=gpa,
            asid=vcpu.asid,
            vmpl=vcpu.vmpl,
            page_size=page_size,
            validate=validate,
        )

    def rmpadjust(
        self,
        vcpu: GuestCpu,
        gpa: int,
        *,
        page_size: int = 0,
        target_vmpl: int,
        perms: int,
        vmsa: bool = False,
    ) -> RmpResult:
        """RMPADJUST by the guest (raises RmpFault on a fault)."""
        if self._p.recording is not None:
            self._p.record(
                {
                    "op": "rmpadjust",
                    "asid": vcpu.asid,
                    "vmpl": vcpu.vmpl,
                    "gpa": gpa,
                    "page_size": "2M" if page_size else "4K",
                    "target_vmpl": target_vmpl,
                    "perms": perms,
                    "vmsa": bool(vmsa),
                }
            )
        spa = self._guest_spa(vcpu, gpa)
        return rmp.rmpadjust(
            self._p.rmp,
            spa,
            gpa=gpa,
            asid=vcpu.asid,
            vmpl=vcpu.vmpl,
            page_size=page_size,
            target_vmpl=target_vmpl,
            perms=perms,
            vmsa=vmsa,
        )

    def _guest_pages(
        self, vcpu: GuestCpu, gpa: int, length: int, access: Access, private: bool
    ) -> list[tuple[int, int, int]]:
        """Translate and RMP-check every page an access touches, before any byte moves."""
        chunks = []
        pos = 0
        while pos < length:
            g = gpa + pos
            n = min(length - pos, 0x1000 - (g & 0xFFF))
            spa, npt_size = self._translate(vcpu.asid, g)
            rmp.check_guest_access(
                self._p.rmp,
                spa,
                gpa=g,
                asid=vcpu.asid,
                vmpl=vcpu.vmpl,
                access=access,
                private=private,
                npt_page_size=npt_size,
            )
            chunks.append((spa, pos, n))
            pos += n
        return chunks

    def guest_write(self, vcpu: GuestCpu, gpa: int, data: bytes, *, private: bool = True) -> None:
        """A guest write (C-bit per ``private``); raises RmpFault on an RMP violation."""
        if self._p.recording is not None:
            self._p.record(
                {
                    "op": "guest_write",
                    "asid": vcpu.asid,
                    "vmpl": vcpu.vmpl,
                    "gpa": gpa,
                    "data": bytes(data).hex(),
                    "private": private,
                }
            )
        key: MemoryKey | None = self._key(vcpu.asid)  # the guest must be running
        if not private:
            key = None  # a shared access goes through no key
        for spa, pos, n in self._guest_pages(vcpu, gpa, len(data), Access.WRITE, private):
            self._p.memory.write(spa, data[pos : pos + n], key)

    def guest_read(self, vcpu: GuestCpu, gpa: int, length: int, *, private: bool = True) -> bytes:
        """A guest read (C-bit per ``private``); raises RmpFault on an RMP violation."""
        if self._p.recording is not None:
            self._p.record(
                {
                    "op": "guest_read",
                    "asid": vcpu.asid,
                    "vmpl": vcpu.vmpl,
                    "gpa": gpa,
                    "length": length,
                    "private": private,
                }
            )
        key: MemoryKey | None = self._key(vcpu.asid)  # the guest must be running
        if not private:
            key = None  # a shared access goes through no key
        out = bytearray()
        for spa, _pos, n in self._guest_pages(vcpu, gpa, length, Access.READ, private):
            out += self._p.memory.read(spa, n, key)
        return bytes(out)

    def guest_fetch(self, vcpu: GuestCpu, gpa: int, length: int, *, user: bool = False) -> bytes:
        """An instruction fetch by the guest at CPL3 (``user``) or CPL0-2: always private (SEV
        fetches code with the C-bit set whatever the page tables say) and needs the VMPL's
        execute permission for that CPL; raises RmpFault (#NPF with the fetch bit) on an RMP
        violation.  Not recorded: the trace format has no fetch step."""
        access = Access.EXECUTE_USER if user else Access.EXECUTE_SUPERVISOR
        key = self._key(vcpu.asid)
        out = bytearray()
        for spa, _pos, n in self._guest_pages(vcpu, gpa, length, access, True):
            out += self._p.memory.read(spa, n, key)
        return bytes(out)
