"""``triface bench``: timings of every stage, printed as JSON records.

Each stage is a function registered with :func:`stage`; it receives a :class:`BenchContext`
and returns a list of records (dicts) that carry at least ``stage`` and ``ms_median``.  Medians
are over repeats after a warm-up; on CUDA, times come from CUDA events.  Every record also gets
``peak_rss_mb``: the process's peak resident memory after its stage (monotonic over the run).  Stages that need
something this installation lacks (a model, a GPU) return a record with ``skipped`` and why.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch

_STAGES: dict[str, Callable[["BenchContext"], list[dict]]] = {}


def stage(name: str):
    """Register a benchmark stage under ``name`` (decorator)."""
    def wrap(fn):
        _STAGES[name] = fn
        return fn
    return wrap


def stages() -> list[str]:
    _load_builtin_stages()
    return list(_STAGES)


@dataclass
class BenchContext:
    device: torch.device
    repeats: int = 5
    warmup: int = 1
    quick: bool = False

    def time_ms(self, fn: Callable[[], object], repeats: int | None = None) -> float:
        """Median wall time of ``fn`` in milliseconds (CUDA events on a GPU)."""
        n = repeats or self.repeats
        for _ in range(self.warmup):
            fn()
        times = []
        for _ in range(n):
            if self.device.type == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                torch.cuda.synchronize()
                times.append(start.elapsed_time(end))
            else:
                t0 = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t0) * 1000)
        return statistics.median(times)

    def peak_mem_mb(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        return peak_rss_mb()

    def reset_peak(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)


def peak_rss_mb() -> float:
    """Peak resident set size of this process (MB)."""
    try:
        import resource

        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return kb / 1024 if platform.system() != "Darwin" else kb / 2**20
    except ImportError:  # Windows
        return float("nan")


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
