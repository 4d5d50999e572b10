"""The generic parts of binlayout that the VMSA, RMP and image layouts rely on: groups copied
from a smaller layout, whole-word pack/unpack, and the declaration checks."""

from __future__ import annotations

import pytest

from binlayout import Bits, BufferLayout, Group, Member, blob, group, u8, u16, u32

PAIR = BufferLayout("pair", 8, (u16(0x0, "a"), u32(0x4, "b")))  # 0x2..0x3 reserved
FLAGS = BufferLayout("flags", 4, (Member(0x0, 4, "word", bits=(Bits("x", 0), Bits("y", 4, 4))),))


def test_group_copies_members_renamed_and_moved() -> None:
    outer = BufferLayout("outer", 0x18, (u8(0x0, "tag"), *group(0x8, "p", PAIR)))
    assert [(m.name, m.offset, m.size) for m in outer.members] == [
        ("tag", 0x0, 1),
        ("p_a", 0x8, 2),
        ("p_b", 0xC, 4),
    ]
    assert dict(outer.groups) == {"p": Group("p", 0x8, 8)}
    # The group's own gap stays reserved in the outer layout.
    assert outer.reserved_ranges == ((0x1, 7), (0xA, 2), (0x10, 8))
    raw = outer.build({"tag": 1, "p_a": 0x0302, "p_b": 0x07060504})
    assert raw == bytes.fromhex("01000000000000000203000004050607") + bytes(8)
    assert outer.parse(raw) == {"tag": 1, "p_a": 0x0302, "p_b": 0x07060504}
    assert outer.struct.parse(raw).p_b == 0x07060504


def test_group_renames_bit_fields() -> None:
    outer = BufferLayout("outer", 8, (*group(0, "lo", FLAGS), *group(4, "hi", FLAGS)))
    assert set(outer.fields) == {"lo_x", "lo_y", "hi_x", "hi_y"}
    assert outer.members[1].wire_name == "hi_word"
    assert outer.build({"hi_y": 0xF}) == bytes.fromhex("00000000f0000000")


def test_member_inside_a_group_gap_is_refused() -> None:
    # Declarations are checked when first used (their derived codec is made then).
    with pytest.raises(ValueError, match="overlaps p"):
        _ = BufferLayout("bad", 8, (*group(0, "p", PAIR), u8(0x2, "intruder"))).fields


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(ValueError, match="two fields"):
        _ = BufferLayout("bad", 4, (u16(0, "a"), u16(2, "a"))).fields
    with pytest.raises(ValueError, match="two groups"):
        _ = BufferLayout("bad", 16, (*group(0, "p", PAIR), *group(8, "p", FLAGS))).fields


def test_pack_and_unpack_whole_words() -> None:
    layout = BufferLayout("mixed", 12, (*group(0, "p", PAIR), blob(8, 2, "s")))
    raw = bytes.fromhex("0102ffff030405060708ffff")
    assert layout.unpack(raw) == (0x0201, 0x06050403, b"\x07\x08")
    assert layout.pack(layout.unpack(raw)) == bytes.fromhex("01020000030405060708") + bytes(2)


def test_every_declared_layout_of_the_product_is_consistent() -> None:
    """Layouts derive their codec on first use; derive every one the packages declare, so
    that a bad declaration fails here rather than in the first program to use it."""
    import importlib
    import pkgutil

    import rmp
    import sp_emu
    import vmsa

    found = 0
    for package in (rmp, vmsa, sp_emu):
        names = [package.__name__] + [
            m.name for m in pkgutil.walk_packages(package.__path__, f"{package.__name__}.")
        ]
        for name in names:
            if ".testing" in name or name.endswith("__main__"):
                continue
            module = importlib.import_module(name)
            values = list(vars(module).values())
            values += [v for x in values if isinstance(x, dict) for v in x.values()]
            for value in values:
                if isinstance(value, BufferLayout):
                    assert value.fields is not None
                    assert value.build({}) == bytes(value.size)
                    found += 1
    assert found > 50
