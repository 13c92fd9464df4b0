"""Benchmark stages of the core engine (more stages register from their own modules)."""

from __future__ import annotations

import torch

from triface_studio.core import scenes
from triface_studio.core.cameras import Camera
from triface_studio.core.rendering import RenderOptions, render

from .bench_core import BenchContext, stage


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


@stage("export")
def bench_export(ctx: BenchContext) -> list[dict]:
    """Export per frame: views (render + RGB and semantic PNGs, written atomically) and a GIF
    of them, with the weight-free ReliefTier (the rendering cost of a real tier is in ``render``
    and ``edit-export-view``)."""
    import tempfile
    from pathlib import Path

    import numpy as np

    from triface_studio.core.semantics import HAIR, SKIN
    from triface_studio.core.images import load_image
    from triface_studio.pipeline import EditPipeline
    from triface_studio.pipeline.exports import export_video, export_views, orbit_path
    from triface_studio.pipeline.relief import AlignedAnalyzer, ReliefTier

    yy, xx = np.mgrid[:512, :512]
    lab = np.zeros((512, 512), np.uint8)
    img = np.full((512, 512, 3), (90, 140, 200), np.uint8)
    hair = (xx - 256) ** 2 / 170 ** 2 + (yy - 250) ** 2 / 200 ** 2 < 1
    lab[hair], img[hair] = HAIR, (40, 30, 20)
    skin = (xx - 256) ** 2 / 120 ** 2 + (yy - 290) ** 2 / 160 ** 2 < 1
    lab[skin], img[skin] = SKIN, (220, 180, 150)
    an = AlignedAnalyzer()
    an.add(img, lab)
    pipe = EditPipeline(tier=ReliefTier(device=ctx.device), device=str(ctx.device), analyzer=an)
    asset = pipe.encode(pipe.analyze(img, "synthetic.png"))
    frames = 4 if ctx.quick else 12
    poses = orbit_path(frames)
    out = []
    for res in ((64,) if ctx.quick else (128, 256, 512)):
        with tempfile.TemporaryDirectory() as tmp:
            ms = ctx.time_ms(lambda: export_views(pipe, asset, tmp, poses, resolution=res), repeats=1 if ctx.quick else 3)
            pngs = sorted(Path(tmp).rglob("rgb_*.png"))
            gif_ms = ctx.time_ms(lambda: export_video([load_image(p) for p in pngs], f"{tmp}/orbit.gif"),
                                 repeats=1 if ctx.quick else 3)
        out.append({"stage": "export", "tier": "relief", "res": res, "frames": frames,
                    "ms_median": round(ms / frames, 2), "per": "frame (render + rgb + semantic PNG)",
                    "gif_ms_per_frame": round(gif_ms / frames, 2)})
    return out
