"""sp_emu.images imports only the standard library, binlayout and itself (design §2.3), and
importing it does not load ``construct`` (``sp-emu measure`` starts fast)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import sp_emu.images

ALLOWED_THIRD_PARTY = {"binlayout"}


def test_images_imports_only_stdlib_and_binlayout() -> None:
    package_dir = Path(sp_emu.images.__file__).parent
    offenders = []
    for path in sorted(package_dir.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level > 1:
                    offenders.append(f"{path.name}:{node.lineno} imports from outside the package")
                    continue
                if node.level == 1:
                    continue  # relative: inside sp_emu.images
                if (node.module or "").startswith("sp_emu.abi"):
                    continue  # ABI facts (page types) are plain data below the images layer
                if node.module == "sp_emu.digests":
                    continue  # hash functions (a leaf module: imports nothing of sp_emu)
                roots = [(node.module or "").split(".")[0]]
            else:
                continue
            for root in roots:
                if root not in sys.stdlib_module_names and root not in ALLOWED_THIRD_PARTY:
                    offenders.append(f"{path.name}:{node.lineno} imports {root}")
    assert offenders == []


def test_importing_images_does_not_load_construct() -> None:
    code = "import sys, sp_emu.images; print('construct' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_module_sizes() -> None:
    package_dir = Path(sp_emu.images.__file__).parent
    for path in package_dir.glob("*.py"):
        assert len(path.read_text().splitlines()) < 600, path.name
