"""Parser choice and fusion: the shipped parser without BiSeNet, the fused one with it; the
fusion's maths and its fit; label maps moved from the aligned crop back onto the photo; the
parser evaluation's IoU bookkeeping."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from triface_studio.core.semantics import NUM_CLASSES
from triface_studio.evaluation.parsers import confusion, iou_from_confusion
from triface_studio.models import registry
from triface_studio.models.parser import fusion
from triface_studio.models.parser.bisenet import BiSeNet, BiSeNetParser
from triface_studio.models.parser.inference import labels_to_photo


def _install_fake_bisenet() -> None:
    torch.manual_seed(0)
    src = registry.user_models_dir().parent / "bisenet.safetensors"
    src.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in BiSeNet().state_dict().items()}, str(src))
    registry.import_model(src, name="bisenet-79999")


def test_the_shipped_parser_without_bisenet_and_the_fused_one_with_it():
    assert fusion.load_face_parser("auto").name == "shipped"
    assert fusion.load_face_parser("shipped").name == "shipped"
    for kind in ("fused", "bisenet"):
        with pytest.raises(ValueError, match="triface models install bisenet"):
            fusion.load_face_parser(kind)
    with pytest.raises(ValueError, match="unknown parser"):
        fusion.load_face_parser("best")

    _install_fake_bisenet()
    assert fusion.fusion_path().is_file()           # the fitted weights ship with the parser
    auto = fusion.load_face_parser("auto")
    assert isinstance(auto, fusion.FusedParser) and auto.name == "fused"
    assert isinstance(fusion.load_face_parser("bisenet"), BiSeNetParser)
    assert fusion.load_face_parser("shipped").name == "shipped"
    crop = np.random.default_rng(0).integers(0, 255, (96, 96, 3), dtype=np.uint8)
    auto.bisenet.size = 64                           # keep the random network cheap
    lab = auto.parse(crop)
    assert lab.shape == (96, 96) and lab.dtype == np.uint8 and lab.max() < NUM_CLASSES


def test_fuse_is_the_documented_linear_map():
    g = torch.Generator().manual_seed(1)
    lo, lb = torch.randn(19, 5, 7, generator=g), torch.randn(19, 5, 7, generator=g)
    w, b = torch.randn(19, 38, generator=g), torch.randn(19, generator=g)
    got = fusion.fuse(lo, lb, w, b)
    x = torch.cat([lo, lb]).reshape(38, -1)
    assert torch.allclose(got, (w @ x + b[:, None]).reshape(19, 5, 7), atol=1e-5)
    ident = fusion.FusionWeights.identity()
    avg = fusion.fuse(lo, lb, torch.from_numpy(ident.weight), torch.from_numpy(ident.bias))
    assert torch.allclose(avg, (lo + lb) / 2, atol=1e-6)


def test_fit_prefers_the_network_that_is_right():
    """Ours right on classes 0-9 (and on other pixels confusing classes 10-18 among themselves),
    BiSeNet right on 10-18 (confusing 0-9): the fit must follow each where it is right; the plain
    average cannot tell who is right."""
    g = torch.Generator().manual_seed(0)
    n = 6000
    t = torch.randint(0, NUM_CLASSES, (n,), generator=g)
    low, high = torch.randint(0, 10, (n,), generator=g), torch.randint(10, NUM_CLASSES, (n,), generator=g)
    good_ours = torch.where(t < 10, t, high)
    good_bis = torch.where(t >= 10, t, low)
    lo = torch.log_softmax(4 * torch.nn.functional.one_hot(good_ours, 19).float(), 1)
    lb = torch.log_softmax(4 * torch.nn.functional.one_hot(good_bis, 19).float(), 1)
    fw = fusion.fit_fusion(lo, lb, t, steps=100)
    pred = fusion.fuse(lo.T, lb.T, torch.from_numpy(fw.weight), torch.from_numpy(fw.bias)).argmax(0)
    avg = (lo + lb).argmax(1)
    assert (pred == t).float().mean() > 0.97 and (avg == t).float().mean() < 0.8
    doc = json.loads(json.dumps(fw.to_json()))
    back = fusion.FusionWeights.from_json(doc)
    assert np.allclose(back.weight, fw.weight, atol=1e-5) and back.bisenet_size == 512
    with pytest.raises(ValueError, match="19 x 38"):
        fusion.FusionWeights.from_json(dict(doc, weight=[[0.0] * 3]))
    with pytest.raises(ValueError, match="not a parser fusion file"):
        fusion.FusionWeights.from_json({"format": "x"})


def test_the_shipped_fusion_weights_load_and_were_fitted_on_the_training_split():
    fw = fusion.load_fusion()
    assert fw.weight.shape == (19, 38) and fw.info["split"] == "train"


def test_labels_to_photo_inverts_the_crop_warp():
    """A photo twice the crop's scale, shifted and turned: the crop's map moved back must agree
    with the photo's own map (made independently) except along class boundaries."""
    h, w = 700, 900
    yy, xx = np.mgrid[0:h, 0:w]
    photo_lab = np.zeros((h, w), np.uint8)
    photo_lab[(yy - 350) ** 2 + (xx - 420) ** 2 < 220 ** 2] = 1
    photo_lab[(yy - 300) ** 2 + (xx - 420) ** 2 < 60 ** 2] = 2
    photo_lab[(np.abs(yy - 480) < 20) & (np.abs(xx - 420) < 90)] = 11
    a, t = np.deg2rad(10), np.array([-120.0, -40.0])
    crop_matrix = np.hstack([0.5 * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]), t[:, None]])
    crop = cv2.warpAffine(photo_lab, crop_matrix, (512, 512), flags=cv2.INTER_NEAREST, borderValue=0)
    back = labels_to_photo(crop, crop_matrix, (h, w))
    assert back.shape == (h, w) and back.dtype == np.uint8
    inv = cv2.invertAffineTransform(crop_matrix)
    covered = cv2.warpAffine(np.ones((512, 512), np.uint8), inv, (w, h), flags=cv2.INTER_NEAREST) > 0
    edges = cv2.dilate((cv2.Laplacian(photo_lab.astype(np.float32), cv2.CV_32F) != 0).astype(np.uint8),
                       np.ones((7, 7), np.uint8)) > 0
    inside = covered & ~edges
    assert (back[inside] == photo_lab[inside]).mean() > 0.999
    assert covered.mean() < 0.99 and (back[~covered] == 0).all()          # outside the crop: background
    for c in (1, 2, 11):
        b, p = (back == c) & covered, (photo_lab == c) & covered
        assert p.sum() > 1000 and (b & p).sum() / (b | p).sum() > 0.95


def test_iou_from_confusion_by_hand():
    gt = np.array([[0, 0, 1, 1], [2, 2, 2, 255]])
    pred = np.array([[0, 1, 1, 1], [2, 2, 0, 3]])
    iou = iou_from_confusion(confusion(pred, gt))
    assert iou[0] == pytest.approx(1 / 3) and iou[1] == pytest.approx(2 / 3) and iou[2] == pytest.approx(2 / 3)
    assert np.isnan(iou[5])                            # in neither map
    assert confusion(pred, gt).sum() == 7              # the 255 pixel is ignored


def test_augmented_views_move_photo_and_mask_together():
    from triface_studio.evaluation.parsers import augment_crop

    crop = np.full((512, 512, 3), 40, np.uint8)
    crop[180:330, 200:300] = 230                     # a bright block, class 2 in the mask
    target = np.zeros((256, 256), np.uint8)
    target[90:165, 100:150] = 2
    for seed in range(4):
        img, tgt = augment_crop(crop, target, np.random.default_rng(seed))
        assert img.shape == crop.shape and tgt.shape == target.shape
        small = cv2.resize(img, (256, 256), interpolation=cv2.INTER_AREA).mean(2)
        block = tgt == 2
        assert block.sum() > 2000 and small[block].mean() > small[tgt == 0].mean() + 80
