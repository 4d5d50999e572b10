"""Shared fixtures for the guest-image tests: the sample images and sev-snp-measure oracles.

sev-snp-measure (import name ``sevsnpmeasure``) is used only here and in the tests, as an
independent oracle: its ``GCTX`` is instrumented to record every PAGE_INFO update it makes,
so our launch plans can be compared item by item, not just by final digest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sp_emu.images import LaunchPlan, PageType, build_sample_ovmf, build_sample_svsm

#: (page_type, gpa, PAGE_INFO contents field) as sev-snp-measure feeds its hash chain.
Update = tuple[int, int, bytes]

DEBIAN_OVMF_CANDIDATES = ("/usr/share/ovmf/OVMF.fd", "/usr/share/OVMF/OVMF.fd")


def plan_updates(plan: LaunchPlan) -> list[Update]:
    """Expand a launch plan to the per-page updates a firmware would hash (test-side only)."""
    out: list[Update] = []
    for item in plan.items:
        for gpa, page in item.pages():
            if item.page_type is PageType.NORMAL:
                assert page is not None
                contents = hashlib.sha384(page).digest()
            else:
                contents = bytes(48)
            out.append((int(item.page_type), gpa, contents))
    return out


def chain_digest(updates: list[Update], seed: bytes = bytes(48)) -> bytes:
    """Launch digest over updates, PAGE_INFO as launch-measurement.md §1.1 (zero perms)."""
    ld = seed
    for page_type, gpa, contents in updates:
        info = ld + contents + (0x70).to_bytes(2, "little") + bytes([page_type, 0])
        info += bytes(4) + gpa.to_bytes(8, "little")
        assert len(info) == 0x70
        ld = hashlib.sha384(info).digest()
    return ld


@pytest.fixture(scope="session")
def sample_bytes() -> bytes:
    return build_sample_ovmf()


@pytest.fixture(scope="session")
def sample_path(tmp_path_factory: pytest.TempPathFactory, sample_bytes: bytes) -> Path:
    path = tmp_path_factory.mktemp("img") / "sample-ovmf.fd"
    path.write_bytes(sample_bytes)
    return path


@pytest.fixture(scope="session")
def svsm_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("img") / "sample-svsm.bin"
    path.write_bytes(build_sample_svsm())
    return path


@pytest.fixture()
def ssm_recorder(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """Run a sev-snp-measure function and return (its result, the updates it hashed)."""
    gctx = pytest.importorskip("sevsnpmeasure.gctx")
    recorded: list[Update] = []
    original = gctx.GCTX._update

    def spy(self: Any, page_type: int, gpa: int, contents: bytes) -> None:
        recorded.append((page_type, gpa, bytes(contents)))
        original(self, page_type, gpa, contents)

    monkeypatch.setattr(gctx.GCTX, "_update", spy)

    def run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, list[Update]]:
        recorded.clear()
        result = fn(*args, **kwargs)
        return result, list(recorded)

    yield run


@pytest.fixture(scope="session")
def debian_ovmf() -> Path:
    for candidate in DEBIAN_OVMF_CANDIDATES:
        if Path(candidate).is_file():
            return Path(candidate)
    pytest.skip("Debian's OVMF is not installed (apt-get install ovmf)")


@pytest.fixture(scope="session")
def expand() -> Callable[[LaunchPlan], list[Update]]:
    """Fixture form of :func:`plan_updates` (tests do not import conftest)."""
    return plan_updates


@pytest.fixture(scope="session")
def digest() -> Callable[[list[Update]], bytes]:
    """Fixture form of :func:`chain_digest`."""
    return chain_digest
