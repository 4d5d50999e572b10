"""vCPU models and their CPUID Fn0000_0001_EAX signature.

At RESET an x86 CPU leaves its family/model/stepping signature (what CPUID leaf 1
later returns in EAX) in EDX.  QEMU/KVM reproduce this for every vCPU, so the RDX of
an initial VMSA under QEMU is the signature of the *guest* CPU model chosen with
``-cpu``, and it is part of the launch measurement (launch-measurement.md §9.4).

Encoding (AMD CPUID specification #25481, "Fn0000_0001_EAX Family, Model, Stepping";
launch-measurement.md §9.5)::

    bits 27:20  ExtFamily    family - 0xF when family > 0xF, else 0
    bits 19:16  ExtModel     model[7:4]
    bits 11:8   BaseFamily   0xF when family > 0xF, else family
    bits  7:4   BaseModel    model[3:0]
    bits  3:0   Stepping

On AMD the extended model is only meaningful when BaseFamily is 0xF, so a model
above 0xF cannot be encoded for families below 0xF and is rejected here (sev-snp-
measure would silently emit ExtModel anyway; every model in its table has family
>= 0x17, so the two agree on all of them).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

_BASE_FAMILY_EXTENDED: Final = 0xF
MAX_FAMILY: Final = 0xF + 0xFF
"""Largest family the 8-bit ExtFamily field can express (0x10E)."""


def cpu_signature(family: int, model: int, stepping: int) -> int:
    """Encode ``family``/``model``/``stepping`` as CPUID Fn0000_0001_EAX.

    >>> hex(cpu_signature(0x19, 0x11, 0))  # Genoa
    '0xa10f10'
    """
    if not 0 <= family <= MAX_FAMILY:
        raise ValueError(f"family {family:#x} is outside 0..{MAX_FAMILY:#x}")
    if not 0 <= stepping <= 0xF:
        raise ValueError(f"stepping {stepping:#x} is outside 0..0xf")
    model_limit = 0xFF if family >= _BASE_FAMILY_EXTENDED else 0xF
    if not 0 <= model <= model_limit:
        raise ValueError(f"model {model:#x} cannot be encoded for family {family:#x}")
    if family > _BASE_FAMILY_EXTENDED:
        base_family, ext_family = _BASE_FAMILY_EXTENDED, family - _BASE_FAMILY_EXTENDED
    else:
        base_family, ext_family = family, 0
    return (
        (ext_family << 20)
        | ((model >> 4) << 16)
        | (base_family << 8)
        | ((model & 0xF) << 4)
        | stepping
    )


def decode_cpu_signature(signature: int) -> tuple[int, int, int]:
    """Inverse of :func:`cpu_signature`: ``(family, model, stepping)``.

    Bits outside the five fields (31:28, 15:12) are ignored, as software reading
    CPUID does.
    """
    if not 0 <= signature <= 0xFFFF_FFFF:
        raise ValueError(f"signature {signature:#x} is not a 32-bit value")
    stepping = signature & 0xF
    base_model = (signature >> 4) & 0xF
    base_family = (signature >> 8) & 0xF
    ext_model = (signature >> 16) & 0xF
    ext_family = (signature >> 20) & 0xFF
    if base_family == _BASE_FAMILY_EXTENDED:
        return base_family + ext_family, (ext_model << 4) | base_model, stepping
    return base_family, base_model, stepping


# (family, model, stepping) of each QEMU x86 CPU model that sev-snp-measure 0.0.13 knows
# (launch-measurement.md §9.5).  EPYC-Turin comes from sev-snp-measure only.
_VCPU_MODELS: Final[tuple[tuple[tuple[str, ...], tuple[int, int, int]], ...]] = (
    (("EPYC", "EPYC-v1", "EPYC-v2", "EPYC-v3", "EPYC-v4", "EPYC-IBPB"), (23, 1, 2)),
    (("EPYC-Rome", "EPYC-Rome-v1", "EPYC-Rome-v2", "EPYC-Rome-v3"), (23, 49, 0)),
    (("EPYC-Milan", "EPYC-Milan-v1", "EPYC-Milan-v2"), (25, 1, 1)),
    (("EPYC-Genoa", "EPYC-Genoa-v1"), (25, 17, 0)),
    (("EPYC-Turin",), (26, 0, 0)),
)

VCPU_SIGNATURES: Final[Mapping[str, int]] = MappingProxyType(
    {name: cpu_signature(*fms) for names, fms in _VCPU_MODELS for name in names}
)
"""QEMU ``-cpu`` model name -> CPUID Fn0000_0001_EAX signature of that vCPU model."""

_BY_FOLDED_NAME: Final[Mapping[str, str]] = {name.casefold(): name for name in VCPU_SIGNATURES}


def vcpu_signature(name: str) -> int:
    """Signature of the QEMU vCPU model ``name`` (exact name, else case-insensitive).

    Raises ``KeyError`` listing the known names when ``name`` is not in
    :data:`VCPU_SIGNATURES`.
    """
    canonical = _BY_FOLDED_NAME.get(name.casefold())
    if canonical is None:
        raise KeyError(f"unknown vCPU type {name!r}; known: {', '.join(VCPU_SIGNATURES)}")
    return VCPU_SIGNATURES[canonical]
