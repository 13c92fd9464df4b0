"""What a person sees at a glance, as numbers: the defects that make an edit read as fake.

All measures take the identity's crop ``inp``, the edited crop ``out`` (uint8 (512, 512, 3)),
parser labels of both (CelebAMask-HQ ids) and, where it matters, the reference crop and labels.
"Changed" pixels are those whose colour moved by more than ``CHANGED_DE`` (CIELAB Delta E).

- ``flat_fill``: share of changed pixels whose local texture (the standard deviation of
  lightness in a 7x7 window) is below ``FLAT_RATIO`` times the identity's own texture of the
  same kind (its hair where the result shows hair, its skin where it shows skin, its
  background elsewhere).  A Poisson or mean-colour fill scores ~1 on its pixels; real hair and
  skin, even rendered a little soft, score ~0.  Pixels the parser sees as eyeglasses on the
  result are not counted: a plain black frame is flat, as in a photo (held against the
  background's texture, the thick frames of one held-out reference counted as a flat fill).
- ``bald_px``: pixels that were hair on the identity, are skin on the result and lie above the
  eyebrows (the scalp), as a share of the identity's hair above the brows.  Zero unless the
  edit was asked to make someone bald.
- ``seam_contrast``: mean gradient magnitude of the result along the boundary of the changed
  region, divided by the same on the input there, counted only where the result's labels are
  one class across the boundary (``SEAM_WINDOW``): hair meeting hair, skin meeting skin,
  background meeting background.  ~1: the boundary is no sharper than what the photo had; a
  hard cut through smooth skin or background, or a step inside the hair, scores several times
  more.  Where the parser sees new hair meet background or skin, an edge is what a photo has
  there (blonde hair against a dark wall is a strong edge), so it is not counted; nor, for
  eyeglasses, is the boundary in or within ``SEAM_WINDOW`` px of the parser's eyeglasses class,
  which covers frames and lenses alike (a frame's inner edge, its soft rim and its arms are
  the frame's own edges): what is left is where a pasted patch ends; the measure over the whole
  boundary, which also charges those, is ``seam_contrast_all``.
- ``foreign_skin``: share of the changed pixels (for hair: those the parser does not see as
  hair on the result, which are the attribute) whose colour is the reference's complexion and
  not the identity's (within ``SKIN_DE`` of the reference's median skin colour and more than
  ``2 * SKIN_DE`` from the identity's); NaN when the two complexions are too alike to tell.
- ``no_op``: 1 when the requested attribute is not visible on the result: eyeglasses the parser
  does not find (fewer than ``MIN_GLASSES_PX`` pixels), hair whose colour did not move (less than
  ``HAIR_MOVED_SHARE`` of the result's hair moved by ``CHANGED_DE``: a half-hair edit keeps the
  other half as it was), or fewer than ``MIN_CHANGED_PX`` changed pixels for any task.
- ``agree_iou``: IoU between where the edit put the attribute (its blended semantics) and where
  the parser finds it on the result; ``parts_kept``: the share of the identity's eyes, nose and
  mouth classes that the parser still finds on the result (at least half of their pixels).
"""

from __future__ import annotations

import cv2
import numpy as np

from triface_studio.core.fill import local_texture
from triface_studio.core.semantics import (BACKGROUND, EYEGLASSES, HAIR, L_BROW, L_EYE, L_LIP, MOUTH, NOSE, R_BROW,
                                           R_EYE, SKIN, U_LIP)

CHANGED_DE = 6.0
FLAT_RATIO = 0.35
SKIN_DE = 7.0
MIN_GLASSES_PX = 200
MIN_CHANGED_PX = 150
#: hair is a no-op when less than this share of the result's hair moved by CHANGED_DE (the median,
#: before, called a half-hair edit that keeps the other half as it was a no-op: sheet pair 9)
HAIR_MOVED_SHARE = 0.25
#: a result with more than this share of flat changed pixels, or this seam contrast, reads as fake
FLAT_FAIL, SEAM_FAIL, FOREIGN_FAIL = 0.05, 2.5, 0.05
PARTS = ((L_EYE, R_EYE), (NOSE,), (MOUTH, U_LIP, L_LIP))
#: the seam is measured where the result's labels are one class across a window this wide
SEAM_WINDOW = 7


def lab(image: np.ndarray) -> np.ndarray:
    """uint8 RGB -> float32 CIELAB (L in 0-100)."""
    return cv2.cvtColor(np.asarray(image, np.float32) / 255.0, cv2.COLOR_RGB2Lab)


def changed_mask(lab_in: np.ndarray, lab_out: np.ndarray) -> np.ndarray:
    """Pixels whose colour moved by more than ``CHANGED_DE``, without isolated specks. -> bool"""
    moved = np.linalg.norm(lab_out - lab_in, axis=-1) > CHANGED_DE
    return cv2.morphologyEx(moved.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).astype(bool)


def _median(values: np.ndarray) -> float:
    return float(np.median(values)) if values.size >= 32 else float("nan")


def flat_fill(tex_in: np.ndarray, tex_out: np.ndarray, lab_in_ids: np.ndarray, lab_out_ids: np.ndarray,
              changed: np.ndarray) -> float:
    if changed.sum() < MIN_CHANGED_PX:
        return 0.0
    skin_t = _median(tex_in[lab_in_ids == SKIN])
    hair_t = _median(tex_in[lab_in_ids == HAIR])
    bg_t = _median(tex_in[lab_in_ids == BACKGROUND])
    fallback = np.nanmin([skin_t, hair_t, bg_t]) if not np.all(np.isnan([skin_t, hair_t, bg_t])) else 1.0
    ref = np.full(tex_in.shape, bg_t if not np.isnan(bg_t) else fallback, np.float32)
    ref[np.isin(lab_out_ids, (SKIN, NOSE))] = skin_t if not np.isnan(skin_t) else fallback
    ref[lab_out_ids == HAIR] = hair_t if not np.isnan(hair_t) else fallback
    flat = tex_out < FLAT_RATIO * ref
    counted = changed & (lab_out_ids != EYEGLASSES)
    return float(flat[counted].mean()) if counted.sum() >= MIN_CHANGED_PX else 0.0


def bald_share(lab_in_ids: np.ndarray, lab_out_ids: np.ndarray) -> float:
    rows = np.nonzero(np.isin(lab_in_ids, (L_BROW, R_BROW, L_EYE, R_EYE)).any(1))[0]
    top = rows.min() if rows.size else lab_in_ids.shape[0] // 2
    scalp = np.zeros(lab_in_ids.shape, bool)
    scalp[:top] = True
    old = (lab_in_ids == HAIR) & scalp
    if old.sum() < MIN_CHANGED_PX:
        return 0.0
    return float(((lab_out_ids == SKIN) & old).sum() / old.sum())


def seam_contrast(l_in: np.ndarray, l_out: np.ndarray, changed: np.ndarray,
                  lab_out_ids: np.ndarray | None = None, structured: tuple[int, ...] = ()) -> float:
    if changed.sum() < MIN_CHANGED_PX:
        return float("nan")
    m = changed.astype(np.uint8)
    band = cv2.morphologyEx(m, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)).astype(bool)
    band[:2], band[-2:], band[:, :2], band[:, -2:] = False, False, False, False
    if lab_out_ids is not None:
        # only where one class of the result meets itself across the boundary: a step there is
        # a seam; where the parser sees hair meet background or skin an edge is the photo's own
        ids = np.asarray(lab_out_ids, np.uint8)
        k = np.ones((SEAM_WINDOW, SEAM_WINDOW), np.uint8)
        band &= cv2.dilate(ids, k) == cv2.erode(ids, k)
        # in and next to a class with structure of its own (eyeglasses: frames and lenses share
        # one label, and a frame's soft rim or its arms are labelled skin) every edge is the
        # object's, not a seam
        if structured:
            near = cv2.dilate(np.isin(ids, structured).astype(np.uint8), np.ones((2 * SEAM_WINDOW + 1,) * 2, np.uint8))
            band &= near == 0
    if band.sum() < 32:
        return float("nan")

    def grad(x):
        gx = cv2.Sobel(x, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(x, cv2.CV_32F, 0, 1, ksize=3)
        return np.hypot(gx, gy)

    g_in, g_out = grad(l_in), grad(l_out)
    return float((g_out[band].mean() + 1.0) / (g_in[band].mean() + 1.0))


def foreign_skin(lab_out: np.ndarray, lab_in: np.ndarray, lab_in_ids: np.ndarray, changed: np.ndarray,
                 lab_ref: np.ndarray | None, lab_ref_ids: np.ndarray | None,
                 attribute: np.ndarray | None = None) -> float:
    if lab_ref is None or lab_ref_ids is None or changed.sum() < MIN_CHANGED_PX:
        return float("nan")
    s_id, s_ref = lab_in[lab_in_ids == SKIN], lab_ref[lab_ref_ids == SKIN]
    if len(s_id) < 64 or len(s_ref) < 64:
        return float("nan")
    c_id, c_ref = np.median(s_id, 0), np.median(s_ref, 0)
    if np.linalg.norm(c_id - c_ref) < 2 * SKIN_DE:
        return float("nan")
    px = lab_out[changed]
    near_ref = np.linalg.norm(px - c_ref, axis=-1) < SKIN_DE
    far_id = np.linalg.norm(px - c_id, axis=-1) > 2 * SKIN_DE
    if attribute is not None:                # pixels of the attribute itself are not skin
        near_ref &= ~np.asarray(attribute, bool)[changed]
    return float((near_ref & far_id).mean())


def is_no_op(task: str, lab_in: np.ndarray, lab_out: np.ndarray, lab_out_ids: np.ndarray,
             changed: np.ndarray) -> int:
    if changed.sum() < MIN_CHANGED_PX:
        return 1
    if task == "eyeglasses":
        return int((lab_out_ids == EYEGLASSES).sum() < MIN_GLASSES_PX)
    if task == "hair":
        hair = lab_out_ids == HAIR
        if hair.sum() < MIN_CHANGED_PX:
            return 1
        moved = np.linalg.norm(lab_out[hair] - lab_in[hair], axis=-1) >= CHANGED_DE
        return int(moved.mean() < HAIR_MOVED_SHARE)
    return 0


def agreement(placed: np.ndarray | None, lab_out_ids: np.ndarray, classes) -> float:
    if placed is None:
        return float("nan")
    a = np.isin(np.asarray(placed), list(classes))
    b = np.isin(lab_out_ids, list(classes))
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else float("nan")


def parts_kept(lab_in_ids: np.ndarray, lab_out_ids: np.ndarray) -> float:
    kept, seen = 0, 0
    for group in PARTS:
        n_in = np.isin(lab_in_ids, group).sum()
        if n_in < 30:
            continue
        seen += 1
        kept += int(np.isin(lab_out_ids, group).sum() >= 0.5 * n_in)
    return kept / seen if seen else float("nan")


def realism_metrics(task: str, inp: np.ndarray, out: np.ndarray, lab_in_ids: np.ndarray, lab_out_ids: np.ndarray,
                    classes, ref: np.ndarray | None = None, lab_ref_ids: np.ndarray | None = None,
                    placed: np.ndarray | None = None) -> dict:
    """The per-pair realism measures of the module docstring, plus ``looks_broken`` (1 when
    any of them is past its fail line: the result is a no-op, shows flat fill, a hard seam,
    foreign skin or a bald scalp)."""
    l_in, l_out = lab(inp), lab(out)
    changed = changed_mask(l_in, l_out)
    tex_in, tex_out = local_texture(l_in[..., 0]), local_texture(l_out[..., 0])
    l_ref = lab(ref) if ref is not None else None
    row = {
        "changed_frac": float(changed.mean()),
        "flat_fill": flat_fill(tex_in, tex_out, lab_in_ids, lab_out_ids, changed),
        "bald_px": bald_share(lab_in_ids, lab_out_ids) if task == "hair" else 0.0,
        "seam_contrast": seam_contrast(l_in[..., 0], l_out[..., 0], changed, lab_out_ids,
                                       structured=(EYEGLASSES,) if task == "eyeglasses" else ()),
        "seam_contrast_all": seam_contrast(l_in[..., 0], l_out[..., 0], changed),
        # (for hair, pixels the parser sees as hair are the attribute: strawberry-blonde hair may
        # have a fair reference's complexion and still be hair)
        "foreign_skin": foreign_skin(l_out, l_in, lab_in_ids, changed, l_ref, lab_ref_ids,
                                     attribute=lab_out_ids == HAIR if task == "hair" else None),
        "no_op": is_no_op(task, l_in, l_out, lab_out_ids, changed),
        "agree_iou": agreement(placed, lab_out_ids, classes),
        "parts_kept": parts_kept(lab_in_ids, lab_out_ids),
    }
    fs = row["foreign_skin"]
    row["looks_broken"] = int(bool(row["no_op"] or row["flat_fill"] > FLAT_FAIL or row["bald_px"] > 0.1
                                   or (row["seam_contrast"] == row["seam_contrast"] and row["seam_contrast"] > SEAM_FAIL)
                                   or (fs == fs and fs > FOREIGN_FAIL)))
    return row


REALISM_FIELDS = ("changed_frac", "flat_fill", "bald_px", "seam_contrast", "seam_contrast_all", "foreign_skin", "no_op", "agree_iou",
                  "parts_kept", "looks_broken")
