"""Test set-up shared by the whole suite.

- Qt runs headless (offscreen platform) and QSettings go to a temporary folder.
- torch uses at most 2 threads so the suite behaves the same on the 2-core CI machine.
- ``shared_data`` points at ../shared/data/celebamask-mini and skips cleanly when absent.
- Every test fails if it leaves a Python thread running (or a foreign thread, e.g. a QThread, that ran
  Python code and still exists).
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


@pytest.fixture(scope="session")
def tiny_score_model(tmp_path_factory) -> Path:
    """A tiny random score model for the SDEdit refiner, built as ``triface train score`` builds one
    (``make_unet``) and saved as a diffusers folder (unet/ + scheduler/)."""
    from triface_studio.models.neural.sdedit import default_scheduler
    from triface_studio.models.neural.training import ScoreTrainConfig, make_unet

    torch.manual_seed(0)
    unet = make_unet(ScoreTrainConfig(resolution=16, block_out_channels=(8, 16), layers_per_block=1))
    d = tmp_path_factory.mktemp("score")
    unet.save_pretrained(d / "unet")
    default_scheduler().save_pretrained(d / "scheduler")
    return d


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


def _native_thread_alive(t: threading.Thread, wait: float = 5.0) -> bool:
    """A thread Python did not start (a QThread that ran Python code shows up as a
    ``_DummyThread``, which cannot be joined): alive while its OS thread exists."""
    import time

    task = Path(f"/proc/self/task/{t.native_id}")
    if t.native_id is None or not Path("/proc/self/task").is_dir():
        return False
    deadline = time.monotonic() + wait
    while task.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return task.exists()


@pytest.fixture(autouse=True)
def _no_leaked_threads():
    before = set(threading.enumerate())
    yield
    leaked = []
    for t in set(threading.enumerate()) - before:
        if isinstance(t, threading._DummyThread):
            if _native_thread_alive(t):
                leaked.append(t.name)
            continue
        t.join(timeout=5.0)
        if t.is_alive() and not t.daemon:
            leaked.append(t.name)
    assert not leaked, f"test left threads running: {leaked}"
