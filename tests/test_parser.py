"""The bundled face parser: network shapes, flip augmentation with class swap, checkpoint loading,
the train CLI on a tiny synthetic data set, and quality of the shipped weights on held-out images."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from triface_studio.core.semantics import FLIP_PERMUTATION, L_EYE, NUM_CLASSES, R_EYE
from triface_studio.models.parser import dataset as ds
from triface_studio.models.parser.inference import bundled_parser_path, load_parser
from triface_studio.models.parser.network import ParserNet
from triface_studio.resources import resource_path


def test_forward_shapes():
    m = ParserNet(width=8).eval()
    with torch.no_grad():
        y = m(torch.rand(2, 3, 64, 64))
    assert y.shape == (2, NUM_CLASSES, 64, 64)


def test_flip_augmentation_swaps_left_and_right():
    img = torch.zeros(1, 3, 32, 32, dtype=torch.uint8)
    img[..., :16] = 255                                # bright left half
    mask = torch.zeros(1, 32, 32, dtype=torch.uint8)
    mask[:, :, :16] = L_EYE
    mask[:, :, 16:] = R_EYE
    flips = 0
    for seed in range(10):
        x, m = ds.augment(img, mask, torch.Generator().manual_seed(seed), max_rot=0.0, scale=(1.0, 1.0))
        flipped = bool(x[0, :, 16, 28].mean() > x[0, :, 16, 4].mean())   # the bright half moved right
        flips += flipped
        # a mirrored face's left eye is on the image left again: the classes swap with the pixels
        assert int(m[0, 16, 4]) == L_EYE and int(m[0, 16, 28]) == R_EYE
    assert 0 < flips < 10
    # without the swap the labels would follow the pixels only
    assert np.array_equal(FLIP_PERMUTATION[FLIP_PERMUTATION], np.arange(NUM_CLASSES))
    assert FLIP_PERMUTATION[L_EYE] == R_EYE


def test_split_is_deterministic_and_disjoint():
    names = [f"{i:05d}" for i in range(300)]
    a, b = ds.make_split(names, 100), ds.make_split(list(reversed(names)), 100)
    assert a["val"] == b["val"] and len(a["val"]) == 100
    assert not set(a["val"]) & set(a["train"]) and len(a["train"]) == 200


def _tiny_dataset(root, n=6, size=64):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        cx, cy = rng.integers(24, 40, 2)
        disc = (xx - cx) ** 2 + (yy - cy) ** 2 < 15 ** 2
        lab = np.where(disc, 1, 0).astype(np.uint8)
        img = np.where(disc[..., None], [220, 170, 140], [30, 60, 90]).astype(np.uint8)
        Image.fromarray(img).save(root / "images" / f"{i:03d}.jpg", quality=95)
        Image.fromarray(lab).save(root / "masks" / f"{i:03d}.png")


def test_train_cli_writes_loadable_checkpoint(tmp_path):
    from triface_studio.cli.main import main

    data, out = tmp_path / "data", tmp_path / "out"
    _tiny_dataset(data)
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["000", "001", "002", "003"], "val": ["004", "005"]}))
    rc = main(["train", "parser", "--data", str(data), "--out", str(out), "--max-steps", "30", "--size", "32",
               "--width", "8", "--batch-size", "4", "--split", str(split), "--threads", "1"])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["miou"] <= 1.0 and metrics["iou"]["skin"] is not None
    p = load_parser(out / "parser.safetensors")
    assert p.size == 32
    labels = p.parse(np.zeros((64, 64, 3), np.uint8))
    assert labels.shape == (64, 64) and labels.dtype == np.uint8
    assert json.loads((out / "split.json").read_text())["val"] == ["004", "005"]
    # --init starts from those weights: with a zero learning rate the convolutions stay as they were
    out2 = tmp_path / "out2"
    rc = main(["train", "parser", "--data", str(data), "--out", str(out2), "--max-steps", "2", "--size", "32",
               "--width", "8", "--batch-size", "4", "--split", str(split), "--threads", "1", "--lr", "0",
               "--init", str(out / "parser.safetensors")])
    assert rc == 0
    from safetensors.torch import load_file

    a, b = load_file(str(out / "parser.safetensors")), load_file(str(out2 / "last.safetensors"))
    assert torch.equal(a["head.weight"], b["head.weight"]) and torch.equal(a["enc.0.0.weight"], b["enc.0.0.weight"])


def test_bad_checkpoint_is_a_clear_error(tmp_path):
    p = tmp_path / "parser.safetensors"
    p.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="parser.safetensors"):
        load_parser(p)


def test_shipped_split_holds_out_enough():
    split = json.loads(resource_path("models", "parser", "split.json").read_text())
    assert len(split["val"]) >= 100 and not set(split["val"]) & set(split["train"])


def test_shipped_parser_on_held_out_images(shared_data):
    """mIoU of the shipped weights on 12 held-out images (the full held-out value is in the model card)."""
    split = json.loads(resource_path("models", "parser", "split.json").read_text())
    parser = load_parser(bundled_parser_path())
    inter = np.zeros(NUM_CLASSES)
    union = np.zeros(NUM_CLASSES)
    for name in split["val"][:12]:
        img = np.asarray(Image.open(shared_data / "images" / f"{name}.jpg").convert("RGB"))
        gt = np.asarray(Image.open(shared_data / "masks" / f"{name}.png"))
        pred = parser.parse(img)
        for c in range(NUM_CLASSES):
            inter[c] += ((pred == c) & (gt == c)).sum()
            union[c] += ((pred == c) | (gt == c)).sum()
    present = union > 0
    miou = (inter[present] / union[present]).mean()
    skin = inter[1] / union[1]
    hair = inter[13] / union[13]
    assert skin > 0.8 and hair > 0.7
    assert miou > MIOU_FLOOR


MIOU_FLOOR = 0.60   # measured 0.653 on these 12, 0.651 on all 120 held-out images (MODEL_CARD.md)


def test_bisenet_loader_round_trip(tmp_path):
    from triface_studio.core.semantics import FROM_BISENET
    from triface_studio.models.parser.bisenet import BiSeNet, load_bisenet

    torch.manual_seed(0)
    model = BiSeNet().eval()
    with torch.no_grad():
        model.conv_out.conv_out.weight.zero_()
        model.conv_out.conv_out.weight[17] = 1.0              # BiSeNet "hair" wins everywhere
    p = tmp_path / "79999_iter.pth"
    torch.save({f"module.{k}" if i % 2 else k: v for i, (k, v) in enumerate(model.state_dict().items())}, p)
    parser = load_bisenet(p)
    parser.size = 64
    labels = parser.parse(np.full((48, 48, 3), 128, np.uint8))
    assert labels.shape == (48, 48) and set(np.unique(labels)) <= {int(FROM_BISENET[17]), 0}
    assert (labels == 13).mean() > 0.9                           # mapped to CelebAMask-HQ hair
    bad = tmp_path / "bad.pth"
    torch.save({"conv.weight": torch.zeros(3)}, bad)
    with pytest.raises(ValueError, match="bad.pth"):
        load_bisenet(bad)


def test_repeat_factors_favour_photos_with_rare_classes():
    masks = torch.zeros(10, 8, 8, dtype=torch.uint8)
    masks[:, 2:6, 2:6] = 1                         # skin everywhere
    masks[0, 0, 0] = 18                            # cloth in one photo of ten
    masks[1:5, 7, 7] = 17                          # neck in four
    r = ds.repeat_factors(masks, 0.4)
    assert torch.isclose(r[0], torch.tensor(2.0))   # sqrt(0.4 / 0.1)
    assert torch.allclose(r[1:5], torch.ones(4))    # 0.4 is not rarer than the threshold
    assert torch.allclose(r[5:], torch.ones(5))
    assert torch.allclose(ds.repeat_factors(masks, 0.0), torch.ones(10))
