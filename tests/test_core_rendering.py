"""Volume rendering against independent references: a plain per-ray numpy loop, an analytic
sphere (silhouette and depth from several cameras), chunking, and gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from triface_studio.core import rendering, scenes, triplane
from triface_studio.core.cameras import Camera
from triface_studio.core.rendering import RenderOptions, march, render


def numpy_march(depths, sigmas, values, activation):
    """One ray at a time, written from the equations: midpoints, delta, T_i, w_i."""
    out_c, out_d, out_o = [], [], []
    for t, s, v in zip(depths, sigmas, values):
        c = np.zeros(v.shape[1])
        trans, acc, dsum = 1.0, 0.0, 0.0
        for i in range(len(t) - 1):
            sig = 0.5 * (s[i] + s[i + 1])
            if activation == "softplus":
                sig = math.log1p(math.exp(sig - 1.0))
            delta = t[i + 1] - t[i]
            alpha = 1.0 - math.exp(-sig * delta)
            w = trans * alpha
            c += w * 0.5 * (v[i] + v[i + 1])
            dsum += w * 0.5 * (t[i] + t[i + 1])
            acc += w
            trans *= (1.0 - alpha + 1e-10)
        out_c.append(c)
        out_d.append(dsum / acc)
        out_o.append(acc)
    return np.array(out_c), np.array(out_d), np.array(out_o)


@pytest.mark.parametrize("activation", ["softplus", "identity"])
def test_march_matches_per_ray_loop(activation):
    g = torch.Generator().manual_seed(0)
    N, S, C = 7, 23, 5
    depths = torch.sort(2.25 + 1.05 * torch.rand(N, S, generator=g, dtype=torch.float64), 1).values
    sig = torch.rand(N, S, generator=g, dtype=torch.float64) * 6 - 1
    if activation == "identity":
        sig = sig.clamp_min(0)
    vals = torch.rand(N, S, C, generator=g, dtype=torch.float64)
    comp, depth, opac, _ = march(depths[..., None], sig[..., None], vals, activation)
    ref_c, ref_d, ref_o = numpy_march(depths.numpy(), sig.numpy(), vals.numpy(), activation)
    np.testing.assert_allclose(comp.numpy(), ref_c, atol=1e-5)
    np.testing.assert_allclose(opac[:, 0].numpy(), ref_o, atol=1e-5)
    np.testing.assert_allclose(depth[:, 0].numpy(), ref_d, atol=1e-5)


def ray_sphere_depth(origin, direction, center, radius):
    oc = origin - center
    b = float(np.dot(oc, direction))
    c = float(np.dot(oc, oc)) - radius ** 2
    disc = b * b - c
    if disc < 0:
        return None
    return -b - math.sqrt(disc)


@pytest.mark.parametrize("yaw,pitch", [(0, 0), (30, 0), (-25, 15), (10, -20)])
def test_sphere_silhouette_and_depth(yaw, pitch):
    radius, center = 0.22, np.array([0.05, -0.03, 0.02])
    planes = scenes.sphere_triplane(256, center=tuple(center), dtype=torch.float64)
    dec = scenes.SphereDecoder(radius=radius, density=400.0, k=4000.0)
    cam = Camera.orbit(yaw, pitch).to(dtype=torch.float64)
    res = 48
    out = render(planes, dec, cam, res, RenderOptions(n_coarse=64, n_importance=64, chunk=1000))
    from triface_studio.core.rays import camera_rays

    o, d = camera_rays(cam.cam2world[None], cam.K[None], res)
    o, d = o[0].numpy(), d[0].numpy()
    expect_hit = np.zeros(res * res, bool)
    expect_depth = np.full(res * res, np.nan)
    for i in range(res * res):
        t = ray_sphere_depth(o[i], d[i], center, radius)
        if t is not None:
            expect_hit[i] = True
            expect_depth[i] = t
    opacity = out.opacity[0, 0].reshape(-1).numpy()
    # silhouette: rays clearly inside/outside the sphere (away from the rim) agree
    margin = np.array([abs(np.linalg.norm(np.cross(center - o[i], d[i])) - radius) for i in range(res * res)])
    clear = margin > 0.01
    assert (opacity[clear & expect_hit] > 0.99).all()
    assert (opacity[clear & ~expect_hit] < 0.01).all()
    # depth of the front surface along the ray (ray length), within a few thousandths
    depth = out.depth[0, 0].reshape(-1).numpy()
    inside = clear & expect_hit
    assert np.abs(depth[inside] - expect_depth[inside]).max() < 0.01
    # semantics: top of the sphere is "hair", the rest "skin", background elsewhere
    labels = out.labels()[0].reshape(-1).numpy()
    assert set(np.unique(labels[inside])) <= {1, 13}
    assert (labels[clear & ~expect_hit] == 0).all()


def test_chunking_and_batching_do_not_change_the_image():
    planes = scenes.sphere_triplane(64)
    dec = scenes.SphereDecoder()
    cam = Camera.orbit(15, 5)
    a = render(planes, dec, cam, 32, RenderOptions(chunk=100000))
    b = render(planes, dec, cam, 32, RenderOptions(chunk=77))
    torch.testing.assert_close(a.rgb, b.rgb)
    torch.testing.assert_close(a.semantics, b.semantics)
    both = render(torch.cat([planes, planes]), dec, [cam, Camera.orbit(-15, 0)], 32)
    torch.testing.assert_close(both.rgb[:1], a.rgb)
    assert not torch.allclose(both.rgb[1], a.rgb[0])


def test_background_and_transparency():
    planes = scenes.sphere_triplane(64)
    dec = scenes.SphereDecoder(radius=0.15)
    cam = Camera.frontal()
    clear = render(planes, dec, cam, 24, RenderOptions(background=None))
    white = render(planes, dec, cam, 24, RenderOptions(background=(1.0, 1.0, 1.0)))
    torch.testing.assert_close(white.rgb, clear.rgb + (1 - clear.opacity))
    assert clear.opacity[0, 0, 0, 0] < 1e-3 and clear.rgb[0, :, 0, 0].abs().max() < 1e-3
    probs = clear.semantics.sum(1)
    torch.testing.assert_close(probs, torch.ones_like(probs), atol=1e-4, rtol=0)


def test_gradients_flow_through_sampling_and_rendering():
    planes = scenes.sphere_triplane(32, dtype=torch.float64).requires_grad_(True)
    dec = scenes.SphereDecoder(radius=0.25, density=30.0, k=60.0)
    out = render(planes, dec, Camera.orbit(10, 5).to(dtype=torch.float64), 8,
                 RenderOptions(n_coarse=16, n_importance=8))
    loss = out.rgb.sum() + out.depth.sum()
    loss.backward()
    assert planes.grad is not None and planes.grad.abs().sum() > 0
    # the sampler's gradient equals finite differences on one texel that a ray touches
    pts = torch.tensor([[[0.013, -0.021, 0.034]]], dtype=torch.float64)
    f = lambda p: triplane.sample(p, pts).sum()
    p0 = scenes.sphere_triplane(16, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(f, (p0,), eps=1e-6, atol=1e-6)


def test_sample_pdf_draws_where_the_weight_is():
    bins = torch.linspace(0, 1, 11)[None]
    w = torch.zeros(1, 10)
    w[0, 7] = 1.0
    s = rendering.sample_pdf(bins, w, 50)
    assert ((s >= 0.7) & (s <= 0.8)).float().mean() > 0.9
    assert torch.all(s[:, 1:] >= s[:, :-1])


def test_decoder_bounds_hook_skips_rays_that_miss():
    planes = scenes.sphere_triplane(64)

    class Bounded(scenes.SphereDecoder):
        calls = 0

        def ray_bounds(self, planes, origins, dirs):
            oc = origins
            b = (oc * dirs).sum(-1)
            c = (oc * oc).sum(-1) - 0.32 ** 2
            disc = b * b - c
            hit = disc > 0
            s = disc.clamp_min(0).sqrt()
            return (-b - s).clamp_min(0), -b + s, hit

    full = render(planes, scenes.SphereDecoder(radius=0.2), Camera.orbit(10, 0), 24)
    fast = render(planes, Bounded(radius=0.2), Camera.orbit(10, 0), 24)
    assert fast.samples_per_ray < full.samples_per_ray
    torch.testing.assert_close(fast.opacity, full.opacity, atol=0.02, rtol=0)
    diff = (fast.rgb - full.rgb).abs()
    assert diff.mean() < 0.01


def test_reduced_precision_decoding_stays_close_to_float32():
    class Linear(torch.nn.Module):
        aggregate, density_activation = "sum", "softplus"

        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.fc = torch.nn.Linear(8, 1 + 3 + 19)

        def forward(self, f, p, d):
            y = self.fc(f)
            return rendering.DecoderOutput(y[..., :1] * 4, torch.sigmoid(y[..., 1:4]), y[..., 4:])

    planes = torch.randn(1, 3, 8, 32, 32) * 0.5
    dec = Linear()
    ref = render(planes, dec, Camera.orbit(5, 5), 16)
    low = render(planes, dec, Camera.orbit(5, 5), 16, RenderOptions(precision="bfloat16"))
    assert low.rgb.dtype == torch.float32
    assert (low.rgb - ref.rgb).abs().mean() < 0.02
    with pytest.raises(ValueError, match="CUDA"):
        render(planes, dec, Camera.orbit(5, 5), 4, RenderOptions(precision="float16"))


def test_per_sample_weights_equal_midpoint_compositing():
    g = torch.Generator().manual_seed(5)
    depths = torch.sort(2.25 + torch.rand(6, 30, generator=g, dtype=torch.float64), 1).values
    sig = torch.rand(6, 30, 1, generator=g, dtype=torch.float64) * 5
    vals = torch.rand(6, 30, 4, generator=g, dtype=torch.float64)
    ref, ref_d, ref_o, _ = march(depths[..., None], sig, vals, "softplus")
    w, d, o = rendering._sample_weights(depths, sig, "softplus")
    torch.testing.assert_close(torch.einsum("ns,nsc->nc", w, vals), ref)
    torch.testing.assert_close(d, ref_d)
    torch.testing.assert_close(o, ref_o)
