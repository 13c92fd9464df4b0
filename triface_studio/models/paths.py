"""The per-user folders of models (no other imports, so that tiers and the registry both use them)."""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """The per-user data folder: ``$TRIFACE_DATA_DIR`` or platformdirs' user data dir."""
    env = os.environ.get("TRIFACE_DATA_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("triface-studio", appauthor=False))


def user_models_dir() -> Path:
    return data_dir() / "models"
