"""Safe checkpoint conversion: fake EG3D pickles in the released layout, never executed."""

from __future__ import annotations

import collections
import json
import pickle
import sys
import types

import pytest
import torch
import torch.nn as nn

from triface_studio.models.neural.eg3d_import import import_checkpoint, load_safetensors_model
from triface_studio.models.safe_pickle import safe_load
from triface_studio.models.weights import CheckpointError, load_safetensors_weights
from triface_studio.models.neural.eg3d import EG3DConfig, TriPlaneGenerator

TINY = EG3DConfig(z_dim=8, c_dim=25, w_dim=8, plane_resolution=8, plane_channels=4, channel_base=64,
                  channel_max=8, decoder_hidden=8, img_resolution=32, sr_channels=(8, 4))


def tiny_generator(seed=0) -> TriPlaneGenerator:
    torch.manual_seed(seed)
    return TriPlaneGenerator(TINY).eval()


def eg3d_init_kwargs() -> dict:
    return dict(z_dim=8, c_dim=25, w_dim=8, img_resolution=32, img_channels=3, sr_num_fp16_res=4,
                mapping_kwargs={"num_layers": 2}, channel_base=64, channel_max=8, num_fp16_res=0, conv_clamp=None,
                rendering_kwargs={"superresolution_module": "training.superresolution.SuperresolutionHybrid8XDC",
                                  "c_scale": 1.0, "c_gen_conditioning_zero": False, "sr_antialias": True,
                                  "depth_resolution": 48, "depth_resolution_importance": 48})


@pytest.fixture
def fake_persistence(monkeypatch, tmp_path):
    """A stand-in for EG3D's torch_utils.persistence, importable while the test pickles.

    Its reconstruct hook does what EG3D's does with the embedded source: executes it."""
    marker = tmp_path / "EXECUTED"
    pkg = types.ModuleType("torch_utils")
    mod = types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta):
        exec(meta["module_src"], {})                       # what real unpickling would do
        return meta["class_name"]

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    mod._reconstruct_persistent_obj = _reconstruct_persistent_obj
    pkg.persistence = mod
    monkeypatch.setitem(sys.modules, "torch_utils", pkg)
    monkeypatch.setitem(sys.modules, "torch_utils.persistence", mod)
    return mod, marker


class FakePersistent:
    def __init__(self, meta):
        self.meta = meta

    def __reduce__(self):
        return (sys.modules["torch_utils.persistence"]._reconstruct_persistent_obj, (self.meta,))


def wrap(m: nn.Module, src: str, init_kwargs=None):
    """Pickle-time image of an EG3D persistent module tree."""
    children = collections.OrderedDict()
    for name, child in m._modules.items():
        if isinstance(child, nn.Sequential):
            seq = nn.Sequential()
            seq._modules = collections.OrderedDict(
                (k, c if isinstance(c, nn.Softplus) else wrap(c, src)) for k, c in child._modules.items())
            children[name] = seq
        else:
            children[name] = wrap(child, src)
    state = {"training": False, "_parameters": collections.OrderedDict(m._parameters),
             "_buffers": collections.OrderedDict(m._buffers), "_modules": children,
             "_init_args": (), "_init_kwargs": init_kwargs or {}}
    if isinstance(m, TriPlaneGenerator):
        state["neural_rendering_resolution"] = 128
    return FakePersistent({"type": "class", "version": 6, "module_src": src,
                           "class_name": {"StyleGAN2Backbone": "Generator", "SuperResolution":
                                          "SuperresolutionHybrid8XDC"}.get(type(m).__name__, type(m).__name__),
                           "state": state})


def write_fake_pkl(path, G, marker):
    src = f"open({str(marker)!r}, 'w').write('pwned')\n"
    data = {"G": wrap(G, src, eg3d_init_kwargs()), "G_ema": wrap(G, src, eg3d_init_kwargs()),
            "training_set_kwargs": {"resolution": 512}}
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=4)


def test_eg3d_pickle_round_trip_without_running_embedded_code(tmp_path, fake_persistence):
    _, marker = fake_persistence
    G = tiny_generator()
    pkl = tmp_path / "ffhq-tiny.pkl"
    write_fake_pkl(pkl, G, marker)
    # Positive control: ordinary unpickling runs the embedded source.
    with open(pkl, "rb") as f:
        pickle.load(f)
    assert marker.exists()
    marker.unlink()

    weights, config = import_checkpoint(pkl, tmp_path / "out")
    assert not marker.exists(), "the embedded code ran"
    assert config["kind"] == "eg3d" and config["eg3d"]["sr_channels"] == [8, 4]
    assert config["eg3d"]["neural_rendering_resolution"] == 128
    assert json.loads((tmp_path / "out" / "ffhq-tiny.json").read_text())["sha256"] == config["sha256"]
    model = load_safetensors_model(weights)
    assert not marker.exists()
    ref = G.state_dict()
    got = model.state_dict()
    assert set(ref) == set(got)
    for k in ref:
        assert torch.equal(ref[k], got[k]), k
    z, c = torch.randn(1, 8), torch.randn(1, 25)
    with torch.no_grad():
        assert torch.equal(G.planes(G.mapping(z, c)), model.planes(model.mapping(z, c)))


def test_refuses_pickles_that_call_other_code(tmp_path):
    marker = tmp_path / "EXECUTED"

    class Evil:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').write('x')",))

    bad = tmp_path / "evil.pkl"
    bad.write_bytes(pickle.dumps({"G_ema": Evil()}, protocol=4))
    with pytest.raises(CheckpointError, match="refusing to load.*builtins.exec"):
        import_checkpoint(bad, tmp_path / "out")
    assert not marker.exists()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_refuses_lowercase_callables_in_network_modules(tmp_path):
    # A "training.*" function (not a class) would be code: refused even there.
    evil = b"\x80\x02ctraining.misc\nrun_something\nq\x00)R."
    p = tmp_path / "evil2.pkl"
    p.write_bytes(evil)
    with pytest.raises(CheckpointError, match="refusing to load"):
        safe_load(p)


def test_triplanenet_and_eg3d_dict_files(tmp_path):
    G = tiny_generator(1)
    ckpt = {"state_dict": {"encoder.input_layer.0.weight": torch.randn(4, 3, 3, 3),
                           **{"decoder." + k: v for k, v in G.state_dict().items()}},
            "opts": {"encoder_type": "TriPlaneNet", "input_nc": 6, "output_size": 512}}
    path = tmp_path / "triplanenet_v2.pt"
    torch.save(ckpt, path)
    weights, config = import_checkpoint(path, tmp_path / "out")
    assert config["kind"] == "triplanenet" and config["opts"]["input_nc"] == 6
    tensors, cfg2 = load_safetensors_weights(weights)
    assert torch.equal(tensors["encoder.input_layer.0.weight"], ckpt["state_dict"]["encoder.input_layer.0.weight"])
    assert cfg2["opts"] == config["opts"]
    with pytest.raises(CheckpointError, match="not a generator"):
        load_safetensors_model(weights)

    eg = {"G_ema": G.state_dict(), "init_kwargs": eg3d_init_kwargs(), "latent_avg": torch.randn(8)}
    path = tmp_path / "ffhq512-128.pth"
    torch.save(eg, path)
    weights, config = import_checkpoint(path, tmp_path / "out")
    model = load_safetensors_model(weights)
    assert torch.equal(model.latent_avg, eg["latent_avg"])
    assert torch.equal(model.decoder.net[0].weight, G.decoder.net[0].weight)


def test_corrupt_and_foreign_files(tmp_path):
    p = tmp_path / "broken.pkl"
    p.write_bytes(b"\x80\x04garbage")
    with pytest.raises(CheckpointError, match="broken.pkl"):
        import_checkpoint(p, tmp_path / "out")
    p = tmp_path / "notes.txt"
    p.write_text("hello")
    with pytest.raises(CheckpointError, match="not a pickle"):
        import_checkpoint(p, tmp_path / "out")
    p = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, p)
    with pytest.raises(CheckpointError, match="not a supported checkpoint"):
        import_checkpoint(p, tmp_path / "out")
    with pytest.raises(CheckpointError, match="no such file"):
        import_checkpoint(tmp_path / "missing.pkl", tmp_path / "out")
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(CheckpointError, match="models import"):
        load_safetensors_model(tmp_path / "plain.safetensors")


def test_triplanenet_file_with_namespace_opts(tmp_path):
    import argparse

    opts = argparse.Namespace(n_styles=14, use_pixelshuffle=True, exp_dir="v2_run", device="cuda:0")
    path = tmp_path / "triplanenet_v2.pt"
    torch.save({"state_dict": {"psp_encoder.latlayer1.weight": torch.ones(2, 2, 1, 1)}, "opts": opts}, path)
    weights, config = import_checkpoint(path, tmp_path / "out")
    assert config["opts"]["exp_dir"] == "v2_run" and config["opts"]["n_styles"] == 14
    tensors, _ = load_safetensors_weights(weights)
    assert torch.equal(tensors["psp_encoder.latlayer1.weight"], torch.ones(2, 2, 1, 1))
