"""Image and distribution metrics of ``triface eval`` (pure numpy/scipy).

Definitions (all images are float arrays in [0, 1], shape (H, W) or (H, W, C)):

``ssim_map``   SSIM of Wang et al. (2004): 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03,
               data range 1, computed per channel with "same" size (reflect padding) and averaged
               over channels -> (H, W) map.
``ssim``       mean of the map; ``mask`` (H, W) in {0, 1} averages the map over the pixels where
               mask > 0.5 only (the "SSIM outside the edited region" uses mask = 1 - region).
``ssim_isolated`` the same mean over the mask, after copying ``a``'s pixels outside the mask into
               ``b``: a window straddling the mask's edge then sees only the changes inside the mask
               (SSIM "outside the edited region" with the edit itself blanked out of both images).
``l2_masked``  mean squared error over the pixels where mask > 0.5, averaged over channels:
               sum_{p in M, c} (a - b)^2 / (|M| * C)  ("normalised L2" of the protocol).
``fid``        Frechet distance between Gaussians fitted to two feature sets:
               |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)).
``kid``        unbiased MMD^2 with the polynomial kernel k(x, y) = (x.y / d + 1)^3 (Binkowski et al.).
"""

from __future__ import annotations

import numpy as np
from scipy import linalg
from scipy.ndimage import correlate1d

K1, K2, SIGMA, WIN = 0.01, 0.03, 1.5, 11


def _gauss1d(sigma: float = SIGMA, size: int = WIN) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def _filt(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    return correlate1d(correlate1d(x, g, axis=0, mode="reflect"), g, axis=1, mode="reflect")


def _check_pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    if a.ndim != 3:
        raise ValueError(f"expected (H, W) or (H, W, C) images, got {a.shape}")
    return a, b


def ssim_map(a, b, data_range: float = 1.0) -> np.ndarray:
    """SSIM map (H, W) of two images, averaged over channels."""
    a, b = _check_pair(a, b)
    g = _gauss1d()
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    out = np.zeros(a.shape[:2])
    for c in range(a.shape[2]):
        x, y = a[..., c], b[..., c]
        mx, my = _filt(x, g), _filt(y, g)
        sxx = _filt(x * x, g) - mx * mx
        syy = _filt(y * y, g) - my * my
        sxy = _filt(x * y, g) - mx * my
        out += ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return out / a.shape[2]


def _region(mask, shape) -> np.ndarray:
    m = np.asarray(mask) > 0.5
    if m.shape != tuple(shape[:2]):
        raise ValueError(f"mask shape {m.shape} does not match the images {shape[:2]}")
    return m


def map_mean(smap: np.ndarray, mask=None) -> float:
    """Mean of a metric map (e.g. :func:`ssim_map`) over the pixels where ``mask`` > 0.5 when
    given (NaN for an empty mask): one map can serve several masks."""
    if mask is None:
        return float(smap.mean())
    m = _region(mask, smap.shape)
    return float(smap[m].mean()) if m.any() else float("nan")


def ssim(a, b, mask=None, data_range: float = 1.0) -> float:
    """Mean SSIM, over the pixels where ``mask`` > 0.5 when given (NaN for an empty mask)."""
    return map_mean(ssim_map(a, b, data_range), mask)


def ssim_isolated(a, b, mask, data_range: float = 1.0) -> float:
    """Mean SSIM over the pixels where ``mask`` > 0.5, with the other pixels of ``b`` replaced by
    ``a``'s, so that only differences inside the mask count (NaN for an empty mask)."""
    a, b = _check_pair(a, b)
    m = _region(mask, a.shape)
    return ssim(a, np.where(m[..., None], b, a), m, data_range)


def l2_masked(a, b, mask=None) -> float:
    """Mean squared error over the pixels where ``mask`` > 0.5 (all pixels without a mask)."""
    a, b = _check_pair(a, b)
    se = ((a - b) ** 2).mean(-1)
    if mask is None:
        return float(se.mean())
    m = _region(mask, se.shape)
    return float(se[m].mean()) if m.any() else float("nan")


def gaussian_stats(features) -> tuple[np.ndarray, np.ndarray]:
    f = np.asarray(features, np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"need at least two feature vectors (N, D), got {f.shape}")
    return f.mean(0), np.cov(f, rowvar=False)


def frechet_distance(mu1, s1, mu2, s2, eps: float = 1e-6) -> float:
    """Frechet distance of N(mu1, s1) and N(mu2, s2)."""
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    s1, s2 = np.atleast_2d(s1), np.atleast_2d(s2)
    diff = mu1 - mu2
    covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        off = np.eye(s1.shape[0]) * eps
        covmean = linalg.sqrtm((s1 + off) @ (s2 + off))
    covmean = np.real(covmean)
    return float(max(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean), 0.0))


def fid(feats1, feats2) -> float:
    """FID-style Frechet distance between two feature sets (N1, D) and (N2, D)."""
    return frechet_distance(*gaussian_stats(feats1), *gaussian_stats(feats2))


def kid_standard_error(feats1, feats2) -> float:
    """The jackknife standard error of :func:`kid` over the first set (leave one of ``feats1``
    out at a time; the second, the real photos, stays): how much KID on some 20 edits moves with
    which edits happen to be in the set, sqrt((n - 1) / n * sum (k_i - mean k)^2)."""
    x = np.asarray(feats1, np.float64)
    n = len(x)
    if n < 3:
        return float("nan")
    loo = np.array([kid(np.delete(x, i, axis=0), feats2) for i in range(n)])
    return float(np.sqrt((n - 1) / n * ((loo - loo.mean()) ** 2).sum()))


def kid(feats1, feats2) -> float:
    """Unbiased MMD^2 with the cubic polynomial kernel over all samples (one subset)."""
    x = np.asarray(feats1, np.float64)
    y = np.asarray(feats2, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or len(x) < 2 or len(y) < 2:
        raise ValueError(f"need two feature sets (N>=2, D) of equal D, got {x.shape} and {y.shape}")
    d = x.shape[1]
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    m, n = len(x), len(y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2 * kxy.mean())
