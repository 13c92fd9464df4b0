"""How the orbit views of a lifted head look (``triface eval --task views``).

For each held-out photo (the parser's held-out split, :func:`lift.held_out_names`) the head is
lifted and rendered at 512 px from the orbit cameras the app uses (yaw +-15, +-30, +-45 and pitch
+-20, plus the front), and each view is measured:

* ``landmark_px``: the face mesh is run on the rendered view; the median distance (px at 512)
  between the landmarks it finds and the identity's own 3D landmarks (the lift's face surface)
  projected with that view's camera.  ``found``: the share of views in which it finds a face.
* ``streak_share``: the share of head pixels (rendered labels other than background and cloth)
  that lie in long horizontal runs of flat colour with texture across them (:func:`streak_share`);
  stretched texels on surfaces the photo saw at a grazing angle make these, a photo scores about 0
  (``photo_streak_share`` is the same measure on the crop itself).
* ``empty_share``: the share of the view that is the renderer's empty white (:func:`empty_share`),
  next to ``photo_empty_share``, the same on the crop (a photo with a white wall is not empty,
  but scores like one; the photo's own figure says how much of that there is).
* ``extra_parts``: the face parser run on the rendered view (an independent judge of what it
  shows, not the lift's own labels); the eyes it finds beyond two and the brows beyond two
  (:func:`extra_parts`).  A mirrored copy of the visible side next to the far side's own eye,
  which the streak measure does not see, is a third eye; ``double_share`` is the share of views
  with any, ``photo_extra_parts`` the same measure on the crop.
* ``floating_share``: the share of the view's head (its rendered labels other than background
  and cloth) in pieces apart from the largest (:func:`floating_share`): a strand or an earring the
  lift cut off from the head hangs in front of the background in side views.
  ``photo_floating_share`` is the same measure on the crop's labels (an earring apart counts).
* ``psnr_head``: the head rendered at the photo's own camera (the yaw-0 view of the photo's
  turntable) against the crop, over the head the parser sees (every class but background and
  cloth).

The summary's figures are those of the first ``limit`` held-out photos (the same set from run to
run, comparable over time).  That set is nearly frontal, so ``turned`` holds the same figures for
the :data:`TURNED` most turned of the other held-out photos (|yaw| >= :data:`TURNED_MIN_YAW`,
by the face analysis), where the far side is made up and its defects show.

``contact_sheet.png`` shows every head as photo + :data:`SHEET_VIEWS`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from triface_studio.core.files import atomic_write_bytes
from triface_studio.core.images import encode_png, load_image
from triface_studio.core.semantics import BACKGROUND, CLOTH, L_BROW, L_EYE, R_BROW, R_EYE
from triface_studio.pipeline.exports import contact_sheet

from .lift import _psnr, held_out_names, write_table
from .protocol import split_names

#: (yaw, pitch) of the measured views
VIEWS = ((-45, 0), (-30, 0), (-15, 0), (15, 0), (30, 0), (45, 0), (0, 20), (0, -20))
#: (yaw, pitch) of the contact sheet's columns after the photo
SHEET_VIEWS = ((-45, 0), (-30, 0), (0, 0), (30, 0), (45, 0), (0, 20), (0, -20))
#: a streak: at least STREAK_RUN px (at 512) in a row whose neighbours differ by at most STREAK_TOL
#: while each differs from the row above by at least STREAK_ACROSS (0-255): texture across the rows
#: and none along them.  Calibrated on held-out crops: photos score 0.000-0.009, smooth skin and
#: blown-out highlights (flat both ways) do not count.
STREAK_RUN, STREAK_TOL, STREAK_ACROSS = 16, 2, 3
SIZE = 512
TILE = 160
#: how many of the most turned other held-out photos are measured apart, from what yaw on
TURNED, TURNED_MIN_YAW = 4, 25.0


#: how many training photos (after the first ``limit``) ``split="train"`` searches for turned ones
TRAIN_SEARCH = 200


def streak_share(rgb: np.ndarray, region: np.ndarray, run: int = STREAK_RUN, tol: int = STREAK_TOL,
                 across: int = STREAK_ACROSS) -> float:
    """Share of ``region`` pixels lying in horizontal runs of at least ``run`` pixels in which each
    pixel differs from its left neighbour by at most ``tol`` and from the pixel above it by at
    least ``across`` (0-255, the largest channel difference): stretched texels.

    Shape: rgb uint8 (H, W, 3), region bool (H, W) -> float in [0, 1]
    """
    a = np.asarray(rgb, np.int16)
    along = np.abs(a[:, 1:] - a[:, :-1]).max(-1)                                      # (H, W-1)
    up = np.zeros(a.shape[:2], np.int16)
    up[1:] = np.abs(a[1:] - a[:-1]).max(-1)
    flat = (along <= tol) & (np.maximum(up[:, 1:], up[:, :-1]) >= across) & region[:, 1:] & region[:, :-1]
    H, W1 = flat.shape
    padded = np.concatenate([np.zeros((H, 1), bool), flat, np.zeros((H, 1), bool)], 1).astype(np.int8)
    d = np.diff(padded, axis=1)
    starts, ends = np.nonzero(d == 1), np.nonzero(d == -1)
    covered = np.zeros((H, W1 + 1), bool)
    for r, s, e in zip(starts[0], starts[1], ends[1]):
        if e - s + 1 >= run:                    # e - s flat pairs join e - s + 1 pixels
            covered[r, s:e + 1] = True
    n = int(region.sum())
    return float((covered & region).sum() / n) if n else 0.0


#: a part the parser finds is a piece of at least PART_MIN_PX pixels (at 512) once gaps of up to
#: PART_CLOSE px are closed (an eye cut in two by a lash line is one eye)
PART_MIN_PX, PART_CLOSE = 40, 5


def extra_parts(labels: np.ndarray, min_px: int = PART_MIN_PX, close: int = PART_CLOSE) -> int:
    """Eyes beyond two plus brows beyond two in a parsed image (left and right classes
    together: a copy may be labelled either side).  Shape: labels uint8 (H, W) -> int"""
    import cv2

    lab = np.asarray(labels)
    scale = lab.shape[0] / SIZE
    kernel = np.ones((max(1, round(close * scale)),) * 2, np.uint8)
    extra = 0
    for pair in ((L_EYE, R_EYE), (L_BROW, R_BROW)):
        m = cv2.morphologyEx(np.isin(lab, pair).astype(np.uint8), cv2.MORPH_CLOSE, kernel)
        n, _, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
        pieces = int((stats[1:, cv2.CC_STAT_AREA] >= min_px * scale * scale).sum())
        extra += max(0, pieces - 2)
    return extra


#: pieces of a view's head smaller than this (px at 512) are specks, not floating parts
FLOAT_MIN_PX = 16


def floating_share(head: np.ndarray, min_px: int = FLOAT_MIN_PX) -> float:
    """The share of ``head`` ((H, W) bool) in 8-connected pieces apart from its largest (pieces
    of at least ``min_px``). -> float in [0, 1]"""
    import cv2

    n, _, stats, _ = cv2.connectedComponentsWithStats(np.asarray(head, np.uint8), connectivity=8)
    if n <= 2:
        return 0.0
    areas = np.sort(stats[1:, cv2.CC_STAT_AREA])[::-1]
    return float(areas[1:][areas[1:] >= min_px].sum() / max(areas.sum(), 1))


def empty_share(rgb: np.ndarray, level: int = 254) -> float:
    """Share of pixels that are the renderer's empty white (every channel >= ``level``).
    Shape: rgb uint8 (H, W, 3) -> float."""
    return float((np.asarray(rgb) >= level).all(-1).mean())


def view_camera(pipe, yaw: float, pitch: float):
    """The camera the pipeline renders the orbit view (yaw, pitch) with."""
    from triface_studio.core.cameras import Camera

    cam_of = getattr(pipe.tier, "orbit_camera", None)
    return cam_of(yaw, pitch) if cam_of is not None else Camera.orbit(yaw, pitch)


def landmark_error(analyzer, rgb: np.ndarray, world_landmarks: np.ndarray, camera) -> float | None:
    """Median distance (px) between the face mesh's landmarks on ``rgb`` and ``world_landmarks``
    ((N, 3) world units) projected by ``camera``; None when no face is found."""
    import torch

    from triface_studio.models.face import NoFaceError

    try:
        seen = analyzer.analyze(rgb, "rendered view", parse=False)
    except NoFaceError:
        return None
    uv, _ = camera.project(torch.from_numpy(np.asarray(world_landmarks, np.float32)), rgb.shape[0])
    return float(np.median(np.linalg.norm(seen.landmarks[:, :2] - uv.numpy(), axis=1)))


def _head(labels: np.ndarray) -> np.ndarray:
    return (labels != BACKGROUND) & (labels != CLOTH)


def evaluate_views(data: str | Path, out_dir: str | Path, limit: int | None = 8, tier: str = "bundled",
                   device: str = "cpu", log: Callable[[str], None] | None = None, turned: int = TURNED,
                   split: str = "heldout") -> dict:
    """Measure the orbit views of up to ``limit`` held-out photos, and apart of them of the
    ``turned`` most turned other held-out photos (``split="train"``: the parser's training photos
    instead, and the turned ones among the next :data:`TRAIN_SEARCH`, for development); writes
    ``views.csv``, ``summary.json`` and ``contact_sheet.png`` into ``out_dir`` and returns the
    summary."""
    import torch

    from triface_studio.evaluation.evaluate import make_pipeline
    from triface_studio.models.face.analyzer import canonical_world_landmarks
    from triface_studio.pipeline import EditError

    data, out_dir = Path(data), Path(out_dir)
    pipe = make_pipeline(tier, device)
    paths = {p.stem: p for p in (data / "images").iterdir()}
    if split == "heldout":
        names = held_out_names(data)
    elif split == "train":
        names = sorted(split_names(data, "train") or ())
        names = names[:(limit or 0) + TRAIN_SEARCH]
    else:
        raise ValueError(f"the views eval measures held-out or training photos, not {split!r}")
    first = names[:limit]
    chosen = [(n, "first") for n in first] + [(n, "turned") for n in most_turned(pipe, names[len(first):], paths, turned)]
    rows, sheet_rows, photos = [], [], []
    for name, group in chosen:
        try:
            fa = pipe.analyze(load_image(paths[name]), paths[name].name, "photo")
        except EditError as e:
            rows.append({"name": name, "set": group, "error": str(e)})
            continue
        asset = pipe.encode(fa)
        world = canonical_world_landmarks(fa.crop_landmarks)
        crop = np.asarray(fa.crop)
        photo_head = _head(np.asarray(fa.labels))
        photos.append({"set": group, "streak": streak_share(crop, photo_head), "empty": empty_share(crop),
                       "extra": extra_parts(np.asarray(fa.labels)), "floating": floating_share(photo_head)})
        with torch.no_grad():
            src = pipe.tier.render(asset, fa.camera, SIZE)
        rendered = src.rgb[0, :3].clamp(0, 1).permute(1, 2, 0).numpy()
        psnr = round(_psnr(rendered, crop.astype(np.float32) / 255.0, photo_head), 2)
        tiles = {}
        for yaw, pitch in sorted(set(VIEWS) | set(SHEET_VIEWS)):
            rgb, labels = pipe.render_view(asset, yaw, pitch, SIZE)
            tiles[(yaw, pitch)] = rgb
            if (yaw, pitch) not in VIEWS:
                continue
            err = landmark_error(pipe.analyzer, rgb, world, view_camera(pipe, yaw, pitch))
            parsed = pipe.analyzer.parse(np.ascontiguousarray(rgb))
            row = {"name": name, "set": group, "yaw": yaw, "pitch": pitch, "found": int(err is not None),
                   "landmark_px": round(err, 2) if err is not None else "",
                   "streak_share": round(streak_share(rgb, _head(labels)), 4),
                   "extra_parts": "" if parsed is None else extra_parts(np.asarray(parsed)),
                   "empty_share": round(empty_share(rgb), 4),
                   "floating_share": round(floating_share(_head(labels)), 4), "psnr_head": psnr}
            rows.append(row)
        sheet_rows.append([crop] + [tiles[v] for v in SHEET_VIEWS])
        if log:
            mine = [r for r in rows if r.get("name") == name]
            log(f"{name}: psnr_head {psnr}  found {sum(r['found'] for r in mine)}/{len(mine)}  streaks "
                f"{np.mean([r['streak_share'] for r in mine]):.3f}  empty {np.mean([r['empty_share'] for r in mine]):.3f}"
                f"  extra parts {sum(r['extra_parts'] or 0 for r in mine)}")

    views = [r for r in rows if "error" not in r and r["set"] == "first"]
    summary = _summary(views, [p for p in photos if p["set"] == "first"])
    summary = {"task": "views", "tier": tier, "split": split,
               "photos": len({r["name"] for r in rows if r["set"] == "first"}),
               "failed": sum("error" in r for r in rows), "views": [list(v) for v in VIEWS], **summary}
    turned_views = [r for r in rows if "error" not in r and r["set"] == "turned"]
    summary["turned"] = {"photos": len({r["name"] for r in turned_views}), "min_yaw": TURNED_MIN_YAW,
                         **_summary(turned_views, [p for p in photos if p["set"] == "turned"])}
    out_dir.mkdir(parents=True, exist_ok=True)
    cols = ["name", "set", "yaw", "pitch", "found", "landmark_px", "streak_share", "extra_parts", "empty_share",
            "floating_share", "psnr_head", "error"]
    write_table(out_dir, "views.csv", cols, rows, summary)
    if sheet_rows:
        captions = [["photo"] + [f"yaw {y} pitch {p}" for y, p in SHEET_VIEWS]] * len(sheet_rows)
        atomic_write_bytes(out_dir / "contact_sheet.png",
                           encode_png(contact_sheet(sheet_rows, cell=TILE, gap=0, captions=captions)))
    return summary


def most_turned(pipe, names: list[str], paths: dict, n: int, min_yaw: float = TURNED_MIN_YAW) -> list[str]:
    """The ``n`` photos among ``names`` whose faces are turned most (|yaw| >= ``min_yaw``, by
    the face analysis; photos without a face are skipped), most turned first."""
    from triface_studio.pipeline import EditError

    if n <= 0:
        return []
    yaws = []
    for name in names:
        try:
            fa = pipe.analyze(load_image(paths[name]), paths[name].name, "photo")
        except EditError:
            continue
        if abs(fa.pose[0]) >= min_yaw:
            yaws.append((-abs(fa.pose[0]), name))
    return [name for _, name in sorted(yaws)[:n]]


def _summary(views: list[dict], photos: list[dict]) -> dict:
    """The figures of one set of views (see the module docstring)."""
    def stat(key, fn=np.mean, where=lambda r: True):
        v = [float(r[key]) for r in views if r[key] != "" and where(r)]
        return round(float(fn(v)), 4) if v else None

    def photo(key):
        return round(float(np.mean([p[key] for p in photos])), 4) if photos else None

    return {
        "found": stat("found"), "landmark_px": stat("landmark_px", np.median),
        "landmark_px_by_view": {f"{y},{p}": stat("landmark_px", np.median,
                                                 lambda r, y=y, p=p: (r["yaw"], r["pitch"]) == (y, p))
                                for y, p in VIEWS},
        "streak_share": stat("streak_share"), "photo_streak_share": photo("streak"),
        "empty_share": stat("empty_share"), "photo_empty_share": photo("empty"),
        "extra_parts": stat("extra_parts"),
        "double_share": stat("extra_parts", lambda v: np.mean(np.asarray(v) > 0)),
        "extra_parts_by_view": {f"{y},{p}": stat("extra_parts", np.mean,
                                                 lambda r, y=y, p=p: (r["yaw"], r["pitch"]) == (y, p))
                                for y, p in VIEWS},
        "photo_extra_parts": photo("extra"),
        "floating_share": stat("floating_share"), "photo_floating_share": photo("floating"),
        "psnr_head": stat("psnr_head"), "psnr_target": 30.0}
