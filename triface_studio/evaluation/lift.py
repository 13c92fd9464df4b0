"""How well a tier's image-to-plane lift works on real photos (``triface eval --task lift``).

For each held-out photo (the parser's held-out split, so the parser's labels are not memorised):

* ``psnr_source``: the tri-plane rendered at the photo's own camera (256 px) against the crop,
  over the head (face, hair, ears, neck: every class but background and cloth, from the
  folder's mask when it has one, else the parser's labels); ``psnr_source_parsed`` over the
  head as the bundled parser sees it (what the lift was given), so parser misses do not count;
  ``psnr_source_interior``: the same, two pixels (256 px) inside the head's outline;
  ``silhouette_iou``: IoU of the rendered opacity (> 0.5) and the parser's foreground (head and cloth);
* ``landmark_px``: for photos turned by at least ``min_yaw`` degrees, the tri-plane rendered
  from the front and analysed again; the mean distance (512 px crop pixels) of ten key
  landmarks (eye corners, nose, mouth corners, chin, forehead) from the canonical template,
  next to ``crop_landmark_px``, the same distance for the photo's own 2D-aligned crop.
"""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Callable

import numpy as np

from triface_studio.core.files import atomic_write_bytes
from triface_studio.core.images import ImageError, load_image
from triface_studio.core.semantics import BACKGROUND, CLOTH

KEY_LANDMARKS = (33, 133, 263, 362, 1, 61, 291, 199, 10, 152)


def held_out_names(data: Path) -> list[str]:
    from triface_studio.resources import resource_path

    split = resource_path("models", "parser", "split.json")
    names = json.loads(split.read_text())["val"] if split.exists() else []
    have = {p.stem for p in (data / "images").glob("*.jpg")} | {p.stem for p in (data / "images").glob("*.png")}
    return [n for n in names if n in have] or sorted(have)


def _psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    mse = float(((a - b) ** 2)[mask].mean()) if mask.any() else float("nan")
    return 10 * np.log10(1.0 / max(mse, 1e-10))


def evaluate_lift(data: str | Path, out_dir: str | Path, limit: int | None = None, tier: str = "bundled",
                  device: str = "cpu", min_yaw: float = 15.0, log: Callable[[str], None] | None = None) -> dict:
    """Measure the lift on up to ``limit`` held-out photos; writes ``lift.csv`` and
    ``summary.json`` into ``out_dir`` and returns the summary."""
    import cv2
    import torch

    from triface_studio.core.cameras import Camera
    from triface_studio.evaluation.evaluate import load_labels, make_pipeline
    from triface_studio.models.face import CANONICAL_LANDMARKS, NoFaceError
    from triface_studio.pipeline import EditError

    data, out_dir = Path(data), Path(out_dir)
    pipe = make_pipeline(tier, device)
    rows = []
    key = list(KEY_LANDMARKS)
    paths = {p.stem: p for p in (data / "images").iterdir()}
    for name in held_out_names(data)[:limit]:
        path = paths[name]
        row = {"name": name}
        try:
            fa = pipe.analyze(load_image(path), path.name, "photo")
        except (EditError, ImageError) as e:    # unreadable, no face, or one the landmark model cannot follow
            row["error"] = str(e)
            rows.append(row)
            continue
        t0 = time.perf_counter()
        asset = pipe.encode(fa)
        row["encode_s"] = round(time.perf_counter() - t0, 3)
        row["yaw"], row["pitch"] = (round(float(v), 1) for v in fa.pose[:2])
        with torch.no_grad():
            r = pipe.tier.render(asset, fa.camera, 256)
        out = r.rgb[0, :3].clamp(0, 1).permute(1, 2, 0).numpy()
        crop = cv2.resize(fa.crop, (256, 256), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        mask_path = data / "masks" / f"{name}.png"
        if mask_path.exists():      # the folder's mask, on the photo: bring it into the crop
            labels = load_labels(mask_path)
            h, w = fa.image_size
            if labels.shape != (h, w):
                labels = cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)
            labels = cv2.warpAffine(labels, fa.crop_matrix, fa.crop.shape[:2][::-1], flags=cv2.INTER_NEAREST)
        else:
            labels = np.asarray(fa.labels)
        parsed = cv2.resize(np.asarray(fa.labels), (256, 256), interpolation=cv2.INTER_NEAREST)
        given = cv2.resize(labels, (256, 256), interpolation=cv2.INTER_NEAREST)
        head, head_parsed = ((lab != BACKGROUND) & (lab != CLOTH) for lab in (given, parsed))
        row["psnr_source"] = round(_psnr(out, crop, head), 2)
        row["psnr_source_parsed"] = round(_psnr(out, crop, head_parsed), 2)
        interior = cv2.erode(head_parsed.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        row["psnr_source_interior"] = round(_psnr(out, crop, interior), 2)
        opaque = r.opacity[0, 0].numpy() > 0.5
        fg = parsed != BACKGROUND
        row["silhouette_iou"] = round(float((opaque & fg).sum() / max((opaque | fg).sum(), 1)), 4)
        if abs(fa.pose[0]) >= min_yaw:
            with torch.no_grad():
                fr = pipe.tier.render(asset, Camera.frontal(), 512)
            img = (fr.rgb[0, :3].clamp(0, 1).permute(1, 2, 0).numpy() * 255).astype(np.uint8)
            try:
                seen = pipe.analyzer.analyze(img, "frontal render", parse=False)
                row["landmark_px"] = round(float(np.linalg.norm(
                    seen.landmarks[key, :2] - CANONICAL_LANDMARKS[key, :2], axis=1).mean()), 2)
            except NoFaceError:
                row["landmark_px"] = float("nan")
            row["crop_landmark_px"] = round(float(np.linalg.norm(
                fa.crop_landmarks[key, :2] - CANONICAL_LANDMARKS[key, :2], axis=1).mean()), 2)
        rows.append(row)
        if log:
            log(f"{name}: " + ", ".join(f"{k} {v}" for k, v in row.items() if k != "name"))

    def mean(k):
        v = [r[k] for r in rows if k in r and np.isfinite(r[k])]
        return round(float(np.mean(v)), 3) if v else None

    summary = {"task": "lift", "tier": tier, "photos": len(rows),
               "failed": sum("error" in r for r in rows), "psnr_source": mean("psnr_source"),
               "psnr_source_parsed": mean("psnr_source_parsed"),
               "psnr_source_interior": mean("psnr_source_interior"), "silhouette_iou": mean("silhouette_iou"),
               "psnr_target": 28.0, "turned_photos": sum("landmark_px" in r for r in rows),
               "min_yaw": min_yaw, "landmark_px": mean("landmark_px"),
               "crop_landmark_px": mean("crop_landmark_px"), "encode_s": mean("encode_s")}
    out_dir.mkdir(parents=True, exist_ok=True)
    cols = ["name", "yaw", "pitch", "psnr_source", "psnr_source_parsed", "psnr_source_interior", "silhouette_iou",
            "landmark_px", "crop_landmark_px", "encode_s", "error"]
    write_table(out_dir, "lift.csv", cols, rows, summary)
    return summary


def write_table(out_dir: Path, csv_name: str, cols: list[str], rows: list[dict], summary: dict) -> None:
    """The per-item CSV and ``summary.json`` of an evaluation, each written atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, restval="", lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(out_dir / csv_name, buf.getvalue().encode())
    atomic_write_bytes(out_dir / "summary.json", (json.dumps(summary, indent=2) + "\n").encode())
