"""Neural tier end to end on CPU with tiny random networks written as converted checkpoints."""

from __future__ import annotations

import types
import warnings

import numpy as np
import pytest
import torch

from triface_studio.core.cameras import Camera
from triface_studio.models.base import Tier
from triface_studio.models.neural.eg3d_import import import_checkpoint
from triface_studio.models.weights import CheckpointError
from triface_studio.models.neural.eg3d import EG3DConfig, TriPlaneGenerator
from triface_studio.models.neural.tier import NeuralTier, NeuralTierWarning
from triface_studio.models.neural.triplanenet import EncoderConfig, TriPlaneEncoder, mirror_camera_label
from triface_studio.models.neural.tier import TriPlaneNetEncoder

TINY_G = EG3DConfig(z_dim=8, c_dim=25, w_dim=16, plane_resolution=32, plane_channels=4, channel_base=256,
                    channel_max=16, decoder_hidden=8, img_resolution=32, sr_channels=(8, 4),
                    neural_rendering_resolution=8,
                    rendering={"depth_resolution": 6, "depth_resolution_importance": 6, "ray_start": 2.25,
                               "ray_end": 3.3, "box_warp": 1.0})


def tiny_enc_cfg(version):
    return EncoderConfig(input_size=32, depths=(16, 24, 32, 16), units=(1, 1, 1, 2), n_styles=TINY_G_num_ws(),
                         up_channels=(8, 8), plane_channels=12, version=version)


def TINY_G_num_ws():
    return TriPlaneGenerator(TINY_G).num_ws


def analysis():
    rng = np.random.default_rng(0)
    return types.SimpleNamespace(crop=rng.integers(0, 255, (512, 512, 3), dtype=np.uint8),
                                 camera=Camera.orbit(10, 5))


def write_checkpoints(tmp_path, version=1):
    torch.manual_seed(0)
    G = TriPlaneGenerator(TINY_G)
    init_kwargs = dict(z_dim=8, c_dim=25, w_dim=16, img_resolution=32, img_channels=3, sr_num_fp16_res=4,
                       mapping_kwargs={"num_layers": 2}, channel_base=256, channel_max=16,
                       rendering_kwargs={"depth_resolution": 6, "depth_resolution_importance": 6,
                                         "neural_rendering_resolution": 8, "c_scale": 1.0})
    torch.save({"G_ema": G.state_dict(), "init_kwargs": init_kwargs, "latent_avg": torch.randn(16)},
               tmp_path / "eg3d.pth")
    enc = TriPlaneNetEncoder(tiny_enc_cfg(version))
    sd = {k: v for k, v in enc.state_dict().items()}
    torch.save({"state_dict": sd, "opts": {"n_styles": G.num_ws, "use_pixelshuffle": True}},
               tmp_path / f"triplanenet_v{version}.pt")
    out = tmp_path / "models"
    import_checkpoint(tmp_path / "eg3d.pth", out)
    _, cfg = import_checkpoint(tmp_path / f"triplanenet_v{version}.pt", out)
    return G, enc, out


def test_triplanenet_encoder_shapes_and_names():
    e1 = TriPlaneEncoder(EncoderConfig())
    names = set(e1.state_dict())
    assert "input_layer.0.weight" in names and "final_head.4.weight" in names
    assert "body.23.res_layer.5.fc2.weight" in names and "up4.conv.double_conv.5.weight" in names
    assert e1.input_layer[0].weight.shape == (64, 6, 3, 3)
    assert e1.final_head[0].weight.shape == (96, 24, 3, 3)
    e2 = TriPlaneEncoder(EncoderConfig(version=2))
    assert e2.input_layer[0].weight.shape == (64, 9, 3, 3) and e2.final_head_two[0].weight.shape == (96, 120, 3, 3)
    cfg = tiny_enc_cfg(1)
    x = torch.randn(1, 6, 32, 32)
    assert TriPlaneEncoder(cfg)(x).shape == (1, 12, 32, 32)


def test_mirror_camera_is_the_mirrored_orbit():
    lab = Camera.orbit(20, 5).label()[None]
    m = mirror_camera_label(lab)
    assert torch.allclose(m[0, :16].reshape(4, 4), Camera.orbit(-20, 5).cam2world, atol=1e-5)


@pytest.mark.parametrize("version", [1, 2])
def test_tier_encodes_and_renders_on_cpu(tmp_path, version):
    G, enc, folder = write_checkpoints(tmp_path, version)
    with pytest.warns(NeuralTierWarning, match="CPU"):
        tier = NeuralTier.from_checkpoints(folder, "cpu")
    assert isinstance(tier, Tier)
    assert tier.encoder is not None and tier.encoder.cfg.version == version
    asset = tier.encode(analysis())
    assert asset.planes.shape == (1, 3, 4, 32, 32) and asset.tensors["ws"].shape == (1, G.num_ws, 16)
    res = tier.render(asset, Camera.frontal(), 24)
    assert res.rgb.shape == (1, 3, 24, 24) and 0 <= res.rgb.min() and res.rgb.max() <= 1
    assert res.semantics is None and res.opacity.shape == (1, 1, 24, 24)
    # The encoder's correction matters: rendering the generator's own planes differs.
    plain = asset.replace(G.planes(asset.tensors["ws"]).detach())
    assert not torch.allclose(tier.render(plain, Camera.frontal(), 24).rgb, res.rgb)


def test_missing_generator_and_cuda_fallback(tmp_path):
    with pytest.raises(CheckpointError, match="no converted EG3D generator"):
        NeuralTier.from_checkpoints(tmp_path, "cpu")
    with pytest.raises(CheckpointError, match="no such model folder"):
        NeuralTier.from_checkpoints(tmp_path / "nope", "cpu")
    if not torch.cuda.is_available():
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            tier = NeuralTier(TriPlaneGenerator(TINY_G), device="cuda")
        assert tier.device.type == "cpu" and any("CUDA is not available" in str(w.message) for w in rec)


def test_tier_renders_semantics_with_trained_decoders(tmp_path):
    from triface_studio.models.neural.decoders import SemanticRGBDecoders, save_decoders

    _, _, folder = write_checkpoints(tmp_path, 1)
    torch.manual_seed(0)
    save_decoders(SemanticRGBDecoders(4, 8, 8), folder / "decoders.safetensors")
    with pytest.warns(NeuralTierWarning):
        tier = NeuralTier.from_checkpoints(folder, "cpu")
    assert tier.semantic_decoder is not None
    asset = tier.encode(analysis())
    res = tier.render(asset, Camera.orbit(-15, 0), 12)
    assert res.semantics.shape == (1, 19, 12, 12)
    assert torch.allclose(res.semantics.sum(1), torch.ones(1, 12, 12), atol=1e-4)


def test_encode_without_encoder_inverts_w(tmp_path):
    _, _, folder = write_checkpoints(tmp_path, 1)
    for p in folder.glob("triplanenet*"):
        p.unlink()
    with pytest.warns(NeuralTierWarning):
        tier = NeuralTier.from_checkpoints(folder, "cpu")
    assert tier.encoder is None
    tier.invert_steps = 3
    seen = []
    asset = tier.encode(analysis(), progress=seen.append)
    assert seen == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert asset.extra["encoder"] == "optimisation" and "optimising w" in asset.extra["notes"][0]
    assert not torch.allclose(asset.tensors["ws"][0, 0], tier.latent_avg)


def test_prefers_v2_encoder_and_named_generator(tmp_path):
    import shutil

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _, _, folder = write_checkpoints(tmp_path / "a", 1)
    _, _, folder2 = write_checkpoints(tmp_path / "b", 2)

    for p in folder2.iterdir():
        shutil.copy(p, folder / ("z_" + p.name))
    with pytest.warns(NeuralTierWarning):
        tier = NeuralTier.from_checkpoints(folder, "cpu", prefer="z_eg3d")
    assert tier.encoder.cfg.version == 2
