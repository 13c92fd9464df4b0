"""Semantic masks and the 2D mask operations of the paper (dilate, blur, user-mask modes).

Masks are float tensors in [0, 1].  Every function takes (H, W) or (B, 1, H, W) and returns the
same layout, so the kornia pattern -- plain function plus a thin module -- is not needed here.
"""

from __future__ import annotations

import math
from typing import Iterable, Literal

import numpy as np
import torch
import torch.nn.functional as F

MaskMode = Literal["replace", "add", "subtract"]


def _as4d(mask) -> tuple[torch.Tensor, int]:
    t = torch.as_tensor(np.asarray(mask) if not torch.is_tensor(mask) else mask)
    nd = t.ndim
    if nd == 2:
        t = t[None, None]
    elif nd == 3:
        t = t[:, None]
    elif nd != 4:
        raise ValueError(f"mask must be (H, W), (B, H, W) or (B, 1, H, W), got {tuple(t.shape)}")
    return t.float(), nd


def _back(t: torch.Tensor, nd: int) -> torch.Tensor:
    return t[0, 0] if nd == 2 else (t[:, 0] if nd == 3 else t)


def class_mask(labels, classes: Iterable[int]) -> torch.Tensor:
    """[labels in classes] as float. Shape: (..., H, W) int -> (..., H, W) float"""
    lab = torch.as_tensor(np.asarray(labels) if not torch.is_tensor(labels) else labels).long()
    cls = torch.tensor(sorted(set(int(c) for c in classes)), dtype=torch.long, device=lab.device)
    return torch.isin(lab, cls).float()


def class_mask_from_probs(probs: torch.Tensor, classes: Iterable[int]) -> torch.Tensor:
    """Soft mask: summed probability of ``classes``. Shape: (B, 19, H, W) -> (B, 1, H, W)"""
    idx = torch.tensor(sorted(set(int(c) for c in classes)), dtype=torch.long, device=probs.device)
    return probs.index_select(1, idx).sum(1, keepdim=True).clamp(0, 1)


def dilate(mask, radius: int) -> torch.Tensor:
    """Binary-style dilation with a disc of ``radius`` pixels (max over the disc); a soft mask
    (values between 0 and 1) takes the max over the (2r+1) square instead."""
    t, nd = _as4d(mask)
    if radius <= 0:
        return _back(t, nd)
    r = int(radius)
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    binary = bool(((t == 0) | (t == 1)).all())
    kernel = ((yy * yy + xx * xx) <= r * r) if binary else np.ones((2 * r + 1,) * 2, bool)
    if t.device.type == "cpu":
        # OpenCV's morphology: the same max (its border counts as empty); torch's conv2d of a
        # 19 px disc over a 512 mask took ~0.25 s and an im2col buffer of ~380 MB
        import cv2

        k = kernel.astype(np.uint8)
        a = np.ascontiguousarray(t.numpy(), np.float32).reshape(-1, *t.shape[-2:])
        out = np.stack([cv2.dilate(x, k, borderType=cv2.BORDER_CONSTANT, borderValue=0.0) for x in a])
        return _back(torch.from_numpy(out.reshape(t.shape)), nd)
    if binary:
        disc = torch.from_numpy(kernel).float().to(t.device)
        return _back((F.conv2d(t, disc[None, None], padding=r) > 0.5).float(), nd)
    return _back(F.max_pool2d(t, 2 * r + 1, 1, r), nd)


def gaussian_kernel1d(sigma: float, dtype=torch.float32, device=None) -> torch.Tensor:
    r = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-r, r + 1, dtype=dtype, device=device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(mask, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with reflect padding (works for images too: (B, C, H, W))."""
    t, nd = _as4d(mask)
    if sigma <= 0:
        return _back(t, nd)
    k = gaussian_kernel1d(sigma, t.dtype, t.device)
    r = k.numel() // 2
    C = t.shape[1]
    pad_mode = "reflect" if min(t.shape[-2:]) > r else "replicate"
    t = F.pad(t, (r, r, 0, 0), mode=pad_mode)
    t = F.conv2d(t, k.view(1, 1, 1, -1).expand(C, 1, 1, -1), groups=C)
    t = F.pad(t, (0, 0, r, r), mode=pad_mode)
    t = F.conv2d(t, k.view(1, 1, -1, 1).expand(C, 1, -1, 1), groups=C)
    return _back(t, nd)


def resize_mask(mask, size: tuple[int, int]) -> torch.Tensor:
    """Resize to (H, W) with area averaging when shrinking and bilinear when growing."""
    t, nd = _as4d(mask)
    if tuple(t.shape[-2:]) == tuple(size):
        return _back(t, nd)
    shrink = t.shape[-2] > size[0]
    out = F.interpolate(t, size=size, mode="area" if shrink else "bilinear", **({} if shrink else {"align_corners": False}))
    return _back(out.clamp(0, 1), nd)


def combine_user_mask(predicted, user, mode: MaskMode = "add") -> torch.Tensor:
    """Refine a predicted mask with a user-drawn one.

    ``replace``: the user mask alone; ``add``: union (max); ``subtract``: predicted minus user.
    A user mask of another size is resized to the predicted mask's size first.
    """
    p, nd = _as4d(predicted)
    if user is None:
        return _back(p, nd)
    u, _ = _as4d(user)
    u = resize_mask(u, tuple(p.shape[-2:])).to(p)
    if mode == "replace":
        out = u
    elif mode == "add":
        out = torch.maximum(p, u)
    elif mode == "subtract":
        out = (p - u).clamp_min(0)
    else:
        raise ValueError(f"mask mode must be replace, add or subtract, not {mode!r}")
    return _back(out, nd)


def large_pieces(mask: np.ndarray, min_area: int) -> np.ndarray:
    """``mask`` (bool (H, W), numpy) without its 8-connected pieces of fewer than ``min_area``
    pixels: patches kept, specks dropped. -> bool (H, W)"""
    import cv2

    n, comp, stats, _ = cv2.connectedComponentsWithStats(np.asarray(mask, np.uint8), connectivity=8)
    big = np.nonzero(stats[:, cv2.CC_STAT_AREA] >= min_area)[0]
    return np.isin(comp, big[big > 0])


def small_pieces(mask: np.ndarray, share: float) -> np.ndarray:
    """The 8-connected pieces of ``mask`` (bool (H, W)) smaller than ``share`` of its largest:
    what stands apart from the main shape. -> bool (H, W)"""
    import cv2

    n, comp, stats, _ = cv2.connectedComponentsWithStats(np.asarray(mask, np.uint8), connectivity=8)
    if n <= 2:
        return np.zeros(np.asarray(mask).shape, bool)
    areas = stats[1:, cv2.CC_STAT_AREA]
    return np.isin(comp, 1 + np.nonzero(areas < share * areas.max())[0])


def row_span(mask: np.ndarray) -> np.ndarray:
    """Every pixel with a pixel of ``mask`` both to its left and to its right in its row (or
    in ``mask`` itself): the mask with each row's gaps closed, e.g. the inside of a head's
    silhouette between the face and the hair beside it.  Shape: (H, W) -> (H, W) bool"""
    m = np.asarray(mask, bool)
    return np.logical_and.reduce([np.maximum.accumulate(m, axis=1),
                                  np.maximum.accumulate(m[:, ::-1], axis=1)[:, ::-1]])


def grow_by_colour(image: np.ndarray, labels: np.ndarray, cls: int, into: Iterable[int], reach: int = 8,
                   min_px: int = 64) -> np.ndarray:
    """``labels`` with the pixels of the classes ``into`` that lie within ``reach`` px of class
    ``cls`` and whose colour (CIELAB) is nearer the median of ``cls`` than the median of their
    own class relabelled ``cls``: what a parser misses at a region's edge (strands of hair
    labelled skin or background) goes with the region.  A class of fewer than ``min_px`` pixels
    is left as it is.  Shape: image float RGB in [0, 1] (H, W, 3), labels (H, W) -> labels (H, W) uint8"""
    import cv2

    from .colour import to_lab

    out = np.asarray(labels).astype(np.uint8)
    mine = out == cls
    if mine.sum() < min_px:
        return out
    # (distances only where a pixel could grow: the band within reach of the class)
    near = cv2.dilate(mine.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1,) * 2)) > 0
    L = to_lab(image)
    grow = np.zeros_like(mine)
    for other in into:
        own = out == other
        sel = own & near
        if own.sum() < min_px or not sel.any():
            continue
        px = L[sel]
        grow[sel] = np.linalg.norm(px - np.median(L[mine], 0), axis=-1) < np.linalg.norm(px - np.median(L[own], 0), axis=-1)
    out[grow] = cls
    return out


def distance_to(mask: np.ndarray) -> np.ndarray:
    """Exact Euclidean distance of each pixel to the nearest pixel of ``mask`` (bool; 0 on it):
    scipy's ``distance_transform_edt`` of its complement, the same to 1e-6, by OpenCV's exact
    algorithm, ~3x faster.  Shape: (H, W) -> (H, W) float32"""
    import cv2

    return cv2.distanceTransform(np.ascontiguousarray(~np.asarray(mask, bool), np.uint8), cv2.DIST_L2,
                                 cv2.DIST_MASK_PRECISE)


def round_outline(alpha: np.ndarray, outside: np.ndarray, sigma: float = 3.0,
                  band: float = 10.0) -> np.ndarray:
    """``alpha`` whose outline against ``outside`` (bool) is rounded: within ``band`` px of
    ``outside`` it is capped by its hard mask (> 0.5) blurred by ``sigma`` and ramped over
    0.25-0.75, so a staircase or a ragged cut-out becomes a smooth soft edge about 2 sigma
    wide, and spikes and specks thinner than about ``sigma`` go.  Elsewhere (inside, or where
    it meets anything but ``outside``) it is unchanged.  Shape: (H, W) -> (H, W) float32"""
    import cv2

    a = np.asarray(alpha, np.float32)
    out = np.asarray(outside, bool)
    if not out.any():
        return a
    smooth = cv2.GaussianBlur((a > 0.5).astype(np.float32), (0, 0), sigma)
    ramp = np.clip((smooth - 0.25) / 0.5, 0, 1)
    near = distance_to(out) <= band
    return np.where(near, np.minimum(a, ramp), a).astype(np.float32)
