"""Benchmark of the orbit view (issue 15): the rasterised preview the app shows while the user
drags, the volume-rendered view on release, a 60-frame turntable export, and how closely the
preview matches the volume render (PSNR at four poses), all at 512 px on the bundled tier.  ``cpu_ms_median`` is the process's CPU time (all its threads)
per frame: on a machine that other jobs share, wall times grow with the load and CPU times much less."""

from __future__ import annotations

import math
import tempfile
import time

import numpy as np

from .bench_core import BenchContext, stage

#: poses at which the preview is compared with the volume render (yaw, pitch)
COMPARE_POSES = ((0.0, 0.0), (30.0, 10.0), (-45.0, -20.0), (45.0, 25.0))


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float32) / 255 - b.astype(np.float32) / 255) ** 2))
    return 10 * math.log10(1 / max(mse, 1e-10))


@stage("orbit")
def bench_orbit(ctx: BenchContext) -> list[dict]:
    import torch

    from triface_studio.core.images import load_image
    from triface_studio.core.semantics import colorize
    from triface_studio.models.face import FaceAnalyzer
    from triface_studio.pipeline import EditPipeline
    from triface_studio.pipeline.exports import export_views, orbit_path
    from triface_studio.resources import resource_path

    pipe = EditPipeline(tier="bundled", device=str(ctx.device), analyzer=FaceAnalyzer(str(ctx.device), parser="shipped"))
    asset = pipe.encode(pipe.analyze(load_image(resource_path("samples", "astronaut.png")), "astronaut", "identity"))
    res = 128 if ctx.quick else 512
    common = {"stage": "orbit", "res": res, "threads": torch.get_num_threads()}
    out = []
    if not pipe.can_preview(asset):
        out.append({**common, "part": "preview", "skipped": "no rasteriser (numba is not installed)"})
    else:
        t = time.perf_counter()
        pipe.tier.surface(asset)
        mesh_ms = (time.perf_counter() - t) * 1000
        # a drag: a new pose per frame; each frame is what the viewport gets (RGB, labels, the
        # side-by-side image it displays)
        n = 8 if ctx.quick else 60
        poses = [(40 * math.sin(2 * math.pi * i / n), 15 * math.cos(2 * math.pi * i / n)) for i in range(n)]
        pipe.preview_view(asset, *poses[0], res)
        times, cpu = [], []
        for yaw, pitch in poses:
            t0, c0 = time.perf_counter(), time.process_time()
            rgb, labels = pipe.preview_view(asset, yaw, pitch, res)
            np.concatenate([rgb, colorize(labels)], 1)
            times.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
        ms = float(np.median(times))
        out.append({**common, "part": "preview", "ms_median": round(ms, 2), "fps": round(1000 / ms, 1),
                    "ms_p90": round(float(np.percentile(times, 90)), 2), "frames": n,
                    "target_fps": 30, "ok": 1000 / ms >= 30, "mesh_build_ms": round(mesh_ms, 1),
                    "cpu_ms_median": round(float(np.median(cpu)), 2),
                    "mesh_triangles": int(pipe.tier.surface(asset)[0].faces.shape[0])})
        psnr = {}
        for yaw, pitch in COMPARE_POSES:
            vol = pipe.render_view(asset, yaw, pitch, res)[0]
            psnr[f"{yaw:+.0f},{pitch:+.0f}"] = round(_psnr(pipe.preview_view(asset, yaw, pitch, res)[0], vol), 2)
        out.append({**common, "part": "preview_vs_volume", "psnr_db": psnr,
                    "poses": "yaw,pitch in degrees; PSNR of the whole RGB frame (backdrop included)"})
    cpu = []

    def release():
        c0 = time.process_time()
        pipe.render_view(asset, 25.0, 10.0, res)
        cpu.append((time.process_time() - c0) * 1000)

    ms = ctx.time_ms(release, repeats=3 if ctx.quick else 7)
    out.append({**common, "part": "release", "ms_median": round(ms, 2), "target_ms": 150, "ok": ms <= 150,
                "cpu_ms_median": round(float(np.median(cpu)), 2),
                "what": "volume render with semantics, the view shown when a drag ends"})
    frames = 8 if ctx.quick else 60
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        files = export_views(pipe, asset, tmp, orbit_path(frames, "turntable"), res, rgb=True, semantic=True)
        s = time.perf_counter() - t0
    out.append({**common, "part": "turntable_export", "ms_median": round(s * 1000, 1), "seconds": round(s, 2),
                "frames": frames, "files": len(files), "target_s": 10, "ok": s <= 10,
                "what": "volume renders + RGB and semantic PNGs, turntable +-45 / +-15 degrees"})
    return out
