"""Benchmark stages of the bundled tier: encode (lift of an analysed 512 px portrait, face
analysis excluded), renders at 128 px (preview) and 512 px (final), and the accuracy of the
default sampling against a dense render."""

from __future__ import annotations

from .bench_core import BenchContext, stage


@stage("bundled")
def bench_bundled(ctx: BenchContext) -> list[dict]:
    import torch

    from triface_studio.core.cameras import Camera
    from triface_studio.core.images import load_image
    from triface_studio.models.bundled import BundledTier
    from triface_studio.models.face import FaceAnalyzer
    from triface_studio.resources import resource_path

    fa = FaceAnalyzer("cpu").analyze(load_image(resource_path("samples", "astronaut.png")), "sample", parse=True)
    tier = BundledTier("cpu")
    repeats = 3 if ctx.quick else 10
    asset = tier.encode(fa)
    out = [{"stage": "bundled", "part": "encode", "image": "512x512", "target_ms": 1000,
            "ms_median": round(ctx.time_ms(lambda: tier.encode(fa), repeats=repeats), 2),
            "threads": torch.get_num_threads(), "peak_mem_mb": round(ctx.peak_mem_mb(), 1)}]
    cam = Camera.orbit(20, 5)
    for res, target in ((128, 1000 / 30), (512, 500)):
        r = tier.render(asset, cam, res)
        ms = ctx.time_ms(lambda: tier.render(asset, cam, res), repeats=repeats)
        out.append({"stage": "bundled", "part": f"render_{res}", "res": res, "ms_median": round(ms, 2),
                    "fps": round(1000 / ms, 1), "target_ms": round(target, 1),
                    "samples_per_ray": round(r.samples_per_ray, 2), "peak_mem_mb": round(ctx.peak_mem_mb(), 1)})
    # accuracy of the default sampling against a dense render (64 + 64 samples per ray)
    from triface_studio.core.rendering import RenderOptions

    dense = tier.render(asset, cam, 256, RenderOptions(n_coarse=64, n_importance=64, background=(1.0, 1.0, 1.0)))
    fast = tier.render(asset, cam, 256)
    out.append({"stage": "bundled", "part": "accuracy", "res": 256,
                "rgb_mean_abs_error": round(float((fast.rgb - dense.rgb).abs().mean()), 5),
                "label_disagreement": round(float((fast.labels() != dense.labels()).float().mean()), 5),
                "samples_per_ray": round(fast.samples_per_ray, 2), "dense_samples_per_ray": 128})
    return out
