"""Benchmark stages of the core engine (more stages register from their own modules)."""

from __future__ import annotations

import torch

from triface_studio.core import scenes
from triface_studio.core.cameras import Camera
from triface_studio.core.rendering import RenderOptions, render

from .bench import BenchContext, stage


@stage("render")
def bench_render(ctx: BenchContext) -> list[dict]:
    """Full importance rendering (48 + 48 samples per ray) of a fixed analytic tri-plane."""
    planes = scenes.sphere_triplane(128, device=ctx.device)
    decoder = scenes.SphereDecoder()
    cam = Camera.orbit(20, 5, device=ctx.device)
    opts = RenderOptions()
    out = []
    for res in ((64, 128) if ctx.quick else (128, 256, 512)):
        ctx.reset_peak()
        with torch.inference_mode():
            ms = ctx.time_ms(lambda: render(planes, decoder, cam, res, opts), repeats=1 if ctx.quick else (5 if res < 512 else 3))
        out.append({"stage": "render", "scene": "analytic-sphere", "res": res, "ms_median": round(ms, 2),
                    "samples_per_ray": opts.n_coarse + opts.n_importance,
                    "peak_mem_mb": round(ctx.peak_mem_mb(), 1)})
    return out
