"""The layering rule: only triface_studio.qt imports Qt libraries, and lower layers never
import higher ones (the same contracts as pyproject's [tool.importlinter])."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "triface_studio"
QT_LIBS = {"PySide6", "pyqtgraph", "superqt", "qtawesome"}
LAYERS = ["core", "models", "pipeline", "document", "evaluation", "cli", "qt"]


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            # relative import: resolve against the module's package
            base = path.relative_to(PKG.parent).with_suffix("").parts[: -node.level]
            names.add(".".join(base + ((node.module,) if node.module else ())))
    return names


def layer_of(path: Path) -> str | None:
    parts = path.relative_to(PKG).parts
    return parts[0] if len(parts) > 1 and parts[0] in LAYERS else None


def test_only_the_qt_package_imports_qt():
    offenders = []
    for py in PKG.rglob("*.py"):
        if layer_of(py) == "qt":
            continue
        bad = {n for n in imports_of(py) if n.split(".")[0] in QT_LIBS}
        if bad:
            offenders.append(f"{py.relative_to(PKG.parent)}: {sorted(bad)}")
    assert not offenders, "Qt imported outside triface_studio/qt:\n" + "\n".join(offenders)


def test_lower_layers_do_not_import_higher_ones():
    offenders = []
    for py in PKG.rglob("*.py"):
        own = layer_of(py)
        if own is None:
            continue
        for name in imports_of(py):
            parts = name.split(".")
            if parts[0] != "triface_studio" or len(parts) < 2 or parts[1] not in LAYERS:
                continue
            if LAYERS.index(parts[1]) > LAYERS.index(own):
                offenders.append(f"{py.relative_to(PKG.parent)} ({own}) imports {name}")
    assert not offenders, "\n".join(offenders)


def test_import_linter_contracts_hold():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.fail("import-linter is part of the dev extra; install with pip install -e .[dev]")
    proc = subprocess.run([exe], cwd=PKG.parent, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_core_imports_without_qt_in_a_fresh_interpreter():
    code = ("import sys, triface_studio.core.rendering, triface_studio.core.blending, "
            "triface_studio.core.compositing, triface_studio.cli.main; "
            "bad = [m for m in sys.modules if m.split('.')[0] in {'PySide6','pyqtgraph','superqt','qtawesome'}]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PKG.parent, timeout=120)
