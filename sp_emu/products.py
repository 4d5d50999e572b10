"""The EPYC generations the emulator models, and where their firmware differs, as data."""

from __future__ import annotations

from binlayout.records import record
from sp_emu.abi.launch import GuestPolicy
from sp_emu.tcb import TcbVersion

FirmwareVersion = tuple[int, int, int]
"""(API major, API minor, build)."""

REPORT_VERSIONS_BASE: tuple[tuple[FirmwareVersion, int], ...] = (
    ((0, 0, 0), 2),
    ((1, 58, 0), 5),
)
"""ATTESTATION_REPORT VERSION by firmware version, as (first firmware, version) steps; a
product adds its own steps.  Sources, all public, none of them AMD's changelog:

* FW 1.55 writes version 2 (AFW 1.55.25 ``SNP_GMSG_MAX_REPORT_VERSION``).
* Genoa FW 1.55.40 writes version 3 (go-sev-guest issue #162); the first 1.55 build that
  does is not public, so the step is put at the one build observed.
* Milan FW 1.55.31 writes version 4, which has the v3 layout (go-sev-guest PR #158,
  virtee/sev PR #307).
* Version 5 (mitigation vectors) comes with the ABI 1.58 firmware (virtee/sev names
  LAUNCH_MIT_VECTOR "FW 1.58"); Turin 1.58 parts report 5 (AMDESE/AMDSEV issue #285), and
  early Turin firmware reported 2 (virtee/snpguest PR #89), which the base step gives.
"""


C_BIT_POSITION = 51
"""The memory-encryption (C) bit of a physical address on every modelled EPYC: CPUID
Fn8000_001F EBX[5:0].  The firmware ignores it in command-buffer addresses."""


@record
class Product:
    """One EPYC generation: its identity and the firmware behaviour that depends on it."""

    name: str
    family: int
    model: int
    stepping_name: str
    """Stepping as KDS names it in the VCEK certificate's product name, e.g. ``Genoa-B1``."""
    api_major: int
    api_minor: int
    build: int
    tcb: TcbVersion
    """The TCB of the firmware the emulated chip ships with."""
    turin_tcb_layout: bool = False
    max_asid: int = 1006
    sockets: int = 1
    rmpread: bool = False
    """The CPU has the RMPREAD instruction (Zen 5 and later)."""
    vlek: bool = True
    x86_snp_shutdown: bool = True
    rapl_disable: bool = False
    ciphertext_hiding: bool = False
    aes_256_xts: bool = False
    cxl_allow: bool = False
    stepping: int = 1
    tsc_factor: int = 200
    """Secrets-page TSC_FACTOR: the SSC down-spread in thousandths of a percent (Genoa 200)."""
    activate_ex: bool = True
    max_activate_ex_ids: int = 256
    """Largest NUMIDS SNP_ACTIVATE_EX accepts (firmware maximum; value unconfirmed)."""
    report_versions: tuple[tuple[FirmwareVersion, int], ...] = REPORT_VERSIONS_BASE
    """Report VERSION steps (see ``REPORT_VERSIONS_BASE``)."""

    def report_version(self, api_major: int, api_minor: int, build: int = 0) -> int:
        """The ATTESTATION_REPORT VERSION this product's firmware ``api_major.api_minor``
        build ``build`` writes: the last step at or below that firmware version."""
        running = (api_major, api_minor, build)
        version = 2
        for since, value in sorted(self.report_versions):
            if running >= since:
                version = value
        return version

    @property
    def policy_optional_bits(self) -> int:
        """Policy bits 21-25 this firmware accepts (FEATURE_INFO ECX bits 2-5)."""
        bits = 0
        if self.cxl_allow:
            bits |= GuestPolicy.CXL_ALLOW
        if self.aes_256_xts:
            bits |= GuestPolicy.MEM_AES_256_XTS
        if self.rapl_disable:
            bits |= GuestPolicy.RAPL_DIS
        if self.ciphertext_hiding:
            bits |= GuestPolicy.CIPHERTEXT_HIDING
        return int(bits)

    @property
    def init_ex_optional_bits(self) -> int:
        """SNP_INIT_EX word 0 bits beyond INIT_RMP/LIST_PADDR_EN that this firmware knows."""
        bits = 0
        if self.rapl_disable:
            bits |= 1 << 2
        if self.ciphertext_hiding:
            bits |= 1 << 3
        return bits

    @property
    def fms(self) -> int:
        """CPUID Fn0000_0001_EAX of the chip (family/model/stepping), as the secrets page
        records it."""
        base_family = min(self.family, 0xF)
        ext_family = self.family - base_family
        return (
            ext_family << 20
            | (self.model >> 4) << 16
            | base_family << 8
            | (self.model & 0xF) << 4
            | self.stepping
        )


MILAN = Product(
    name="Milan",
    family=0x19,
    model=0x01,
    stepping_name="Milan-B0",
    api_major=1,
    api_minor=55,
    build=21,
    tcb=TcbVersion(bootloader=3, tee=0, snp=8, microcode=115),
    max_asid=509,
    report_versions=(*REPORT_VERSIONS_BASE, ((1, 55, 31), 4)),
)
GENOA = Product(
    name="Genoa",
    family=0x19,
    model=0x11,
    stepping_name="Genoa-B1",
    api_major=1,
    api_minor=55,
    build=25,
    tcb=TcbVersion(bootloader=7, tee=0, snp=15, microcode=62),
    report_versions=(*REPORT_VERSIONS_BASE, ((1, 55, 40), 3)),
)
TURIN = Product(
    name="Turin",
    family=0x1A,
    model=0x02,
    stepping_name="Turin-C1",
    stepping=1,
    api_major=1,
    api_minor=58,
    build=3,
    tcb=TcbVersion(fmc=1, bootloader=1, tee=1, snp=3, microcode=68, turin_layout=True),
    turin_tcb_layout=True,
    rmpread=True,
    rapl_disable=True,
    ciphertext_hiding=True,
    aes_256_xts=True,
)
PRODUCTS: dict[str, Product] = {p.name: p for p in (MILAN, GENOA, TURIN)}
"""Products by name.  Version and TCB figures are representative, not a particular chip's."""
