"""Benchmark stages of the bundled face analysis: detection + landmarks + alignment, and parsing,
on a 512 px portrait (the public-domain sample shipped in resources/samples)."""

from __future__ import annotations

from .bench_core import BenchContext, stage


def _sample():
    from triface_studio.core.images import load_image
    from triface_studio.resources import resource_path

    return load_image(resource_path("samples", "astronaut.png"))


@stage("analysis")
def bench_analysis(ctx: BenchContext) -> list[dict]:
    """Per 512 px photo on CPU: detection, landmarks (with one refinement pass), alignment and crop
    camera (``landmarks``), then for each parser available here (the shipped one always; BiSeNet
    alone and the fused parser once ``triface models install bisenet`` has been run) the parser on
    the 512 crop (``parse``) and the whole ``analyze`` (``total``).  The default parser (``auto``)
    is marked ``default``."""
    import torch

    from triface_studio.models.face import FaceAnalyzer
    from triface_studio.models.parser.bisenet import installed_bisenet_path

    img = _sample()
    repeats = 3 if ctx.quick else 10
    out = []
    base = FaceAnalyzer("cpu", parser="shipped")
    ms_lm = ctx.time_ms(lambda: base.analyze(img, "sample", parse=False), repeats=repeats)
    out.append({"stage": "analysis", "part": "landmarks", "image": "512x512", "ms_median": round(ms_lm, 2),
                "threads": torch.get_num_threads(), "peak_mem_mb": round(ctx.peak_mem_mb(), 1)})
    fa = base.analyze(img, "sample", parse=False)
    default = FaceAnalyzer("cpu", parser="auto").parser_name
    kinds = ["shipped"] + (["fused", "bisenet"] if installed_bisenet_path() is not None else [])
    if base._get_parser() is None:
        out.append({"stage": "analysis", "part": "parse", "skipped": "no parser weights installed"})
        return out
    for kind in kinds:
        an = FaceAnalyzer("cpu", parser=kind)
        p = an._get_parser()
        ms_p = ctx.time_ms(lambda: an.parse(fa.crop), repeats=repeats)
        ms_all = ctx.time_ms(lambda: an.analyze(img, "sample", parse=True), repeats=repeats)
        extra = {"default": True} if kind == default else {}
        out.append({"stage": "analysis", "part": "parse", "parser": kind, "crop": 512, "model_size": p.size,
                    "ms_median": round(ms_p, 2), "peak_mem_mb": round(ctx.peak_mem_mb(), 1), **extra})
        out.append({"stage": "analysis", "part": "total", "parser": kind, "image": "512x512",
                    "ms_median": round(ms_all, 2), "target_ms": 150, "peak_mem_mb": round(ctx.peak_mem_mb(), 1),
                    **extra})
    if len(kinds) == 1:
        out.append({"stage": "analysis", "part": "parse", "parser": "fused",
                    "skipped": "BiSeNet not installed (`triface models install bisenet`)"})
    return out
