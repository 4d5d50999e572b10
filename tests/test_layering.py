"""Imports go one way (shared/design.md §2.3): binlayout, rmp and vmsa are leaves, rich only in
the CLI, hypothesis only in sp_emu.testing and tests."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
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
    # Each imports only the standard library, binlayout, construct and itself.
    for package in ("rmp", "vmsa"):
        allowed = {package, "binlayout", "construct"}
        for path in modules(package):
            bad = {
                n
                for n in imports(path)
                if top(n) not in allowed and top(n) not in sys.stdlib_module_names
            }
            assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_binlayout_imports_only_the_stdlib() -> None:
    # construct only inside a function: the construct form of a layout is made on first use.
    for path in modules("binlayout"):
        tree = ast.parse(path.read_text())
        lazy = {
            id(node)
            for func in ast.walk(tree)
            if isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef)
            for node in ast.walk(func)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = {top(a.name) for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                names = {top(node.module or "")} if not node.level else set()
            else:
                continue
            ok = set(sys.stdlib_module_names) | ({"construct"} if id(node) in lazy else set())
            assert names <= ok, f"{path.relative_to(ROOT)}:{node.lineno} imports {names - ok}"


def test_leaves_and_images_do_not_load_construct() -> None:
    """``sp-emu measure`` starts fast: importing the layouts must not import construct (only
    a layout's ``.struct`` does)."""
    code = "import sys, binlayout, rmp, vmsa, sp_emu.images; print('construct' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_measure_loads_only_what_it_runs() -> None:
    """``sp-emu measure`` starts fast: none of the standard modules that are slow to import
    (each costs one to three ms: ``typing``, ``pathlib``, ``uuid``, ``shutil``, ``hashlib``
    with OpenSSL...), no thread
    pool, no other subcommand and no firmware command the launch does not run.  Run without
    site-packages (``-S``; the launch needs none), so ``.pth`` files cannot hide an import."""
    code = (
        "import sys; before = set(sys.modules); import io; from sp_emu.cli.app import main; "
        "main(['measure'], out=io.StringIO()); "
        "print(' '.join(sorted(set(sys.modules) - before - {'io'})))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True, env=env
    )
    loaded = set(out.stdout.split())
    unwanted = {
        "base64",
        "concurrent.futures",
        "construct",
        "copy",
        "dataclasses",
        "hashlib",
        "importlib",
        "inspect",
        "pathlib",
        "platform",
        "rich",
        "shutil",
        "threading",
        "typing",
        "uuid",
        "sp_emu.cli.launch",
        "sp_emu.cli.id_block",
        "sp_emu.cli.report",
        "sp_emu.cli.kds_cmd",
        "sp_emu.commands.guest_request",
        "sp_emu.commands.vlek",
    }
    assert not loaded & unwanted, sorted(loaded & unwanted)
    assert "sp_emu.commands.launch_update" in loaded


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
