"""Command buffers are declared with :mod:`binlayout` (a leaf shared with ``rmp`` and
``vmsa``); this module re-exports it under the name the firmware code uses."""

from binlayout import (
    Bits,
    BufferLayout,
    FieldInfo,
    LayoutError,
    Member,
    bits,
    blob,
    u8,
    u16,
    u32,
    u64,
)

__all__ = [
    "Bits",
    "BufferLayout",
    "FieldInfo",
    "LayoutError",
    "Member",
    "bits",
    "blob",
    "u8",
    "u16",
    "u32",
    "u64",
]
