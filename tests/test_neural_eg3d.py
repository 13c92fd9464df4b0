"""EG3D-compatible networks: parameter names/shapes of the released FFHQ 512 generator, operator
checks against direct computations, and a small golden output of our own (the comparison with
NVIDIA's code lives in packaging/compat/compare_eg3d.py, outside the tests)."""

from __future__ import annotations

import hashlib
import math

import pytest
import torch
import torch.nn.functional as F

from triface_studio.core.cameras import Camera
from triface_studio.core.rendering import Decoder
from triface_studio.models.neural import ops
from triface_studio.models.neural.eg3d import EG3DConfig, OSGDecoder, TriPlaneGenerator, synthesize

TINY = EG3DConfig(z_dim=8, c_dim=25, w_dim=16, plane_resolution=16, plane_channels=4, channel_base=128,
                  channel_max=16, decoder_hidden=8, img_resolution=32, sr_channels=(8, 4), neural_rendering_resolution=8,
                  rendering={"depth_resolution": 6, "depth_resolution_importance": 6, "ray_start": 2.25,
                             "ray_end": 3.3, "box_warp": 1.0})


def test_ffhq512_parameter_names_and_shapes():
    G = TriPlaneGenerator(EG3DConfig.ffhq512())
    sd = G.state_dict()
    assert G.num_ws == 14
    expect = {
        "backbone.mapping.embed.weight": (512, 25), "backbone.mapping.fc0.weight": (512, 1024),
        "backbone.mapping.fc1.weight": (512, 512), "backbone.mapping.w_avg": (512,),
        "backbone.synthesis.b4.const": (512, 4, 4), "backbone.synthesis.b4.conv1.noise_const": (4, 4),
        "backbone.synthesis.b256.conv0.weight": (128, 256, 3, 3), "backbone.synthesis.b256.torgb.weight": (96, 128, 1, 1),
        "backbone.synthesis.b256.conv0.affine.bias": (256,), "backbone.synthesis.b64.conv0.resample_filter": (4, 4),
        "decoder.net.0.weight": (64, 32), "decoder.net.2.weight": (33, 64), "decoder.net.2.bias": (33,),
        "superresolution.block0.conv0.weight": (256, 32, 3, 3), "superresolution.block1.conv1.weight": (128, 128, 3, 3),
        "superresolution.block1.torgb.weight": (3, 128, 1, 1), "superresolution.block1.conv1.noise_const": (512, 512),
    }
    for k, shape in expect.items():
        assert tuple(sd[k].shape) == shape, k
    listing = "\n".join(f"{k} {tuple(v.shape)}" for k, v in sorted(sd.items()))
    # names and shapes identical to NVIDIA's TriPlaneGenerator (checked with compare_eg3d.py)
    assert len(sd) == 176 and sum(v.numel() for v in sd.values()) == 31493160
    assert hashlib.sha256(listing.encode()).hexdigest()[:16] == "7fa00fddd8bd3b89"


def test_upfirdn_and_upsampling_against_direct_computation():
    f = ops.setup_filter([1, 3, 3, 1])
    assert f.sum().item() == pytest.approx(1.0) and f.shape == (4, 4)
    x = torch.randn(2, 3, 5, 5)
    # upsample2d == zero insertion, pad (2, 1), 4x4 filter (times 4)
    z = torch.zeros(2, 3, 10, 10)
    z[:, :, ::2, ::2] = x
    ref = F.conv2d(F.pad(z, [2, 1, 2, 1]), (f * 4).flip([0, 1])[None, None].repeat(3, 1, 1, 1), groups=3)
    assert torch.allclose(ops.upsample2d(x, f), ref, atol=1e-6)
    # a constant image stays constant away from the border
    up = ops.upsample2d(torch.ones(1, 1, 8, 8), f)
    assert torch.allclose(up[..., 3:-3, 3:-3], torch.ones(1, 1, 10, 10), atol=1e-6)


def test_modulated_conv_matches_per_sample_convolution():
    torch.manual_seed(0)
    x, w, s = torch.randn(2, 4, 6, 6), torch.randn(5, 4, 3, 3), torch.randn(2, 4)
    out = ops.modulated_conv2d(x, w, s, padding=1)
    for b in range(2):
        wb = w * s[b].reshape(1, -1, 1, 1)
        wb = wb / wb.square().sum(dim=[1, 2, 3], keepdim=True).add(1e-8).sqrt()
        assert torch.allclose(out[b:b + 1], F.conv2d(x[b:b + 1], wb, padding=1), atol=1e-5)
    # upsampling path: transposed conv + filter == zero insertion + filter + conv (same padding rules)
    f = ops.setup_filter()
    up = ops.modulated_conv2d(x, w, s, up=2, padding=1, resample_filter=f)
    assert up.shape == (2, 5, 12, 12)
    for b in range(2):
        wb = w * s[b].reshape(1, -1, 1, 1)
        wb = wb / wb.square().sum(dim=[1, 2, 3], keepdim=True).add(1e-8).sqrt()
        z = torch.zeros(1, 4, 12, 12)
        z[:, :, ::2, ::2] = x[b:b + 1]
        zf = F.conv2d(F.pad(z, [3, 2, 3, 2]), (f * 4).flip([0, 1])[None, None].repeat(4, 1, 1, 1), groups=4)
        ref = F.conv2d(zf, wb.flip([2, 3]))
        assert torch.allclose(up[b:b + 1], ref, atol=1e-4)


def test_bias_act_gain_and_clamp():
    x = torch.tensor([[-2.0, 1.0, 300.0]])
    y = ops.bias_act(x, torch.zeros(3), "lrelu", clamp=256)
    assert torch.allclose(y, torch.tensor([[-0.4 * math.sqrt(2), math.sqrt(2), 256.0]]))


def test_osg_decoder_formula():
    torch.manual_seed(0)
    dec = OSGDecoder(4, 8, 4)
    assert isinstance(dec, Decoder) and dec.aggregate == "mean" and dec.density_activation == "softplus"
    feats = torch.randn(1, 7, 4)
    out = dec(feats)
    l0, l2 = dec.net[0], dec.net[2]
    h = F.softplus(feats[0] @ (l0.weight / 2).T + l0.bias)          # weight gain 1/sqrt(4)
    o = h @ (l2.weight / math.sqrt(8)).T + l2.bias
    assert torch.allclose(out.density[0], o[:, :1], atol=1e-6)
    assert torch.allclose(out.rgb[0], torch.sigmoid(o[:, 1:]) * 1.002 - 0.001, atol=1e-6)
    assert out.semantics is None


def test_golden_tiny_generator_output():
    torch.manual_seed(0)
    G = TriPlaneGenerator(TINY).eval()
    with torch.no_grad():
        for n, p in G.named_parameters():
            if n.endswith("noise_strength") or n.endswith(".bias"):
                p.copy_(torch.randn_like(p) * 0.1)
    g = torch.Generator().manual_seed(1)
    z = torch.randn(1, 8, generator=g)
    c = Camera.orbit(10, 5).label()[None]
    with torch.no_grad():
        ws = G.mapping(z, c, truncation_psi=0.7)
        planes = G.planes(ws)
        img, res = synthesize(G, planes, ws, [Camera.orbit(10, 5)])
    assert planes.shape == (1, 3, 4, 16, 16) and img.shape == (1, 3, 32, 32) and res.rgb.shape == (1, 4, 8, 8)
    assert ws[0, 0, :4].tolist() == pytest.approx([-0.26270, 0.79907, -0.00792, 1.61702], abs=1e-4)
    assert planes.abs().mean().item() == pytest.approx(0.513869, abs=1e-4)
    assert planes[0, 2, 1, 3, 5].item() == pytest.approx(-0.595306, abs=1e-4)
    # image values recorded after packaging/compat/compare_eg3d.py matched NVIDIA's code to <1e-6
    # with the (z, x) third plane
    assert img.mean().item() == pytest.approx(-0.906154, abs=1e-4)
    assert img[0, :, 7, 9].tolist() == pytest.approx([-0.92539, -1.29807, -0.85760], abs=1e-4)
    assert res.rgb.mean().item() == pytest.approx(0.0606690, abs=1e-4)


def test_truncation_and_fp16_path_flags():
    G = TriPlaneGenerator(TINY)
    z, c = torch.randn(2, 8), torch.randn(2, 25)
    with torch.no_grad():
        G.backbone.mapping.w_avg.copy_(torch.randn(16))
        ws = G.mapping(z, c, truncation_psi=0.0)
    assert torch.allclose(ws, G.backbone.mapping.w_avg.expand_as(ws))
    assert G.superresolution.block0.use_fp16 and not G.backbone.synthesis.b16.use_fp16
