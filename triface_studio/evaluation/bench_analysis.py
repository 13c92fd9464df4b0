"""Benchmark stages of the bundled face analysis: detection + landmarks + alignment, and parsing,
on a 512 px portrait (the public-domain sample shipped in resources/samples)."""

from __future__ import annotations

from .bench import BenchContext, stage


def _sample():
    from triface_studio.core.images import load_image
    from triface_studio.resources import resource_path

    return load_image(resource_path("samples", "astronaut.png"))


@stage("analysis")
def bench_analysis(ctx: BenchContext) -> list[dict]:
    """Per 512 px photo on CPU: detection, landmarks (with one refinement pass), alignment and crop
    camera (``landmarks``), the parser on the 512 crop (``parse``), and the whole ``analyze``."""
    import torch

    from triface_studio.models.face import FaceAnalyzer

    img = _sample()
    an = FaceAnalyzer("cpu")
    repeats = 3 if ctx.quick else 10
    out = []
    ms_lm = ctx.time_ms(lambda: an.analyze(img, "sample", parse=False), repeats=repeats)
    out.append({"stage": "analysis", "part": "landmarks", "image": "512x512", "ms_median": round(ms_lm, 2),
                "threads": torch.get_num_threads(), "peak_mem_mb": round(ctx.peak_mem_mb(), 1)})
    fa = an.analyze(img, "sample", parse=False)
    if an._get_parser() is None:
        out.append({"stage": "analysis", "part": "parse", "skipped": "no parser weights installed"})
        return out
    ms_p = ctx.time_ms(lambda: an.parse(fa.crop), repeats=repeats)
    out.append({"stage": "analysis", "part": "parse", "crop": 512, "model_size": an._get_parser().size,
                "ms_median": round(ms_p, 2), "peak_mem_mb": round(ctx.peak_mem_mb(), 1)})
    ms_all = ctx.time_ms(lambda: an.analyze(img, "sample", parse=True), repeats=repeats)
    out.append({"stage": "analysis", "part": "total", "image": "512x512", "ms_median": round(ms_all, 2),
                "target_ms": 150, "peak_mem_mb": round(ctx.peak_mem_mb(), 1)})
    return out
