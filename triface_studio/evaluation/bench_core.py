"""What the benchmark stages share: the stage registry (``@stage``), :class:`BenchContext` (median
wall times, peak memory) and ``peak_rss_mb``.  The stage modules import this, and
:mod:`triface_studio.evaluation.bench` imports the stage modules: one direction, no circle."""

from __future__ import annotations

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
