"""Running a trained parser: load safetensors weights (with their config) and label aligned crops."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from triface_studio.models.parser.network import ParserNet


class Parser:
    """A loaded parser: ``parse(crop uint8 (S,S,3)) -> uint8 (S,S)``; ``logits(crop)`` (19,S,S)."""

    name = "shipped"

    def __init__(self, model: ParserNet, size: int, device: str = "cpu", metrics: dict | None = None):
        self.model = model.to(device).eval()
        self.size = int(size)
        self.device = device
        self.metrics = metrics or {}
        self._lock = threading.Lock()

    @torch.no_grad()
    def logits(self, crop: np.ndarray) -> torch.Tensor:
        a = np.asarray(crop)
        if a.ndim != 3 or a.shape[2] != 3:
            raise ValueError(f"the parser takes an RGB crop (S, S, 3), got shape {a.shape}")
        x = torch.from_numpy(np.array(a, np.float32)).permute(2, 0, 1)[None].to(self.device) / 255.0
        x = F.interpolate(x, size=(self.size, self.size), mode="area" if a.shape[0] > self.size else "bilinear")
        with self._lock:
            y = self.model(x)
        return F.interpolate(y, size=a.shape[:2], mode="bilinear", align_corners=False)[0]

    @torch.no_grad()
    def parse(self, crop: np.ndarray) -> np.ndarray:
        """Labels: logits upsampled (bilinear) to at most 256 px, arg-max, then nearest to the crop size
        (the network runs at ``size`` <= 256, so this loses nothing and is 4x cheaper at 512)."""
        a = np.asarray(crop)
        h, w = a.shape[:2]
        small = (min(h, 256), min(w, 256))
        y = self.logits(np.asarray(crop) if max(h, w) <= 256 else _resize_rgb(a, small))
        lab = y.max(0).indices.to(torch.uint8)
        if lab.shape != (h, w):
            lab = F.interpolate(lab[None, None].float(), size=(h, w), mode="nearest")[0, 0].to(torch.uint8)
        return lab.cpu().numpy()


def _resize_rgb(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    return cv2.resize(a, (size[1], size[0]), interpolation=cv2.INTER_AREA)


def load_parser(path: str | Path, device: str = "cpu") -> Parser:
    from triface_studio.core.files import SafetensorsError, read_safetensors

    path = Path(path)
    try:
        state, meta = read_safetensors(path)
    except SafetensorsError as e:
        raise ValueError(f"{path}: not a readable parser checkpoint ({e})") from None
    if meta.get("format") != "triface-parser-v1":
        raise ValueError(f"{path}: not a TriFace parser checkpoint (format {meta.get('format')!r})")
    cfg = json.loads(meta.get("config", "{}"))
    model = ParserNet(int(cfg.get("width", 16)))
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ValueError(f"{path}: weights do not match the parser network ({e})") from None
    metrics = json.loads(meta["metrics"]) if "metrics" in meta else None
    return Parser(model, int(cfg.get("size", 128)), device, metrics)


def bundled_parser_path() -> Path:
    from triface_studio.resources import resource_path

    return resource_path("models", "parser", "parser.safetensors", must_exist=False)


def load_bundled_parser(device: str = "cpu") -> Parser | None:
    p = bundled_parser_path()
    return load_parser(p, device) if p.exists() else None


def labels_to_photo(labels: np.ndarray, crop_matrix: np.ndarray, photo_size: tuple[int, int],
                    outside: int = 0) -> np.ndarray:
    """A label map of the aligned crop moved back onto the photo it was cut from.

    ``crop_matrix`` (2, 3) maps photo pixels to crop pixels (``FaceAnalysis.crop_matrix``).  Each
    class's indicator is warped with bilinear interpolation and the photo pixel takes the class with
    the most weight, so boundaries stay smooth when the photo is larger than the crop (a nearest
    warp would show the crop's pixel grid).  Pixels the crop does not cover get ``outside``.

    Shape: labels (S, S) uint8, photo_size (H, W) -> (H, W) uint8."""
    import cv2

    lab = np.asarray(labels)
    h, w = int(photo_size[0]), int(photo_size[1])
    out = np.full((h, w), outside, np.uint8)
    inv = cv2.invertAffineTransform(np.asarray(crop_matrix, np.float64))
    # only the crop's footprint is warped (a big photo gets no full-size float maps per class)
    sh, sw = lab.shape[:2]
    corners = np.array([[0, 0, 1], [sw, 0, 1], [0, sh, 1], [sw, sh, 1]], np.float64) @ inv.T
    x0, y0 = (max(int(np.floor(v)) - 1, 0) for v in corners.min(0))
    x1, y1 = min(int(np.ceil(corners[:, 0].max())) + 1, w), min(int(np.ceil(corners[:, 1].max())) + 1, h)
    if x1 <= x0 or y1 <= y0:
        return out
    win = inv.copy()
    win[:, 2] -= (x0, y0)
    size = (x1 - x0, y1 - y0)
    warp = lambda m: cv2.warpAffine(m, win, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                    borderValue=0.0)  # noqa: E731
    cover = warp(np.ones(lab.shape, np.float32))
    best = np.zeros((size[1], size[0]), np.float32)
    part = np.full((size[1], size[0]), outside, np.uint8)
    for c in np.unique(lab):
        ind = warp((lab == c).astype(np.float32))
        take = ind > best
        part[take] = c
        best[take] = ind[take]
    part[cover < 0.5] = outside
    out[y0:y1, x0:x1] = part
    return out
