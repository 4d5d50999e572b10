"""Secure TSC: the guest TSC scale the firmware derives from LAUNCH_START's DESIRED_TSC_FREQ.

A SecureTSC guest's TSC runs at DESIRED_TSC_FREQ whatever the host does: the firmware writes
GUEST_TSC_SCALE (and GUEST_TSC_OFFSET = 0) into each launch VMSA that has SEV_FEATURES bit 9,
and answers MSG_TSC_INFO with the same scale.  The scale is the ratio of the desired frequency
to the PSP's reference clock in the TSC Ratio MSR's 8.32 fixed-point format (APM vol. 2,
MSR C000_0104h).  The reference clock is 100 MHz less the SSC down-spread (TSC_FACTOR): 99.8 MHz
on Genoa (AFW ``REF_CLK_GENOA``; for the other products inferred from their TSC_FACTOR).
Loaded only when a guest uses Secure TSC.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sp_emu.products import Product


def tsc_scale(desired_khz: int, ref_clk_khz: int) -> int:
    """``desired_khz / ref_clk_khz`` as 8.32 fixed point: the fraction rounded up, the
    integer part truncated to 8 bits (AFW ``calc_tsc_scale``)."""
    whole, rest = divmod(desired_khz, ref_clk_khz)
    frac = ((rest << 32) + ref_clk_khz - 1) // ref_clk_khz
    return (whole & 0xFF) << 32 | (frac & 0xFFFF_FFFF)


def reference_clock_khz(product: Product) -> int:
    """The PSP's TSC reference clock: 100 MHz less the down-spread ``tsc_factor`` (in
    thousandths of a percent of 100 MHz, i.e. kHz: Genoa's 200 gives 99,800 kHz)."""
    return 100_000 - product.tsc_factor


def guest_tsc_scale(desired_khz: int, product: Product) -> int:
    """The GUEST_TSC_SCALE the firmware of ``product`` gives a guest that asked for
    ``desired_khz`` at LAUNCH_START."""
    return tsc_scale(desired_khz, reference_clock_khz(product))
