"""The bundled parser and BiSeNet fused per pixel: fused logits = W [log p_ours ; log p_bisenet] + b.

``W`` (19 x 38) and ``b`` (19) are fitted once on the bundled parser's *training* split
(:func:`fit_fusion`, ``triface train fusion``), never on its held-out photos, and ship in
``resources/models/parser/fusion.json``.  Each network runs once on the aligned crop; the fusion
itself is a 1x1 linear map over the 38 log-probabilities at ``work`` px (256), cheap next to the
networks.  Which parser the face analyser uses: :func:`load_face_parser`.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from triface_studio.core.semantics import NUM_CLASSES

FUSION_FORMAT = "triface-parser-fusion-v1"
PARSER_KINDS = ("auto", "fused", "bisenet", "shipped")


@dataclass(frozen=True)
class FusionWeights:
    """``weight`` (19, 38): columns 0-18 act on the bundled parser's log-probabilities, 19-37 on
    BiSeNet's (both in the CelebAMask-HQ order); ``bias`` (19); ``bisenet_size``: BiSeNet's input
    side; ``work``: the side the two are fused at."""

    weight: np.ndarray
    bias: np.ndarray
    bisenet_size: int = 512
    work: int = 256
    info: dict | None = None

    def to_json(self) -> dict:
        return {"format": FUSION_FORMAT, "bisenet_size": self.bisenet_size, "work": self.work,
                "weight": np.round(self.weight, 6).tolist(), "bias": np.round(self.bias, 6).tolist(),
                "info": self.info or {}}

    @classmethod
    def from_json(cls, doc: dict, name: str = "fusion.json") -> "FusionWeights":
        if not isinstance(doc, dict) or doc.get("format") != FUSION_FORMAT:
            raise ValueError(f"{name}: not a parser fusion file (format {doc.get('format') if isinstance(doc, dict) else None!r})")
        w, b = np.asarray(doc["weight"], np.float32), np.asarray(doc["bias"], np.float32)
        if w.shape != (NUM_CLASSES, 2 * NUM_CLASSES) or b.shape != (NUM_CLASSES,) or not (
                np.isfinite(w).all() and np.isfinite(b).all()):
            raise ValueError(f"{name}: weight must be 19 x 38 and bias 19 finite numbers")
        return cls(w, b, int(doc.get("bisenet_size", 512)), int(doc.get("work", 256)), doc.get("info"))

    @classmethod
    def identity(cls, bisenet_size: int = 512) -> "FusionWeights":
        """The plain average of the two log-probabilities (a starting point for fitting)."""
        w = np.concatenate([np.eye(NUM_CLASSES), np.eye(NUM_CLASSES)], 1).astype(np.float32) * 0.5
        return cls(w, np.zeros(NUM_CLASSES, np.float32), bisenet_size)


def fusion_path() -> Path:
    from triface_studio.resources import resource_path

    return resource_path("models", "parser", "fusion.json", must_exist=False)


def load_fusion(path: str | Path | None = None) -> FusionWeights:
    p = Path(path) if path is not None else fusion_path()
    try:
        doc = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{p}: unreadable fusion weights ({e})") from None
    return FusionWeights.from_json(doc, str(p))


def _resize_rgb(a: np.ndarray, side: int) -> np.ndarray:
    import cv2

    if a.shape[0] == side and a.shape[1] == side:
        return a
    return cv2.resize(a, (side, side), interpolation=cv2.INTER_AREA if a.shape[0] > side else cv2.INTER_LINEAR)


class FusedParser:
    """``parse(crop uint8 (S,S,3)) -> uint8 (S,S)`` (CelebAMask-HQ ids) from both networks."""

    name = "fused"

    def __init__(self, ours, bisenet, fusion: FusionWeights):
        self.ours, self.bisenet, self.fusion = ours, bisenet, fusion
        self.bisenet.size = fusion.bisenet_size
        self.size = fusion.work
        self._w = torch.from_numpy(fusion.weight)
        self._b = torch.from_numpy(fusion.bias)
        self._lock = threading.Lock()

    @torch.no_grad()
    def log_probs(self, crop: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Both networks' log-probabilities at ``work`` px. Shape: (S, S, 3) -> 2 x (19, work, work)."""
        a = np.asarray(crop)
        if a.ndim != 3 or a.shape[2] != 3:
            raise ValueError(f"the parser takes an RGB crop (S, S, 3), got shape {a.shape}")
        work = self.fusion.work
        small = _resize_rgb(a, work)
        lo = F.log_softmax(self.ours.logits(small), 0)
        lb = F.log_softmax(self.bisenet.logits(a, work), 0)
        return lo, lb

    @torch.no_grad()
    def logits(self, crop: np.ndarray) -> torch.Tensor:
        """Fused logits at ``work`` px. Shape: (S, S, 3) -> (19, work, work)."""
        lo, lb = self.log_probs(crop)
        return fuse(lo, lb, self._w, self._b)

    @torch.no_grad()
    def parse(self, crop: np.ndarray) -> np.ndarray:
        h, w = np.asarray(crop).shape[:2]
        lab = self.logits(crop).max(0).indices.to(torch.uint8)
        if lab.shape != (h, w):
            lab = F.interpolate(lab[None, None].float(), size=(h, w), mode="nearest")[0, 0].to(torch.uint8)
        return lab.cpu().numpy()


def fuse(lo: torch.Tensor, lb: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The fusion itself. Shape: lo, lb (19, ...) -> (19, ...)."""
    x = torch.cat([lo, lb], 0)
    return torch.einsum("kc,c...->k...", weight.to(x), x) + bias.to(x).view(-1, *([1] * (x.dim() - 1)))


# ---------------------------------------------------------------------------------------------
# Which parser


def load_face_parser(kind: str = "auto", device: str = "cpu"):
    """The parser the face analyser uses; ``kind``:

    - ``auto`` (default): ``fused`` when BiSeNet is installed (``triface models install bisenet``),
      else ``shipped``;
    - ``fused``: the bundled parser and BiSeNet fused (needs BiSeNet; ``ValueError`` otherwise);
    - ``bisenet``: BiSeNet alone (needs it);
    - ``shipped``: the bundled parser alone.

    Returns None when not even the bundled weights are present (the analyser then makes no map)."""
    from triface_studio.models.parser.bisenet import installed_bisenet_path, load_bisenet
    from triface_studio.models.parser.inference import load_bundled_parser

    if kind not in PARSER_KINDS:
        raise ValueError(f"unknown parser {kind!r}; choose one of {', '.join(PARSER_KINDS)}")
    bis_path = installed_bisenet_path() if kind != "shipped" else None
    if kind in ("fused", "bisenet") and bis_path is None:
        raise ValueError(f"the {kind} parser needs BiSeNet: install it with `triface models install bisenet`")
    if kind == "bisenet":
        return load_bisenet(bis_path, device)
    ours = load_bundled_parser(device)
    if bis_path is None or ours is None or (kind == "auto" and not fusion_path().is_file()):
        if kind == "fused":
            raise ValueError("the fused parser needs the bundled parser and its fusion weights, which this "
                             "install lacks")
        return ours
    return FusedParser(ours, load_bisenet(bis_path, device), load_fusion())


# ---------------------------------------------------------------------------------------------
# Fitting (on the training split)


def fit_fusion(lo: torch.Tensor, lb: torch.Tensor, target: torch.Tensor, bisenet_size: int = 512,
               class_weight_power: float = 0.0, steps: int = 200, log=None) -> FusionWeights:
    """Fit ``W`` and ``b`` by cross-entropy with L-BFGS; ``class_weight_power`` > 0 weights classes
    by frequency^-power (clipped at 10, as the parser's own training).  Plain cross-entropy (0) gave
    the best mIoU on training photos left out of the fit (0.798, against 0.792 with power 0.25, 0.764
    with 0.5 and 0.787 for the plain average), so it is the default.

    Shape: lo, lb (N, 19) log-probabilities of N sampled pixels; target (N,) class ids."""
    torch.manual_seed(0)
    x = torch.cat([lo, lb], 1).float()
    counts = torch.bincount(target, minlength=NUM_CLASSES).float()
    freq = counts / counts.sum()
    cw = torch.where(counts > 0, freq.clamp_min(1e-8) ** -class_weight_power, torch.zeros_like(freq))
    cw = (cw / cw[counts > 0].min()).clamp(max=10.0)
    init = FusionWeights.identity(bisenet_size)
    w = torch.tensor(init.weight, requires_grad=True)
    b = torch.zeros(NUM_CLASSES, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=steps, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(x @ w.T + b, target, weight=cw)
        loss.backward()
        return loss

    loss0 = float(closure().detach())
    opt.step(closure)
    loss1 = float(closure().detach())
    if log:
        log(f"fusion fit: weighted cross-entropy {loss0:.4f} -> {loss1:.4f} on {len(target)} pixels")
    return FusionWeights(w.detach().numpy().astype(np.float32), b.detach().numpy().astype(np.float32),
                         bisenet_size, info={"loss_start": round(loss0, 5), "loss": round(loss1, 5),
                                             "pixels": int(len(target)),
                                             "class_weight_power": class_weight_power})
