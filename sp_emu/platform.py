"""A whole emulated machine: system memory, the RMP, nested page tables, the CPU's SNP
instructions and the AMD-SP firmware, wired together.

Everything a hypervisor or guest can do goes through :class:`Platform` (``platform.fw`` for
firmware commands, ``platform.cpu`` for instructions and memory accesses), and can be recorded
as a replayable trace (``platform.start_recording()``).
"""

from __future__ import annotations

import rmp
from binlayout.records import record
from sp_emu.abi.commands import CommandId
from sp_emu.chip import DEFAULT_SEED
from sp_emu.digests import sha384
from sp_emu.firmware import CommandResult, Firmware
from sp_emu.memory import PhysicalMemory
from sp_emu.npt import NestedPageTables
from sp_emu.products import PRODUCTS, Product
from sp_emu.rng import DeterministicRandom
from sp_emu.state import PlatformState
from sp_emu.tcb import TcbVersion

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MIB = 1 << 20
DEFAULT_MEMORY = 4 << 30
LEGACY_HOLE = (0xA0000, 0x60000)
"""The VGA/option-ROM window below 1 MiB: not DRAM, so RMP initialisation makes it HV_FIXED."""
IOMMU_PAGES = 16


@record
class PlatformConfig:
    """How the machine is built (the trace format's ``platform`` step)."""

    memory: int = DEFAULT_MEMORY
    product: str = "Genoa"
    smt: bool = True
    max_asid: int | None = None
    seed: bytes = DEFAULT_SEED
    api_major: int | None = None
    api_minor: int | None = None
    build: int | None = None


@record
class MemoryMap:
    """Where the platform keeps its own memory: the RMP and the IOMMU pages, at the top."""

    size: int
    rmp_base: int
    rmp_end: int
    iommu_base: int

    @classmethod
    def for_size(cls, size: int) -> MemoryMap:
        if size % (2 * MIB) or size < 64 * MIB:
            raise ValueError("memory must be a multiple of 2 MiB and at least 64 MiB")
        rmp_bytes = (size >> 12) * 16 + 0x4000  # entries plus the 16 KiB bookkeeping area
        rmp_size = -(-rmp_bytes // MIB) * MIB
        rmp_base = (size - rmp_size) & ~(MIB - 1)
        return cls(size, rmp_base, rmp_base + rmp_size - 1, rmp_base - MIB)


class Platform:
    """An AMD EPYC host with SNP: build one, then drive it as a hypervisor would."""

    def __init__(self, config: PlatformConfig | None = None, **overrides: Any) -> None:
        if config is None:
            config = PlatformConfig(**overrides)
        elif overrides:
            raise TypeError("pass either a PlatformConfig or keyword overrides")
        product = PRODUCTS.get(config.product)
        if product is None:
            raise ValueError(f"unknown product {config.product!r} (known: {', '.join(PRODUCTS)})")
        self.config = config
        self.product: Product = product
        self.map = MemoryMap.for_size(config.memory)
        self.memory = PhysicalMemory(config.memory)
        self.rmp = rmp.RmpTable(config.memory >> 12)
        self.npt = NestedPageTables()
        seed = sha384(b"sp-emu platform seed" + config.seed).digest()
        tcb = product.tcb
        state = PlatformState(
            product=product,
            api_major=product.api_major if config.api_major is None else config.api_major,
            api_minor=product.api_minor if config.api_minor is None else config.api_minor,
            build=product.build if config.build is None else config.build,
            current_tcb=tcb,
            committed_tcb=tcb,
            committed_api=(0, 0, 0),
            max_asid=product.max_asid if config.max_asid is None else config.max_asid,
            smt=config.smt,
        )
        state.committed_api = (state.api_major, state.api_minor, state.build)
        self.fw = Firmware(
            state,
            self.rmp,
            self.memory,
            DeterministicRandom(seed),
            rmp_base=self.map.rmp_base,
            rmp_end=self.map.rmp_end,
            iommu_pages=(self.map.iommu_base, IOMMU_PAGES),
            dram_limit=config.memory,
            hv_fixed_ranges=(LEGACY_HOLE,),
        )
        from sp_emu.chip import EmulatedChip
        from sp_emu.cpu import Cpu

        self.fw.chip = EmulatedChip(product, config.seed)

        self.cpu = Cpu(self)
        self.recording: list[dict[str, Any]] | None = None

    # --- recording -----------------------------------------------------------------------------
    def start_recording(self) -> list[dict[str, Any]]:
        """Record every step from now on; returns the (growing) list of trace steps."""
        self.recording = [self.platform_step()]
        self.fw.observers.append(self._record_fw)
        return self.recording

    def record(self, step: dict[str, Any]) -> None:
        if self.recording is not None:
            self.recording.append(step)

    def _record_fw(self, command_id: int, raw: bytes, result: CommandResult) -> None:
        name: str | int
        try:
            name = CommandId(command_id).name
        except ValueError:
            name = command_id
        self.record({"op": "fw", "cmd": name, "buffer": raw.hex()})

    def platform_step(self) -> dict[str, Any]:
        """The ``platform`` trace step that rebuilds this machine."""
        c = self.config
        step: dict[str, Any] = {
            "op": "platform",
            "memory": c.memory,
            "product": c.product,
            "smt": c.smt,
            "seed": c.seed.hex(),
        }
        for name in ("max_asid", "api_major", "api_minor", "build"):
            if getattr(c, name) is not None:
                step[name] = getattr(c, name)
        return step

    # --- convenience -----------------------------------------------------------------------------
    def run(self, command_id: CommandId, **fields: Any) -> CommandResult:
        """Run a firmware command from named fields (see :meth:`Firmware.run`)."""
        return self.fw.run(command_id, **fields)

    def execute(self, command_id: int, buffer: bytes = b"") -> CommandResult:
        """Run a firmware command from its buffer bytes (see :meth:`Firmware.execute`)."""
        return self.fw.execute(command_id, buffer)

    @property
    def current_tcb(self) -> TcbVersion:
        return self.fw.state.current_tcb
