"""``vmsa`` is a leaf package: it imports only the standard library, ``binlayout`` (the
layout declarations) and ``construct``; importing it does not load ``construct``.

(design.md §2.3.  A repository-wide layering test may also exist; this one keeps the
rule visible next to the package.)
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import vmsa

PACKAGE_DIR = Path(vmsa.__file__).parent
ALLOWED_THIRD_PARTY = {"binlayout", "construct"}


def _imports(path: Path) -> set[str]:
    """Top-level module names imported (absolutely) by one source file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_vmsa_imports_only_stdlib_binlayout_and_construct() -> None:
    sources = sorted(PACKAGE_DIR.glob("*.py"))
    assert sources, "no vmsa sources found"
    for path in sources:
        for name in _imports(path):
            allowed = name in sys.stdlib_module_names or name in ALLOWED_THIRD_PARTY
            assert allowed, f"{path.name} imports {name}"
            assert name not in ("sp_emu", "rmp", "sevsnpmeasure", "hypothesis")


def test_importing_vmsa_does_not_load_construct() -> None:
    """Building a VMSA is on ``sp-emu measure``'s start-up path; only ``VMSA_LAYOUT.struct``
    (the construct form) imports ``construct``."""
    code = "import sys, vmsa; print('construct' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_public_api_is_exported() -> None:
    for name in vmsa.__all__:
        assert hasattr(vmsa, name), name
