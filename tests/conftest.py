"""Test set-up shared by the whole suite.

- Qt runs headless (offscreen platform) and QSettings go to a temporary folder.
- torch uses at most 2 threads so the suite behaves the same on the 2-core CI machine.
- ``shared_data`` points at ../shared/data/celebamask-mini and skips cleanly when absent.
- Every test fails if it leaves a Python thread running.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data" / "celebamask-mini"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The celebamask-mini data set beside the checkout; skips the test when it is absent."""
    if not (SHARED_DATA / "images").is_dir():
        pytest.skip("../shared/data/celebamask-mini is not present")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory, monkeypatch):
    """Keep settings, caches and user model folders of tests out of the real home folder."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("TRIFACE_DATA_DIR", str(home / "data"))
    monkeypatch.setenv("TRIFACE_CONFIG_DIR", str(home / "config"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "xdg-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "xdg-data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "xdg-cache"))
    yield


@pytest.fixture(autouse=True)
def _no_leaked_threads():
    before = set(threading.enumerate())
    yield
    leaked = []
    for t in set(threading.enumerate()) - before:
        if isinstance(t, threading._DummyThread):
            # Python's stand-in for a thread it did not start (a QThread that made a Python
            # thread, e.g. an export's PNG writer): it never ends in threading's books, the
            # QThread itself is joined and checked by the app's tests
            continue
        t.join(timeout=5.0)
        if t.is_alive() and not t.daemon:
            leaked.append(t.name)
    assert not leaked, f"test left threads running: {leaked}"
