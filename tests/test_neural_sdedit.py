"""Masked SDEdit with a tiny random diffusers UNet saved to a folder and loaded back."""

from __future__ import annotations

import numpy as np
import pytest
from triface_studio.models.neural.sdedit import ScoreModelError, SDEditRefiner


@pytest.fixture
def score_dir(tiny_score_model):
    return tiny_score_model


def _inputs(size=24):
    rng = np.random.default_rng(0)
    img = rng.random((size, size, 3), dtype=np.float32)
    mask = np.zeros((size, size), np.float32)
    mask[6:18, 8:20] = 1
    return img, mask


def test_refine_changes_only_inside_the_mask(score_dir):
    ref = SDEditRefiner(score_dir, t0=0.4, steps=4, repeats=2)
    img, mask = _inputs()
    seen = []
    out = ref.refine(img, mask, seed=3, progress=seen.append)
    assert out.shape == img.shape and out.dtype == np.float32
    assert np.array_equal(out[mask == 0], img[mask == 0])
    assert np.abs(out[mask == 1] - img[mask == 1]).mean() > 1e-3
    assert 0 <= out.min() and out.max() <= 1
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0) and len(seen) == 2 * len(ref.timesteps())
    again = ref.refine(img, mask, seed=3)
    assert np.array_equal(out, again)
    other = ref.refine(img, mask, seed=4)
    assert not np.array_equal(out, other)


def test_empty_mask_is_identity_and_cancellation_propagates(score_dir):
    ref = SDEditRefiner(score_dir, t0=0.5, steps=3)
    img, mask = _inputs(16)
    assert np.array_equal(ref.refine(img, np.zeros_like(mask)), img)

    class Stop(Exception):
        pass

    def cancel(f):
        raise Stop

    with pytest.raises(Stop):
        ref.refine(img, mask, progress=cancel)


def test_timesteps_and_schedule(score_dir):
    ref = SDEditRefiner(score_dir, t0=0.5, steps=10)
    ts = ref.timesteps()
    assert ts[0] == 499 and ts[-1] == 0 and all(a > b for a, b in zip(ts, ts[1:]))
    betas = ref.scheduler.betas
    assert float(betas[0]) == pytest.approx(1e-4) and float(betas[-1]) == pytest.approx(0.02)


def test_small_t0_keeps_the_image_close(score_dir):
    img, mask = _inputs(16)
    low = SDEditRefiner(score_dir, t0=0.02, steps=2).refine(img, mask, seed=0)
    high = SDEditRefiner(score_dir, t0=0.9, steps=2).refine(img, mask, seed=0)
    assert np.abs(low - img).mean() < np.abs(high - img).mean()


def test_bad_folders(tmp_path):
    with pytest.raises(ScoreModelError, match="not found"):
        SDEditRefiner(tmp_path / "nope")
    with pytest.raises(ScoreModelError, match="config.json"):
        SDEditRefiner(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ScoreModelError, match="cannot load"):
        SDEditRefiner(tmp_path)
