"""Where the shipped resources (bundled model weights, icons, sample portraits) live.

``resources/`` sits at the top of the repository.  The same tree is found in three layouts:

- a source checkout (or an editable install): ``<checkout>/resources``;
- an installed wheel: the build maps ``resources/`` to the package ``triface_studio._resources``
  (see ``setup.py``), so it lands in ``site-packages/triface_studio/_resources``;
- a PyInstaller bundle: ``<bundle>/_internal/resources`` (``sys._MEIPASS``), see
  ``packaging/triface-studio.spec``.

``TRIFACE_RESOURCES_DIR`` overrides all three (useful for a system package that installs the
files elsewhere).  Nothing here imports Qt or torch.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_PKG = Path(__file__).resolve().parent


def _candidates() -> list[Path]:
    out: list[Path] = []
    env = os.environ.get("TRIFACE_RESOURCES_DIR")
    if env:
        out.append(Path(env).expanduser())
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        out.append(Path(frozen) / "resources")
    out.append(_PKG / "_resources")                     # installed wheel
    if (_PKG.parent / "pyproject.toml").is_file():      # source checkout only, never site-packages/resources
        out.append(_PKG.parent / "resources")
    return out


def resources_dir() -> Path:
    """The resources folder; ``FileNotFoundError`` naming every place looked at when none exists."""
    cands = _candidates()
    found = next((c for c in cands if c.is_dir()), None)
    if found is None:
        raise FileNotFoundError("TriFace Studio resources not found; looked in: "
                                + ", ".join(str(c) for c in cands)
                                + " (reinstall the package or set TRIFACE_RESOURCES_DIR)")
    return found


def resource_path(*parts: str, must_exist: bool = True) -> Path:
    """``resources_dir() / parts``; with ``must_exist`` a missing file is a ``FileNotFoundError``
    whose message names the file and the resources folder."""
    base = resources_dir()
    p = base.joinpath(*parts)
    if must_exist and not p.exists():
        raise FileNotFoundError(f"bundled resource {'/'.join(parts)!r} is missing from {base}")
    return p


def icon_path(name: str = "triface-studio.svg") -> Path:
    """An icon from ``resources/icons``."""
    return resource_path("icons", name)


def sample_images() -> list[Path]:
    """The sample portraits shipped in ``resources/samples`` (sorted; empty when none)."""
    try:
        d = resource_path("samples")
    except FileNotFoundError:
        return []
    return sorted(p for p in d.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp"})
