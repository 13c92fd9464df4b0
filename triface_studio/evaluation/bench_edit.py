"""Benchmark stages of the edit pipeline: a whole edit (with per-stage medians) and the
exports per frame.

``edit`` runs the bundled tier on two 512 px portraits (two CelebAMask-HQ images from
../shared/data when present, else scikit-image's public-domain astronaut photo and its mirror
image) with the analysis and encoding caches cleared before every repeat, so each repeat is a
complete edit of new photos with the models already loaded.  ``edit-relief`` times the
pipeline's own work (blending, compositing, refinement, paste-back) with the weight-free
ReliefTier, which is what remains when the models are fast.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

from .bench_core import BenchContext, stage

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "celebamask-mini"


def _photos():
    from triface_studio.core.images import load_image

    if (SHARED / "tags.csv").is_file():
        import csv

        with open(SHARED / "tags.csv") as f:
            rows = list(csv.DictReader(f))
        black = [r["name"] for r in rows if r["hair_tone"] == "black" and r["eyeglasses"] == "0"]
        blonde = [r["name"] for r in rows if r["hair_tone"] == "blonde" and r["eyeglasses"] == "0"]
        if black and blonde:
            return (load_image(SHARED / "images" / f"{black[0]}.jpg"),
                    load_image(SHARED / "images" / f"{blonde[0]}.jpg"), "celebamask-mini")
    from skimage import data

    img = np.ascontiguousarray(data.astronaut())
    return img, np.ascontiguousarray(img[:, ::-1]), "skimage-astronaut"


def _time_edit(ctx: BenchContext, pipe, request, repeats: int) -> tuple[list[float], dict]:
    totals, per_stage = [], {}
    for i in range(repeats + 1):
        pipe._analyses.clear()
        pipe._assets.clear()
        t0 = time.perf_counter()
        res = pipe.run(request)
        dt = time.perf_counter() - t0
        if i == 0:
            continue  # warm-up
        totals.append(dt)
        for k, v in res.timings.items():
            per_stage.setdefault(k, []).append(v)
    return totals, {k: round(statistics.median(v) * 1000, 1) for k, v in per_stage.items()}, res


@stage("edit")
def bench_edit(ctx: BenchContext) -> list[dict]:
    """A hair edit with the bundled tier (whole edit and per stage), then views and a mesh."""
    from triface_studio.pipeline import EditError, EditPipeline, EditRequest, ReferenceSpec
    from triface_studio.pipeline.exports import extract_mesh, orbit_path

    try:
        pipe = EditPipeline(tier="bundled", device=str(ctx.device))
        pipe.tier  # noqa: B018 - load now, not inside the timing
        pipe.analyzer  # noqa: B018
    except (EditError, ImportError) as e:
        return [{"stage": "edit", "skipped": f"bundled tier unavailable: {e}"}]
    ident, ref, source = _photos()
    req = EditRequest(identity=ident, references=[ReferenceSpec(ref, ("hair",))], device=str(ctx.device))
    repeats = 1 if ctx.quick else 3
    totals, stages, res = _time_edit(ctx, pipe, req, repeats)
    out = [{"stage": "edit", "tier": "bundled", "photos": source, "res": 512,
            "ms_median": round(statistics.median(totals) * 1000, 1), "per_stage_ms": stages,
            "peak_mem_mb": round(ctx.peak_mem_mb(), 1)}]
    for r in ((128,) if ctx.quick else (256, 512)):
        poses = orbit_path(4)
        ms = ctx.time_ms(lambda: [pipe.render_view(res.t_com, y, p, r) for y, p in poses], repeats=1)
        out.append({"stage": "edit-export-view", "res": r, "ms_median": round(ms / len(poses), 1),
                    "per": "frame (rgb + semantics)"})
    mr = 64 if ctx.quick else 128
    ms = ctx.time_ms(lambda: extract_mesh(pipe.tier, res.t_com, mr), repeats=1)
    out.append({"stage": "edit-export-mesh", "grid": mr, "ms_median": round(ms, 1)})
    return out


@stage("edit-relief")
def bench_edit_relief(ctx: BenchContext) -> list[dict]:
    """The pipeline's own cost, with the weight-free ReliefTier on synthetic aligned crops."""
    from triface_studio.core.semantics import HAIR, SKIN
    from triface_studio.pipeline import EditPipeline, EditRequest, ReferenceSpec
    from triface_studio.pipeline.relief import AlignedAnalyzer, ReliefTier

    def portrait(colour, top):
        yy, xx = np.mgrid[:512, :512]
        lab = np.zeros((512, 512), np.uint8)
        img = np.full((512, 512, 3), (90, 140, 200), np.uint8)
        hair = ((xx - 256) ** 2 / 170 ** 2 + (yy - 250) ** 2 / 200 ** 2 < 1) & (yy < top + 200)
        lab[hair], img[hair] = HAIR, colour
        skin = (xx - 256) ** 2 / 120 ** 2 + (yy - 290) ** 2 / 160 ** 2 < 1
        lab[skin], img[skin] = SKIN, (220, 180, 150)
        return img, lab

    an = AlignedAnalyzer()
    (a, la), (b, lb) = portrait((20, 15, 10), 120), portrait((230, 200, 120), 60)
    an.add(a, la)
    an.add(b, lb)
    pipe = EditPipeline(tier=ReliefTier(device=ctx.device), device=str(ctx.device), analyzer=an)
    req = EditRequest(identity=a, references=[ReferenceSpec(b, ("hair",))], device=str(ctx.device))
    totals, stages, _ = _time_edit(ctx, pipe, req, 1 if ctx.quick else 3)
    return [{"stage": "edit-relief", "tier": "relief", "res": 512,
             "ms_median": round(statistics.median(totals) * 1000, 1), "per_stage_ms": stages}]
