"""Command buffer layouts: every field pinned against the trace spec's "Firmware command
fields" table (typed by hand), build/parse round trips on random values, and a poke of every
reserved byte of every buffer through the firmware's byte path."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import sp_emu.commands  # noqa: F401  (fills COMMANDS, so POKES can see what is implemented)
from binlayout import BufferLayout, LayoutError
from sp_emu.abi.buffers import BUFFERS
from sp_emu.abi.commands import CommandId as C
from sp_emu.abi.status import SnpStatus as S
from sp_emu.abi.structures import FEATURE_INFO_OUT, GUEST_STATUS_OUT, PLATFORM_STATUS_OUT
from sp_emu.firmware import COMMANDS
from sp_emu.fwimage import FirmwareImage
from sp_emu.platform import Platform
from tests.sp_emu.helpers import (
    FW_PAGE,
    GCTX,
    GENOA_TCB,
    HV_PAGE,
    IMAGE,
    LIST_PAGE,
    POLICY,
    REGION,
    assert_unchanged,
    capture,
    created,
    flushed,
    fw_page,
    initialised,
    launched,
    platform,
    pre_guest,
    setup,
    write_range_list,
)

# (offset, word size, lsb, width, kind): kind "int" (whole word or bit field), "addr" (an
# address filling bits width+lsb-1:lsb in place), "blob" (byte string of `size` bytes).
F = tuple[int, int, int, int, str]


def w(offset: int, size: int) -> F:
    return (offset, size, 0, 8 * size, "int")


def b(offset: int, size: int, lsb: int, width: int = 1) -> F:
    return (offset, size, lsb, width, "int")


def blob(offset: int, size: int) -> F:
    return (offset, size, 0, 8 * size, "blob")


_DBG = {"gctx_paddr": w(0x00, 8), "src_paddr": w(0x08, 8), "dst_paddr": w(0x10, 8)}
_SWAP = {
    "gctx_paddr": w(0x00, 8),
    "src_paddr": w(0x08, 8),
    "dst_paddr": w(0x10, 8),
    "mdata_paddr": w(0x18, 8),
    "page_size": b(0x28, 8, 0),
    "swap_page_type": b(0x28, 8, 1, 2),
    "root_mdata_en": b(0x28, 8, 4),
}
_RECLAIM = {"page_size": b(0x00, 8, 0), "page_paddr": (0x00, 8, 12, 52, "addr")}

# shared/specs/trace-v1.md "Firmware command fields" (and firmware-commands.md §2 sizes).
SPEC: dict[C, tuple[int, dict[str, F]]] = {
    C.SNP_INIT: (0, {}),
    C.SNP_SHUTDOWN: (0, {}),
    C.SNP_DF_FLUSH: (0, {}),
    C.SNP_INIT_EX: (
        0x40,
        {
            "init_rmp": b(0x00, 4, 0),
            "list_paddr_en": b(0x00, 4, 1),
            "rapl_dis": b(0x00, 4, 2),
            "ciphertext_hiding_en": b(0x00, 4, 3),
            "tio_en": b(0x00, 4, 4),
            "list_paddr": w(0x08, 8),
            "max_snp_asid": w(0x10, 2),
        },
    ),
    C.SNP_SHUTDOWN_EX: (
        0x08,
        {
            "length": w(0x00, 4),
            "iommu_snp_shutdown": b(0x04, 4, 0),
            "x86_snp_shutdown": b(0x04, 4, 1),
        },
    ),
    C.SNP_PLATFORM_STATUS: (0x08, {"status_paddr": w(0x00, 8)}),
    C.SNP_DECOMMISSION: (0x08, {"gctx_paddr": w(0x00, 8)}),
    C.SNP_GCTX_CREATE: (0x08, {"gctx_paddr": w(0x00, 8)}),
    C.SNP_ACTIVATE: (0x0C, {"gctx_paddr": w(0x00, 8), "asid": w(0x08, 4)}),
    C.SNP_GUEST_STATUS: (0x10, {"gctx_paddr": w(0x00, 8), "status_paddr": w(0x08, 8)}),
    C.SNP_GUEST_REQUEST: (
        0x18,
        {"gctx_paddr": w(0x00, 8), "req_paddr": w(0x08, 8), "res_paddr": w(0x10, 8)},
    ),
    C.SNP_ACTIVATE_EX: (
        0x20,
        {
            "length": w(0x00, 4),
            "gctx_paddr": w(0x08, 8),
            "asid": w(0x10, 4),
            "numids": w(0x14, 4),
            "ids_paddr": w(0x18, 8),
        },
    ),
    C.SNP_LAUNCH_START: (
        0x30,
        {
            "gctx_paddr": w(0x00, 8),
            "policy": w(0x08, 8),
            "ma_gctx_paddr": w(0x10, 8),
            "ma_en": b(0x18, 4, 0),
            "imi_en": b(0x18, 4, 1),
            "desired_tsc_freq": w(0x1C, 4),
            "gosvw": blob(0x20, 16),
        },
    ),
    C.SNP_LAUNCH_UPDATE: (
        0x20,
        {
            "gctx_paddr": w(0x00, 8),
            "page_size": b(0x08, 4, 0),
            "page_type": b(0x08, 4, 1, 3),
            "imi_page": b(0x08, 4, 4),
            "page_paddr": w(0x10, 8),
            "vmpl1_perms": b(0x18, 4, 8, 8),
            "vmpl2_perms": b(0x18, 4, 16, 8),
            "vmpl3_perms": b(0x18, 4, 24, 8),
        },
    ),
    C.SNP_LAUNCH_FINISH: (
        0x40,
        {
            "gctx_paddr": w(0x00, 8),
            "id_block_paddr": w(0x08, 8),
            "id_auth_paddr": w(0x10, 8),
            "id_block_en": b(0x18, 8, 0),
            "auth_key_en": b(0x18, 8, 1),
            "vcek_disabled": b(0x18, 8, 2),
            "host_data": blob(0x20, 32),
        },
    ),
    C.SNP_DBG_DECRYPT: (0x18, _DBG),
    C.SNP_DBG_ENCRYPT: (0x18, _DBG),
    C.SNP_PAGE_SWAP_OUT: (0x30, {**_SWAP, "software_data": w(0x20, 8)}),
    C.SNP_PAGE_SWAP_IN: (0x30, {**_SWAP, "swap_in_place": b(0x28, 8, 3)}),
    C.SNP_PAGE_MOVE: (
        0x20,
        {
            "gctx_paddr": w(0x00, 8),
            "page_size": b(0x08, 4, 0),
            "src_paddr": w(0x10, 8),
            "dst_paddr": w(0x18, 8),
        },
    ),
    C.SNP_PAGE_MD_INIT: (0x10, {"gctx_paddr": w(0x00, 8), "page_paddr": w(0x08, 8)}),
    C.SNP_PAGE_SET_STATE: (0x10, {"length": w(0x00, 4), "list_paddr": w(0x08, 8)}),
    C.SNP_PAGE_RECLAIM: (0x08, _RECLAIM),
    C.SNP_PAGE_UNSMASH: (0x08, _RECLAIM),
    C.SNP_CONFIG: (
        0x40,
        {
            "reported_tcb": w(0x00, 8),
            "mask_chip_id": b(0x08, 4, 0),
            "mask_chip_key": b(0x08, 4, 1),
        },
    ),
    C.SNP_DOWNLOAD_FIRMWARE_EX: (
        0x18,
        {
            "length": w(0x00, 4),
            "fw_paddr": w(0x08, 8),
            "fw_len": w(0x10, 4),
            "commit": b(0x14, 4, 0),
        },
    ),
    C.SNP_COMMIT: (0x04, {"length": w(0x00, 4)}),
    C.SNP_VLEK_LOAD: (
        0x10,
        {
            "length": w(0x00, 4),
            "vlek_wrapped_version": w(0x04, 1),
            "vlek_wrapped_paddr": w(0x08, 8),
        },
    ),
    C.SNP_FEATURE_INFO: (
        0x10,
        {"length": w(0x00, 4), "ecx_in": w(0x04, 4), "feature_info_paddr": w(0x08, 8)},
    ),
}

# Output structures (firmware-commands.md §6 SNP_PLATFORM_STATUS, SNP_GUEST_STATUS,
# SNP_FEATURE_INFO; names from the trace spec's `out` lists).
OUT_SPEC: dict[str, tuple[BufferLayout, int, dict[str, F]]] = {
    "platform_status": (
        PLATFORM_STATUS_OUT,
        0x20,
        {
            "api_major": w(0x00, 1),
            "api_minor": w(0x01, 1),
            "state": w(0x02, 1),
            "is_rmp_initialized": b(0x03, 1, 0),
            "build_id": w(0x04, 4),
            "mask_chip_id": b(0x08, 4, 0),
            "mask_chip_key": b(0x08, 4, 1),
            "vlek_en": b(0x08, 4, 2),
            "feature_info": b(0x08, 4, 3),
            "rapl_dis": b(0x08, 4, 4),
            "ciphertext_hiding_cap": b(0x08, 4, 5),
            "ciphertext_hiding_en": b(0x08, 4, 6),
            "guest_count": w(0x0C, 4),
            "current_tcb": w(0x10, 8),
            "reported_tcb": w(0x18, 8),
        },
    ),
    "guest_status": (
        GUEST_STATUS_OUT,
        0x20,
        {
            "policy": w(0x00, 8),
            "asid": w(0x08, 4),
            "state": w(0x0C, 1),
            "vcek_disabled": b(0x10, 4, 0),
        },
    ),
    "feature_info": (
        FEATURE_INFO_OUT,
        0x10,
        {"eax": w(0x00, 4), "ebx": w(0x04, 4), "ecx": w(0x08, 4), "edx": w(0x0C, 4)},
    ),
}

ALL_LAYOUTS: list[tuple[str, BufferLayout, int, dict[str, F]]] = [
    (cmd.name, BUFFERS[cmd], size, fields) for cmd, (size, fields) in SPEC.items()
] + [(name, layout, size, fields) for name, (layout, size, fields) in OUT_SPEC.items()]


def spec_reserved_mask(size: int, fields: Mapping[str, F]) -> int:
    """Every bit of the buffer no field of the spec table covers."""
    used = 0
    for offset, _size, lsb, width, _kind in fields.values():
        used |= ((1 << width) - 1) << (8 * offset + lsb)
    return ((1 << (8 * size)) - 1) & ~used


# --- the table itself ----------------------------------------------------------------------------
def test_every_command_has_a_buffer_and_the_spec_lists_every_buffer() -> None:
    assert set(BUFFERS) == set(C)
    assert set(SPEC) == set(C)


@pytest.mark.parametrize(
    ("name", "layout", "size", "fields"), ALL_LAYOUTS, ids=[x[0] for x in ALL_LAYOUTS]
)
def test_fields_pinned_against_spec(
    name: str, layout: BufferLayout, size: int, fields: dict[str, F]
) -> None:
    assert layout.size == size
    assert set(layout.fields) == set(fields)
    for field_name, (offset, wsize, lsb, width, kind) in fields.items():
        info = layout.fields[field_name]
        got = (info.offset, info.size, info.lsb, info.width)
        assert got == (offset, wsize, lsb, width), f"{name}.{field_name}"
        assert info.blob == (kind == "blob"), f"{name}.{field_name}"
        assert info.address == (kind == "addr"), f"{name}.{field_name}"
    assert layout.reserved_mask == spec_reserved_mask(size, fields)
    # The reserved byte ranges are exactly the bytes no field touches at all.
    untouched = {
        i for i in range(size) if (spec_reserved_mask(size, fields) >> (8 * i)) & 0xFF == 0xFF
    }
    ranges = {i for off, n in layout.reserved_ranges for i in range(off, off + n)}
    assert ranges <= untouched
    fully_gap = {
        i for i in untouched if not any(o <= i < o + s for o, s, _l, _w, _k in fields.values())
    }
    assert ranges == fully_gap
    assert list(layout.field_names()) == sorted(
        layout.field_names(), key=lambda n: (layout.fields[n].offset, layout.fields[n].lsb)
    )


def test_commands_with_reserved_bits() -> None:
    """Which buffers have must-be-zero bits at all (the poke test covers each of them)."""
    with_reserved = {cmd for cmd, (size, f) in SPEC.items() if spec_reserved_mask(size, f)}
    assert with_reserved == {
        C.SNP_INIT_EX,
        C.SNP_SHUTDOWN_EX,
        C.SNP_ACTIVATE_EX,
        C.SNP_LAUNCH_START,
        C.SNP_LAUNCH_UPDATE,
        C.SNP_LAUNCH_FINISH,
        C.SNP_PAGE_SWAP_OUT,
        C.SNP_PAGE_SWAP_IN,
        C.SNP_PAGE_MOVE,
        C.SNP_PAGE_SET_STATE,
        C.SNP_PAGE_RECLAIM,
        C.SNP_PAGE_UNSMASH,
        C.SNP_CONFIG,
        C.SNP_DOWNLOAD_FIRMWARE_EX,
        C.SNP_VLEK_LOAD,
    }
    assert set(POKES) == with_reserved


# --- round trips ---------------------------------------------------------------------------------
def field_strategy(spec: F) -> st.SearchStrategy[Any]:
    _offset, size, lsb, width, kind = spec
    if kind == "blob":
        return st.binary(min_size=size, max_size=size)
    if kind == "addr":
        return st.integers(0, (1 << width) - 1).map(lambda v: v << lsb)
    return st.integers(0, (1 << width) - 1)


Case = tuple[str, BufferLayout, dict[str, F], dict[str, Any]]


@st.composite
def layout_and_values(draw: st.DrawFn) -> Case:
    name, layout, _size, fields = draw(st.sampled_from(ALL_LAYOUTS))
    values = {n: draw(field_strategy(spec)) for n, spec in fields.items()}
    return name, layout, fields, values


@given(layout_and_values())
def test_build_parse_round_trip(case: Case) -> None:
    name, layout, fields, values = case
    raw = layout.build(values)
    assert len(raw) == layout.size
    assert layout.parse(raw) == values, name
    assert layout.first_reserved_violation(raw) is None
    # Every field lands where the spec says, little-endian.
    whole = int.from_bytes(raw, "little")
    for field_name, (offset, size, lsb, width, kind) in fields.items():
        if kind == "blob":
            assert raw[offset : offset + size] == values[field_name]
        else:
            got = (whole >> (8 * offset + lsb)) & ((1 << width) - 1)
            want = values[field_name] >> lsb if kind == "addr" else values[field_name]
            assert got == want, f"{name}.{field_name}"


@given(st.sampled_from(ALL_LAYOUTS), st.data())
def test_parse_build_round_trip_on_random_bytes(
    case: tuple[str, BufferLayout, int, dict[str, F]], data: st.DataObject
) -> None:
    name, layout, size, fields = case
    raw = data.draw(st.binary(min_size=size, max_size=size))
    mask = spec_reserved_mask(size, fields)
    whole = int.from_bytes(raw, "little")
    clean = (whole & ~mask).to_bytes(size, "little")
    # Reserved bits are not fields: they neither show in parse nor survive a rebuild.
    assert layout.parse(raw) == layout.parse(clean)
    assert layout.build(layout.parse(raw)) == clean
    bad = whole & mask
    want = None if not bad else ((bad & -bad).bit_length() - 1) // 8
    assert layout.first_reserved_violation(raw) == want, name


@pytest.mark.parametrize("cmd", [c for c in SPEC if SPEC[c][1]], ids=lambda c: c.name)
def test_build_rejects_what_does_not_fit(cmd: C) -> None:
    layout = BUFFERS[cmd]
    _size, fields = SPEC[cmd]
    with pytest.raises(LayoutError):
        layout.build({"no_such_field": 0})
    for name, (_o, size, lsb, width, kind) in fields.items():
        if kind == "blob":
            with pytest.raises(LayoutError):
                layout.build({name: bytes(size - 1)})
        elif kind == "addr":
            with pytest.raises(LayoutError):
                layout.build({name: 1 << (lsb - 1)})
        else:
            with pytest.raises(LayoutError):
                layout.build({name: 1 << width})
            with pytest.raises(LayoutError):
                layout.build({name: -1})


def test_missing_fields_are_zero() -> None:
    for cmd, layout in BUFFERS.items():
        assert layout.build({}) == bytes(layout.size), cmd.name


# --- the mailbox copies exactly the buffer size --------------------------------------------------
def test_short_buffer_is_a_caller_error() -> None:
    p = platform()
    with pytest.raises(ValueError):
        p.execute(C.SNP_PLATFORM_STATUS, bytes(7))


def test_long_buffer_tail_is_ignored() -> None:
    p = platform()
    raw = BUFFERS[C.SNP_PLATFORM_STATUS].build({"status_paddr": FW_PAGE})
    assert p.execute(C.SNP_PLATFORM_STATUS, raw + b"\xff" * 8).status == S.SUCCESS
    assert p.execute(C.SNP_INIT, b"\xff" * 16).status == S.SUCCESS


# --- pokes of every reserved byte ----------------------------------------------------------------
@dataclass(frozen=True)
class Poke:
    """A platform and base buffer for one command; every reserved-bit poke must answer
    ``want`` and change nothing, and the unpoked buffer (run last) ``base``."""

    label: str
    setup: Callable[[], Platform]
    fields: Callable[[Platform], dict[str, Any]]
    want: int
    base: int | None = S.SUCCESS


def _ranges(p: Platform) -> None:
    fw_page(p, REGION)
    write_range_list(p, [(REGION, 1)])


def _run_512(p: Platform) -> None:
    pre_guest(p, REGION, asid=5, gpa=0x200000, page_size=1)
    assert p.cpu.psmash(REGION).name == "SUCCESS"


def _ids(p: Platform) -> None:
    p.cpu.host_write(LIST_PAGE, (0).to_bytes(4, "little"))


def _image(p: Platform) -> None:
    image = FirmwareImage("Genoa", 1, 55, 26, GENOA_TCB)
    p.cpu.host_write(IMAGE, image.to_bytes())


def _legacy(p: Platform) -> None:
    p.fw.state.legacy_sev_state = 1


_DLFW = {"length": 0x18, "fw_paddr": IMAGE, "fw_len": 0x60}
_ACTIVATE_EX = {"length": 0x20, "gctx_paddr": GCTX, "asid": 1, "numids": 1, "ids_paddr": LIST_PAGE}
_SET_STATE = {"length": 0x10, "list_paddr": LIST_PAGE}


def _implemented(cmd: C, want: int) -> int:
    return want if cmd in COMMANDS else S.INVALID_COMMAND


POKES: dict[C, list[Poke]] = {
    C.SNP_INIT_EX: [
        Poke("uninit", platform, lambda p: {"init_rmp": 1}, S.INVALID_PARAM),
        Poke(
            "init: MBZ is checked before the state",
            initialised,
            lambda p: {"init_rmp": 1},
            S.INVALID_PARAM,
            S.INVALID_PLATFORM_STATE,
        ),
    ],
    C.SNP_SHUTDOWN_EX: [
        Poke(
            "uninit: success, nothing checked",
            platform,
            lambda p: {"length": 8},
            S.SUCCESS,
        ),
        Poke(
            "init with dirty ASIDs: DFFLUSH_REQUIRED comes first",
            initialised,
            lambda p: {"length": 8},
            S.DFFLUSH_REQUIRED,
            S.DFFLUSH_REQUIRED,
        ),
        Poke("init, every ASID clean", flushed, lambda p: {"length": 8}, S.INVALID_PARAM),
        Poke(
            "legacy SEV initialised",
            setup(_legacy, base=platform),
            lambda p: {"length": 8},
            S.INVALID_PLATFORM_STATE,
            S.INVALID_PLATFORM_STATE,
        ),
    ],
    C.SNP_ACTIVATE_EX: [
        Poke(
            "launched guest",
            setup(launched, _ids),
            lambda p: _ACTIVATE_EX,
            S.INVALID_PARAM,
        ),
    ],
    C.SNP_LAUNCH_START: [
        Poke(
            "created guest",
            setup(created),
            lambda p: {"gctx_paddr": GCTX, "policy": POLICY},
            S.INVALID_PARAM,
        ),
        Poke(
            "uninit: MBZ is checked before the state",
            platform,
            lambda p: {"gctx_paddr": GCTX, "policy": POLICY},
            S.INVALID_PARAM,
            S.INVALID_PLATFORM_STATE,
        ),
    ],
    C.SNP_PAGE_SET_STATE: [
        Poke("one FIRMWARE page", setup(_ranges), lambda p: _SET_STATE, S.INVALID_PARAM),
        Poke(
            "uninit: MBZ is checked before the state",
            setup(lambda p: write_range_list(p, [(REGION, 1)]), base=platform),
            lambda p: _SET_STATE,
            S.INVALID_PARAM,
            S.INVALID_PLATFORM_STATE,
        ),
    ],
    C.SNP_PAGE_RECLAIM: [
        Poke(
            "FIRMWARE page",
            setup(lambda p: fw_page(p, FW_PAGE)),
            lambda p: {"page_paddr": FW_PAGE},
            S.INVALID_PARAM,
        ),
        Poke(
            "uninit: MBZ is checked before the state",
            platform,
            lambda p: {"page_paddr": FW_PAGE},
            S.INVALID_PARAM,
            S.INVALID_PLATFORM_STATE,
        ),
    ],
    C.SNP_PAGE_UNSMASH: [
        Poke(
            "512 immutable 4K entries",
            setup(_run_512),
            lambda p: {"page_paddr": REGION},
            S.INVALID_PARAM,
        ),
        Poke(
            "uninit: MBZ is checked before the state",
            platform,
            lambda p: {"page_paddr": REGION},
            S.INVALID_PARAM,
            S.INVALID_PLATFORM_STATE,
        ),
    ],
    C.SNP_CONFIG: [
        Poke("uninit", platform, lambda p: {}, S.INVALID_PARAM),
        Poke("init", flushed, lambda p: {"mask_chip_id": 1}, S.INVALID_PARAM),
    ],
    C.SNP_DOWNLOAD_FIRMWARE_EX: [
        Poke("valid image", setup(_image, base=platform), lambda p: _DLFW, S.INVALID_PARAM),
        Poke(
            "legacy SEV initialised: that is checked first",
            setup(_image, _legacy, base=platform),
            lambda p: _DLFW,
            S.INVALID_PLATFORM_STATE,
            S.INVALID_PLATFORM_STATE,
        ),
    ],
    # Commands whose MBZ check is the first one (firmware-commands.md §6 LAUNCH_UPDATE check 1,
    # LAUNCH_FINISH): INVALID_PARAM on any platform once implemented.
    C.SNP_LAUNCH_UPDATE: [
        Poke(
            "uninit",
            platform,
            lambda p: {},
            _implemented(C.SNP_LAUNCH_UPDATE, S.INVALID_PARAM),
            None,
        )
    ],
    C.SNP_LAUNCH_FINISH: [
        Poke(
            "uninit",
            platform,
            lambda p: {},
            _implemented(C.SNP_LAUNCH_FINISH, S.INVALID_PARAM),
            None,
        )
    ],
    # Page move/swap (sp_emu/commands/page_swap.py): the MBZ check comes first, then the
    # address fields, then the platform state.
    C.SNP_PAGE_SWAP_OUT: [
        Poke("uninit", platform, lambda p: {}, S.INVALID_PARAM, S.INVALID_PLATFORM_STATE)
    ],
    C.SNP_PAGE_SWAP_IN: [
        Poke("uninit", platform, lambda p: {}, S.INVALID_PARAM, S.INVALID_PLATFORM_STATE)
    ],
    C.SNP_PAGE_MOVE: [
        Poke(
            "uninit",
            platform,
            lambda p: {"src_paddr": 0x130000, "dst_paddr": 0x131000},
            S.INVALID_PARAM,
            S.INVALID_PLATFORM_STATE,
        )
    ],
    # LENGTH and VERSION valid, MBZ bytes 0x05-0x07 poked; the all-zero blob is wrapped for
    # TCB 0, not the reported TCB, so the unpoked buffer answers BAD_SVN (no state check).
    C.SNP_VLEK_LOAD: [
        Poke(
            "uninit",
            platform,
            lambda p: {"length": 0x10, "vlek_wrapped_paddr": HV_PAGE},
            _implemented(C.SNP_VLEK_LOAD, S.INVALID_PARAM),
            S.BAD_SVN if C.SNP_VLEK_LOAD in COMMANDS else None,
        )
    ],
}

POKE_CASES = [
    pytest.param(cmd, poke, id=f"{cmd.name}-{poke.label}")
    for cmd, pokes in POKES.items()
    for poke in pokes
]


def poke_values(mask_byte: int) -> list[int]:
    """Values to OR into a byte whose reserved bits are ``mask_byte``."""
    values = {mask_byte, mask_byte & -mask_byte, mask_byte & 0x80 or mask_byte}
    return sorted(values)


@pytest.mark.parametrize(("cmd", "poke"), POKE_CASES)
def test_poke_every_reserved_byte(cmd: C, poke: Poke) -> None:
    if poke.want == S.INVALID_COMMAND and cmd in COMMANDS:
        pytest.skip(f"{cmd.name} is now implemented: give it a poke fixture")
    p = poke.setup()
    layout = BUFFERS[cmd]
    size, spec_fields = SPEC[cmd]
    mask = spec_reserved_mask(size, spec_fields)
    base = layout.build(poke.fields(p))
    before = capture(p)
    poked = 0
    for offset in range(size):
        mask_byte = (mask >> (8 * offset)) & 0xFF
        if not mask_byte:
            continue
        for value in poke_values(mask_byte):
            raw = bytearray(base)
            raw[offset] |= value
            result = p.execute(cmd, bytes(raw))
            assert result.status == poke.want, (
                f"{cmd.name} byte {offset:#04x} |= {value:#04x}: got "
                f"{S(result.status).name}, want {S(poke.want).name} ({result.detail})"
            )
            assert_unchanged(p, before, f"{cmd.name} byte {offset:#04x} |= {value:#04x}")
            poked += 1
    assert poked
    if poke.base is not None:
        # The same platform and buffer, unpoked: proves the pokes failed for their own sake.
        assert p.execute(cmd, base).status == poke.base
