"""How a hypervisor drives the firmware to launch an SNP guest.

A :class:`HypervisorPolicy` is data: which VMSA reset state the hypervisor gives its vCPUs,
which sections of the image become which page types, at which GPA the RMP records VMSA
pages, and whether it may use 2 MiB pages.  One driver, :func:`launch`, reads those fields
and performs the launch with the public firmware commands and CPU instructions only, just as
KVM and QEMU do.  The firmware never looks at the policy.
"""

from __future__ import annotations

from collections.abc import Callable

import vmsa as vmsa_pkg
from binlayout.records import field, record
from rmp import PAGE_4K as PAGE
from rmp import RmpResult
from sp_emu.abi.commands import CommandId as C
from sp_emu.abi.status import SnpStatus
from sp_emu.cpuid import build_cpuid_page
from sp_emu.firmware import CommandResult
from sp_emu.images import LaunchPlan, PageType, VmmType
from sp_emu.platform import Platform
from sp_emu.products import C_BIT_POSITION
from sp_emu.state import PlatformStateName

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


@record
class HypervisorPolicy:
    """One hypervisor's half of the launch protocol."""

    name: str
    description: str
    vmsa_profile: vmsa_pkg.VmsaProfile
    vmm_type: VmmType
    """How OVMF's metadata sections map to page types (QEMU, EC2 or GCE conventions)."""
    vmsa_gpa: int | None
    """The GPA the RMP records for every VMSA page (KVM: 0xFFFFFFFFF000); None: the VMSA's
    own guest address (not used by the policies shipped yet)."""
    source: str
    """Where this behaviour comes from (kernel file, VMM source)."""


class LaunchError(Exception):
    """The firmware refused a launch step; ``status`` is what it returned."""

    def __init__(self, what: str, result: CommandResult | RmpResult, detail: str = "") -> None:
        status = result.status if isinstance(result, CommandResult) else result
        name = status.name if hasattr(status, "name") else str(status)
        text = f"{what}: {name}"
        if isinstance(result, CommandResult) and result.detail:
            text += f" ({result.detail})"
        if detail:
            text += f"; {detail}"
        super().__init__(text)
        self.result = result


class HostAllocator:
    """Hands out 4 KiB pages of host DRAM (from 16 MiB up to half of memory)."""

    def __init__(self, platform: Platform, start: int = 16 << 20) -> None:
        self.next = start
        self.limit = platform.config.memory // 2

    def page(self) -> int:
        return self.pages(1)

    def pages(self, count: int) -> int:
        """``count`` consecutive pages; returns the first one's address."""
        if self.next + count * PAGE > self.limit:
            raise MemoryError("the emulated host is out of free DRAM")
        spa = self.next
        self.next += count * PAGE
        return spa


@record(frozen=False)
class LaunchOptions:
    """What the guest owner and VMM choose for one launch."""

    vcpus: int = 1
    cpu_sig: int = 0x00800F12  # EPYC-v4
    sev_features: int = 0x1
    policy: int = 0x30000
    asid: int = 1
    host_data: bytes = bytes(32)
    id_block: bytes | None = None
    id_auth: bytes | None = None
    auth_key_en: bool = False
    vcek_disabled: bool = False
    page_log: bool = True
    """Keep every PAGE_INFO the firmware measured in :attr:`LaunchResult.units` (a launch that
    wants only the digest may skip the log)."""
    vmsa_eips: tuple[int, int] | None = None
    """(BSP EIP, AP EIP) overriding the plan's, e.g. for an SVSM entry point."""


@record(frozen=False)
class MeasuredUnit:
    """One PAGE_INFO that went into the launch digest, as the firmware reported it."""

    index: int
    page_type: int
    gpa: int
    contents: bytes
    digest: bytes

    def __init__(
        self, index: int, page_type: int, gpa: int, contents: bytes, digest: bytes
    ) -> None:
        # Written out (a record's generic constructor is slower): a launch makes one per page.
        self.index = index
        self.page_type = page_type
        self.gpa = gpa
        self.contents = contents
        self.digest = digest


@record(frozen=False)
class LaunchResult:
    """What a launch produced: the guest's context page, ASID and launch digest (read from
    the firmware's guest context), and the VMSAs the hypervisor measured."""

    gctx: int
    asid: int
    digest: bytes
    vmsas: list[bytes] = field(default_factory=list)
    units: list[MeasuredUnit] = field(default_factory=list)
    vmsa_spas: list[int] = field(default_factory=list)
    """Where each vCPU's launch VMSA lives (KVM keeps these; the guest cannot map them)."""
    private_pages: dict[int, int] = field(default_factory=dict)
    """GPA -> SPA of every launched guest page."""


def default_cpuid_entries(cpu_sig: int) -> list[dict[str, int]]:
    """A small CPUID table of the kind QEMU hands to SNP_LAUNCH_UPDATE type CPUID."""
    vendor = {"ebx": 0x68747541, "edx": 0x69746E65, "ecx": 0x444D4163}
    blank = {"ecx_in": 0, "xcr0_in": 0, "xss_in": 0, "eax": 0, "ebx": 0, "ecx": 0, "edx": 0}
    return [
        {**blank, "eax_in": 0x0, **vendor, "eax": 0x10},
        {**blank, "eax_in": 0x1, "eax": cpu_sig, "ecx": 0x80000000},
        {**blank, "eax_in": 0x8000_0000, **vendor, "eax": 0x8000_0028},
        {**blank, "eax_in": 0x8000_001F, "eax": 0x1B, "ebx": C_BIT_POSITION | (1 << 6)},
    ]


class Launcher:
    """Performs one launch on a platform according to a policy."""

    def __init__(self, platform: Platform, policy: HypervisorPolicy) -> None:
        self.p = platform
        self.policy = policy
        self.alloc = HostAllocator(platform)
        self.units: list[MeasuredUnit] = []
        self.vmsa_spas: list[int] = []
        self.private_pages: dict[int, int] = {}

    def _fw(self, cmd: C, **fields: Any) -> CommandResult:
        return self.p.fw.run(cmd, **fields)

    def _must(self, what: str, result: CommandResult) -> None:
        if not result.ok:
            raise LaunchError(what, result)

    def _on_unit(self, page_type: int, gpa: int, contents: bytes, digest: bytes) -> None:
        self.units.append(MeasuredUnit(len(self.units), page_type, gpa, contents, digest))

    # --- the launch, step by step (KVM: snp_launch_start, sev_gmem_post_populate,
    # snp_launch_update_vmsa, snp_launch_finish) -------------------------------------------
    def start(self, opts: LaunchOptions) -> int:
        p = self.p
        if p.fw.state.state is PlatformStateName.UNINIT:
            self._must("SNP_INIT_EX", self._fw(C.SNP_INIT_EX, init_rmp=1))
        gctx = self.alloc.page()
        rc = p.cpu.rmpupdate(gctx, assigned=True, immutable=True)
        if rc is not RmpResult.SUCCESS:
            raise LaunchError("RMPUPDATE of the context page", rc)
        self._must("SNP_GCTX_CREATE", self._fw(C.SNP_GCTX_CREATE, gctx_paddr=gctx))
        self._must(
            "SNP_LAUNCH_START",
            self._fw(C.SNP_LAUNCH_START, gctx_paddr=gctx, policy=opts.policy),
        )
        result = self._fw(C.SNP_ACTIVATE, gctx_paddr=gctx, asid=opts.asid)
        if result.status == SnpStatus.DFFLUSH_REQUIRED:
            # KVM recycles ASIDs with WBINVD on every CPU and SNP_DF_FLUSH, then retries.
            p.cpu.wbinvd()
            self._must("SNP_DF_FLUSH", self._fw(C.SNP_DF_FLUSH))
            result = self._fw(C.SNP_ACTIVATE, gctx_paddr=gctx, asid=opts.asid)
        self._must("SNP_ACTIVATE", result)
        return gctx

    def update_page(
        self, gctx: int, asid: int, gpa: int, page_type: int, data: bytes | None, rmp_gpa: int
    ) -> int:
        """One 4 KiB page: copy it in, make it pre-guest with RMPUPDATE, map it in the nested
        page table (not a VMSA: KVM's launch VMSAs are not guest memory), measure it.
        Returns the page's system address."""
        return self.update_range(gctx, asid, gpa, page_type, data, 1, rmp_gpa)

    def update_range(
        self,
        gctx: int,
        asid: int,
        gpa: int,
        page_type: int,
        data: bytes | None,
        count: int,
        rmp_gpa: int | None = None,
    ) -> int:
        """``count`` consecutive 4 KiB pages at ``gpa`` (KVM_SEV_SNP_LAUNCH_UPDATE of a
        range): the host copies ``data`` into fresh pages, then for each page in turn KVM
        makes it pre-guest with RMPUPDATE (GPA ``rmp_gpa``, default the page's own) and
        issues SNP_LAUNCH_UPDATE for it.  Every page but a VMSA is mapped in the nested page
        table.  Returns the system address of the first page; stops at the first refusal
        (LaunchError), after reclaiming that page as KVM does."""
        cpu = self.p.cpu
        spa = self.alloc.pages(count)
        if data:
            cpu.host_write(spa, data)
        run = self.p.fw.run
        rmpupdate = cpu.rmpupdate
        success, launch_update = RmpResult.SUCCESS, C.SNP_LAUNCH_UPDATE  # (enum lookups cost)
        is_vmsa = page_type == PageType.VMSA
        launched = self.vmsa_spas if is_vmsa else None
        private = self.private_pages
        for i in range(count):
            page = spa + i * PAGE
            page_gpa = gpa + i * PAGE
            owner_gpa = page_gpa if rmp_gpa is None else rmp_gpa
            rc = rmpupdate(page, assigned=True, immutable=True, asid=asid, gpa=owner_gpa)
            if rc is not success:
                raise LaunchError(f"RMPUPDATE of GPA {page_gpa:#x}", rc)
            result = run(launch_update, gctx_paddr=gctx, page_type=page_type, page_paddr=page)
            if result.status:
                self._refused(page, page_gpa, page_type, result)
            if launched is not None:
                launched.append(page)
            else:
                private[page_gpa] = page
        if not is_vmsa:
            cpu.npt_map(asid, gpa, spa, count=count)
        return spa

    def _refused(self, spa: int, gpa: int, page_type: int, result: CommandResult) -> None:
        # KVM: reclaim the page (PRE_GUEST -> GUEST_INVALID) and give it back to the host.
        self._fw(C.SNP_PAGE_RECLAIM, page_paddr=spa)
        self.p.cpu.rmpupdate(spa)
        detail = ""
        if page_type == PageType.CPUID and result.status == SnpStatus.INVALID_PARAM:
            detail = "the firmware wrote back a corrected CPUID page"
        raise LaunchError(f"SNP_LAUNCH_UPDATE at GPA {gpa:#x}", result, detail)

    def run(
        self, plan: LaunchPlan, opts: LaunchOptions, *, image_only: bool = False
    ) -> LaunchResult:
        """The whole launch; with ``image_only``, LAUNCH_START and the plan's first item (the
        firmware image) only, the guest left in the LAUNCH state (sev-snp-measure's
        ``snp:ovmf-hash``)."""
        p = self.p
        observer: Callable[..., None] = self._on_unit
        if opts.page_log:
            p.fw.measure_observers.append(observer)
        pages: list[bytes] = []
        try:
            gctx = self.start(opts)
            cpuid = build_cpuid_page(default_cpuid_entries(opts.cpu_sig))
            for item in plan.items[:1] if image_only else plan.items:
                page_type = int(item.page_type)
                data = cpuid if page_type == PageType.CPUID else item.data
                self.update_range(gctx, opts.asid, item.gpa, page_type, data, item.page_count)
            if not image_only:
                pages = self._launch_vmsas(gctx, plan, opts)
                self.finish(gctx, opts)
        finally:
            if opts.page_log:
                p.fw.measure_observers.remove(observer)
        digest = p.fw.state.guests[gctx].ld
        return LaunchResult(
            gctx, opts.asid, digest, pages, self.units, self.vmsa_spas, self.private_pages
        )

    def _launch_vmsas(self, gctx: int, plan: LaunchPlan, opts: LaunchOptions) -> list[bytes]:
        """Build each vCPU's VMSA and LAUNCH_UPDATE it at the policy's GPA, in vCPU order."""
        bsp_eip, ap_eip = opts.vmsa_eips or (plan.bsp_eip, plan.ap_eip)
        vcpus = vmsa_pkg.build_vcpus(
            self.policy.vmsa_profile,
            vcpus=opts.vcpus,
            sev_features=opts.sev_features,
            cpu_sig=opts.cpu_sig,
            ap_eip=ap_eip,
            bsp_eip=bsp_eip,
        )
        pages = [v.to_bytes() for v in vcpus]
        rmp_gpa = self.policy.vmsa_gpa
        if rmp_gpa is None:
            raise NotImplementedError("VMSAs at real guest addresses")
        for page in pages:
            self.update_page(gctx, opts.asid, rmp_gpa, PageType.VMSA, page, rmp_gpa)
        return pages

    def finish(self, gctx: int, opts: LaunchOptions) -> None:
        fields: dict[str, Any] = {"gctx_paddr": gctx, "host_data": opts.host_data}
        if opts.id_block is not None and opts.id_auth is not None:
            block, auth = self.alloc.page(), self.alloc.page()
            self.p.cpu.host_write(block, opts.id_block)
            self.p.cpu.host_write(auth, opts.id_auth)
            fields |= {"id_block_paddr": block, "id_auth_paddr": auth, "id_block_en": 1}
        fields["auth_key_en"] = int(opts.auth_key_en)
        fields["vcek_disabled"] = int(opts.vcek_disabled)
        self._must("SNP_LAUNCH_FINISH", self._fw(C.SNP_LAUNCH_FINISH, **fields))


def launch(
    platform: Platform, plan: LaunchPlan, policy: HypervisorPolicy, opts: LaunchOptions
) -> LaunchResult:
    """Launch ``plan`` on ``platform`` the way ``policy``'s hypervisor does."""
    return Launcher(platform, policy).run(plan, opts)
