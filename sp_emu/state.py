"""What the firmware remembers: the platform's state and one context per guest.

The guest context lives, on real hardware, encrypted inside the 4 KiB page the host donated
at SNP_GCTX_CREATE; the emulator keeps it here, indexed by that page's address.
"""

from __future__ import annotations

from enum import Enum, IntEnum

from binlayout.enums import EnumBase, IntEnumBase, fast_enum
from binlayout.records import field, record
from sp_emu.products import Product
from sp_emu.tcb import TcbVersion


@fast_enum(IntEnum)
class PlatformStateName(IntEnumBase):
    """SNP platform state (SNP_PLATFORM_STATUS.STATE)."""

    UNINIT = 0
    INIT = 1


@fast_enum(IntEnum)
class GuestState(IntEnumBase):
    """Guest state kept in the guest context (SNP_GUEST_STATUS.STATE)."""

    INIT = 0
    LAUNCH = 1
    RUNNING = 2


@fast_enum(Enum)
class Activation(EnumBase):
    """Whether the guest's ASID is bound: ACTIVATE during LAUNCH leaves it pending until
    LAUNCH_FINISH completes it."""

    NONE = "none"
    PENDING = "pending"
    ACTIVE = "active"


@record(frozen=False)
class GuestContext:
    """One guest's context (AFW ``guest_context_page``; firmware-commands.md §5)."""

    gctx_paddr: int
    vek: bytes
    launch_tcb: int
    fw_api: tuple[int, int, int]
    state: GuestState = GuestState.INIT
    policy: int = 0
    asid: int = 0
    activation: Activation = Activation.NONE
    apic_ids: tuple[int, ...] = ()
    launched: bool = False
    """Passed SNP_LAUNCH_START, so it counts in the platform's GUEST_COUNT."""
    oek: bytes = b""
    vmpck: tuple[bytes, bytes, bytes, bytes] = (b"", b"", b"", b"")
    vmrk: bytes = b""
    msg_count: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    ma_paddr: int = (1 << 64) - 1
    report_id: bytes = bytes(32)
    report_id_ma: bytes = b"\xff" * 32
    ld: bytes = bytes(48)
    imi_en: bool = False
    imd: bytes = bytes(48)
    gosvw: bytes = bytes(16)
    desired_tsc_freq: int = 0
    host_data: bytes = bytes(32)
    family_id: bytes = bytes(16)
    image_id: bytes = bytes(16)
    guest_svn: int = 0
    id_block_en: bool = False
    id_block: bytes = b""
    id_key_digest: bytes = bytes(48)
    author_key_en: bool = False
    author_key_digest: bytes = bytes(48)
    vcek_disabled: bool = False


@record(frozen=False)
class PlatformState:
    """The SNP platform state the firmware keeps across commands."""

    product: Product
    api_major: int
    api_minor: int
    build: int
    current_tcb: TcbVersion
    committed_tcb: TcbVersion
    committed_api: tuple[int, int, int]
    max_asid: int
    smt: bool = True
    state: PlatformStateName = PlatformStateName.UNINIT
    legacy_sev_state: int = 0
    rmp_initialized: bool = False
    """The RMP holds a valid SNP_INIT result (SNP_INIT_EX with INIT_RMP=0 may reuse it)."""
    rmp_init_tcb: TcbVersion | None = None
    reported_tcb: int = 0
    """SNP_CONFIG's REPORTED_TCB; 0 means the committed TCB."""
    mask_chip_id: bool = False
    mask_chip_key: bool = False
    vlek: bytes | None = None
    rapl_dis: bool = False
    ciphertext_hiding_en: bool = False
    wbinvd_done: bool = False
    """WBINVD has run on every core since it was last required (one flag for all cores)."""
    dirty_asids: set[int] = field(default_factory=set)
    asid_owner: dict[int, int] = field(default_factory=dict)
    """ASID -> the guest context (by its page address) it is pending or bound to."""
    guests: dict[int, GuestContext] = field(default_factory=dict)

    @property
    def guest_count(self) -> int:
        """Guests that passed LAUNCH_START and are not decommissioned."""
        return sum(1 for g in self.guests.values() if g.launched)

    def effective_reported_tcb(self) -> TcbVersion:
        """The TCB reports carry: SNP_CONFIG's value, or the committed TCB."""
        if self.reported_tcb:
            return TcbVersion.from_int(
                self.reported_tcb, turin_layout=self.product.turin_tcb_layout
            )
        return self.committed_tcb

    def snapshot(self) -> PlatformState:
        """A deep copy, for undoing a failed command and for tests comparing states."""
        import copy  # here: a launch never needs it, and it costs start-up time

        return copy.deepcopy(self)
