"""Benchmark stages of the neural tier, with full-size networks and random weights (speed does
not depend on the weights; no checkpoint needed).

``neural-render``   EG3D FFHQ 512: tri-planes from ws, then one view (48 + 48 samples at the
                    neural rendering resolution, 128 on CUDA, and 128 -> 512 super-resolution);
                    on CUDA in float16 as the tier runs it.  The CPU uses 32 px neural rendering
                    and says so.
``neural-encode``   TriPlaneNet v2 encode (pSp + 2 renders + tri-plane encoder) of one 256 px crop.
``sdedit``          masked SDEdit on a 512 px image with a 64 px score UNet (t0 0.5, 50 steps).
"""

from __future__ import annotations

import types

import numpy as np
import torch

from .bench_core import BenchContext, stage


def _tier(ctx: BenchContext, with_encoder: bool):
    import warnings

    from triface_studio.models.neural.eg3d import EG3DConfig, TriPlaneGenerator
    from triface_studio.models.neural.tier import NeuralTier, TriPlaneNetEncoder
    from triface_studio.models.neural.triplanenet import EncoderConfig

    torch.manual_seed(0)
    cfg = EG3DConfig.ffhq512()
    if ctx.device.type != "cuda":
        cfg.neural_rendering_resolution = 32
    G = TriPlaneGenerator(cfg)
    enc = TriPlaneNetEncoder(EncoderConfig(version=2)) if with_encoder else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return NeuralTier(G, enc, device=ctx.device)


@stage("neural-render")
def bench_neural_render(ctx: BenchContext) -> list[dict]:
    from triface_studio.core.asset import TriPlaneAsset
    from triface_studio.core.cameras import Camera

    tier = _tier(ctx, False)
    G = tier.G
    with torch.no_grad():
        ws = G.mapping(torch.randn(1, G.cfg.z_dim, device=tier.device),
                       Camera.frontal().label()[None].to(tier.device), truncation_psi=0.7)
        planes_ms = ctx.time_ms(lambda: G.planes(ws), repeats=1 if ctx.quick else None)
        asset = TriPlaneAsset(G.planes(ws), "neural", Camera.frontal(), {}, {"ws": ws})
    cam = Camera.orbit(15, 5)
    ctx.reset_peak()
    ms = ctx.time_ms(lambda: tier.render(asset, cam, 512), repeats=1 if ctx.quick else None)
    return [{"stage": "neural-render", "ms_median": ms, "fps": 1000 / ms, "planes_ms": planes_ms,
             "neural_resolution": G.cfg.neural_rendering_resolution, "output": 512,
             "precision": tier.precision or "float32", "peak_mem_mb": ctx.peak_mem_mb(),
             "note": "random weights" + ("" if ctx.device.type == "cuda" else "; CPU: 32 px neural rendering")}]


@stage("neural-encode")
def bench_neural_encode(ctx: BenchContext) -> list[dict]:
    from triface_studio.core.cameras import Camera

    if ctx.device.type != "cuda" and ctx.quick:
        return [{"stage": "neural-encode", "skipped": "too slow on the CPU in quick mode"}]
    tier = _tier(ctx, True)
    fa = types.SimpleNamespace(crop=np.random.default_rng(0).integers(0, 255, (512, 512, 3), dtype=np.uint8),
                               camera=Camera.orbit(10, 0))
    ms = ctx.time_ms(lambda: tier.encode(fa), repeats=1 if ctx.quick else None)
    return [{"stage": "neural-encode", "ms_median": ms, "encoder": "triplanenet-v2", "note": "random weights"}]


@stage("sdedit")
def bench_sdedit(ctx: BenchContext) -> list[dict]:
    import tempfile

    from triface_studio.models.neural.sdedit import SDEditRefiner, default_scheduler
    from triface_studio.models.neural.training import ScoreTrainConfig, make_unet

    steps = 10 if (ctx.quick or ctx.device.type != "cuda") else 50
    with tempfile.TemporaryDirectory() as d:
        torch.manual_seed(0)
        make_unet(ScoreTrainConfig(resolution=64)).save_pretrained(f"{d}/unet")
        default_scheduler().save_pretrained(f"{d}/scheduler")
        ref = SDEditRefiner(d, device=ctx.device, t0=0.5, steps=steps)
    img = np.random.default_rng(0).random((512, 512, 3), dtype=np.float32)
    mask = np.zeros((512, 512), np.float32)
    mask[150:350, 120:390] = 1
    ms = ctx.time_ms(lambda: ref.refine(img, mask), repeats=1 if ctx.quick else None)
    return [{"stage": "sdedit", "ms_median": ms, "steps": steps, "unet_resolution": 64, "note": "random weights"}]
