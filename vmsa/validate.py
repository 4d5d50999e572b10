"""Consistency checks on a VMSA page: :func:`check_vmsa`.

What the real actors are known to check (vmsa-layout.md §4; Linux ``sev.c``; the
published Genoa SEV firmware 1.55, "AFW"), and what is only this model's policy:

* **Length 4096** - confirmed: the firmware takes VMSA pages only as 4 KiB pages.
* **VMPL <= 3** - unconfirmed: the field has two meaningful bits; what VMRUN does with
  4..255 is not in our sources.
* **VMPL == expected** - model policy (e.g. the VMSAs KVM builds are VMPL0).
* **SNP_ACTIVE set** - partly confirmed: KVM forces bit 0 into every SNP VMSA it
  builds; the VMRUN check is not in our sources.
* **No reserved SEV_FEATURES bit** - unconfirmed: VMRUN is reported to check that
  SEV_FEATURES is valid (vmsa-layout.md §4), but the exact rule is not in our sources.
* **SEV_FEATURES equal to the guest's** - confirmed for KVM's AP-creation request:
  the SEV_FEATURES value the guest passes in RAX must equal the VM's features (exact
  match since the 2025 patch "KVM: SVM: Require AP's requested SEV_FEATURES to match
  KVM's view"; older KVM compared only the INT_INJ_MODES bits 3-4).  KVM cannot read
  the encrypted page, so applying the rule to the page's own field is this model's
  reading.
* **Reserved ranges zero** - model policy (the README's "MBZ" convention).  FW 1.55
  hashes whatever the page holds and checks no VMSA field at LAUNCH_UPDATE; KVM
  checks none; whether VMRUN checks any is unknown.

Two reserved ranges are never checked, because real actors write them:
``reserved_0x380`` (the SNP firmware stores 0 and all-ones there after measuring,
AFW ``sev_es_setup_vmsa``) and ``reserved_0xfc0`` (processor-owned history area that
the SEV-ES CRC excludes; AFW).  See :data:`RESERVED_RANGES`.
"""

from __future__ import annotations

from binlayout.records import record

from .errors import VmsaInvalid
from .features import RESERVED_SEV_FEATURES, SevFeatures
from .layout import FIELD_OFFSETS, RESERVED_FIELDS, U64_MASK, VMSA_SIZE
from .model import Vmsa

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

MAX_VMPL: Final = 3


@record
class ReservedRange:
    """One reserved byte range of the VMSA and whether :func:`check_vmsa` checks it."""

    field: str
    """Field name in :data:`vmsa.layout.FIELD_OFFSETS`, ``reserved_0x<offset>``."""
    offset: int
    size: int
    checked: bool
    """True if :func:`check_vmsa` rejects a non-zero byte here (model policy)."""
    note: str


_UNCHECKED_NOTES: Final = {
    "reserved_0x380": (
        "SEV-ES CRC slot; the SNP firmware writes 0 at 0x380 and all-ones at 0x388 after "
        "measuring the page (AFW, single source), so a launched VMSA is non-zero here"
    ),
    "reserved_0xfc0": (
        "processor history area outside the SEV-ES CRC (0x000-0xFBF); may be written by "
        "hardware (AFW, unconfirmed)"
    ),
}
_CHECKED_NOTE: Final = (
    "reserved; zero in every VMSA KVM or sev-snp-measure builds. Not checked by FW 1.55 "
    "or KVM; whether VMRUN checks it is unconfirmed. Rejected here as model policy."
)

RESERVED_RANGES: Final[tuple[ReservedRange, ...]] = tuple(
    ReservedRange(
        field=name,
        offset=FIELD_OFFSETS[name][0],
        size=FIELD_OFFSETS[name][1],
        checked=name not in _UNCHECKED_NOTES,
        note=_UNCHECKED_NOTES.get(name, _CHECKED_NOTE),
    )
    for name in RESERVED_FIELDS
)
"""Every reserved range of the layout, in offset order, with its checking policy."""

CHECKED_RESERVED_FIELDS: Final[tuple[str, ...]] = tuple(
    r.field for r in RESERVED_RANGES if r.checked
)
"""Reserved ranges :func:`check_vmsa` requires to be zero."""

UNCHECKED_RESERVED_FIELDS: Final[tuple[str, ...]] = tuple(
    r.field for r in RESERVED_RANGES if not r.checked
)
"""Reserved ranges left alone because the firmware or the CPU writes them."""

_CHECKED_SLICES: Final = tuple(
    (r.field, r.offset, r.offset + r.size) for r in RESERVED_RANGES if r.checked
)
_VMPL_OFFSET: Final = FIELD_OFFSETS["vmpl"][0]
_FEATURES_START: Final = FIELD_OFFSETS["sev_features"][0]
_FEATURES_END: Final = _FEATURES_START + FIELD_OFFSETS["sev_features"][1]


def check_vmsa(
    data: bytes | bytearray | memoryview | Vmsa,
    *,
    expected_vmpl: int | None = None,
    guest_sev_features: int | None = None,
    features_must_match: int = U64_MASK,
) -> None:
    """Raise :class:`vmsa.errors.VmsaInvalid` if ``data`` is not an acceptable SNP VMSA.

    Checks, in this order (the first failure is raised):

    1. ``length``: exactly 4096 bytes.
    2. ``vmpl``: at most 3, and equal to ``expected_vmpl`` when given.
    3. ``sev_features``: SNP_ACTIVE (bit 0) set; no reserved bit set
       (:data:`vmsa.features.RESERVED_SEV_FEATURES`); and, when
       ``guest_sev_features`` is given, equal to it in every bit of
       ``features_must_match`` (default: all bits, as current KVM requires; pass
       :data:`vmsa.features.INT_INJ_MODES` for the pre-2025 KVM rule).
    4. each range in :data:`CHECKED_RESERVED_FIELDS` is all zero; the error names
       the range, e.g. ``reserved_0x0c8``.

    See the module docstring for which of these the real firmware, KVM or CPU enforce.
    """
    if expected_vmpl is not None and not 0 <= expected_vmpl <= MAX_VMPL:
        raise ValueError(f"expected_vmpl must be 0..{MAX_VMPL}, got {expected_vmpl}")
    page = data.to_bytes() if isinstance(data, Vmsa) else bytes(data)

    # 1. Size.
    if len(page) != VMSA_SIZE:
        raise VmsaInvalid("length", f"a VMSA is {VMSA_SIZE} bytes, got {len(page)}")

    # 2. VMPL.
    vmpl = page[_VMPL_OFFSET]
    if vmpl > MAX_VMPL:
        raise VmsaInvalid("vmpl", f"VMPL {vmpl} is not 0..{MAX_VMPL}")
    if expected_vmpl is not None and vmpl != expected_vmpl:
        raise VmsaInvalid("vmpl", f"VMPL is {vmpl}, expected {expected_vmpl}")

    # 3. SEV_FEATURES.
    features = int.from_bytes(page[_FEATURES_START:_FEATURES_END], "little")
    if not features & SevFeatures.SNP_ACTIVE:
        raise VmsaInvalid("sev_features", f"{features:#x} lacks SNP_ACTIVE (bit 0)")
    reserved = features & RESERVED_SEV_FEATURES
    if reserved:
        raise VmsaInvalid("sev_features", f"{features:#x} sets reserved bits {reserved:#x}")
    if guest_sev_features is not None:
        differing = (features ^ guest_sev_features) & features_must_match
        if differing:
            raise VmsaInvalid(
                "sev_features",
                f"{features:#x} differs from the guest's {guest_sev_features:#x} "
                f"in bits {differing:#x}",
            )

    # 4. Reserved ranges.
    for name, start, end in _CHECKED_SLICES:
        if any(page[start:end]):
            raise VmsaInvalid(name, f"reserved bytes {start:#05x}..{end - 1:#05x} are not zero")
