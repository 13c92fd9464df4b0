"""BlazeFace short-range detector (MediaPipe face_detection_short_range.tflite): anchors and decoding.

The network takes a 128x128 RGB image in [-1, 1] and returns, per anchor, 16 regressors (box centre
offset, box size, 6 keypoints: right eye, left eye, nose tip, mouth, right ear, left ear; in input
pixels relative to the anchor centre) and one logit.  Anchors: stride 8 (16x16 cells, 2 anchors each)
and stride 16 (8x8 cells, 6 anchors each) = 896, all of unit size.
"""

from __future__ import annotations

import numpy as np

INPUT_SIZE = 128


def make_anchors(size: int = INPUT_SIZE) -> np.ndarray:
    """Anchor centres (896, 2) in [0, 1] coordinates."""
    out = []
    for stride, per_cell in ((8, 2), (16, 6)):
        n = size // stride
        ys, xs = np.meshgrid((np.arange(n) + 0.5) / n, (np.arange(n) + 0.5) / n, indexing="ij")
        c = np.stack([xs.ravel(), ys.ravel()], 1)
        out.append(np.repeat(c, per_cell, axis=0))
    return np.concatenate(out).astype(np.float32)


ANCHORS = make_anchors()


def decode(regressors: np.ndarray, logits: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """-> (K, 17): x0, y0, x1, y1, score, 6 keypoints (x, y), all in [0, 1] input coordinates."""
    reg = regressors.reshape(-1, 16).astype(np.float64) / INPUT_SIZE
    score = 1.0 / (1.0 + np.exp(-np.clip(logits.reshape(-1).astype(np.float64), -100, 100)))
    keep = score >= threshold
    if not keep.any():
        return np.zeros((0, 17))
    reg, score, anc = reg[keep], score[keep], ANCHORS[keep].astype(np.float64)
    cx, cy = reg[:, 0] + anc[:, 0], reg[:, 1] + anc[:, 1]
    w, h = reg[:, 2], reg[:, 3]
    kp = reg[:, 4:16].reshape(-1, 6, 2) + anc[:, None, :]
    box = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
    return np.concatenate([box, score[:, None], kp.reshape(-1, 12)], 1)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of one box a (4,) with boxes b (N, 4)."""
    x0, y0 = np.maximum(a[0], b[:, 0]), np.maximum(a[1], b[:, 1])
    x1, y1 = np.minimum(a[2], b[:, 2]), np.minimum(a[3], b[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda r: (r[..., 2] - r[..., 0]) * (r[..., 3] - r[..., 1])  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-12)


def weighted_nms(dets: np.ndarray, iou_threshold: float = 0.3) -> np.ndarray:
    """Blend overlapping detections (score-weighted mean of boxes and keypoints), best first."""
    if len(dets) == 0:
        return dets
    order = np.argsort(-dets[:, 4])
    dets = dets[order]
    out = []
    used = np.zeros(len(dets), bool)
    for i in range(len(dets)):
        if used[i]:
            continue
        ov = iou(dets[i, :4], dets[:, :4]) >= iou_threshold
        ov &= ~used
        used |= ov
        group = dets[ov]
        wts = group[:, 4:5]
        merged = (group * wts).sum(0) / wts.sum()
        merged[4] = dets[i, 4]
        out.append(merged)
    return np.stack(out)
