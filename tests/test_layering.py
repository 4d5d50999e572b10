"""Imports go one way (shared/design.md §2.3): rmp and vmsa are leaves, rich only in the CLI,
hypothesis only in sp_emu.testing and tests."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def top(name: str) -> str:
    return name.split(".")[0]


def test_rmp_and_vmsa_are_leaves() -> None:
    for package, foreign in (("rmp", {"sp_emu", "vmsa"}), ("vmsa", {"sp_emu", "rmp"})):
        for path in modules(package):
            bad = {n for n in imports(path) if top(n) in foreign}
            assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_rich_only_in_cli_and_hypothesis_only_in_testing() -> None:
    for path in modules("sp_emu"):
        rel = path.relative_to(ROOT).as_posix()
        names = {top(n) for n in imports(path)}
        if not rel.startswith("sp_emu/cli/"):
            assert "rich" not in names, f"{rel} imports rich"
        if not rel.startswith("sp_emu/testing/"):
            assert "hypothesis" not in names, f"{rel} imports hypothesis"


def test_firmware_core_does_not_import_upper_layers() -> None:
    upper = ("sp_emu.cli", "sp_emu.trace", "sp_emu.testing", "sp_emu.hypervisors")
    lower = ["abi", "commands", "errors.py", "firmware.py", "memory.py", "state.py", "npt.py"]
    for entry in lower:
        paths = modules(f"sp_emu/{entry}") if "." not in entry else [ROOT / "sp_emu" / entry]
        for path in paths:
            bad = {n for n in imports(path) if n.startswith(upper)}
            assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_no_product_code_imports_the_oracle() -> None:
    for package in ("rmp", "vmsa", "sp_emu"):
        for path in modules(package):
            assert "sevsnpmeasure" not in {top(n) for n in imports(path)}, path
