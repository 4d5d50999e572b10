"""TCB_VERSION: the security version numbers of the firmware components, packed in a u64.

The byte layout depends on the product generation (Linux ``psp-sev.h``
``sev_snp_tcb_version_genoa_milan`` / ``_turin``):

========  ======================  =================
byte      Milan / Genoa           Turin and later
========  ======================  =================
0         boot loader             FMC
1         TEE                     boot loader
2         (reserved)              TEE
3         (reserved)              SNP
6         SNP                     (reserved)
7         microcode               microcode
========  ======================  =================
"""

from __future__ import annotations

from collections.abc import Mapping

from binlayout.records import record

LEGACY_LAYOUT: Mapping[str, int] = {"bootloader": 0, "tee": 1, "snp": 6, "microcode": 7}
TURIN_LAYOUT: Mapping[str, int] = {"fmc": 0, "bootloader": 1, "tee": 2, "snp": 3, "microcode": 7}


@record
class TcbVersion:
    """A TCB: one SVN per component, packed by ``layout`` (component -> byte index)."""

    bootloader: int = 0
    tee: int = 0
    snp: int = 0
    microcode: int = 0
    fmc: int = 0
    turin_layout: bool = False

    @property
    def layout(self) -> Mapping[str, int]:
        return TURIN_LAYOUT if self.turin_layout else LEGACY_LAYOUT

    def to_int(self) -> int:
        """The packed u64."""
        return sum(getattr(self, name) << (8 * byte) for name, byte in self.layout.items())

    @classmethod
    def from_int(cls, value: int, *, turin_layout: bool = False) -> TcbVersion:
        """Unpack a u64 with the given generation's layout (reserved bytes are dropped)."""
        layout = TURIN_LAYOUT if turin_layout else LEGACY_LAYOUT
        parts = {name: (value >> (8 * byte)) & 0xFF for name, byte in layout.items()}
        return cls(turin_layout=turin_layout, **parts)

    @staticmethod
    def reserved_bits(value: int, *, turin_layout: bool = False) -> int:
        """The bits of ``value`` that fall in reserved bytes."""
        layout = TURIN_LAYOUT if turin_layout else LEGACY_LAYOUT
        used = sum(0xFF << (8 * byte) for byte in layout.values())
        return value & ~used

    def components(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.layout}

    def le(self, other: TcbVersion) -> bool:
        """Component-wise ``self <= other`` (how the firmware orders TCBs)."""
        return all(getattr(self, n) <= getattr(other, n) for n in self.layout)
