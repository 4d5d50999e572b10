"""Each buffer layout is declared once; its struct codec and its construct Struct must read
and write the same bytes."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from binlayout import BufferLayout
from sp_emu.abi import BUFFERS
from sp_emu.abi.launch import ECDSA_PUBKEY, ID_AUTH, ID_BLOCK, PAGE_INFO, SECRETS_PAGE
from sp_emu.abi.structures import GUEST_STATUS_OUT, PLATFORM_STATUS_OUT

LAYOUTS = [
    *(layout for layout in BUFFERS.values() if layout.size),
    PAGE_INFO,
    SECRETS_PAGE,
    ID_BLOCK,
    ID_AUTH,
    ECDSA_PUBKEY,
    PLATFORM_STATUS_OUT,
    GUEST_STATUS_OUT,
]


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda layout: layout.name)
@given(data=st.data())
def test_struct_codec_agrees_with_construct(layout: BufferLayout, data: st.DataObject) -> None:
    # Whole pages are too large for hypothesis to draw byte by byte: expand a drawn seed.
    rng = random.Random(data.draw(st.integers(0, 2**64)))
    density = data.draw(st.sampled_from([0.0, 0.05, 1.0]))
    raw = bytes(rng.randrange(256) if rng.random() < density else 0 for _ in range(layout.size))
    words = layout.struct.parse(raw)
    fields = layout.parse(raw)
    for name, info in layout.fields.items():
        member = next(m for m in layout.members if m.offset == info.offset)
        word = words[member.wire_name]
        if info.blob:
            assert fields[name] == word
        else:
            expected = (word >> info.lsb) & ((1 << info.width) - 1)
            assert fields[name] == (expected << info.lsb if info.address else expected)
    # Building from the parsed fields gives the input with its reserved bits cleared.
    cleared = int.from_bytes(raw, "little") & ~layout.reserved_mask
    assert layout.build(fields) == cleared.to_bytes(layout.size, "little")
    assert layout.struct.build(words) == raw
