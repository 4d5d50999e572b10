"""Shared test setup: hypothesis profiles (chosen with SP_EMU_HYPOTHESIS=dev|ci|soak)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=50, deadline=None)
settings.register_profile(
    "ci", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("soak", max_examples=5000, deadline=None)
settings.load_profile(os.environ.get("SP_EMU_HYPOTHESIS", "ci"))
