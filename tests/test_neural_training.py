"""Stage 1 (decoders) and stage 2 (score model) training on a tiny synthetic data folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from triface_studio.core.asset import TriPlaneAsset
from triface_studio.core.cameras import Camera
from triface_studio.models.neural import training as T
from triface_studio.models.neural.decoders import load_decoders


@pytest.fixture
def data_dir(tmp_path):
    d = tmp_path / "data"
    (d / "labels").mkdir(parents=True)
    (d / "planes").mkdir()
    rng = np.random.default_rng(0)
    labels = []
    for i in range(3):
        name = f"img{i:04d}.png"
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(d / name)
        lab = np.zeros((20, 20), np.uint8)
        lab[4:16, 5:15] = 1
        lab[8:10, 6:9] = 4
        Image.fromarray(lab).save(d / "labels" / f"img{i:04d}.png")
        TriPlaneAsset(torch.randn(1, 3, 4, 8, 8), "neural").save(d / "planes" / f"img{i:04d}.safetensors")
        labels.append([name, Camera.orbit(5 * i, 0).label().tolist()])
    (d / "dataset.json").write_text(json.dumps({"labels": labels}))
    return d


def test_balanced_cross_entropy_equation():
    probs = torch.full((1, 19, 1, 4), 0.01)
    probs[0, 0] = torch.tensor([0.5, 0.5, 0.5, 0.2])
    probs[0, 1] = torch.tensor([0.1, 0.1, 0.1, 0.6])
    labels = torch.tensor([[[0, 0, 0, 1]]])
    # class 0: frequency 3/4, class 1: 1/4, two classes present -> w0 = 2/3, w1 = 2
    expect = (3 * (2 / 3) * -np.log(0.5) + 2 * -np.log(0.6)) / 4
    assert T.balanced_cross_entropy(probs, labels).item() == pytest.approx(expect, rel=1e-5)


def test_ms_ssim_and_perceptual_fallback():
    x = torch.rand(1, 3, 32, 32)
    assert T.ms_ssim(x, x).item() == pytest.approx(1.0, abs=1e-5)
    p = T.Perceptual(None)
    assert p.kind == "ms-ssim" and p(x, x).item() == pytest.approx(0.0, abs=1e-5)
    assert p(x, torch.rand(1, 3, 32, 32)).item() > 0.1


def test_lpips_from_local_weights(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    vgg = T.VGG16Features()
    sd = {k: v for k, v in vgg.state_dict().items()}
    for k, c in enumerate((64, 128, 256, 512, 512)):
        sd[f"lin{k}.model.1.weight"] = torch.rand(1, c, 1, 1)
    save_file(sd, str(tmp_path / "lpips_vgg.safetensors"))
    p = T.Perceptual([tmp_path / "lpips_vgg.safetensors"])
    x = torch.rand(1, 3, 32, 32)
    assert p.kind == "lpips-vgg" and p(x, x).item() == pytest.approx(0.0, abs=1e-6)
    assert p(x, torch.rand(1, 3, 32, 32)).item() > 0
    save_file({"features.0.weight": torch.zeros(1)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(T.TrainingError, match="VGG16"):
        T.Perceptual([tmp_path / "bad.safetensors"])


def test_train_decoders_checkpoints_logs_and_resumes(data_dir, tmp_path):
    cfg = T.DecoderTrainConfig(resolution=16, batch_size=2, n_coarse=4, n_importance=4, hidden=16, feature_dim=8,
                               log_every=1, ckpt_every=1)
    out = tmp_path / "run"
    seen = []
    r = T.train_decoders(data_dir, out, 2, cfg, seed=1, progress=seen.append)
    assert r["steps"] == 2 and seen == [0.5, 1.0]
    dec = load_decoders(out / "decoders.safetensors")
    assert dec.semantic.net[2].weight.shape == (1 + 8 + 19, 16)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [rec["step"] for rec in log] == [1, 2] and log[0]["perceptual"] == "ms-ssim"
    before = dec.state_dict()
    r = T.train_decoders(data_dir, out, 3, cfg, seed=1)
    assert r["steps"] == 3
    after = load_decoders(out / "decoders.safetensors").state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert [json.loads(x)["step"] for x in (out / "log.jsonl").read_text().splitlines()] == [1, 2, 3]
    # learning happens: a few more steps reduce the loss on this tiny set
    cfg2 = T.DecoderTrainConfig(resolution=16, batch_size=3, n_coarse=4, n_importance=4, hidden=16, feature_dim=8,
                                log_every=1, ckpt_every=100, lambda_adv=0.0, lr=1e-2)
    r = T.train_decoders(data_dir, tmp_path / "run2", 15, cfg2, seed=0)
    log = [json.loads(x) for x in (tmp_path / "run2" / "log.jsonl").read_text().splitlines()]
    assert np.mean([x["seg"] for x in log[-3:]]) < log[0]["seg"]


def test_train_decoders_reports_missing_data(data_dir, tmp_path):
    (data_dir / "labels" / "img0001.png").unlink()
    with pytest.raises(T.TrainingError, match="labels/img0001.png"):
        T.train_decoders(data_dir, tmp_path / "run", 1, T.DecoderTrainConfig(resolution=16))
    with pytest.raises(T.TrainingError, match="no such data folder"):
        T.train_score(tmp_path / "nope", tmp_path / "run", 1)


def test_train_score_resume_and_use_in_sdedit(data_dir, tmp_path):
    from triface_studio.models.neural.sdedit import SDEditRefiner

    cfg = T.ScoreTrainConfig(resolution=16, batch_size=2, block_out_channels=(8, 16), layers_per_block=1,
                             log_every=1, ckpt_every=1)
    out = tmp_path / "score"
    assert T.train_score(data_dir, out, 2, cfg, seed=0)["steps"] == 2
    assert (out / "unet" / "config.json").is_file() and (out / "scheduler" / "scheduler_config.json").is_file()
    assert T.train_score(data_dir, out, 3, cfg, seed=0)["steps"] == 3
    steps = [json.loads(x)["step"] for x in (out / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]
    ref = SDEditRefiner(out, t0=0.3, steps=2)
    img = np.random.default_rng(0).random((16, 16, 3), dtype=np.float32)
    mask = np.zeros((16, 16), np.float32)
    mask[4:12, 4:12] = 1
    res = ref.refine(img, mask)
    assert np.array_equal(res[mask == 0], img[mask == 0])
    with pytest.raises(T.TrainingError, match="not decoders"):
        T.train_decoders(data_dir, out, 4, T.DecoderTrainConfig(resolution=16))
