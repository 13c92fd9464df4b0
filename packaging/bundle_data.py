"""What the desktop bundle carries besides Python code; shared by triface-studio.spec and
tests/test_packaging.py (so the test checks exactly what the build uses).  No PyInstaller import
at module level: the test runs without it."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (source relative to the repository, destination folder inside the bundle)
# resources/ goes in whole (icons, models/face, models/parser, samples): whatever the project ships
# there is found by triface_studio.resources in the bundle too.
PROJECT_DATA: tuple[tuple[str, str], ...] = (
    ("resources", "resources"),
    ("LICENSE", "."),
    ("NOTICE", "."),
    ("THIRD_PARTY_LICENSES", "."),
    ("packaging/triface-studio.desktop", "."),
)

# Installed packages whose distribution metadata is read at run time (importlib.metadata):
# diffusers checks the versions of torch & co when it is imported.
METADATA_PACKAGES: tuple[str, ...] = (
    "triface-studio", "torch", "numpy", "diffusers", "safetensors", "huggingface-hub", "tqdm",
    "regex", "requests", "filelock", "packaging", "pyyaml", "imageio", "Pillow",
)

# Modules imported by name at run time (importlib) that static analysis cannot see.
HIDDEN_PACKAGES: tuple[str, ...] = ("triface_studio",)
HIDDEN_IMPORTS: tuple[str, ...] = ("ai_edge_litert.interpreter",)

# Large things the app never imports.
EXCLUDES: tuple[str, ...] = (
    "tkinter", "matplotlib", "IPython", "jupyter", "notebook", "pytest", "torch.utils.tensorboard",
    "tensorboard", "sympy.plotting", "PySide6.QtWebEngineCore", "PySide6.QtWebEngineWidgets",
    "PySide6.Qt3DCore", "PySide6.QtQuick3D", "PySide6.QtMultimedia", "PySide6.QtPdf",
)

# Files that package hooks collect but the app never uses: torch's C++ test programs and tools
# (~130 MB).  torch_shm_manager stays (torch.multiprocessing needs it).
DROP_PREFIXES: tuple[str, ...] = ("torch/test/", "torch/bin/", "torch/include/")
KEEP: tuple[str, ...] = ("torch/bin/torch_shm_manager",)

ENTRY_SCRIPT = "packaging/triface_studio_launcher.py"
ICON_PNG = "resources/icons/triface-studio-256.png"


def project_datas(root: Path = ROOT, allow_missing: bool = False) -> list[tuple[str, str]]:
    """Absolute (source, destination) pairs for PyInstaller's ``datas``.  A missing source is an
    error (a bundle without its face models would not work) unless ``allow_missing``."""
    pairs = [(root / src, dest) for src, dest in PROJECT_DATA]
    missing = [str(p.relative_to(root)) for p, _ in pairs if not p.exists()]
    if missing and not allow_missing:
        raise FileNotFoundError(f"bundle data missing: {', '.join(missing)} (set TRIFACE_BUNDLE_PARTIAL=1 "
                                "for a development build without them)")
    return [(str(p), dest) for p, dest in pairs if p.exists()]


def keep_in_bundle(dest: str) -> bool:
    """Whether a collected file (its destination inside the bundle) is kept."""
    dest = dest.replace("\\", "/")
    return dest in KEEP or not dest.startswith(DROP_PREFIXES)
