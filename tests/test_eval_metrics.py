"""Metrics of triface eval against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from triface_studio.evaluation import metrics
from triface_studio.evaluation.features import FIDInceptionV3, InceptionFeatures, RandomProjectionFeatures


def _direct_ssim_map(a, b):
    """SSIM with explicit 11x11 Gaussian windows at every pixel (reflect-padded), one channel."""
    x = np.arange(11) - 5
    g = np.exp(-x ** 2 / (2 * 1.5 ** 2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    pa, pb = np.pad(a, 5, mode="symmetric"), np.pad(b, 5, mode="symmetric")
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    out = np.zeros(a.shape)
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            wa, wb = pa[i:i + 11, j:j + 11], pb[i:i + 11, j:j + 11]
            ma, mb = (w * wa).sum(), (w * wb).sum()
            va, vb = (w * (wa - ma) ** 2).sum(), (w * (wb - mb) ** 2).sum()
            cov = (w * (wa - ma) * (wb - mb)).sum()
            out[i, j] = (2 * ma * mb + c1) * (2 * cov + c2) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2))
    return out


def test_ssim_identical_is_one_and_matches_direct_computation():
    rng = np.random.default_rng(0)
    a = rng.random((20, 24))
    b = np.clip(a + 0.1 * rng.standard_normal(a.shape), 0, 1)
    assert metrics.ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(metrics.ssim_map(a, b), _direct_ssim_map(a, b), atol=1e-10)
    assert metrics.ssim(a, b) < 0.99


def test_ssim_matches_scikit_image_in_the_interior():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(1)
    a = rng.random((40, 40, 3))
    b = np.clip(a + 0.05 * rng.standard_normal(a.shape), 0, 1)
    _, sk = structural_similarity(a, b, channel_axis=2, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                  use_sample_covariance=False, full=True)
    ours = metrics.ssim_map(a, b)
    np.testing.assert_allclose(ours[6:-6, 6:-6], sk.mean(-1)[6:-6, 6:-6], atol=1e-8)


def test_masked_ssim_and_l2_only_see_the_mask():
    rng = np.random.default_rng(2)
    a = rng.random((32, 32, 3))
    b = a.copy()
    b[:, 16:] = rng.random((32, 16, 3))           # change the right half only
    left = np.zeros((32, 32), bool)
    left[:, :8] = True                            # far from the change (window radius 5)
    assert metrics.ssim(a, b, left) == pytest.approx(1.0, abs=1e-12)
    assert metrics.l2_masked(a, b, left) == 0.0
    right = ~left
    expected = ((a - b) ** 2)[right].mean()
    assert metrics.l2_masked(a, b, right) == pytest.approx(expected)
    assert np.isnan(metrics.l2_masked(a, b, np.zeros((32, 32))))
    with pytest.raises(ValueError):
        metrics.ssim(a, b[:16])


def test_isolated_ssim_ignores_changes_across_the_masks_edge():
    rng = np.random.default_rng(4)
    a = rng.random((32, 32, 3))
    b = a.copy()
    b[:, 16:] = rng.random((32, 16, 3))           # the edit: the right half
    outside = np.zeros((32, 32), bool)
    outside[:, :16] = True                        # every column next to the edit is outside
    assert metrics.ssim(a, b, outside) < 0.98     # windows at the edge see the edit
    assert metrics.ssim_isolated(a, b, outside) == pytest.approx(1.0, abs=1e-12)
    b[4:8, 4:8] += 0.3                            # a change outside still counts
    assert metrics.ssim_isolated(a, b, outside) < 0.99


def test_fid_zero_for_identical_sets_and_closed_form_for_gaussians():
    rng = np.random.default_rng(3)
    f = rng.standard_normal((200, 4))
    assert metrics.fid(f, f) == pytest.approx(0.0, abs=1e-6)
    # N(m1, diag(s1^2)) vs N(m2, diag(s2^2)): |m1-m2|^2 + sum (s1 - s2)^2
    m1, m2 = np.array([0.0, 1, 2]), np.array([1.0, -1, 0])
    s1, s2 = np.array([1.0, 2, 3]), np.array([2.0, 1, 0.5])
    expected = ((m1 - m2) ** 2).sum() + ((s1 - s2) ** 2).sum()
    got = metrics.frechet_distance(m1, np.diag(s1 ** 2), m2, np.diag(s2 ** 2))
    assert got == pytest.approx(expected, rel=1e-9)
    # a non-diagonal case: rotation invariance
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    rot = metrics.frechet_distance(q @ m1, q @ np.diag(s1 ** 2) @ q.T, q @ m2, q @ np.diag(s2 ** 2) @ q.T)
    assert rot == pytest.approx(expected, rel=1e-6)


def test_kid_unbiased_near_zero_for_same_distribution_and_positive_for_shift():
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((300, 8)), rng.standard_normal((300, 8))
    assert abs(metrics.kid(x, y)) < 0.1
    assert metrics.kid(x, y + 1.0) > 0.5
    # against the kernel sums written out
    a, b = rng.standard_normal((5, 3)), rng.standard_normal((4, 3))
    k = lambda u, v: (u @ v / 3 + 1) ** 3  # noqa: E731
    xx = sum(k(a[i], a[j]) for i in range(5) for j in range(5) if i != j) / 20
    yy = sum(k(b[i], b[j]) for i in range(4) for j in range(4) if i != j) / 12
    xy = sum(k(a[i], b[j]) for i in range(5) for j in range(4)) / 20
    assert metrics.kid(a, b) == pytest.approx(xx + yy - 2 * xy)


def test_kid_standard_error_is_the_jackknife_over_the_first_set():
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((6, 3)), rng.standard_normal((7, 3)) + 0.5
    loo = [metrics.kid(np.delete(a, i, axis=0), b) for i in range(6)]
    want = np.sqrt(5 / 6 * sum((v - np.mean(loo)) ** 2 for v in loo))
    assert metrics.kid_standard_error(a, b) == pytest.approx(want)
    # more edits, a smaller error
    big = rng.standard_normal((60, 3))
    assert metrics.kid_standard_error(big, b) < metrics.kid_standard_error(big[:8], b)


def test_inception_loader_round_trip_and_rejects_other_files(tmp_path):
    torch.manual_seed(0)
    model = FIDInceptionV3().eval()
    state = model.state_dict()
    state["fc.weight"] = torch.zeros(1008, 2048)   # pytorch-fid files carry the classifier; it is ignored
    state["fc.bias"] = torch.zeros(1008)
    path = tmp_path / "pt_inception-2015-12-05-test.pth"
    torch.save(state, path)
    loaded = FIDInceptionV3.from_checkpoint(path)
    x = torch.rand(1, 3, 80, 96)
    with torch.inference_mode():
        f1, f2 = model(x), loaded(x)
    assert f1.shape == (1, 2048)
    torch.testing.assert_close(f1, f2)
    feats = InceptionFeatures(path)([np.zeros((64, 64, 3), np.uint8)] * 2)
    assert feats.shape == (2, 2048)

    wrong = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(3)}, wrong)
    with pytest.raises(ValueError, match="wrong.pth"):
        FIDInceptionV3.from_checkpoint(wrong)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pth"):
        FIDInceptionV3.from_checkpoint(junk)


def test_random_projection_features_are_fixed():
    ims = [np.full((64, 64, 3), v, np.uint8) for v in (0, 128, 255)]
    f1, f2 = RandomProjectionFeatures()(ims), RandomProjectionFeatures()(ims)
    assert f1.shape == (3, 256)
    np.testing.assert_array_equal(f1, f2)
    assert np.abs(f1[0]).max() == 0 and np.abs(f1[2]).max() > 0
