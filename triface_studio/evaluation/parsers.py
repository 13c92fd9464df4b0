"""Face parsers compared on the bundled parser's held-out split, in each photo's own frame.

Every photo goes through the whole face analysis (detect, landmarks, align to the canonical crop),
each parser labels the aligned crop, and the labels are moved back onto the photo
(:func:`~triface_studio.models.parser.inference.labels_to_photo`, what ``triface parse`` writes)
before they are compared with the hand-made mask of the photo.  A photo without a face found counts
as all background.  IoU per class over all pixels of all photos (one confusion matrix), mIoU over the
classes present; also the time each parser takes per crop.

``triface eval --task parsers --data ../shared/data/celebamask-mini --out OUT``
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from triface_studio.core.semantics import CLASS_NAMES, NUM_CLASSES

EDIT_CLASSES = ("hair", "skin", "eyeglasses", "background", "nose", "l_eye", "r_eye", "l_brow", "r_brow",
                "u_lip", "l_lip", "mouth", "l_ear", "r_ear")


@dataclass(frozen=True)
class ParserScore:
    """One parser on one split: IoU per class (NaN where a class is in neither map), mIoU over the
    classes present, median milliseconds per 512 px crop, photos and photos with no face found."""

    name: str
    iou: tuple[float, ...]
    miou: float
    ms_per_crop: float
    photos: int
    no_face: int

    def by_class(self) -> dict[str, float]:
        return {n: round(float(v), 4) for n, v in zip(CLASS_NAMES, self.iou)}


def confusion(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(19, 19) counts, rows ground truth, columns prediction; gt values >= 19 are ignored."""
    g, p = np.asarray(gt).ravel().astype(np.int64), np.asarray(pred).ravel().astype(np.int64)
    keep = g < NUM_CLASSES
    return np.bincount(g[keep] * NUM_CLASSES + p[keep], minlength=NUM_CLASSES ** 2).reshape(NUM_CLASSES, NUM_CLASSES)


def iou_from_confusion(cm: np.ndarray) -> np.ndarray:
    inter = np.diag(cm).astype(np.float64)
    union = cm.sum(0) + cm.sum(1) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.maximum(union, 1), np.nan)


def split_names(data: Path, split: str | Path | None, subset: str) -> list[str]:
    from triface_studio.models.parser.inference import bundled_parser_path

    path = Path(split) if split is not None else bundled_parser_path().with_name("split.json")
    names = json.loads(path.read_text())[subset]
    return [n for n in names if (data / "images" / f"{n}.jpg").is_file() and (data / "masks" / f"{n}.png").is_file()]


def evaluate_parsers(data: str | Path, out: str | Path | None = None, parsers: dict | None = None,
                     subset: str = "val", split: str | Path | None = None, limit: int | None = None,
                     log: Callable[[str], None] | None = None) -> dict:
    """Per-class IoU of each parser in ``parsers`` (name -> object with ``parse(crop)``; default:
    the shipped parser, and BiSeNet and the fused parser when BiSeNet is installed) on ``subset`` of
    the split file.  Writes ``parsers.json`` and ``parsers.md`` into ``out`` when given."""
    import torch

    from triface_studio.core.images import load_image
    from triface_studio.models.face import FaceAnalyzer, NoFaceError
    from triface_studio.models.parser.fusion import load_face_parser
    from triface_studio.models.parser.inference import labels_to_photo

    data = Path(data)
    if not (data / "images").is_dir() or not (data / "masks").is_dir():
        raise ValueError(f"{data}: expected images/ and masks/ (a celebamask-mini-like folder)")
    if parsers is None:
        parsers = {"shipped": load_face_parser("shipped")}
        try:
            parsers["bisenet"] = load_face_parser("bisenet")
            parsers["fused"] = load_face_parser("fused")
        except ValueError as e:
            if log:
                log(f"only the shipped parser: {e}")
    names = split_names(data, split, subset)[:limit]
    if not names:
        raise ValueError(f"{data}: none of the {subset} photos of the split are there")
    analyzer = FaceAnalyzer("cpu")
    cms = {k: np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64) for k in parsers}
    times: dict[str, list[float]] = {k: [] for k in parsers}
    no_face = 0
    t_start = time.perf_counter()
    for i, n in enumerate(names):
        img = load_image(data / "images" / f"{n}.jpg")
        from PIL import Image

        gt = np.asarray(Image.open(data / "masks" / f"{n}.png"))
        try:
            fa = analyzer.analyze(img, name=n, parse=False)
        except NoFaceError:
            no_face += 1
            for k in parsers:
                cms[k] += confusion(np.zeros_like(gt), gt)
            continue
        for k, p in parsers.items():
            t = time.perf_counter()
            with torch.no_grad():
                lab = p.parse(fa.crop)
            times[k].append((time.perf_counter() - t) * 1000)
            cms[k] += confusion(labels_to_photo(lab, fa.crop_matrix, gt.shape[:2]), gt)
        if log and (i + 1) % 20 == 0:
            log(f"{i + 1}/{len(names)} photos ({time.perf_counter() - t_start:.0f} s)")
    scores = []
    for k in parsers:
        iou = iou_from_confusion(cms[k])
        scores.append(ParserScore(k, tuple(float(v) for v in iou), float(np.nanmean(iou)),
                                  float(np.median(times[k])) if times[k] else float("nan"), len(names), no_face))
    summary = {"data": str(data), "subset": subset, "photos": len(names), "no_face": no_face,
               "frame": "photo (labels mapped back from the aligned crop)",
               "parsers": {s.name: {"miou": round(s.miou, 4), "ms_per_crop": round(s.ms_per_crop, 1),
                                    "iou": s.by_class()} for s in scores},
               "confusion": {k: v.tolist() for k, v in cms.items()}}
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "parsers.json").write_text(json.dumps(summary, indent=1) + "\n")
        (out / "parsers.md").write_text(markdown_table(scores) + "\n")
    return summary


def markdown_table(scores: list[ParserScore]) -> str:
    head = "| class | " + " | ".join(s.name for s in scores) + " |"
    rows = [head, "|---|" + "---|" * len(scores)]
    for i, n in enumerate(CLASS_NAMES):
        vals = [s.iou[i] for s in scores]
        best = np.nanmax(vals) if not all(np.isnan(vals)) else np.nan
        cells = [("**%.3f**" % v if v == best and len(scores) > 1 else "%.3f" % v) if not np.isnan(v) else "-"
                 for v in vals]
        rows.append(f"| {n} | " + " | ".join(cells) + " |")
    rows.append("| **mIoU** | " + " | ".join(f"**{s.miou:.3f}**" for s in scores) + " |")
    rows.append("| ms per crop | " + " | ".join(f"{s.ms_per_crop:.0f}" for s in scores) + " |")
    return "\n".join(rows)


# ---------------------------------------------------------------------------------------------
# Samples for fitting the fusion (training split only)


def augment_crop(crop: np.ndarray, target: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A new view of a training photo: scale 0.85-1.15, rotation +-12 degrees and shift +-4 % about
    the centre, brightness/contrast/saturation jitter, and a blur or a down-and-up resize (JPEG-like
    softness).  ``target`` (the class map at any side) gets the same warp (nearest; 255 outside).

    The bundled parser has memorised its training photos (mIoU 0.74 on them, 0.64 held out), so
    fused on the photos themselves it looks better than it is on a new one; augmented views of them
    are closer to new photos.  Shape: crop (S, S, 3) uint8, target (T, T) uint8 -> same."""
    import cv2

    s = crop.shape[0]
    ang, sc = rng.uniform(-12, 12), rng.uniform(0.85, 1.15)
    m = cv2.getRotationMatrix2D((s / 2, s / 2), ang, sc)
    m[:, 2] += rng.uniform(-0.04, 0.04, 2) * s
    img = cv2.warpAffine(crop, m, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    t = target.shape[0]
    mt = m.copy()
    mt[:, 2] *= t / s
    tgt = cv2.warpAffine(target, mt, (t, t), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=255)
    f = img.astype(np.float32)
    grey = f.mean(2, keepdims=True)
    f = grey + (f - grey) * rng.uniform(0.7, 1.3)
    f = (f - f.mean()) * rng.uniform(0.75, 1.25) + f.mean() * rng.uniform(0.8, 1.2)
    img = np.clip(f, 0, 255).astype(np.uint8)
    r = rng.uniform()
    if r < 0.35:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.6, 1.8))
    elif r < 0.7:
        k = int(s * rng.uniform(0.3, 0.6))
        img = cv2.resize(cv2.resize(img, (k, k), interpolation=cv2.INTER_AREA), (s, s), interpolation=cv2.INTER_LINEAR)
    return img, tgt


def fusion_samples(data: str | Path, names: list[str], fused, stride: int = 4, augment: int = 0,
                   log: Callable[[str], None] | None = None) -> tuple:
    """Both networks' log-probabilities at every ``stride``-th pixel of the fused parser's work
    grid, with the hand-made class there (the mask moved into the aligned crop; pixels outside
    the photo dropped); with ``augment`` > 0, that many augmented views of each photo
    (:func:`augment_crop`, seeded) instead of the photo itself.
    -> (lo (N, 19), lb (N, 19), target (N,)) tensors."""
    import cv2
    import torch
    from PIL import Image

    from triface_studio.core.images import load_image
    from triface_studio.models.face import FaceAnalyzer, NoFaceError

    data = Path(data)
    analyzer = FaceAnalyzer("cpu")
    work = fused.fusion.work
    los, lbs, ts = [], [], []
    t0 = time.perf_counter()
    for i, n in enumerate(names):
        img = load_image(data / "images" / f"{n}.jpg")
        gt = np.asarray(Image.open(data / "masks" / f"{n}.png")).astype(np.uint8)
        try:
            fa = analyzer.analyze(img, name=n, parse=False)
        except NoFaceError:
            continue
        m = np.asarray(fa.crop_matrix, np.float64) * (work / fa.crop.shape[0])
        tgt = cv2.warpAffine(gt, m, (work, work), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                             borderValue=255)
        views = [(fa.crop, tgt)] if augment <= 0 else [
            augment_crop(fa.crop, tgt, np.random.default_rng([i, k])) for k in range(augment)]
        for crop, tg in views:
            lo, lb = fused.log_probs(crop)
            sl = (slice(stride // 2, None, stride),) * 2
            t = torch.from_numpy(tg[sl].astype(np.int64)).reshape(-1)
            keep = t < NUM_CLASSES
            los.append(lo[:, sl[0], sl[1]].reshape(NUM_CLASSES, -1).T[keep])
            lbs.append(lb[:, sl[0], sl[1]].reshape(NUM_CLASSES, -1).T[keep])
            ts.append(t[keep])
        if log and (i + 1) % 50 == 0:
            log(f"{i + 1}/{len(names)} training photos ({time.perf_counter() - t0:.0f} s)")
    return torch.cat(los), torch.cat(lbs), torch.cat(ts)


def asdict_score(s: ParserScore) -> dict:
    return asdict(s)
