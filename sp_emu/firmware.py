"""The firmware's mailbox: one entry point that runs a command and returns its status.

``Firmware.execute(command_id, buffer)`` is what the PSP mailbox does: look the command up
(INVALID_COMMAND if unknown), decode its buffer, run its handler, and return the status.  A
handler that must fail raises :class:`SnpError`; the RMP and memory writes it made are undone
so that a failed command changes nothing.  Handlers check everything before they change the
firmware's own records, so those need no undo.  Any other exception is an emulator bug and
propagates.

``Firmware.run(command_id, **fields)`` is the typed way in: it skips the byte parsing, and
nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from functools import cached_property

from binlayout import BufferLayout, LayoutError
from binlayout.records import field, record
from rmp import PageState, RmpTable, classify
from sp_emu.abi.buffers import BUFFERS
from sp_emu.abi.commands import CommandId
from sp_emu.abi.status import SnpStatus
from sp_emu.chip import EmulatedChip
from sp_emu.commands import MODULE_OF, load_all
from sp_emu.errors import SnpError
from sp_emu.measure import ContentHasher
from sp_emu.memory import MemoryKey, PhysicalMemory
from sp_emu.products import C_BIT_POSITION
from sp_emu.rng import DeterministicRandom
from sp_emu.state import GuestContext, PlatformState, PlatformStateName

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

S = SnpStatus
_SUCCESS, _INIT = S.SUCCESS, PlatformStateName.INIT
_DEFAULT, _CONTEXT = PageState.DEFAULT, PageState.CONTEXT
C_BIT = 1 << C_BIT_POSITION
"""The memory-encryption bit of a system physical address."""


@record
class CommandResult:
    """What a command returned: the status, and any structure it wrote (decoded)."""

    status: SnpStatus | int
    out: Mapping[str, Any] | None = None
    detail: str = ""

    def __init__(
        self, status: SnpStatus | int, out: Mapping[str, Any] | None = None, detail: str = ""
    ) -> None:
        # Written out (a record's generic constructor is slower): every command makes one.
        self.__dict__.update(status=status, out=out, detail=detail)

    @property
    def ok(self) -> bool:
        return self.status == S.SUCCESS


class Request:
    """A decoded command buffer as a handler sees it."""

    __slots__ = ("command", "f", "layout", "raw")

    def __init__(
        self,
        command: CommandId,
        layout: BufferLayout,
        f: dict[str, Any],
        raw: bytes | None,
        address_fields: tuple[str, ...],
    ) -> None:
        self.command = command
        self.layout = layout
        # Address fields may carry the C-bit; the firmware ignores it (firmware-commands.md §1).
        for name in address_fields:
            if f[name] & C_BIT:
                f[name] &= ~C_BIT
        self.f = f
        self.raw = raw

    def check_reserved(self) -> None:
        """INVALID_PARAM if any reserved (must-be-zero) bit of the buffer is set."""
        if self.raw is None:
            return
        offset = self.layout.first_reserved_violation(self.raw)
        if offset is not None:
            raise SnpError(S.INVALID_PARAM, f"reserved byte {offset:#04x} is not zero")


Handler = Callable[["Firmware", Request], "Mapping[str, Any] | None"]


@record
class CommandSpec:
    """A command: its id, buffer layout, handler and where the ABI describes it."""

    command: CommandId
    handler: Handler
    spec_ref: str
    layout: BufferLayout = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "layout", BUFFERS[self.command])

    # Worked out when the command first runs: a program runs a few of the commands whose
    # modules it loads.
    @cached_property
    def defaults(self) -> dict[str, Any]:
        """Every field of the buffer at zero (the typed path starts from a copy)."""
        return {n: bytes(i.size) if i.blob else 0 for n, i in self.layout.fields.items()}

    @cached_property
    def int_limits(self) -> dict[str, tuple[int, int]]:
        """Integer field -> (exclusive upper bound, bits that must be clear), for the typed
        path's quick check of a plain ``int`` (anything else takes :meth:`FieldInfo.fits`)."""
        limits = {}
        for name, info in self.layout.fields.items():
            if not info.blob:
                top = info.lsb + info.width if info.address else info.width
                low = (1 << info.lsb) - 1 if info.address else 0
                limits[name] = (1 << top, low)
        return limits

    @cached_property
    def address_fields(self) -> tuple[str, ...]:
        """The ``*_paddr`` fields, whose C-bit the firmware ignores."""
        fields = self.layout.fields.items()
        return tuple(n for n, info in fields if n.endswith("_paddr") and not info.blob)


class CommandTable(Mapping[int, CommandSpec]):
    """The one command table: id -> spec.

    The modules of ``sp_emu.commands`` fill it (:func:`command`); a lookup imports the module
    of a command not registered yet (``sp_emu.commands.MODULE_OF``), and ``in`` answers from
    that list without importing anything.  Iterating loads every command.
    """

    def __init__(self) -> None:
        self._specs: dict[int, CommandSpec] = {}

    def spec(self, command_id: int) -> CommandSpec | None:
        """The spec of ``command_id``, or None if the firmware does not implement it."""
        found = self._specs.get(command_id)
        if found is None and command_id in MODULE_OF:
            __import__(f"sp_emu.commands.{MODULE_OF[command_id]}")
            found = self._specs[command_id]
        return found

    def register(self, spec: CommandSpec) -> None:
        cmd = spec.command
        if cmd in self._specs:
            raise RuntimeError(f"{cmd.name} registered twice")
        module = spec.handler.__module__.rpartition(".")[2]
        if MODULE_OF.get(cmd) != module:
            raise RuntimeError(f"{cmd.name} is implemented in {module}, not where MODULE_OF says")
        self._specs[cmd] = spec

    def __getitem__(self, command_id: int) -> CommandSpec:
        found = self.spec(command_id)
        if found is None:
            raise KeyError(command_id)
        return found

    def __contains__(self, command_id: object) -> bool:
        return command_id in MODULE_OF

    def __iter__(self) -> Iterator[int]:
        load_all()
        return iter(self._specs)

    def __len__(self) -> int:
        return len(MODULE_OF)


COMMANDS = CommandTable()
"""Every command the firmware implements, by id."""
_SPECS = COMMANDS._specs  # the loaded ones, for the typed path's lookup


def command(cmd: CommandId, spec_ref: str) -> Callable[[Handler], Handler]:
    """Register ``handler`` as the implementation of ``cmd``."""

    def register(handler: Handler) -> Handler:
        COMMANDS.register(CommandSpec(cmd, handler, spec_ref))
        return handler

    return register


Observer = Callable[[int, bytes, CommandResult], None]


class Firmware:
    """The SNP firmware of one AMD-SP, acting on the platform's RMP and memory."""

    def __init__(
        self,
        state: PlatformState,
        rmp: RmpTable,
        memory: PhysicalMemory,
        rng: DeterministicRandom,
        *,
        rmp_base: int,
        rmp_end: int,
        iommu_pages: tuple[int, int],
        dram_limit: int,
        hv_fixed_ranges: tuple[tuple[int, int], ...] = (),
    ) -> None:
        self.state = state
        self.rmp = rmp
        self.memory = memory
        self.rng = rng
        self.rmp_base = rmp_base
        self.rmp_end = rmp_end
        self.iommu_pages = iommu_pages
        self.dram_limit = dram_limit
        self.hv_fixed_ranges = hv_fixed_ranges
        self.asid_keys: dict[int, MemoryKey] = {}
        """The memory controller's key slots: ASID -> key, installed on activation."""
        self.firmware_key = MemoryKey("firmware", rng.bytes(64))
        self.content_hasher = ContentHasher(1)
        """Hashes launch pages; give it two threads to use both cores."""
        self.observers: list[Observer] = []
        self.chip: EmulatedChip = EmulatedChip(state.product, b"")
        """The chip's identity and endorsement keys (the platform sets it from its seed)."""
        self.measure_observers: list[Callable[[int, int, bytes, bytes], None]] = []
        """Called for every 4 KiB unit LAUNCH_UPDATE measures: (page type, GPA, contents
        hash, digest after), so tools can show what went into the digest."""

    # --- entry points --------------------------------------------------------------------------
    def execute(self, command_id: int, buffer: bytes = b"") -> CommandResult:
        """Run command ``command_id`` with the bytes of its command buffer.

        The firmware copies exactly the command's buffer size; a longer ``buffer`` has its
        tail ignored, and a shorter one is a caller error (ValueError).
        """
        spec = COMMANDS.spec(command_id)
        if spec is None:
            return self._finish(command_id, buffer, CommandResult(S.INVALID_COMMAND))
        size = spec.layout.size
        if len(buffer) < size:
            raise ValueError(f"{spec.command.name} takes a {size:#x}-byte buffer")
        raw = bytes(buffer[:size])
        fields = spec.layout.parse(raw) if size else {}
        result = self._run(
            spec, Request(spec.command, spec.layout, fields, raw, spec.address_fields)
        )
        return self._finish(command_id, raw, result)

    def run(self, command_id: CommandId, **fields: Any) -> CommandResult:
        """Run a command from named buffer fields (missing ones are zero).

        The same handler and checks as :meth:`execute`; only the byte parsing is skipped.
        """
        spec = _SPECS.get(command_id) or COMMANDS.spec(command_id)
        if spec is None:
            return self._finish(command_id, b"", CommandResult(S.INVALID_COMMAND))
        layout = spec.layout
        full = spec.defaults.copy()
        limits = spec.int_limits
        for name, value in fields.items():
            limit = limits.get(name)
            if limit is not None and value.__class__ is int:  # the common case, checked inline
                if not 0 <= value < limit[0] or value & limit[1]:
                    raise LayoutError(f"{layout.name}.{name} does not fit its field")
                full[name] = value
                continue
            known = layout.fields.get(name)
            if known is None:
                raise LayoutError(f"{layout.name} has no field {name!r}")
            if not known.fits(value):
                raise LayoutError(f"{layout.name}.{name} does not fit its field")
            full[name] = value if known.blob else int(value)  # a bool or IntEnum as an int
        result = self._run(spec, Request(spec.command, layout, full, None, spec.address_fields))
        if self.observers:
            return self._finish(command_id, layout.build(full), result)
        return result

    def _run(self, spec: CommandSpec, req: Request) -> CommandResult:
        # ``with rmp.transaction(), memory.transaction():``, written out: one per command.
        rmp, memory = self.rmp, self.memory
        rmp_outer, memory_outer = rmp.begin(), memory.begin()
        try:
            out = spec.handler(self, req)
        except BaseException as err:
            rmp.rollback(rmp_outer)
            memory.rollback(memory_outer)
            if not isinstance(err, SnpError):
                raise
            if err.effect is not None:
                err.effect()
            return CommandResult(err.status, None, err.detail)
        rmp.commit(rmp_outer)
        memory.commit(memory_outer)
        return CommandResult(_SUCCESS, out)

    def _finish(self, command_id: int, raw: bytes, result: CommandResult) -> CommandResult:
        for observer in self.observers:
            observer(command_id, raw, result)
        return result

    # --- helpers for handlers ------------------------------------------------------------------
    def require_init(self) -> None:
        """INVALID_PLATFORM_STATE unless SNP is INIT."""
        if self.state.state is not _INIT:
            raise SnpError(S.INVALID_PLATFORM_STATE, "SNP is not initialised")

    def page_state(self, spa: int) -> PageState:
        """The page state of the page holding ``spa``, as the firmware's RMP lookup sees it.

        An address inside the RMP itself is refused (INVALID_PARAM); one beyond system memory
        is INVALID_ADDRESS; one the RMP does not cover is DEFAULT.
        """
        return self.page_entry(spa)[0]

    def page_entry(self, spa: int) -> tuple[PageState, int, int]:
        """:meth:`page_state` with the entry's raw quadwords (zero outside the RMP)."""
        spa &= ~C_BIT  # the C-bit may be set in addresses; the RMP index ignores it
        if self.rmp_base <= spa <= self.rmp_end:
            raise SnpError(S.INVALID_PARAM, f"{spa:#x} lies inside the RMP")
        if not 0 <= spa < self.memory.size:
            raise SnpError(S.INVALID_ADDRESS, f"{spa:#x} is not system memory")
        rmp = self.rmp
        pfn = spa >> 12
        if pfn >= rmp.covered_pages:
            return _DEFAULT, 0, 0
        q0, q1 = rmp.read(pfn)
        return classify(q0), q0, q1

    def require_output_page(self, spa: int, length: int, what: str) -> None:
        """An output structure: it must not cross a page (INVALID_PARAM, checked by the
        caller where the ABI orders it) and, while SNP is INIT, its page must be FIRMWARE or
        DEFAULT (INVALID_PAGE_STATE)."""
        state = self.page_state(spa)
        if not self.memory.contains(spa, length):
            raise SnpError(S.INVALID_ADDRESS, f"{what} runs past system memory")
        if self.state.state is PlatformStateName.INIT and state not in (
            PageState.FIRMWARE,
            PageState.DEFAULT,
        ):
            raise SnpError(S.INVALID_PAGE_STATE, f"{what} page is {state.name}, not FIRMWARE")

    def guest(self, gctx_paddr: int) -> GuestContext:
        """The guest whose context page is ``gctx_paddr`` (INVALID_GUEST unless CONTEXT)."""
        if self.page_entry(gctx_paddr)[0] is not _CONTEXT:
            raise SnpError(S.INVALID_GUEST, f"{gctx_paddr:#x} is not a guest context page")
        guest = self.state.guests.get(gctx_paddr)
        if guest is None:
            # A CONTEXT page the firmware has no record of (e.g. left over from before a
            # SHUTDOWN) holds no valid context.
            raise SnpError(S.INVALID_GUEST, f"{gctx_paddr:#x} holds no live guest context")
        return guest


def crosses_page(spa: int, length: int) -> bool:
    """Whether ``length`` bytes at ``spa`` cross a 4 KiB boundary."""
    return (spa & 0xFFF) + length > 0x1000
