"""Painted masks without Qt: round brush dabs along a stroke, one undo step per stroke.

Masks are float32 (512, 512) arrays in [0, 1] painted on the analysed crop. A brush stroke is
recorded as a bounding-box diff (:class:`MaskEdit`: the rectangle's pixels before and after),
so undo/redo costs memory proportional to the stroke, not to the mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from triface_studio.core.images import to_uint8

MASK_SIZE = 512


def empty_mask(size: int = MASK_SIZE) -> np.ndarray:
    return np.zeros((size, size), np.float32)


@dataclass
class MaskEdit:
    """One undo step: the pixels of ``mask[y0:y1, x0:x1]`` before and after a stroke."""

    box: tuple[int, int, int, int]      # y0, y1, x0, x1
    before: np.ndarray
    after: np.ndarray

    def undo(self, mask: np.ndarray) -> None:
        y0, y1, x0, x1 = self.box
        mask[y0:y1, x0:x1] = self.before

    def redo(self, mask: np.ndarray) -> None:
        y0, y1, x0, x1 = self.box
        mask[y0:y1, x0:x1] = self.after


def _stamp(mask: np.ndarray, x: float, y: float, radius: float, hardness: float, erase: bool) -> tuple:
    """One round brush dab; returns the touched box (y0, y1, x0, x1) or None."""
    H, W = mask.shape
    r = max(0.5, float(radius))
    x0, x1 = max(0, int(np.floor(x - r))), min(W, int(np.ceil(x + r)) + 1)
    y0, y1 = max(0, int(np.floor(y - r))), min(H, int(np.ceil(y + r)) + 1)
    if x0 >= x1 or y0 >= y1:
        return None
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    d = np.sqrt((xx - x) ** 2 + (yy - y) ** 2) / r
    h = float(np.clip(hardness, 0.0, 1.0))
    # 1 inside hardness*r, falling linearly to 0 at r
    a = np.clip((1.0 - d) / max(1e-3, 1.0 - h), 0.0, 1.0) if h < 1.0 else (d <= 1.0).astype(np.float32)
    sub = mask[y0:y1, x0:x1]
    if erase:
        np.minimum(sub, 1.0 - a, out=sub)
    else:
        np.maximum(sub, a, out=sub)
    return (y0, y1, x0, x1)


def paint_stroke(mask: np.ndarray, points, radius: float, hardness: float = 0.8, erase: bool = False) -> MaskEdit | None:
    """Paint (or erase) along a polyline of (x, y) crop pixels, interpolated with dabs a third of
    the radius apart.  Changes ``mask`` in place and returns the undo step (None if nothing changed)."""
    pts = [(float(x), float(y)) for x, y in points]
    if not pts:
        return None
    before = mask.copy()
    dense = [pts[0]]
    step = max(0.5, radius / 3.0)
    for (ax, ay), (bx, by) in zip(pts, pts[1:]):
        n = max(1, int(np.ceil(np.hypot(bx - ax, by - ay) / step)))
        dense += [(ax + (bx - ax) * t / n, ay + (by - ay) * t / n) for t in range(1, n + 1)]
    boxes = [b for b in (_stamp(mask, x, y, radius, hardness, erase) for x, y in dense) if b is not None]
    if not boxes:
        return None
    y0 = min(b[0] for b in boxes); y1 = max(b[1] for b in boxes)
    x0 = min(b[2] for b in boxes); x1 = max(b[3] for b in boxes)
    box = (y0, y1, x0, x1)
    after = mask[y0:y1, x0:x1].copy()
    prev = before[y0:y1, x0:x1].copy()
    if np.array_equal(after, prev):
        return None
    return MaskEdit(box, prev, after)


def quantized(mask: np.ndarray) -> np.ndarray:
    """``mask`` at the 8-bit precision of its PNG (what a saved session holds): an edit made from
    this re-runs identically from the file."""
    return to_uint8(mask).astype(np.float32) / 255.0
