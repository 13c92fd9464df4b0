"""The 2D half of the edit (paper eqs. 13-18), as named stages with one typed result.

On the identity's 512 px crop, after T^blend has been rendered at the identity's camera
(I^ref_hat, S^blend; where the render shows a reference's attribute its colour has been read
back from that reference's photo at full sharpness, ``EditPipeline._photo_texels``):

:func:`regions`       which pixels show the attribute (M_k), background (M_bg) and the gap the
                      old region leaves (eqs. 15-16), the gap split by where it lies: on the
                      face (becomes skin; an old fringe stays hair), on the scalp and inside
                      the new hair's silhouette (becomes new hair), beside the head (becomes
                      background)
:func:`drop_hair_fragments` islands of new hair on the identity's neck or background go
:func:`one_nose`      a taken nose in one piece (no bridge cut off by a reference's glasses)
:func:`hair_matte`    soft alpha along the pasted hair's edges (a guided filter on the render)
:func:`hair_outline`  its outline against the background rounded: no staircase, spikes or specks
                      of the render's silhouette, no rim of the reference's own backdrop
:func:`glasses_layer` the reference's eyeglasses as a layer: frame and tint, without the
                      reference's own skin and eyes that its clear lenses show
:func:`colour_match`  pasted parts take the render's lost colour back from the reference photo,
                      then the identity's light: lips, eyes and brows keep their contrast to the
                      skin around them (:func:`relight_parts`), hair takes the identity's white
                      balance, parts made of skin (nose, ears, neck) its complexion
:func:`unstreak_hair` pasted hair its reference's photo saw at a grazing angle (one texel
                      smeared into a streak) keeps its colour and takes strands from the rest;
                      so does hair with no strands at all (:func:`regrain_flat_hair`)
:func:`dye_old_hair`  the identity's old hair in the new hair's colours, keeping its own strands
                      and light: what shows of it under the new hair's edge and in the scalp gap
:func:`coarse`        eq. 13 with those soft layers over the identity and its background (eq. 14)
:func:`fill`          the gap fill (eq. 17, with texture): face gaps from the identity's own
                      skin, scalp gaps the dyed old hair's shading with the new hair's strands,
                      revealed background from the identity's own background
                      (:func:`triface_studio.core.fill.texture_fill`); then a new nose or ear
                      (skin in skin) is joined to the skin around it in the gradient domain
                      (:func:`triface_studio.core.fill.seamless_paste`): no outline

:func:`build` runs them in order and returns a :class:`Composite`.  All images are float32 RGB
in [0, 1], (512, 512, 3); masks float32 (512, 512) in [0, 1]; labels uint8 CelebAMask-HQ ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
from scipy.ndimage import binary_fill_holes, distance_transform_edt, label, maximum_filter1d, minimum_filter1d

from triface_studio.core import colour, compositing, masks
from triface_studio.core.fill import inner_colour, local_texture, seamless_paste, texture_fill
from triface_studio.core.semantics import (BACKGROUND, EYEGLASSES, FLIP_PERMUTATION, HAIR, HAT, L_BROW, L_EAR, L_EYE,
                                           L_LIP, MOUTH, NECK, NOSE, R_BROW, R_EAR, R_EYE, SKIN, U_LIP)

#: classes whose colour is the wearer's complexion
SKIN_TONED = frozenset({NOSE, L_EAR, R_EAR, NECK})
#: face parts set in skin, not made of it: pasted, each keeps how it stands against the skin
#: around it (a nose or an ear is skin: it takes the identity's complexion, :func:`skin_tone`;
#: teeth keep their own colour)
ON_SKIN = frozenset({L_EYE, R_EYE, L_BROW, R_BROW, U_LIP, L_LIP})
#: pasted classes whose colours are not matched to the reference photo's: the glasses (their layer
#: is the render's own frame colour, and the reference's glasses pixels are mostly the face behind
#: its lenses), the teeth, and the face parts, which are the reference's own pixels moved onto the
#: identity's (or the identity's own lips recoloured): matched to the photo's spread again, the
#: shadow between lip and teeth became a black line
UNMATCHED = frozenset({EYEGLASSES, MOUTH}) | ON_SKIN
#: the skin this wide around a face part (px) tells the light and colour it is seen in
RING_PX = 12
#: a reference's lip under this share of the skin's lightness around it, and less than
#: HIDDEN_LIP_REDNESS (CIELAB a*) redder than that skin, is hidden by facial hair or a shadow
#: (:func:`hidden_lips`; of the 875 upper lips in the training photos' own masks, 13 are flagged:
#: moustaches, stubble and thin lips in deep shadow)
HIDDEN_LIP_LIGHTNESS = 0.6
HIDDEN_LIP_REDNESS = 3.0
#: a reference's brow this near (px) its eyeglasses' frame lies under it (:func:`behind_glasses`)
RIM_PX = 3
#: classes that show where a person's face and neck are (for :func:`bare_head`)
FACE_PARTS = (SKIN, NOSE, EYEGLASSES, L_EYE, R_EYE, L_BROW, R_BROW, L_EAR, R_EAR, MOUTH, U_LIP, L_LIP, NECK)
#: the inner face: hair the reference has over its own eyes, nose or mouth does not cover these
INNER_FACE = (L_EYE, R_EYE, NOSE, MOUTH, U_LIP, L_LIP)
#: the identity's skin this close to a gap (px) is repainted with the gap rather than continued
#: into it: along an old hairline it is shadowed and holds stray hairs
HAIRLINE_PX = 4
#: new hair cut by its reference's crop this near the identity's frame bottom (px) goes on to it
FRAME_REACH_PX = 40
#: the same at the top, where only a cut straight across this near the frame goes on to it,
#: its ends rounded over TOP_TAPER_PX (a head's outline is round there)
TOP_REACH_PX, TOP_TAPER_PX = 24, 32.0
#: rows of new hair at its outline that are the render's soft edge
EDGE_ROWS = 3
#: an outline whose height varies by at most 2 px over twice this many columns runs straight across
#: (the top of a head, ~150 px round, drops ~3 px over 30 px on either side of its crown)
STRAIGHT_PX = 30
#: new hair laid over the identity's own kept hair fades in over about this many px (Gaussian sigma):
#: where a subtract mask cuts the reference's hair the cut runs through it (a dark parting cut
#: straight showed as a block at 4 px)
KEPT_FEATHER_PX = 10.0
#: the removed hair's faint fringe reaches this far (px) into what the parser calls background
FRINGE_PX = 4
#: the reference's lids and lashes reach this far (px) round its eyes: behind clear lenses they are its face
LID_PX = 4
#: a pasted nose fades in over this share of its height from its top (:func:`nose_bridge_fade`)
NOSE_FADE_SHARE = 0.3
#: lenses through which the parser sees more than this share of eyes (of the glasses' outline, holes
#: filled) are not dark, however dark the frame: of 40 training photos with glasses, on their crops,
#: sunglasses 0.0 but for one whose eyes show through its lenses, clear glasses 0.022-0.083 (a
#: reference turned away shows less of its eyes at the identity's camera)
TINT_EYES = 0.005
#: px in from the outline of a dark pair where a pixel is part frame, part the reference's skin
#: (:func:`glasses_layer`), the frame's colour read from as far again inside
TINT_RIM_PX = 6.0
#: a clear pair's frame is darker than this share of the reference's skin lightness (:func:`dark_frame`)
FRAME_DARK = 0.45
#: ... and makes at least this share of its opaque pixels (a black frame's pair: 0.7; thin metal with
#: a dark line: 0.4, on the held-out sheet's pairs 5 and 8)
DARK_FRAME_SHARE = 0.6
#: pasted hair's outline against the background is rounded over about this sigma (px), and visible
#: from this alpha on (:func:`hair_outline`)
OUTLINE_SIGMA = 6.0
OUTLINE_LEVEL = 0.05
#: pasted hair's colour this near (px) its outline against the background comes from deeper in
OUTLINE_DEPTH = 5.0
#: the identity's old hair this near (px) its background is dyed by how much hair each pixel holds
#: (:func:`_hair_share_against`)
DYE_EDGE_PX = 8
#: pasted hair with less texture than this share of the pasted hair's median is a flat patch
#: (:func:`regrain_flat_hair`)
FLAT_HAIR_RATIO = 0.3
#: copies (offsets) the scalp's gap may take the new hair's strands from (:func:`fill`): a short
#: haircut's hair is a thin band beside a tall gap, and twelve offsets of that band covered 56 %
#: of training pair 11's gap, the rest a smooth dyed hood between bands of strands
SCALP_FILL_OFFSETS = 48
#: an island of new hair at the frame's side, this small against the hairdo, is its reference's crop
#: edge (:func:`drop_hair_fragments`)
EDGE_FRAGMENT_SHARE = 0.08
#: an eyeglasses layer with fewer opaque pixels than this would not be seen on the result
MIN_VISIBLE_GLASSES_PX = 150


def _np(t) -> np.ndarray:
    return t.numpy().astype(np.float32) if torch.is_tensor(t) else np.asarray(t, np.float32)


def _t(a) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, np.float32))


def outline_points(mask: np.ndarray) -> np.ndarray:
    """The points of a mask's outer outlines: a convex hull of them is the hull of the whole mask,
    from a few hundred points instead of every pixel. Shape: (H, W) -> (N, 2) int32 (x, y)"""
    contours, _ = cv2.findContours(np.asarray(mask, np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return np.concatenate([c.reshape(-1, 2) for c in contours]).astype(np.int32)


def bare_head(labels: np.ndarray) -> np.ndarray | None:
    """Where the identity's bare head can be, from its labels: the convex hull of its face,
    ears and neck (and :func:`face_hull`'s mirror image of the face), and above the brows the
    whole width of that hull (the cranium).  A region
    the edit removes outside it (long hair beside the neck, a fringe beyond the temples) is
    background, not skin.  -> (H, W) bool, or None when the labels show no face."""
    lab = np.asarray(labels)
    face = np.isin(lab, FACE_PARTS)
    if face.sum() < 64:
        return None
    hull = np.zeros(lab.shape, np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(outline_points(face)), 1)
    out = hull.astype(bool) | face_hull(lab)
    rows = np.nonzero(np.isin(lab, (L_BROW, R_BROW, L_EYE, R_EYE)).any(1))[0]
    if rows.size:
        cols = np.nonzero(out.any(0))[0]
        out[:rows.min(), cols.min():cols.max() + 1] = True
    return out


def scalp(labels: np.ndarray) -> np.ndarray | None:
    """Where the identity's scalp is (hair grows): inside an ellipse over the cranium (as wide
    as the face hull, reaching as far above the brows as the face reaches below them) and above
    its hairline, taken a face-third above the brows (the brows-to-nose-base distance).
    -> (H, W) bool, or None when the labels show no brows or eyes."""
    lab = np.asarray(labels)
    brows = np.nonzero(np.isin(lab, (L_BROW, R_BROW, L_EYE, R_EYE)).any(1))[0]
    face_rows = np.nonzero(np.isin(lab, FACE_PARTS).any(1))[0]
    face_cols = np.nonzero(np.isin(lab, FACE_PARTS).any(0))[0]
    if brows.size == 0 or face_cols.size < 8:
        return None
    top = int(brows.min())
    nose = np.nonzero((lab == NOSE).any(1))[0]
    third = (int(nose.max()) - top) if nose.size else (int(face_rows.max()) - top) / 2.5
    hairline = top - 0.85 * max(third, 8)
    cx = 0.5 * (face_cols.min() + face_cols.max())
    ax = 0.55 * (face_cols.max() - face_cols.min())
    ay = max(1.1 * (int(face_rows.max()) - top), 8)
    yy, xx = np.mgrid[:lab.shape[0], :lab.shape[1]]
    inside = ((xx - cx) / ax) ** 2 + ((yy - top) / ay) ** 2 <= 1.0
    return inside & (yy < top) & (yy < hairline + 0.5 * (np.abs(xx - cx) / ax) ** 2 * third)


def inner_face(labels: np.ndarray, grow: int = 6) -> np.ndarray:
    """The identity's eyes, nose and mouth (their convex hull, grown by ``grow`` px): hair the
    reference has over its own face does not cover them. -> (H, W) bool"""
    m = np.isin(np.asarray(labels), INNER_FACE).astype(np.uint8)
    out = np.zeros_like(m)
    if m.sum() >= 16:
        cv2.fillConvexPoly(out, cv2.convexHull(outline_points(m)), 1)
        out = cv2.dilate(out, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    return out.astype(bool)


@dataclass
class Regions:
    """Masks of eqs. 13-16 on the crop. ``m_k``: the attribute on the result (hard, from
    S^blend); ``m_bg``: background on the result; ``gap_face`` / ``gap_scalp``: the identity's
    old region k that nothing covers now, to become skin / hair (``gap_bg``, beside the head,
    is already part of ``m_bg``); ``s_blend``: S^blend with those decisions applied."""

    m_k: np.ndarray
    m_k_id: np.ndarray
    m_bg: np.ndarray
    bg_id: np.ndarray
    gap_face: np.ndarray
    gap_scalp: np.ndarray
    gap_bg: np.ndarray
    s_blend: np.ndarray

    @property
    def gap(self) -> np.ndarray:
        return np.maximum(self.gap_face, self.gap_scalp)


def grow_old_hair(i_id: np.ndarray, labels_id: np.ndarray, reach: int = 8) -> np.ndarray:
    """The identity's labels with the strands the parser missed at its hair's edge (pixels
    within ``reach`` px of its hair, labelled skin or background, whose colour is nearer its
    hair's than its skin's or background's) labelled hair, so that removing the hair removes
    them too. -> labels (H, W) uint8"""
    return masks.grow_by_colour(i_id, labels_id, HAIR, (SKIN, BACKGROUND), reach)


def drop_old_hair(s_blend: np.ndarray, render: np.ndarray, i_id: np.ndarray, labels_id: np.ndarray,
                  refs: list["ReferenceLayer"], taken: np.ndarray) -> np.ndarray:
    """S^blend without the identity's own hair texels left at the old hair mask's edge (the XY
    plane is coarser than the crop, so a staircase of old hairline stays in the render): hair
    pixels within 10 px of the identity's hair outline, near what the blend took from a
    reference (``taken``), whose rendered colour is nearer
    the identity's hair than the references' hair become what the identity's labels say there
    (skin where it said hair, so the gap fill repaints them). -> labels (H, W)"""
    out = np.asarray(s_blend).copy()
    lab_id = np.asarray(labels_id)
    ref_px = [np.asarray(r.crop, np.float32)[np.asarray(r.labels) == HAIR] for r in refs if HAIR in r.classes]
    ref_px = [p for p in ref_px if len(p) >= 64]
    id_px = np.asarray(i_id, np.float32)[lab_id == HAIR]
    if not ref_px or len(id_px) < 64:
        return out
    med = lambda px: np.median(colour.to_lab(px.reshape(-1, 1, 3)).reshape(-1, 3), 0)  # noqa: E731
    c_ref, c_id = med(np.concatenate(ref_px)), med(id_px)
    if np.linalg.norm(c_ref - c_id) < 15.0:          # alike: nothing to tell apart, nothing to fear
        return out
    L = colour.to_lab(render)
    edge = cv2.morphologyEx((lab_id == HAIR).astype(np.uint8), cv2.MORPH_GRADIENT,
                            cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (21, 21))) > 0
    stale = (out == HAIR) & np.asarray(taken, bool) & edge & (
        np.linalg.norm(L - c_id, axis=-1) < np.linalg.norm(L - c_ref, axis=-1))
    out[stale] = np.where(lab_id[stale] == HAIR, SKIN, lab_id[stale])
    return out


def drop_hair_fragments(s_blend: np.ndarray, labels_id: np.ndarray, share: float = 0.02,
                        edge_share: float = EDGE_FRAGMENT_SHARE) -> np.ndarray:
    """S^blend without islands of hair apart from the new hairdo (smaller than ``share`` of its
    largest piece, or than ``edge_share`` of it when they touch the frame's side) that lie
    mostly where the identity has no hair: a reference's earring, a strand cut off by its crop
    or mask, floating on the identity's neck or background; a strip of the reference's hair
    along its crop's side, standing apart at the identity's frame edge.  They become what the
    identity's labels say there (its neck, background...), so its photo shows.
    -> labels (H, W)"""
    out = np.asarray(s_blend).copy()
    lab_id = np.asarray(labels_id)
    n, cc, stats, _ = cv2.connectedComponentsWithStats((out == HAIR).astype(np.uint8), connectivity=8)
    if n <= 2:
        return out
    areas = stats[1:, cv2.CC_STAT_AREA]
    left, right = stats[1:, cv2.CC_STAT_LEFT], stats[1:, cv2.CC_STAT_LEFT] + stats[1:, cv2.CC_STAT_WIDTH]
    at_side = (left == 0) | (right == out.shape[1])
    small = 1 + np.nonzero((areas < share * areas.max()) | (at_side & (areas < edge_share * areas.max())))[0]
    if small.size == 0:
        return out
    own_hair = np.bincount(cc.ravel(), weights=(lab_id == HAIR).ravel().astype(np.float64), minlength=n)
    drop = [int(i) for i in small if own_hair[i] < 0.5 * stats[i, cv2.CC_STAT_AREA]]
    if drop:
        sel = np.isin(cc, drop)
        out[sel] = lab_id[sel]
    return out


def one_nose(s_blend: np.ndarray, labels_id: np.ndarray, from_ref: np.ndarray) -> np.ndarray:
    """S^blend with a taken nose in one piece: pieces of it apart from the largest (the bridge
    a reference shows between the lenses of its eyeglasses, cut off from the rest by the
    glasses' own bridge) become the identity's skin (or what its labels say there), so its
    photo shows.  Pasted, such a piece was a pale bar between the identity's eyes.
    ``from_ref``: where the blend took a reference's region; only pieces from it go.
    -> labels (H, W)"""
    out = np.asarray(s_blend).copy()
    n, cc, stats, _ = cv2.connectedComponentsWithStats((out == NOSE).astype(np.uint8), connectivity=8)
    if n <= 2:
        return out
    lab_id = np.asarray(labels_id)
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    taken = np.bincount(cc.ravel(), weights=(np.asarray(from_ref) > 0.5).ravel().astype(np.float64), minlength=n)
    drop = [i for i in range(1, n) if i != biggest and taken[i] > 0.5 * stats[i, cv2.CC_STAT_AREA]]
    if drop:
        sel = np.isin(cc, drop)
        out[sel] = np.where(np.isin(lab_id[sel], (NOSE, SKIN)), SKIN, lab_id[sel])
    return out


def nose_bridge_fade(nose: np.ndarray, share: float = NOSE_FADE_SHARE) -> np.ndarray:
    """Opacity of a pasted nose that rises from 0 at its top to 1 over ``share`` of its height,
    column by column: the bridge runs on into the identity's own between the eyes, as a nose
    does, instead of ending in a straight edge (a reference's eyeglasses cut its nose's label
    straight across under their bridge; its top is often a flat pale band in the render).
    Shape: (H, W) bool -> (H, W) float32, 1 outside ``nose``"""
    nose = np.asarray(nose, bool)
    rows = np.nonzero(nose.any(1))[0]
    if rows.size < 8:
        return np.ones(nose.shape, np.float32)
    ramp = max(share * (rows[-1] - rows[0] + 1), 1.0)
    depth = np.cumsum(nose, axis=0)                 # nose pixels from the top of each column
    fade = np.clip(depth / ramp, 0.0, 1.0).astype(np.float32)
    # smoothed across columns within the nose only (its sides keep their own edge)
    inside = nose.astype(np.float32)
    across = lambda a: cv2.GaussianBlur(a, (13, 1), 2.0)                  # noqa: E731
    smooth = across(fade * inside) / np.maximum(across(inside), 1e-3)
    return np.where(nose, smooth, 1.0).astype(np.float32)


def regions(labels_id: np.ndarray, s_blend: np.ndarray, classes, bare: np.ndarray | None = None) -> Regions:
    """Eqs. 15-16 and where each part of the gap goes.  ``bare`` ((H, W) in [0, 1]): where the
    user painted the scalp bare -- removed hair there becomes skin, as in the paper."""
    lab_id = np.asarray(labels_id)
    s_blend = np.asarray(s_blend).copy()
    m_k = np.isin(s_blend, list(classes)).astype(np.float32)
    m_k_id = np.isin(lab_id, list(classes)).astype(np.float32)
    bg_blend = (s_blend == BACKGROUND).astype(np.float32)
    bg_id = (lab_id == BACKGROUND).astype(np.float32)
    # The edit may change pixels only near region k (old or new): elsewhere the identity's
    # parser labels are more faithful than the render's, so M_bg comes from them there.
    region = np.maximum(m_k, m_k_id) > 0.5
    m_bg = np.where(region, bg_blend, bg_id)
    gap = _np(compositing.gap_mask(_t(m_k), _t(m_bg), _t(m_k_id))) > 0.5
    head = bare_head(lab_id)
    gap_bg = gap & ~head if head is not None else np.zeros_like(gap)
    gap_scalp = np.zeros_like(gap)
    if HAIR in classes:
        # Old hair that the new hair does not cover: inside the new hair's silhouette (closed
        # around the face, or enclosed by hair, face and crown), on the scalp or over the face
        # (an old fringe) it becomes new hair (the old hair dyed, :func:`dye_old_hair`: skin
        # there would have to invent a forehead, brows, an eye); anywhere else background.
        face = face_hull(lab_id)
        crown = scalp(lab_id)
        if crown is None:
            crown = np.zeros_like(face)
        new_hair = (s_blend == HAIR) & (m_k > 0.5)
        silhouette = cv2.morphologyEx((new_hair | face).astype(np.uint8), cv2.MORPH_CLOSE,
                                      cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (41, 41))) > 0
        skin_near = cv2.dilate(np.isin(lab_id, (SKIN, NOSE, L_BROW, R_BROW, L_EYE, R_EYE)).astype(np.uint8),
                               cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (25, 25))) > 0
        on_face = face & skin_near & ~crown
        # (and between the face and the new hair beside it, row by row: a band there is
        # inside the head, whatever the closing above reached; the hair spread 30 px up and
        # down first, so a few rows without hair at the side leave no notch)
        tall = cv2.dilate(new_hair.astype(np.uint8), np.ones((61, 1), np.uint8)) > 0
        # (and between the crown and the face below it, column by column: where the identity's
        # hairline lies lower than the crown's estimate, that band is the head's, not background)
        between = np.maximum.accumulate(crown, axis=0) & np.maximum.accumulate(face[::-1], axis=0)[::-1]
        grows = ~on_face & (silhouette | crown | between | masks.row_span(tall | face)
                            | binary_fill_holes(new_hair | face | crown))
        gap_scalp = gap & (grows | on_face)
        gap_bg = gap & ~on_face & ~gap_scalp
        # old hair the render shows as background where hair grows: a hole in the new hair
        holes = (m_k_id > 0.5) & (m_bg > 0.5) & grows & ~new_hair
        gap_scalp |= holes
        m_bg = np.where(holes, 0.0, m_bg).astype(np.float32)
    else:
        on_face = face_hull(lab_id)
    # the face is never background: what the old region hid there (a fringe over an eye, with
    # nothing lifted behind it) becomes skin
    hidden = (m_k_id > 0.5) & (m_bg > 0.5) & on_face & (bg_id < 0.5)
    gap = gap | hidden
    if HAIR in classes:            # (an old fringe stays, dyed)
        gap_scalp |= hidden
    m_bg = np.where(hidden, 0.0, m_bg).astype(np.float32)
    if bare is not None and head is not None:
        to_skin = (gap_scalp | gap_bg) & (np.asarray(bare) > 0.5) & head
        gap_scalp, gap_bg = gap_scalp & ~to_skin, gap_bg & ~to_skin
    gap_face = gap & ~gap_bg & ~gap_scalp & ~(m_bg > 0.5)
    m_bg = np.maximum(m_bg, gap_bg.astype(np.float32))
    s_blend[gap_bg] = BACKGROUND
    s_blend[gap_scalp] = HAIR
    s_blend[gap_face] = SKIN
    return Regions(m_k=m_k, m_k_id=m_k_id, m_bg=m_bg, bg_id=bg_id, gap_face=gap_face.astype(np.float32),
                   gap_scalp=gap_scalp.astype(np.float32), gap_bg=gap_bg.astype(np.float32), s_blend=s_blend)


def face_hull(labels: np.ndarray, mirror: bool = True) -> np.ndarray:
    """The convex hull of the identity's face without ears and neck, and (``mirror``) of its
    mirror image about the nose: an eye or brow hidden under a fringe is still face.
    -> (H, W) bool"""
    lab = np.asarray(labels)
    m = np.isin(lab, (SKIN, NOSE, EYEGLASSES, L_EYE, R_EYE, L_BROW, R_BROW, MOUTH, U_LIP, L_LIP)).astype(np.uint8)
    out = np.zeros_like(m)
    if m.sum() < 16:
        return out.astype(bool)
    pts = outline_points(m)
    nose = np.nonzero(lab == NOSE)[1]
    axis = float(np.median(nose)) if nose.size else 0.5 * (pts[:, 0].min() + pts[:, 0].max())
    mirrored = np.stack([np.clip(2 * axis - pts[:, 0], 0, lab.shape[1] - 1), pts[:, 1]], -1)
    cv2.fillConvexPoly(out, cv2.convexHull((np.concatenate([pts, mirrored]) if mirror else pts).astype(np.int32)), 1)
    return out.astype(bool)


def hair_matte(render: np.ndarray, hard: np.ndarray, radius: int = 3, eps: float = 4e-3) -> np.ndarray:
    """Soft alpha of pasted hair: the hard mask filtered with the render itself as the guide
    (He et al.'s guided filter, ``cv2.ximgproc``), so the edge follows strands and the render's
    own soft boundary instead of the parser's staircase; interior stays 1, far outside 0.
    Shape: render (H, W, 3), hard (H, W) -> (H, W)"""
    h = np.asarray(hard, np.float32)
    if h.max() <= 0:
        return h
    a = cv2.ximgproc.guidedFilter(np.ascontiguousarray(render, np.float32), h, radius, eps)
    band = cv2.dilate(h, np.ones((2 * radius + 1,) * 2, np.uint8)) - cv2.erode(h, np.ones((2 * radius + 1,) * 2,
                                                                                          np.uint8))
    out = np.where(band > 0, np.clip(a, 0, 1), h)
    return cv2.GaussianBlur(out, (0, 0), 0.7).astype(np.float32)


def hair_outline(alpha: np.ndarray, s_out: np.ndarray, reg: "Regions") -> tuple[np.ndarray, np.ndarray]:
    """Pasted hair's outline where it meets the background: the render's silhouette is a
    staircase there, with spikes and specks of strands and a rim of the reference's own
    backdrop.  The outline is rounded (:func:`triface_studio.core.masks.round_outline`); the
    rim's colour is taken from deeper in later (:func:`triface_studio.core.fill.inner_colour`).
    -> (alpha, the background beyond the outline (H, W) bool)"""
    hair = np.asarray(s_out) == HAIR
    near_hair = cv2.dilate(hair.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    backdrop = (np.asarray(s_out) == BACKGROUND) | (reg.m_bg > 0.5)
    outside = backdrop & (alpha <= OUTLINE_LEVEL) & near_hair
    if not outside.any():
        return alpha, outside
    visible = np.where(alpha > OUTLINE_LEVEL, 1.0, 0.0).astype(np.float32)
    rounded = masks.round_outline(visible, outside, OUTLINE_SIGMA)
    out = np.where(near_hair & ~np.isin(np.asarray(s_out), FACE_PARTS), np.minimum(alpha, rounded), alpha)
    return out.astype(np.float32), outside


@dataclass
class GlassesLayer:
    """The reference's eyeglasses on the identity's crop: ``alpha`` (frame and tinted lens
    opaque, clear lens see-through) and ``colour`` (the reference's pixels)."""

    alpha: np.ndarray
    colour: np.ndarray
    tinted: bool


def glasses_layer(ref_render: np.ndarray, ref_labels: np.ndarray, region: np.ndarray,
                  user_region: np.ndarray | None = None) -> GlassesLayer:
    """Separate the reference's frames and lens tint from what its lenses show of its own
    face, on the reference rendered at the identity's camera (``ref_render``, with its labels).

    The reference's bare face under the glasses is estimated from its own skin around them
    (a smooth colour map continued inside, :func:`triface_studio.core.fill.local_fill`);
    a pixel is frame or tint where it differs from that estimate (CIELAB distance), and
    see-through where it matches it or shows the reference's eyes (clear lenses).  Lenses
    that are dark all over (sunglasses: the lens area is much darker than the skin and the
    parser sees no eyes behind it) stay opaque.  ``region``: where the glasses go on the result.
    Shape: (H, W, 3), (H, W), (H, W) -> layer of (H, W) and (H, W, 3)"""
    from triface_studio.core.fill import local_fill

    img = np.asarray(ref_render, np.float32)
    lab_ids = np.asarray(ref_labels)
    glasses = np.asarray(region, np.float32)
    skin = (lab_ids == SKIN) & (glasses < 0.5)
    if skin.sum() < 64:
        skin = ~np.isin(lab_ids, (BACKGROUND, HAIR, EYEGLASSES, HAT))
    skin = cv2.erode(skin.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(np.float32)
    bare = local_fill(img, skin, sigma=10.0)
    L = colour.to_lab(img)
    L_bare = colour.to_lab(bare)
    d = np.linalg.norm(L - L_bare, axis=-1)
    alpha = np.clip((d - 9.0) / 14.0, 0, 1)
    darker = np.clip((L_bare[..., 0] - L[..., 0] - 4.0) / 12.0, 0, 1)
    alpha = np.maximum(alpha * np.clip(darker + 0.35, 0, 1), 0)      # lighter than skin: glare, eye whites
    # anything in the reference's complexion is its face, not the frame (a shadow under the rim)
    if (skin > 0.5).sum() >= 64:
        tone = np.median(L[skin > 0.5], 0)
        alpha *= np.clip((np.linalg.norm(L - tone, axis=-1) - 10.0) / 10.0, 0, 1)
    eyes = np.isin(lab_ids, (L_EYE, R_EYE))
    inside = glasses > 0.5
    lens_l = L[..., 0][inside & (alpha > 0.5)]
    skin_l = float(np.median(L[..., 0][skin > 0.5])) if (skin > 0.5).any() else 60.0
    # (thick black frames darken the median as much as a tint)
    tinted = bool(inside.sum() > 0 and eyes_through(lab_ids, inside) < TINT_EYES and lens_l.size > 0.6 * inside.sum()
                  and np.median(lens_l) < 0.6 * skin_l)
    if tinted:
        # the whole pair is opaque; specks the parser puts apart from it (a nostril, a shadow) are not
        alpha = attached_to_frame(glasses, share=0.1, reach=1.0)
        depth = masks.distance_to(~inside)
        rim = inside & (depth <= TINT_RIM_PX)
        deeper = inside & (depth > TINT_RIM_PX) & (depth <= 2 * TINT_RIM_PX)
        if rim.any() and deeper.sum() >= 16:
            # nor is the reference's own skin that the parser's outline of the pair takes in: along
            # it each pixel is frame or skin by how far its colour lies from the skin estimate
            # towards the frame's (a rim of its complexion round the frame, orange on a pale face)
            frame_c = np.median(L[deeper], 0)
            share = d / np.maximum(np.linalg.norm(frame_c - L_bare, axis=-1), 1.0)
            # (what is lighter than the skin is no shadowed skin: a white frame, glare)
            share = np.where(L[..., 0] > L_bare[..., 0] + 3.0, 1.0, share)
            alpha = np.where(rim, alpha * np.clip(share, 0, 1), alpha)
    else:
        # the reference's eyes and the lids and lashes round them are its face behind clear glass
        lids = cv2.dilate(eyes.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * LID_PX + 1,) * 2))
        alpha[lids > 0] = 0.0
        # and where the pair is mostly a dark frame (black or tortoiseshell, not metal with a dark
        # edge line), so is all it encloses (the shaded skin, the glare on the glass: in its light)
        frame, lenses = dark_frame(L[..., 0], inside, skin_l)
        opaque = (alpha > 0.5) & inside
        if lenses.any() and (frame & opaque).sum() >= DARK_FRAME_SHARE * opaque.sum():
            alpha[lenses] = 0.0
        alpha = attached_to_frame(alpha * glasses)
    alpha = alpha * glasses
    if user_region is not None:
        alpha = np.maximum(alpha, np.asarray(user_region, np.float32) * glasses)
    alpha = np.clip(cv2.GaussianBlur(alpha.astype(np.float32), (0, 0), 0.6) * glasses, 0, 1)
    # a frame's soft edge and a faint tint are part frame, part the reference's own skin behind
    # them: only the frame's part comes along
    return GlassesLayer(alpha=alpha.astype(np.float32), colour=colour.unmix(img, alpha, bare), tinted=tinted)


def eyes_through(labels: np.ndarray, glasses: np.ndarray) -> float:
    """The share of eye labels within a pair of glasses' outline (``glasses`` (H, W) bool grown
    by 3 px, its holes filled): a lens the parser sees an eye through is labelled eye, not
    glasses, so a pair with any (:data:`TINT_EYES`) has clear lenses, however dark its frame."""
    outline = binary_fill_holes(cv2.dilate(np.asarray(glasses, np.uint8), np.ones((7, 7), np.uint8)) > 0)
    return float(np.isin(np.asarray(labels), (L_EYE, R_EYE))[outline].mean())


def dark_frame(lightness: np.ndarray, glasses: np.ndarray, skin_l: float) -> tuple[np.ndarray, np.ndarray]:
    """A dark frame round a reference's clear lenses: pixels of its ``glasses`` region (bool)
    far darker than its skin (CIELAB lightness under :data:`FRAME_DARK` of ``skin_l``), closed
    over small gaps (glare on the rim); and the holes they surround, the lenses.  Both empty
    when nothing dark encloses a lens (light, metal or rimless frames).
    -> (frame, lenses), (H, W) bool each"""
    none = np.zeros(np.asarray(glasses).shape, bool)
    frame = (np.asarray(glasses, bool) & (np.asarray(lightness) < FRAME_DARK * skin_l)).astype(np.uint8)
    if frame.sum() < 32:
        return none, none
    closed = cv2.morphologyEx(frame, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8)) > 0
    lenses = binary_fill_holes(closed) & ~closed
    return (closed, lenses) if lenses.any() else (none, none)


def glasses_labels(s_out: np.ndarray, labels_id: np.ndarray, glass: np.ndarray) -> np.ndarray:
    """The result's labels where eyeglasses were pasted follow their layer ``glass`` (alpha):
    glasses where it is opaque, the identity's labels where the blend put glasses the layer
    left out, and -- as a face parser labels a pair -- glasses over the clear lenses the frame
    encloses too, the eyes and brows seen through them excepted.  (Labelled as the identity's
    skin, a clear lens read as the edit not having put glasses there.)
    Shape: (H, W) uint8, (H, W), (H, W) -> (H, W) uint8"""
    s_out = np.where((np.asarray(s_out) == EYEGLASSES) & (glass < 0.5), np.asarray(labels_id),
                     s_out).astype(np.asarray(s_out).dtype)
    s_out[glass > 0.5] = EYEGLASSES
    lenses = binary_fill_holes(glass > 0.5) & ~np.isin(s_out, (L_EYE, R_EYE, L_BROW, R_BROW))
    s_out[lenses] = EYEGLASSES
    return s_out


def symmetric_glasses(render: np.ndarray, labels: np.ndarray, mid: float, near: str,
                      user: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """A turned reference's eyeglasses moved onto a frontal identity's crop (``render``, its
    ``labels``) are lopsided: the far lens narrow or torn, the near arm across the cheek.  A
    pair of glasses is symmetric, so its ``near`` half ("left" or "right" of the identity's
    midline, column ``mid``: the half the reference turns towards the camera) is mirrored onto
    the far one, lenses, frame and the face behind them (eyes and brows swap sides).
    -> (render, labels, user)"""
    lab = np.asarray(labels)
    W = lab.shape[1]
    x = np.arange(W)
    far = x > mid if near == "left" else x < mid
    src = np.where(far, np.clip(np.round(2 * mid - x), 0, W - 1), x).astype(np.intp)
    lab2 = lab[:, src]
    lab2[:, far] = FLIP_PERMUTATION[lab2[:, far]]
    out = _translated_reflections(np.asarray(render), lab, np.ascontiguousarray(np.asarray(render)[:, src]),
                                  lab2, far, mid)
    return (out, lab2.astype(lab.dtype),
            None if user is None else np.ascontiguousarray(np.asarray(user)[:, src]))


#: px in from a dark lens's outline from which a mirrored far lens takes its reflections by
#: translation (:func:`_translated_reflections`), and the px over which it fades in
LENS_RIM_PX, LENS_FADE_PX = 5.0, 4.0


def _translated_reflections(render: np.ndarray, labels: np.ndarray, mirrored: np.ndarray,
                            mirrored_labels: np.ndarray, far: np.ndarray, mid: float) -> np.ndarray:
    """``mirrored`` (the render, float in [0, 1], with its near half mirrored onto the far one)
    with the inside of the far lens (more than LENS_RIM_PX in from its outline) taken from the
    near lens shifted sideways instead of mirrored, when the near lens is dark (its inside under
    0.6 of the skin's lightness, no eye seen through it).  Why: what a dark lens shows is a
    reflection of the scene, the same in both lenses of a pair; mirrored it made a symmetric
    pattern across the pair (an ink blot), which no real pair of sunglasses shows.  The rim stays
    mirrored: a lens's outline is the mirror image of the other's.
    Shape: (H, W, 3), (H, W), (H, W, 3), (H, W), (W,) bool -> (H, W, 3)"""
    glasses = np.asarray(labels) == EYEGLASSES
    near_lens = glasses & ~far[None, :]
    if near_lens.sum() < 64:
        return mirrored
    inside_near = masks.distance_to(~glasses)
    light = colour.to_lab(np.clip(np.asarray(render, np.float32), 0, 1))[..., 0]
    skin = np.asarray(labels) == SKIN
    core = near_lens & (inside_near > LENS_RIM_PX)
    if core.sum() < 16 or skin.sum() < 64 or np.median(light[core]) >= 0.6 * np.median(light[skin]):
        return mirrored
    if eyes_through(labels, near_lens) >= TINT_EYES:      # (clear glass: it shows the face behind it)
        return mirrored
    shift = int(round(2 * (mid - float(np.nonzero(near_lens)[1].mean()))))   # near lens centre -> far one's
    glasses_far = np.asarray(mirrored_labels) == EYEGLASSES
    far_lens = glasses_far & far[None, :]
    inside_far = masks.distance_to(~glasses_far)
    ys, xs = np.nonzero(far_lens & (inside_far > LENS_RIM_PX))
    sx = xs - shift
    ok = (sx >= 0) & (sx < glasses.shape[1])
    ys, xs, sx = ys[ok], xs[ok], sx[ok]
    ok = near_lens[ys, sx] & (inside_near[ys, sx] > LENS_RIM_PX)
    ys, xs, sx = ys[ok], xs[ok], sx[ok]
    out = np.array(mirrored, np.float32, copy=True)
    w = np.clip((np.minimum(inside_far[ys, xs], inside_near[ys, sx]) - LENS_RIM_PX) / LENS_FADE_PX, 0, 1)[:, None]
    out[ys, xs] = w * np.asarray(render, np.float32)[ys, sx] + (1 - w) * out[ys, xs]
    return out.astype(np.asarray(mirrored).dtype)


def attached_to_frame(alpha: np.ndarray, strong: float = 0.6, share: float = 0.2, reach: float = 3.0) -> np.ndarray:
    """Keep of a glasses alpha only what belongs to the frame: the large connected pieces of
    confident pixels (rims, bridge: at least ``share`` of the largest piece) and what lies
    within ``reach`` px of them (the rims' soft edges).  Small islands inside a clear lens are
    the reference's shaded skin or eyes, not glass. Shape: (H, W) -> (H, W)"""
    hard = (alpha > strong).astype(np.uint8)
    n, cc, stats, _ = cv2.connectedComponentsWithStats(hard, connectivity=8)
    if n <= 1:
        return alpha
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.isin(cc, 1 + np.nonzero(areas >= share * areas.max())[0])
    dist = cv2.distanceTransform((~keep).astype(np.uint8), cv2.DIST_L2, 3)
    return (alpha * np.clip(1.0 - (dist - 1.0) / reach, 0, 1)).astype(np.float32)


@dataclass
class Composite:
    """The composite stage's result (what the refiner and eq. 20 need).

    ``coarse``: I^coarse with the gaps filled (eqs. 13, 17); ``alpha``: the pasted layers'
    opacity; ``m_bg``: eq. 20's background mask (soft); ``i_bg``: eq. 14's background image;
    ``m_sde``: eq. 18; ``region``: every pixel the edit may change; ``changed_bg``: the
    identity's foreground that became background; ``seams``: a soft band along the layers'
    edges; ``gap``: M_gap; ``s_blend``: the result's labels."""

    coarse: np.ndarray
    alpha: np.ndarray
    m_bg: np.ndarray
    i_bg: np.ndarray
    m_sde: np.ndarray
    region: np.ndarray
    changed_bg: np.ndarray
    seams: np.ndarray
    gap: np.ndarray
    s_blend: np.ndarray
    notes: list[str] = field(default_factory=list)


@dataclass
class ReferenceLayer:
    """What the composite needs of one reference: its crop and labels (real colours of the
    attribute), the classes taken from it, and for eyeglasses the reference rendered at the
    identity's camera with its labels, and the user's painted region there (or None)."""

    crop: np.ndarray
    labels: np.ndarray
    classes: frozenset
    name: str = "the reference"
    render: np.ndarray | None = None
    render_labels: np.ndarray | None = None
    user_region: np.ndarray | None = None
    warped: bool = False            # render is the reference's crop moved onto the identity's eyes


def colour_match(image: np.ndarray, alpha: np.ndarray, i_id: np.ndarray, labels_id: np.ndarray,
                 refs: list[ReferenceLayer], s_blend: np.ndarray, classes,
                 taken: np.ndarray | None = None) -> np.ndarray:
    """Pasted parts: the render's colour distribution moved back to the reference photo's own
    pixels of the attribute (the render loses contrast); then face parts set in skin (lips,
    eyes, brows: :data:`ON_SKIN`) moved from the light of the skin around them in the
    reference to the identity's skin around them (:func:`relight_parts`); the rest (hair,
    teeth; lips when no plain skin shows around them) with the reference's white balance
    replaced by the identity's (grey-world illuminants of the two crops' skin, von Kries);
    parts made of skin (nose, ears, neck) put in the identity's complexion (:func:`skin_tone`).
    ``alpha``: the pasted layer; ``taken``: where it came from a reference (the first steps
    apply there only)."""
    out = np.asarray(image, np.float32)
    layer = np.asarray(alpha, np.float32)
    w = layer * (1.0 if taken is None else np.asarray(taken, np.float32))     # from a reference
    if layer.max() <= 0:
        return out
    pix = []
    for r in refs:
        sel = np.isin(r.labels, list(r.classes)) & ~np.isin(r.labels, list(SKIN_TONED | UNMATCHED))
        if sel.sum() >= 16:
            pix.append(np.asarray(r.crop, np.float32)[sel])
    if pix:
        allpix = np.concatenate(pix)[None]
        target = colour.stats(allpix, np.ones(allpix.shape[:2], np.float32))
        out = colour.transfer(out, w * (~np.isin(s_blend, list(SKIN_TONED | UNMATCHED))), target, 0.8)
    out, relit = relight_parts(out, w, i_id, labels_id, refs, s_blend, classes)
    skin_ref = [np.asarray(r.crop, np.float32)[np.asarray(r.labels) == SKIN] for r in refs]
    skin_id = np.asarray(i_id, np.float32)[np.asarray(labels_id) == SKIN]
    if skin_ref and len(skin_ref[0]) >= 64 and len(skin_id) >= 64:
        gain = colour.white_balance_gain(skin_ref[0], skin_id)
        wb = (w * ~relit)[..., None]
        out = out * (1 - wb) + colour.apply_gain(out, gain) * wb
    tone = layer * np.isin(s_blend, sorted(set(classes) & SKIN_TONED)) * ~relit
    skin = np.asarray(labels_id) == SKIN
    if tone.sum() >= 16 and skin.sum() >= 16:
        # a new nose (ear) is lit as the identity's own was, in the same place
        own = np.isin(labels_id, sorted(set(classes) & SKIN_TONED))
        out = skin_tone(out, tone, i_id, skin, lit_as=own if own.sum() >= 64 else None)
    return out.astype(np.float32)


def _around(lab: np.ndarray, part: np.ndarray, skin: np.ndarray, reach: int = RING_PX) -> np.ndarray | None:
    """The median CIELAB colour of the plain ``skin`` pixels within ``reach`` px of ``part`` in
    the CIELAB image ``lab`` (within 15 of the whole skin's median: a beard, a shadow or a stray
    hair labelled skin does not count), or None when fewer than 32 show. -> (3,)"""
    skin = np.asarray(skin, bool)
    if skin.sum() < 64:
        return None
    plain = skin & (np.linalg.norm(lab - np.median(lab[skin], 0), axis=-1) < 15.0)
    near = cv2.dilate(np.asarray(part, np.uint8),
                      cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1,) * 2)) > 0
    ring = near & plain & ~np.asarray(part, bool)
    if ring.sum() < 32:
        return None
    return np.median(lab[ring], 0)


def relight_parts(image: np.ndarray, w: np.ndarray, i_id: np.ndarray, labels_id: np.ndarray,
                  refs: list[ReferenceLayer], s_blend: np.ndarray, classes) -> tuple[np.ndarray, np.ndarray]:
    """Pasted face parts set in skin (:data:`ON_SKIN`) keep how they stand against the skin
    around them in their reference photo (lightness as a ratio, colour as an offset:
    :func:`triface_studio.core.colour.relight`), moved onto the identity's skin around them:
    lips stay as much redder and darker than the skin as they were, brows as much darker,
    and none brings the reference's light, white balance or complexion along.  ``w``: the
    pasted layer's weight.  -> (image, where it was relit (H, W) bool)"""
    out = np.asarray(image, np.float32)
    parts = sorted(set(classes) & ON_SKIN)
    none = np.zeros(out.shape[:2], bool)
    if not parts:
        return out, none
    src, lighter = [], []
    for r in refs:
        if not set(r.classes) & set(parts):
            continue
        part, lab = np.isin(r.labels, parts), colour.to_lab(np.asarray(r.crop, np.float32))
        around = _around(lab, part, np.asarray(r.labels) == SKIN)
        if around is not None:
            src.append(around)
            lighter.append(_lightness(lab, part) / max(float(around[0]), 1.0))
    is_part = np.isin(np.asarray(s_blend), parts)
    skin_here = (np.asarray(labels_id) == SKIN) & (np.asarray(s_blend) == SKIN)
    lab_id = colour.to_lab(np.asarray(i_id, np.float32))
    dst = _around(lab_id, is_part & (np.asarray(w) > 0.5), skin_here)
    if not src or dst is None:
        return out, none
    source = np.mean(src, 0)
    ratio = float(np.mean(lighter))
    own = np.isin(np.asarray(labels_id), parts)
    if ratio > 1.0 and own.sum() >= 64:
        # parts lighter than the skin around them (lips on a dark face) would be lighter still on
        # a paler one, up to white: they take the identity's own parts' lightness against its
        # skin instead (colour offsets and texture stay the reference's)
        mine = _lightness(lab_id, own) / max(float(dst[0]), 1.0)
        if mine < ratio:
            source = source.copy()
            source[0] *= ratio / max(mine, 1e-3)
    region = np.asarray(w, np.float32) * is_part
    return colour.relight(out, region, source, dst), region > 0


def hidden_lips(crop: np.ndarray, labels: np.ndarray, classes) -> frozenset:
    """The lips among ``classes`` that a reference photo does not show: a lip that is far
    darker than the skin around it (under :data:`HIDDEN_LIP_LIGHTNESS` of its lightness) and no
    redder than that skin is a moustache, a beard or a shadow lying over it, not a lip (dark
    lipstick is as dark but redder).  Pasted, it read as a dark moustache on the identity.
    Shape: (H, W, 3) float in [0, 1], (H, W) labels -> frozenset of class ids"""
    labels = np.asarray(labels)
    lab = colour.to_lab(np.asarray(crop, np.float32))
    hidden = set()
    wanted = sorted(set(classes) & {U_LIP, L_LIP})
    around = _around(lab, np.isin(labels, [U_LIP, L_LIP, MOUTH]), labels == SKIN) if wanted else None
    if around is None:
        return frozenset()
    for c in wanted:
        part = labels == c
        if part.sum() < 32:
            continue
        own = np.median(lab[part], 0)
        if own[0] < HIDDEN_LIP_LIGHTNESS * around[0] and own[1] - around[1] < HIDDEN_LIP_REDNESS:
            hidden.add(c)
    return frozenset(hidden)


def behind_glasses(labels: np.ndarray, classes) -> frozenset:
    """The eyes and brows among ``classes`` that a reference photo shows only through or under
    its eyeglasses: an eye mostly inside the glasses' outline (lenses and frame, holes filled),
    a brow mostly within :data:`RIM_PX` of the frame.  Moved onto the identity they brought the
    lens's tint and glare and pieces of the rim along (grey patches round the eyes).
    Shape: (H, W) labels -> frozenset of class ids"""
    labels = np.asarray(labels)
    wanted = set(classes) & {L_EYE, R_EYE, L_BROW, R_BROW}
    glasses = (labels == EYEGLASSES).astype(np.uint8)
    if not wanted or glasses.sum() < 32:
        return frozenset()
    rim = cv2.dilate(glasses, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * RIM_PX + 1,) * 2)) > 0
    outline = binary_fill_holes(rim)
    hidden = set()
    for c in sorted(wanted):
        part = labels == c
        if part.sum() < 16:
            continue
        inside = outline if c in (L_EYE, R_EYE) else rim
        if inside[part].mean() > 0.5:
            hidden.add(c)
    return frozenset(hidden)


def _lightness(lab: np.ndarray, mask: np.ndarray) -> float:
    """Median lightness of the CIELAB image ``lab`` under ``mask`` (0 when empty)."""
    m = np.asarray(mask, bool)
    return float(np.median(lab[..., 0][m])) if m.any() else 0.0


def skin_tone(image: np.ndarray, region: np.ndarray, i_id: np.ndarray, skin: np.ndarray,
              lit_as: np.ndarray | None = None) -> np.ndarray:
    """A part made of skin (a nose, ears) in the identity's complexion: its shading (CIELAB
    lightness, mean and spread matched to the identity's pixels ``lit_as``, e.g. its own old
    nose in the same light, or else its skin) kept, its colour (a, b) taken from the
    identity's own skin around that place (a smooth map continued from its skin), so a pale,
    painted or differently lit reference nose does not read as a patch.
    Shape: (H, W, 3), (H, W), (H, W, 3), (H, W) bool[, (H, W) bool] -> (H, W, 3)"""
    from triface_studio.core.fill import local_fill

    lab = colour.to_lab(image)
    sel = np.asarray(region) > 0.5
    if sel.sum() < 16:
        return image
    target = colour.to_lab(local_fill(i_id, skin.astype(np.float32), sigma=24.0))
    l_id = colour.to_lab(i_id)[..., 0][skin if lit_as is None else np.asarray(lit_as, bool)]
    l_src = lab[..., 0][sel]
    scale = float(np.clip(l_id.std() / (l_src.std() + 1e-3), 0.5, 1.5))
    moved = lab.copy()
    moved[..., 0] = (lab[..., 0] - l_src.mean()) * scale + l_id.mean()
    moved[..., 1:] = target[..., 1:] + 0.2 * (lab[..., 1:] - lab[..., 1:][sel].mean(0))
    w = np.clip(region, 0, 1)[..., None]
    return colour.from_lab(lab * (1 - w) + moved * w)


def restore_detail(image: np.ndarray, region: np.ndarray, amount: float = 0.9, sigma: float = 1.2) -> np.ndarray:
    """Give back some of the strand detail the render loses (the tri-plane's texels are coarser
    than the crop's pixels and the render is upsampled): an unsharp mask inside ``region``.
    Shape: (H, W, 3), (H, W) -> (H, W, 3)"""
    img = np.asarray(image, np.float32)
    sharp = np.clip(img + amount * (img - cv2.GaussianBlur(img, (0, 0), sigma)), 0, 1)
    w = np.clip(np.asarray(region, np.float32), 0, 1)[..., None]
    return (img * (1 - w) + sharp * w).astype(np.float32)


def _fade_towards(side: np.ndarray, feather: float = KEPT_FEATHER_PX) -> np.ndarray:
    """1 on ``side`` ((H, W) bool) and at its border, falling to 0 about 2 ``feather`` px away
    from it: how much of the new hair a subtract mask's border takes away near it (the fade ends
    at the border, on the new hair's side of it)."""
    return np.minimum(1.0, 2.0 * cv2.GaussianBlur(side.astype(np.float32), (0, 0), feather))


def build(i_id: np.ndarray, labels_id: np.ndarray, i_ref_hat: np.ndarray, s_blend: np.ndarray, classes,
          from_ref: np.ndarray, refs: list[ReferenceLayer], i_bg_fn, settings, background="identity",
          bare: np.ndarray | None = None, ref_border: np.ndarray | None = None, ref_end: np.ndarray | None = None,
          kept: np.ndarray | None = None, stretched: np.ndarray | None = None,
          cut: np.ndarray | None = None) -> Composite:
    """Run the stages of the module docstring.  ``i_bg_fn(holes)`` returns eq. 14's background
    image, filled at least where ``holes`` (the identity's foreground that becomes background).
    ``bare``: the user's bare-scalp mask (see :func:`regions`).  ``ref_border``: how near each
    pixel's pasted hair was to its reference crop's edge (1 at the edge): that hair fades out,
    over background, instead of ending in a straight cut.  ``ref_end``: the same for its crop's
    bottom edge: hair cut there a little short of the identity's frame bottom goes on to it
    (:func:`reach_frame`).  ``kept``: where a subtract mask keeps the identity's own region
    (1): what no reference gives there keeps the identity's labels and its photo, whatever the
    render says at the region's outline, and the border between kept and new is feathered.
    ``stretched``: pasted pixels that show a reference's texel smeared across many pixels (seen
    at a grazing angle in its photo): pasted hair there keeps its colour and light but takes its
    strands from the rest of the new hair.  ``cut``: where a subtract mask cut a reference's
    hair off (1): the new hair fades out towards it over anything, the identity's skin included,
    instead of ending in the mask's straight border."""
    notes: list[str] = []
    classes = sorted(set(classes))
    taken = cv2.dilate((np.asarray(from_ref) > 0.5).astype(np.uint8), np.ones((15, 15), np.uint8)) > 0
    if HAIR in classes:
        labels_id = grow_old_hair(i_id, labels_id)
    mine = np.zeros(np.asarray(from_ref).shape, bool)   # the identity's own, kept by a mask
    if kept is not None:
        mine = (np.asarray(kept) > 0.5) & (np.asarray(from_ref) < 0.5)
        s_blend = np.where(mine, np.asarray(labels_id), s_blend).astype(np.asarray(s_blend).dtype)
    if HAIR in classes:
        s_blend = drop_old_hair(s_blend, i_ref_hat, i_id, labels_id, refs, taken)
        # hair that no reference gave and no mask kept is the identity's old hair, still
        # standing in 3D where the XY plane's mask did not reach: it goes like the rest
        untaken = (np.asarray(s_blend) == HAIR) & (np.asarray(from_ref) < 0.3) & (np.asarray(labels_id) == HAIR)
        if kept is not None:
            untaken &= np.asarray(kept) < 0.5
        s_blend = np.where(untaken, SKIN, s_blend).astype(np.asarray(s_blend).dtype)
        s_blend = drop_hair_fragments(s_blend, labels_id)
    if NOSE in classes:
        s_blend = one_nose(s_blend, labels_id, from_ref)
    reg = regions(labels_id, s_blend, classes, bare)
    s_out = reg.s_blend

    # --- layers: what is pasted, and how opaque -----------------------------------------------
    alpha = reg.m_k.copy()
    if HAIR in classes:
        hair = (s_out == HAIR) & (reg.m_k > 0.5)
        # where the identity's own hair stays (a subtract mask kept it) its photo shows, not the
        # render of it; the border between kept and new hair is feathered, not a straight cut
        own = 1.0
        if mine.any():
            # (all of it on the new hair's side: the kept hair's own photo from the border on,
            # so the render of the reference's hair does not end at the border in a step)
            own = np.where(reg.m_k_id > 0.5, 1.0 - _fade_towards(mine), 1.0)
        if cut is not None and (np.asarray(cut) > 0.5).any():
            # where the user's mask cut the new hair off (a fringe across the forehead, say) it
            # ends in the same fade over whatever lies beyond: skin, background, kept hair
            own = own * (1.0 - _fade_towards(np.asarray(cut) > 0.5))
        alpha = np.maximum(alpha * ~hair, hair_matte(i_ref_hat, hair.astype(np.float32)) * own)
    others = (reg.m_k > 0.5) & ~np.isin(s_out, [HAIR, EYEGLASSES])
    if others.any():
        feathered = cv2.GaussianBlur(others.astype(np.float32), (0, 0), 1.0)
        alpha = np.where(np.isin(s_out, [HAIR, EYEGLASSES]), alpha, np.maximum(feathered * (reg.m_bg < 0.5), 0))
    colour_src = i_ref_hat
    if EYEGLASSES in classes:
        alpha, colour_src, glass = _glasses(alpha, colour_src, s_out, labels_id, refs, notes)
        s_out = glasses_labels(s_out, labels_id, glass)
    alpha = alpha * (1 - reg.gap_face - reg.gap_scalp)
    continued = np.zeros(alpha.shape, bool)
    if ref_end is not None and HAIR in classes:
        colour_src, alpha, s_out, taken, continued = reach_frame(colour_src, alpha, s_out, taken, ref_end, labels_id,
                                                                 mine)
        # at the top only a cut just short of the frame, straight across, with round corners
        colour_src, alpha, s_out, taken, more = reach_frame(colour_src, alpha, s_out, taken, None, labels_id, mine,
                                                            TOP_REACH_PX, "top", TOP_TAPER_PX)
        continued |= more
    if ref_border is not None and HAIR in classes:
        # (not over the face: the face as seen, not its mirror image, which on a turned head
        # reaches far past the cheek into the hair that ran into the reference's crop edge)
        fade = np.clip(np.asarray(ref_border, np.float32), 0, 1) * (s_out == HAIR) * ~face_hull(labels_id, False) \
            * ~continued
        if fade.max() > 0.05:
            alpha = alpha * (1 - fade)
            # what shows through: the identity's own hair, dyed below, where it had hair on its
            # head; background elsewhere
            own_hair = (reg.m_k_id > 0.5) & (reg.gap_bg < 0.5) & (reg.m_bg < 0.5)
            reg.m_bg = np.maximum(reg.m_bg, ((fade > 0.05) & ~own_hair).astype(np.float32))
    if HAIR in classes:
        alpha, beyond = hair_outline(alpha, s_out, reg)

    # --- colour ----------------------------------------------------------------------------------
    # pixels the blend took from a reference take its colours; what the user kept of the
    # identity's own region (a subtract mask) keeps the identity's.  ``from_ref`` is read at the
    # rendered surface, grown by a few pixels for the render's soft edge (``taken``)
    pasted = colour_match(colour_src, alpha, i_id, labels_id, refs, s_out, classes, taken.astype(np.float32))

    # --- eq. 14: background, filled where the identity's foreground becomes background ------------
    changed_bg = np.clip(reg.m_bg * (1 - reg.bg_id), 0, 1)
    if HAIR in classes:
        # the removed hair's fringe: strands the parser called background, too faint to be
        # grown into the hair by colour, stayed as a grey outline of the old hair on the new
        # background; the background this near removed hair is filled too
        removed = (np.asarray(labels_id) == HAIR) & (changed_bg > 0.5)
        near = cv2.dilate(removed.astype(np.uint8), cv2.getStructuringElement(
            cv2.MORPH_ELLIPSE, (2 * FRINGE_PX + 1,) * 2)) > 0
        changed_bg = np.maximum(changed_bg, (near & (reg.bg_id > 0.5) & (reg.m_bg > 0.5) & (alpha < 0.01)))
    if background != "identity":
        changed_bg = np.ones_like(changed_bg)
    i_bg = i_bg_fn(changed_bg > 0.5)

    if HAIR in classes:
        # the reference photo's light on its hair (a backlit half, blown out) is not the identity's
        pasted = colour.even_light(pasted, alpha * (s_out == HAIR) * taken)
        pasted = restore_detail(pasted, alpha * (s_out == HAIR))
        if stretched is not None:
            pasted = unstreak_hair(pasted, np.asarray(stretched, bool), (s_out == HAIR) & (alpha > 0.5))
        pasted = regrain_flat_hair(pasted, (s_out == HAIR) & (alpha > 0.5) & taken)
        pasted = inner_colour(pasted, (s_out == HAIR) & (alpha > OUTLINE_LEVEL), beyond, OUTLINE_DEPTH)

    # --- the identity's old hair that stays on the head takes the new hair's colours -----------------
    base, dyed = i_id, False
    if HAIR in classes:
        base, dyed = dye_old_hair(i_id, labels_id, pasted, alpha, s_out, reg, mine)

    # --- eq. 13 with soft layers: I^coarse = layer over (identity or background) -------------------
    under = base * (1 - reg.m_bg[..., None]) + i_bg * reg.m_bg[..., None]
    coarse = pasted * alpha[..., None] + under * (1 - alpha[..., None])

    # --- eq. 17, with texture: face gaps from the identity's skin, scalp gaps from the new hair --------
    coarse = fill(coarse, i_id, labels_id, reg, alpha, notes, dyed=dyed)

    # --- a new nose (ear) is skin in skin: its edge meets the identity's skin without an outline ------
    # (a nose's bridge fades into the identity's own)
    made_of_skin = (alpha > 0.5) & np.isin(s_out, sorted(set(classes) & (SKIN_TONED - {NECK}))) & taken
    if made_of_skin.sum() >= 64:
        joined = seamless_paste(coarse, made_of_skin, pasted)
        w = nose_bridge_fade(made_of_skin & (s_out == NOSE))[..., None]
        coarse = np.where(made_of_skin[..., None], joined * w + under * (1 - w), coarse)

    m_sde = _np(compositing.sde_mask(_t(reg.m_k), _t(reg.gap), settings.dilate_radius, settings.blur_sigma))
    edge = cv2.dilate((alpha > 0.5).astype(np.uint8), np.ones((5, 5), np.uint8)) - \
        cv2.erode((alpha > 0.5).astype(np.uint8), np.ones((5, 5), np.uint8))
    seams = cv2.GaussianBlur(edge.astype(np.float32), (0, 0), 1.0) * (1 - (s_out == HAIR))
    # eq. 20 puts I^bg only where nothing is layered over it; soft edges are in I^coarse already
    m_bg_eq20 = reg.m_bg * (alpha < 0.01)
    region = np.maximum(np.maximum(reg.m_k, reg.m_k_id), reg.gap)
    return Composite(coarse=np.clip(coarse, 0, 1).astype(np.float32), alpha=alpha.astype(np.float32),
                     m_bg=m_bg_eq20.astype(np.float32), i_bg=i_bg.astype(np.float32), m_sde=m_sde,
                     region=np.maximum(region, (alpha > 0.01)).astype(np.float32),
                     changed_bg=cv2.GaussianBlur(changed_bg.astype(np.float32), (0, 0), 1.0),
                     seams=np.clip(seams, 0, 1).astype(np.float32), gap=reg.gap, s_blend=s_out, notes=notes)


def reach_frame(colour: np.ndarray, alpha: np.ndarray, s_out: np.ndarray, taken: np.ndarray,
                ref_end: np.ndarray | None, labels_id: np.ndarray, mine: np.ndarray | None = None,
                reach: int = FRAME_REACH_PX,
                edge: str = "bottom", taper: float = 0.0) -> tuple:
    """New hair that ends where its reference's crop ended (``ref_end`` > 0.25 just inside the
    hair's last row in a column, or the outline runs straight across there) within ``reach`` px
    of the identity's frame bottom goes on to it, the rows above its end reflected below it, as
    a portrait's frame cuts hair; it showed as a straight cut with a strip of old hair or
    background between it and the frame.  Not over the identity's face or neck, nor over what a
    mask keeps of the identity (``mine``: the new hair is laid over that on purpose).  ``edge``:
    the frame's "bottom" or "top".  At the top, where a head's outline is round, the straight
    stretch the crop cut became a block of hair with straight sides up to the frame: there only
    a cut a few px short of the frame goes on (``reach``: :data:`TOP_REACH_PX`), the whole run of
    hair near the frame that holds it, and its ends reach the frame over ``taper`` px, a round
    corner.  ``ref_end=None``: only the straight test.  (New hair still to be filled in, a scalp
    gap, is not continued: filled up to the frame it came out as specks.)
    -> (colour, alpha, s_out, taken, continued): continued (H, W) bool: the columns' stretch
    from the frame to ``reach`` px past the hair's old end (the fade at a crop edge does not
    apply there)"""
    colour, alpha, s_out, taken = (np.array(a) for a in (colour, alpha, s_out, taken))
    H, W = alpha.shape
    free = ~np.isin(np.asarray(labels_id), FACE_PARTS)
    if mine is not None:
        free &= ~np.asarray(mine, bool)
    continued = np.zeros((H, W), bool)
    # turned so that the frame's edge is row 0 and the hair's last row its first (views: writing
    # into them writes into the arrays)
    up = (lambda a: a[::-1]) if edge == "bottom" else (lambda a: a)    # noqa: E731
    hair = up((s_out == HAIR) & (alpha > 0.5))
    first = hair.argmax(0)
    near = (np.zeros(W, bool) if ref_end is None else
            up(np.asarray(ref_end, np.float32))[np.minimum(first + 3, H - 1), np.arange(W)] > 0.25)
    # (or where the outline runs straight across: a cut, e.g. by the tri-plane's own extent)
    span = 2 * STRAIGHT_PX + 1
    straight = (maximum_filter1d(first, span, mode="nearest") - minimum_filter1d(first, span, mode="nearest")) <= 2
    some = hair.any(0) & (first > 0) & (first <= reach)
    # whole stretches of the outline, not single columns (a notch of old hair between two)
    ok = (cv2.morphologyEx((some & (near | straight)).astype(np.uint8)[None], cv2.MORPH_CLOSE,
                           np.ones((1, 41), np.uint8))[0] > 0) & some
    if taper > 0 and ok.any():
        # a stretch is then the whole run of hair near the frame that holds the cut (the straight
        # test stops short of a run's ends), its ends rounded below
        runs, _ = label(some)
        ok = np.isin(runs, np.unique(runs[ok])) & some
    y = np.arange(H)[:, None]
    # hair at the frame already, or continued to it, is not faded out there either
    up(continued)[(y < first[None, :] + reach) & (ok | (hair.any(0) & (first == 0)))[None, :]] = True
    if ok.any():
        # reflected about a line a few rows inside the hair: its outermost rows are the render's
        # soft edge, which doubled showed as a line across the hair
        line = first[None, :] + EDGE_ROWS
        # near a stretch's ends the hair reaches the frame over ``taper`` px: a round corner
        t = np.clip(distance_transform_edt(ok) / taper, 0, 1) if taper > 0 else np.ones(W)
        ys, xs = np.nonzero((y < line) & (y >= (first * (1 - t))[None, :]) & ok[None, :] & up(free))
        sy = np.clip(2 * line - y, 0, H - 1)[ys, xs]
        for arr in (colour, alpha, s_out, taken):
            v = up(arr)
            v[ys, xs] = v[sy, xs]
        up(s_out)[ys, xs] = HAIR
    return colour, alpha, s_out, taken, continued


def _glasses(alpha, colour_src, s_out, labels_id, refs, notes):
    """Replace the eyeglasses' alpha and colour by each glasses reference's layer.
    -> (alpha, colour, the glasses' own alpha)"""
    from .errors import EditError

    # glasses sit on the face: their arms over hair or ears would bring the reference's along
    face = cv2.dilate(face_hull(labels_id).astype(np.uint8), np.ones((15, 15), np.uint8)) > 0
    blended = ((s_out == EYEGLASSES) & face).astype(np.float32)
    out_alpha, out_colour = alpha.copy(), np.asarray(colour_src, np.float32).copy()
    out_alpha[s_out == EYEGLASSES] = 0.0
    glass = np.zeros_like(out_alpha)
    for r in refs:
        if EYEGLASSES not in r.classes or r.render is None:
            continue
        region = blended
        if r.warped:   # the moved crop says where its glasses are
            own = cv2.dilate((np.asarray(r.render_labels) == EYEGLASSES).astype(np.uint8), np.ones((5, 5), np.uint8))
            region = ((own > 0) & face).astype(np.float32)
        layer = glasses_layer(r.render, r.render_labels, region, r.user_region)
        if not layer.tinted:
            # through clear lenses the identity's own eyes show, whatever the reference's render has there
            eyes = cv2.dilate(np.isin(labels_id, (L_EYE, R_EYE)).astype(np.uint8),
                              cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (11, 11))) > 0
            layer.alpha[eyes] = 0.0
        visible = int((layer.alpha > 0.5).sum())
        if visible < MIN_VISIBLE_GLASSES_PX:
            raise EditError(f"the eyeglasses of {r.name} would be nearly invisible on the result ({visible} "
                            f"opaque pixels: rimless or clear frames that cannot be told from the face behind "
                            f"them); paint the frames on the reference with a mask in add mode, or pick another "
                            f"reference")
        sel = layer.alpha > out_alpha
        out_alpha = np.where(sel, layer.alpha, out_alpha)
        out_colour = np.where(sel[..., None], layer.colour, out_colour)
        if layer.tinted:
            notes.append(f"the eyeglasses of {r.name} have dark lenses; they stay dark")
        glass = np.maximum(glass, layer.alpha)
    return out_alpha, out_colour, glass


def unstreak_hair(pasted: np.ndarray, stretched: np.ndarray, hair: np.ndarray, grain: float = 4.0) -> np.ndarray:
    """Pasted hair where its texels are stretched into streaks: the streaks' broad colour and
    light (blurred by ``grain`` px) with fine strands copied from the rest of the pasted hair
    (:func:`texture_fill`), joined to their border.  Shape: (H, W, 3), (H, W), (H, W) -> (H, W, 3)"""
    holes = cv2.dilate((stretched & hair).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    holes &= hair
    src = hair & ~cv2.dilate(holes.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    if holes.sum() < 16 or src.sum() < 64:
        return pasted
    return texture_fill(pasted, holes, src, valid=src.astype(np.float32), grain=grain, shading=pasted)


def regrain_flat_hair(pasted: np.ndarray, hair: np.ndarray, ratio: float = FLAT_HAIR_RATIO) -> np.ndarray:
    """Pasted hair that shows no strands -- a reference's blown-out highlight, hair its photo
    had out of focus in one place -- is a flat patch on the new hairdo: where its texture
    (:func:`triface_studio.core.fill.local_texture` of the lightness) is under ``ratio`` of the
    pasted hair's median, in patches of some size, it keeps its colour and light and takes
    strands from the rest of the pasted hair (:func:`unstreak_hair`).
    Shape: (H, W, 3), (H, W) bool -> (H, W, 3)"""
    hair = np.asarray(hair, bool)
    if hair.sum() < 256:
        return pasted
    tex = local_texture(colour.to_lab(np.asarray(pasted, np.float32))[..., 0])
    flat = (hair & (tex < ratio * float(np.median(tex[hair])))).astype(np.uint8)
    flat = cv2.morphologyEx(flat, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    if flat.sum() < 64:
        return pasted
    return unstreak_hair(pasted, flat > 0, hair)


def dye_old_hair(i_id: np.ndarray, labels_id: np.ndarray, pasted: np.ndarray, alpha: np.ndarray,
                 s_out: np.ndarray, reg: Regions, mine: np.ndarray) -> tuple[np.ndarray, bool]:
    """The identity's photo with its old hair dyed in the new hair's colours
    (:func:`colour.dye`: its own strands and light, the pasted hair's lightness and hue), so
    that the old hair the new hair does not cover, on the scalp (the gap that becomes hair) or
    under the new hair's soft edge, reads as the new hair instead of a synthesised patch or a
    dark rim.  What a subtract mask keeps of the identity's own hair (``mine``) keeps its
    colour, with a feathered border.  -> (image, whether the hair was dyed)"""
    old = np.asarray(labels_id) == HAIR
    new = (np.asarray(s_out) == HAIR) & (alpha > 0.95) & (reg.m_k > 0.5)
    if old.sum() < 64 or new.sum() < 64:
        return i_id, False
    grown = cv2.dilate(old.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(np.float32)
    region = cv2.GaussianBlur(grown, (0, 0), 1.0)
    # the share of kept hair around each pixel, among hair only (not faded at the hair's outline)
    mine_g = cv2.dilate(np.asarray(mine, np.uint8), np.ones((3, 3), np.uint8)).astype(np.float32) * grown
    kept = cv2.GaussianBlur(mine_g, (0, 0), 4.0) / np.maximum(
        cv2.GaussianBlur(grown, (0, 0), 4.0), 1e-3)
    region = region * (1.0 - np.clip(kept, 0, 1))
    source = old
    skin = np.asarray(labels_id) == SKIN
    if skin.sum() >= 64:
        # along the hairline a pixel is part hair, part skin: only its hair part is dyed (dyeing
        # the whole mix would map a skin-lit pixel to the new hair's brightest, a bright rim)
        img = np.asarray(i_id, np.float32)
        c_hair, c_skin = np.median(img[old], 0), np.median(img[skin], 0)
        if np.linalg.norm(np.ptp(colour.to_lab(np.stack([c_hair, c_skin])[None])[0], 0)) > 15.0:
            share = colour.mix_share(img, c_hair, c_skin)
            region = region * share
            source = old & (share > 0.8)
            if source.sum() < 64:
                source = old
    region = region * _hair_share_against(np.asarray(i_id, np.float32), old, np.asarray(labels_id) == BACKGROUND)
    return colour.dye(i_id, region, source, np.asarray(pasted, np.float32)[new], target_image=pasted,
                      target_mask=cv2.erode(new.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0), True


def _hair_share_against(img: np.ndarray, old: np.ndarray, bg: np.ndarray) -> np.ndarray | float:
    """How much of the identity's old hair each pixel near its background holds (a mix of the
    hair's and the background's colours, :func:`colour.mix_share`), 1 farther in: the parser's
    outline of the hair is a staircase, which dyed a light colour stood out against a dark
    backdrop as a cut-out of steps and specks; the photo's own soft outline is dyed instead.
    Where hair and background look alike (dark hair on a dark backdrop: the share would be
    noise) the dye fades out over the outline rounded (:data:`OUTLINE_SIGMA`).  -> (H, W) or 1.0"""
    ring = (cv2.dilate(old.astype(np.uint8), np.ones((31, 31), np.uint8)) > 0) & bg
    if ring.sum() < 64 or old.sum() < 64:
        return 1.0
    # (medians of every 4th pixel: as good, 4x cheaper)
    c_hair, c_bg = np.median(img[old][::4], 0), np.median(img[ring][::4], 0)
    if np.linalg.norm(np.ptp(colour.to_lab(np.stack([c_hair, c_bg])[None])[0], 0)) <= 15.0:
        return masks.round_outline(old.astype(np.float32), bg, OUTLINE_SIGMA) + ~old
    near = masks.distance_to(bg) < DYE_EDGE_PX
    out = np.ones(bg.shape, np.float32)
    out[near] = colour.mix_share(img[near][:, None], c_hair, c_bg)[:, 0]
    return out


def fill(coarse: np.ndarray, i_id: np.ndarray, labels_id: np.ndarray, reg: Regions, alpha: np.ndarray,
         notes: list[str], dyed: bool = False) -> np.ndarray:
    """The gap fill with texture (see the module docstring).  ``dyed``: the scalp gap shows
    the identity's old hair dyed (:func:`dye_old_hair`): its shading stays, the new hair's
    strands are copied over it (dark hair keeps too little texture of its own when dyed light)."""
    out = np.asarray(coarse, np.float32)
    lab = np.asarray(labels_id)
    if reg.gap_scalp.max() > 0.5:
        hair_src = (reg.s_blend == HAIR) & (alpha > 0.95) & (reg.gap_scalp < 0.5)
        holes = reg.gap_scalp > 0.5
        if hair_src.sum() >= 64:
            before = out
            out = texture_fill(out, holes, hair_src, valid=hair_src.astype(np.float32), grain=8.0,
                               shading=out if dyed else None, max_offsets=SCALP_FILL_OFFSETS)
            # where the filled old hair meets the background its outline is the parser's
            # staircase: rounded and soft, over the old hair's own photo
            outside = ((reg.m_bg > 0.5) | (lab == BACKGROUND)) & ~holes & (alpha <= OUTLINE_LEVEL)
            w = masks.round_outline(holes.astype(np.float32), outside, OUTLINE_SIGMA)[..., None]
            out = before + (out - before) * w
        else:
            notes.append("the new hair is too small to grow over the old hair's place; it was filled with skin")
            reg.gap_face = np.maximum(reg.gap_face, reg.gap_scalp)
    if reg.gap_face.max() > 0.5:
        holes = reg.gap_face > 0.5
        skin = (lab == SKIN) & (reg.m_k_id < 0.5) & (reg.m_k < 0.5)
        near = cv2.dilate(holes.astype(np.uint8), np.ones((2 * HAIRLINE_PX + 1,) * 2, np.uint8)) > 0
        holes = holes | (near & skin)          # the old hairline's shadow goes with the gap
        border_ok = (skin & ~holes).astype(np.float32)     # the hole meets these pixels exactly
        src = cv2.erode(border_ok.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        if src.sum() >= 64:   # plain skin only: no strands, moles or shadows copied into the gap
            L = colour.to_lab(i_id)
            src &= np.linalg.norm(L - np.median(L[src], 0), axis=-1) < 14.0
        if src.sum() < 64:
            src = ~np.isin(lab, (BACKGROUND, HAIR)) & ~holes
        out = texture_fill(out, holes, src, valid=border_ok,
                           fallback=np.broadcast_to(_mean(i_id, src), out.shape), smooth=40.0)
    return out


def _mean(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    m = np.asarray(mask, bool)
    return image[m].mean(0) if m.any() else image.reshape(-1, 3).mean(0)


def background_plate(image: np.ndarray, bg: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """Eq. 14's I^bg: ``image`` with ``holes`` (pixels that will show background and are not
    background now) filled with the texture of its own background (where ``bg`` > 0.5, a few
    pixels away from the head so no hair fringe is copied).  Elsewhere the image as it is (it
    is never shown there).  Shape: (H, W, 3), (H, W), (H, W) bool -> (H, W, 3)"""
    img = np.asarray(image, np.float32)
    holes = np.asarray(holes, bool)
    if not holes.any():
        return img
    border_ok = (np.asarray(bg) > 0.5) & ~holes                # the fill meets these pixels exactly
    src = cv2.erode(border_ok.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    if src.sum() < 64:
        c = img[np.asarray(bg) > 0.5].mean(0) if (np.asarray(bg) > 0.5).any() else img.reshape(-1, 3).mean(0)
        return np.where(holes[..., None], c, img).astype(np.float32)
    return texture_fill(img, holes, src, valid=border_ok.astype(np.float32),
                        fallback=np.broadcast_to(_mean(img, src), img.shape), grain=8.0)
