"""``triface bench``: timings of every stage, printed as JSON records.

Each stage is a function registered with :func:`stage`; it receives a :class:`BenchContext`
and returns a list of records (dicts) that carry at least ``stage`` and ``ms_median``.  Medians
are over repeats after a warm-up; on CUDA, times come from CUDA events.  Every record also gets
``peak_rss_mb``: the process's peak resident memory after its stage (monotonic over the run).  Stages that need
something this installation lacks (a model, a GPU) return a record with ``skipped`` and why.
"""

from __future__ import annotations

import os

import torch

from .bench_core import _STAGES, BenchContext, peak_rss_mb, stage  # noqa: F401  (the stages' API, re-exported)


def stages() -> list[str]:
    _load_builtin_stages()
    return list(_STAGES)


def _load_builtin_stages() -> None:
    # Importing these modules registers their stages.
    from . import bench_stages  # noqa: F401
    from . import bench_edit  # noqa: F401
    from . import bench_neural  # noqa: F401
    from . import bench_analysis  # noqa: F401
    from . import bench_bundled  # noqa: F401
    from . import bench_orbit  # noqa: F401


def run(names: list[str] | None = None, device: str = "cpu", repeats: int = 5, quick: bool = False) -> dict:
    """Run the selected stages (all by default) and return the JSON document."""
    _load_builtin_stages()
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but torch sees no CUDA device")
    ctx = BenchContext(dev, repeats=repeats, quick=quick)
    unknown = [n for n in (names or []) if n not in _STAGES]
    if unknown:
        raise ValueError(f"unknown bench stage(s) {unknown}; known: {', '.join(_STAGES)}")
    results = []
    for name in names or list(_STAGES):
        recs = _STAGES[name](ctx)
        rss = round(peak_rss_mb(), 1)
        for r in recs:
            r.setdefault("peak_rss_mb", rss)  # the process's peak so far (it never goes down)
        results.extend(recs)
    return {
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({os.cpu_count()} cores)",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "results": results,
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
