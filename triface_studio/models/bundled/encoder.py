"""Image-to-plane lift of the bundled tier: a height-field head written into a tri-plane.

Channel layout (``CHANNELS`` = 24, aggregate "sum"):

* 0 ``front``: XY holds z_front(x, y); XZ and ZX each hold -z/2, so the sum is z_front - z.
* 1 ``back``: XY holds -z_back(x, y); XZ and ZX each hold +z/2, so the sum is z - z_back.
* 2-4 RGB in [0, 1] (XY only); 5-23 semantic logits (XY only).

The XY plane is stored relative to :func:`xy_prior` (the decoder adds it back), so zero
features mean "bare head, skin" rather than "nothing"; :func:`decoded_xy` gives the values.

The head's shape is an ellipsoidal shell (skull, neck) whose front is the dense face surface of
the photo's 3D landmarks (with the head rotation undone), over the foreground of the semantic
map; colour and labels are read from the crop by projecting each XY texel at its surface depth
through the photo's camera, which undoes the head pose.  Texels the photo sees
at a grazing angle or not at all take the mirrored (x -> -x) texel's colour and labels, or fade
into the colour of better seen ones (:func:`fade_grazing`).  Towards its outline the head rounds
off to its middle depth (:func:`round_outline`), and behind that depth it shows hair or skin
(:func:`back_texture`, applied by the decoder) rather than the front's features again.  The
head's outline is grown by a texel (:func:`extend_rim`) so that the coarser plane covers the
labels' ragged outline.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from triface_studio.core import triplane
from triface_studio.core.masks import distance_to
from triface_studio.core.semantics import (BACKGROUND, CLOTH, FLIP_PERMUTATION, HAIR, HAT, NECK,
                                           NUM_CLASSES, SKIN)

CHANNELS = 5 + NUM_CLASSES
RESOLUTION = 512        # a 512 crop spans ~0.62 world units at the face: 256 texels blurred it (-2.7 dB)
EMPTY_FRONT = -1.0          # z_front of texels with no head: density zero along the whole ray
LOGIT = 8.0


def _sqrt(t: torch.Tensor) -> torch.Tensor:
    """Square root by numpy (correctly rounded).  torch's, on this CPU, was not repeatable: in
    about one process in six its first call returned one thread's share of the values up to
    ~2.5e-4 relative off (a lower-accuracy vector maths path), so the same photo lifted twice
    differed at ~0.8 % of the texels by up to 0.04 (the shell's depth feeds thresholds)."""
    return torch.from_numpy(np.sqrt(t.numpy()))


def head_height_field(resolution: int = RESOLUTION) -> tuple[torch.Tensor, torch.Tensor]:
    """Default canonical head depth: (z_front, z_back) per XY texel, indexed [row (y), col (x)]."""
    t = triplane.texel_centres(resolution)
    y, x = torch.meshgrid(t, t, indexing="ij")
    # face/skull ellipsoid centred a little behind the origin; neck cylinder below
    cx, cy, cz, a, b, c = 0.0, 0.03, -0.02, 0.26, 0.36, 0.24
    q = 1 - (x - cx) ** 2 / a ** 2 - (y - cy) ** 2 / b ** 2
    front = cz + c * _sqrt(q.clamp_min(0))
    back = cz - c * _sqrt(q.clamp_min(0))
    neck = 1 - (x / 0.16) ** 2
    nf = -0.02 + 0.14 * _sqrt(neck.clamp_min(0))
    below = y < cy
    front = torch.where(below, torch.maximum(front, nf), front)
    back = torch.where(below & (neck > 0), torch.minimum(back, -0.16 * torch.ones_like(back)), back)
    # anything else (shoulders, hair outside the skull): a thin slab
    front = torch.maximum(front, torch.full_like(front, 0.02))
    back = torch.minimum(back, torch.full_like(back, -0.05))
    return front, back


#: how far (world units) the face surface's offset from the shell fades outside the face
FACE_BLEND = 0.06


def face_height_field(world_landmarks: np.ndarray, resolution: int = RESOLUTION) -> tuple[torch.Tensor, torch.Tensor]:
    """The default head shell with its front replaced by the dense face surface of 3D landmarks
    (canonical world units, (N, 3)): linear interpolation of the landmarks' depth inside the
    face, and outside it the shell moved by the face's offset at the nearest face texel, fading
    over ``FACE_BLEND`` so there is no step at the face's edge.  -> (z_front, z_back), (R, R)."""
    from scipy.interpolate import griddata
    from scipy.ndimage import distance_transform_edt, gaussian_filter

    front, back = head_height_field(resolution)
    R = resolution
    t = triplane.texel_centres(R, dtype=torch.float64).numpy()
    gx, gy = np.meshgrid(t, t)                                       # [row (y), col (x)]
    w = np.asarray(world_landmarks, np.float64)
    face = griddata(w[:, :2], w[:, 2], (gx, gy), method="linear")
    inside = np.isfinite(face)
    if not inside.any():
        return front, back
    shell = front.numpy().astype(np.float64)
    offset = np.where(inside, face - shell, 0.0)
    dist, (iy, ix) = distance_transform_edt(~inside, return_indices=True)
    fade = np.exp(-(dist / R) / FACE_BLEND)
    new_front = np.where(inside, face, shell + offset[iy, ix] * fade)
    # the face's rim (jaw, temples) meets the shell at an angle: round it off
    new_front = gaussian_filter(new_front, sigma=2.0 * resolution / 256)
    new_front = torch.from_numpy(new_front).to(front.dtype)
    back = torch.minimum(back, new_front - 0.02)
    return new_front, back


#: colour of the bare head that empty XY features decode to (a neutral skin tone)
PRIOR_COLOUR = (0.78, 0.62, 0.52)


@functools.lru_cache(maxsize=4)
def xy_prior(resolution: int, dtype=torch.float32) -> torch.Tensor:
    """(Cached: do not modify the result.)  What an all-zero XY texel decodes to: the bare default head (skull and neck of
    :func:`head_height_field`, no slab) labelled skin, in a neutral skin colour; empty space
    outside it.  The lift stores its XY plane as the difference from this prior, so a blend that
    removes a region of the identity without a reference to replace it (M_-k^id x (1 - M_k^ref)
    = 0) leaves skin on the head -- the paper's "gap", which compositing fills with the
    identity's skin colour -- instead of a hole through the head.  Shape: -> (CHANNELS, R, R)."""
    front, back = head_height_field(resolution)
    # the bare head is narrower than the shell (which also carries hair): a skull around the
    # landmark template's face (x +-0.16, chin y -0.25) and a neck below it
    t = triplane.texel_centres(resolution)
    y, x = torch.meshgrid(t, t, indexing="ij")
    skull = (x / 0.18) ** 2 + ((y - 0.0) / 0.27) ** 2 < 1
    neck = (x.abs() < 0.1) & (y < -0.15)
    core = (front > 0.03) & (skull | neck)
    prior = torch.zeros(CHANNELS, resolution, resolution, dtype=dtype)
    prior[0] = torch.where(core, front, torch.full_like(front, EMPTY_FRONT))
    prior[1] = -torch.where(core, back, torch.ones_like(back))
    for c, v in enumerate(PRIOR_COLOUR):
        prior[2 + c] = torch.where(core, v, 0.0)
    sem = torch.full((NUM_CLASSES, resolution, resolution), -LOGIT, dtype=dtype)
    sem[SKIN] = LOGIT
    prior[5:] = torch.where(core, sem, torch.zeros_like(sem))
    return prior


def decoded_xy(planes: torch.Tensor) -> torch.Tensor:
    """The XY plane's actual values (prior added back). Shape: (B, 3, C, R, R) -> (B, C, R, R)."""
    return planes[:, 0] + xy_prior(planes.shape[-1], planes.dtype).to(planes.device)


def _read(img: torch.Tensor, uv: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Sample (C, H, W) at normalised uv (R, R, 2) in [0, 1] -> (C, R, R)."""
    return F.grid_sample(img[None], (uv * 2 - 1)[None].to(img.dtype), mode=mode, padding_mode="border",
                         align_corners=False)[0]


#: cosine (normal to the photo's camera) under which a texel takes its mirror image's colour,
#: where that is seen well.  0.35 before the outline was rounded: the rounded rim of a slightly
#: turned head, which the photo does see, then took the other side's colours (-1.4 dB over the
#: head on 8 training photos); 0.2 left the far side of strongly turned heads unfilled (the
#: frontal render of one put its landmarks 10 px off the template); 0.25: 30.4 dB, 3.7 px
MIRROR_BELOW = 0.25


#: rings of texels around the head that get its depth (RIM_DEPTH) and its edge colour (RIM_COLOUR)
RIM_DEPTH, RIM_COLOUR = 1, 2


def extend_rim(occupied: torch.Tensor, colour: torch.Tensor, front: torch.Tensor, back: torch.Tensor,
               depth_rings: int = RIM_DEPTH, colour_rings: int = RIM_COLOUR):
    """Grow the head by ``depth_rings`` texels (each new texel takes its occupied neighbours'
    nearest front and farthest back) and carry the edge colour ``colour_rings`` texels outward
    (mean of the coloured neighbours).

    Why: the XY plane is coarser than the crop (a texel is ~1.6 crop px) and the parser's
    outline is ragged, so a silhouette cut at the labels' own contour misses a pixel of hair or
    cheek here and there; at the source camera each miss shows the white background (error ~1)
    and the misses cost ~6 dB of PSNR over the head.  One ring covers them; the ring's labels
    stay as read (mostly background), so rendered semantics still end at the contour.  The
    colour rings keep the photo's background colour from bleeding into the edge (light halos
    around dark hair in new views and in I^ref_hat).
    Shapes: occupied (R, R) bool, colour (3, R, R), front/back (R, R) ->
    (colour, front, back, occupied)."""
    k = np.ones((3, 3), np.uint8)
    occ = occupied.numpy()
    f = np.where(occ, front.numpy(), -9.0).astype(np.float32)
    b = np.where(occ, back.numpy(), 9.0).astype(np.float32)
    w = occ.astype(np.float32)
    c = np.ascontiguousarray(colour.permute(1, 2, 0).numpy() * w[..., None], dtype=np.float32)
    for ring in range(max(depth_rings, colour_rings)):
        nw = cv2.boxFilter(w, -1, (3, 3), normalize=False, borderType=cv2.BORDER_CONSTANT)
        new = (w == 0) & (nw > 0)
        nc = cv2.boxFilter(c, -1, (3, 3), normalize=False, borderType=cv2.BORDER_CONSTANT)
        c[new] = nc[new] / nw[new][:, None]
        w[new] = 1.0
        if ring < depth_rings:
            empty = f < -8
            f = np.where(empty, cv2.dilate(f, k, borderType=cv2.BORDER_CONSTANT, borderValue=-9.0), f)
            b = np.where(empty, cv2.erode(b, k, borderType=cv2.BORDER_CONSTANT, borderValue=9.0), b)
    grown = torch.from_numpy(f > -8)
    coloured = torch.from_numpy(w > 0)
    return (torch.where(coloured, torch.from_numpy(c).permute(2, 0, 1).to(colour.dtype), colour),
            torch.where(grown, torch.from_numpy(f).to(front.dtype), front),
            torch.where(grown, torch.from_numpy(b).to(back.dtype), back), grown)


#: scale (texels at 512) below which a borrowed texture keeps its own detail and above which
#: it takes the shading of the place it is put
SHADING_SIGMA = 12.0


def _masked_blur(x: np.ndarray, w: np.ndarray, sigma: float) -> np.ndarray:
    num = _blur_small(x * w[..., None], sigma)
    den = _blur_small(w, sigma)[..., None]
    return num / np.maximum(den, 1e-4)


def reshade(borrowed: torch.Tensor, own: torch.Tensor, weight: torch.Tensor, valid: torch.Tensor,
            sigma: float = SHADING_SIGMA) -> torch.Tensor:
    """A texture borrowed from elsewhere (the mirrored side of the face) with
    its shading replaced by the place's own: borrowed - lowpass(borrowed) + lowpass(own), the
    low-passes weighted by ``weight``; where the photo saw nothing of the place (``valid``
    false) the borrowed texture stays as it is.  A stretched or grazing photo still has the
    right low frequencies (light, skin tone), the borrowed texture the detail.
    Shapes: borrowed/own (3, R, R), weight (R, R) float, valid (R, R) bool -> (3, R, R)."""
    sigma = sigma * own.shape[-1] / 512
    b = np.ascontiguousarray(borrowed.permute(1, 2, 0).numpy(), np.float32)
    o = np.ascontiguousarray(own.permute(1, 2, 0).numpy(), np.float32)
    w = np.ascontiguousarray(weight.float().numpy(), np.float32)
    out = b - _masked_blur(b, w, sigma) + _masked_blur(o, w, sigma)
    out = np.where(valid.numpy()[..., None], np.clip(out, 0, 1), b)
    return torch.from_numpy(out).permute(2, 0, 1).to(borrowed.dtype)


#: texels in from the outline whose colour the outline's wall carries (WALL_BAND) and the
#: blur (texels at 512) of the nearby head colour they take instead
WALL_BAND, WALL_SIGMA = 2, 6.0


def _groups(labels: np.ndarray) -> np.ndarray:
    """Class groups that borrow colour only from each other: 0 skin and the rest, 1 hair/hat, 2 cloth."""
    grp = np.zeros(labels.shape, np.int8)
    grp[(labels == HAIR) | (labels == HAT)] = 1
    grp[labels == CLOTH] = 2
    return grp


def _smooth_fill(c: np.ndarray, weight: np.ndarray, sigma: float, scales=(1, 3, 9),
                 need: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``weight``-ed blur of colours ``c`` (H, W, 3) at ``sigma``, where too little weight is
    near falling back to ``sigma`` x 3, then x 9 -> (fill (H, W, 3), have (H, W) bool).  With
    ``need`` (H, W) bool the wider blurs are skipped once every needed texel has its fill (what
    the fill is elsewhere is then not meant to be read)."""
    fill = np.zeros_like(c)
    have = np.zeros(c.shape[:2], bool)
    w = weight.astype(np.float32)
    cw = c * w[..., None]
    for k in scales:
        num, den = _blur_small(cw, sigma * k), _blur_small(w, sigma * k)
        num = num.reshape(c.shape)                     # (OpenCV drops a single channel's axis)
        ok = ~have & (den > 0.02 * max(float(w.max()), 1e-6))
        np.copyto(fill, num / np.maximum(den, 1e-12)[..., None], where=ok[..., None])
        have |= ok
        if need is not None and not (need & ~have).any():
            break
    return fill, have


def _towards_group_colour(c: np.ndarray, grp: np.ndarray, where: np.ndarray, amount: np.ndarray,
                          source: np.ndarray, sigma: float) -> np.ndarray:
    """``c`` with the texels ``where`` moved by ``amount`` (0..1 per texel) towards the smooth
    colour (:func:`_smooth_fill` at ``sigma``) of the ``source`` texels (a weight or a mask) of
    their own class group (:func:`_groups`), of all of ``source`` where the group has none.
    Shape: c (H, W, 3), grp/where/amount/source (H, W) -> (H, W, 3)"""
    out = c.copy()
    for g in np.unique(grp[where]):
        mine = where & (grp == g)
        src = source * (grp == g)
        fill, have = _smooth_fill(c, src if src.any() else source, sigma, need=mine)
        mine &= have
        a = amount[mine][:, None].astype(np.float32)
        out[mine] = (1 - a) * c[mine] + a * fill[mine]
    return out


def smooth_wall(colour: torch.Tensor, occupied: torch.Tensor, labels: torch.Tensor,
                band: int = WALL_BAND, sigma: float = WALL_SIGMA) -> torch.Tensor:
    """The outermost ``band`` texels of the head take the smooth colour of the texels just
    inside them of the same class group (a masked blur), fading in towards the outline.

    Why: the height field ends at its outline in a (thin, see :func:`round_outline`) wall from
    z_front to z_back coloured by these texels alone; their colour is the photo's outline (often
    half background) and varies from row to row, so the wall reads as horizontal streaks.
    Smoothed along the outline it reads as the side turning away.
    Shapes: colour (3, R, R), occupied (R, R) bool, labels (R, R) int -> (3, R, R)."""
    occ = occupied.numpy()
    R = occ.shape[-1]
    d = distance_to(~np.pad(occ, 1))[1:-1, 1:-1]
    rim = occ & (d <= band)
    if not rim.any():
        return colour
    c = np.ascontiguousarray(colour.permute(1, 2, 0).numpy(), np.float32)
    inner = occ & (d > band) & (d <= band + 4 * sigma * R / 512)
    amount = (band + 1 - d) / (band + 1)                                         # 1 at the outline
    out = _towards_group_colour(c, _groups(labels.numpy()), rim, amount, inner, sigma * R / 512)
    return torch.from_numpy(out).permute(2, 0, 1).to(colour.dtype)


#: cosines (surface normal to the photo's camera) below which a texel's colour is a stretched
#: smear of a few photo pixels and fades into the smooth colour of better seen texels: fully
#: below GRAZING_LOW, not at all above GRAZING_HIGH; the blur (texels at 512) of that colour
GRAZING_LOW, GRAZING_HIGH, GRAZING_SIGMA = 0.1, 0.3, 8.0


def fade_grazing(colour: torch.Tensor, vis: torch.Tensor, occupied: torch.Tensor, labels: torch.Tensor,
                 low: float = GRAZING_LOW, high: float = GRAZING_HIGH, sigma: float = GRAZING_SIGMA) -> torch.Tensor:
    """Texels the photo saw at a grazing angle (or not at all) take the smooth colour of the
    well seen texels of their class group around them, more so the more grazing.

    Why: the surface turning away along the head's outline, and the far side of a turned head,
    are a pixel or two wide in the photo; read back they repeat that pixel along every row, which
    side views show as horizontal streaks.  A soft fade of the nearby colour reads as the side of
    the head out of the photo's sight.  Shapes: colour (3, R, R), vis (R, R) cosine,
    occupied (R, R) bool, labels (R, R) int -> (3, R, R)."""
    v = vis.numpy()
    occ = occupied.numpy()
    a = np.clip((high - v) / (high - low), 0.0, 1.0) * occ
    if not (a > 0).any():
        return colour
    c = np.ascontiguousarray(colour.permute(1, 2, 0).numpy(), np.float32)
    seen = np.clip(v, 0.0, 1.0) ** 2 * (a < 1) * occ
    out = _towards_group_colour(c, _groups(labels.numpy()), a > 0, a, seen, sigma * occ.shape[-1] / 512)
    return torch.from_numpy(out).permute(2, 0, 1).to(colour.dtype)


def _blur_small(a: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur of ``sigma`` px computed at 1/f of the size (f ~ sigma / 3, at most 8)
    and resized back: the same smooth field ~f^2 times faster for the wide blurs of
    :func:`smooth_wall` (a 54 px blur at full size took ~0.1 s a channel)."""
    f = int(min(8, max(1, sigma // 3)))
    if f == 1:
        return cv2.GaussianBlur(a, (0, 0), sigma)
    h, w = a.shape[:2]
    small = cv2.resize(a, (max(1, w // f), max(1, h // f)), interpolation=cv2.INTER_AREA)
    return cv2.resize(cv2.GaussianBlur(small, (0, 0), sigma / f), (w, h), interpolation=cv2.INTER_LINEAR)


#: the depth the head's outline rounds off to (the shell's centre: a frontal photo's silhouette
#: is the head's widest contour, half way between face and back) and how far in (world units)
#: the rounding reaches
ROUND_MID, ROUND_WIDTH = -0.02, 0.08
#: half the thickness the head keeps at its outline: the outline texel stays occupied and opaque
#: to the photo's own camera (a sliver of 0.004 let the background through: -1 dB over the head)
ROUND_MIN = 0.012


def round_outline(front: torch.Tensor, back: torch.Tensor, occupied: torch.Tensor,
                  width: float = ROUND_WIDTH, mid: float = ROUND_MID) -> tuple[torch.Tensor, torch.Tensor]:
    """Front and back brought together towards the head's outline along a quarter ellipse: at
    distance d from the outline (world units) both keep g(d) = sqrt(1 - (1 - d/width)^2) of their
    offset from ``mid`` (all of it from ``width`` in), but never less than ROUND_MIN; texels
    outside ``occupied`` become such a sliver at ``mid`` (a mirrored read may still fill them).
    The tri-plane's edges are not an outline.

    Why: a height field cut at the photo's outline ends in a wall from z_front to z_back, a
    quarter of the head deep where the outline crosses the skull; side views saw it whole, each
    row in its outline texel's one colour, as a head-sized egg of horizontal bands.  Rounded,
    the side is the front surface turning away, coloured by the photo's own band along the
    outline (stretched where the surface is steep: see :func:`fade_grazing`), and from 30
    degrees on some of the back half (:func:`back_texture`).
    Shapes: front/back (R, R), occupied (R, R) bool -> (front, back)."""
    occ = occupied.numpy()
    R = occ.shape[-1]
    d = distance_to(~np.pad(occ, 1, constant_values=True))[1:-1, 1:-1]
    d = np.clip((d - 0.5) * (2 * triplane.BOX_HALF / R) / width, 0.0, 1.0)
    g = torch.from_numpy(np.sqrt(1.0 - (1.0 - d) ** 2)).to(front.dtype)
    f = mid + ((front - mid).clamp_min(0) * g).clamp_min(ROUND_MIN)
    b = mid - ((mid - back).clamp_min(0) * g).clamp_min(ROUND_MIN)
    return f, b


#: how sharply (1 / world units) a point's colour and labels turn from the front surface's to
#: the back half's (:func:`back_texture`) at ROUND_MID
BACK_K = 400.0
#: how far (world units) from hair the back of a face, ear or neck is hair rather than skin, and
#: the blur (world units) of the colours the back half takes
BACK_HAIR_REACH, BACK_SIGMA = 0.12, 0.012


def _reduced(xy: torch.Tensor, scale: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The decoded XY plane at ``1/scale`` of its resolution (area average) as numpy: occupied
    (r, r) bool, labels (r, r), colour (r, r, 3) float32."""
    r = max(1, xy.shape[-1] // scale)
    x = F.interpolate(xy[None].float(), size=(r, r), mode="area")[0]
    occ = (x[0] > -x[1]).numpy()
    labels = x[5:].max(0).indices.numpy()
    return occ, labels, np.ascontiguousarray(x[2:5].clamp(0, 1).permute(1, 2, 0).numpy(), np.float32)


def back_texture(xy: torch.Tensor, scale: int = 2, colour: bool = True) -> torch.Tensor:
    """What the back half of the head (z < ROUND_MID) shows, from the decoded XY plane: hair and
    cloth keep their colour and labels; every other texel (face, ears, neck) becomes the smooth
    colour of the hair within BACK_HAIR_REACH, else of the skin around it, labelled hair or
    skin (the neck stays neck).  At ``1/scale`` of the plane's resolution (it is smooth).

    Why: the XY plane gives one colour per (x, y) to the front and the back surface alike, and
    a rounded head (:func:`round_outline`) shows part of its back half from 30 degrees on:
    there the ears, cheeks and eyes of the front appeared a second time, mirrored in depth.
    ``colour=False``: the same logits, the colour left as the plane's own (for renders whose
    colour is not read; the colour blurs are most of the cost).
    Shape: xy (C, R, R) decoded values (:func:`decoded_xy`) -> (3 + NUM_CLASSES, R/scale, R/scale)
    colour and semantic logits."""
    occ, labels, c = _reduced(xy, scale)
    # (without colour the blurs run on one channel of zeros: only where they reach is used)
    src = c if colour else np.zeros(c.shape[:2] + (1,), np.float32)
    grp = _groups(labels)
    texel = 2 * triplane.BOX_HALF / occ.shape[-1]
    sigma = BACK_SIGMA / texel
    hair = occ & (grp == 1)
    other = occ & (grp == 0)
    out_c, out_l = c.copy(), labels.copy()
    if other.any():
        plain = other & (labels == SKIN)
        skin, have_s = _smooth_fill(src, plain if plain.any() else other, sigma, need=other)
        to_hair = np.zeros_like(occ)
        if hair.any():
            hair_c, have_h = _smooth_fill(src, hair, sigma, need=other)
            to_hair = other & have_h & (distance_to(hair) * texel < BACK_HAIR_REACH)
            out_l[to_hair] = HAIR
            if colour:
                out_c[to_hair] = hair_c[to_hair]
        to_skin = other & ~to_hair & have_s
        if colour:
            out_c[to_skin] = skin[to_skin]
        out_l[to_skin & (labels != NECK)] = SKIN
    logits = LOGIT * (2 * F.one_hot(torch.from_numpy(out_l).long(), NUM_CLASSES).permute(2, 0, 1).float() - 1)
    return torch.cat([torch.from_numpy(out_c).permute(2, 0, 1), logits]).to(xy.dtype)


#: texels in from the outline whose steep wall shows the head's inner colour (:func:`wall_texture`),
#: and the blur (texels at 512) of that colour
WALL_REACH, WALL_FILL_SIGMA = 12, 6.0
#: depth (world units) below the front surface from which a point shows the wall texture, and how
#: sharply (1 / world units) it turns to it
WALL_DEPTH, WALL_K = 0.0035, 2000.0


def wall_texture(xy: torch.Tensor, scale: int = 2) -> torch.Tensor:
    """What the steep rim of the head shows from the side: for texels within WALL_REACH of the
    outline, the change (towards the outline, all of it) from their own colour to the smooth
    colour of the texels further in of their class group; zero elsewhere.  The decoder adds it to
    points deeper than WALL_DEPTH below the front surface, which only a ray crossing a steep
    wall reaches before it is opaque: the photo's camera, seeing the front surface, keeps the
    photo's outline colours.

    Why: the rounded outline is steepest at the outline, where the photo saw its texels as a
    pixel or two, half background: stretched over the side of the head at yaw 45 they read as a
    thin light stripe along the outline.  At ``1/scale`` of the plane's resolution (like the back
    half).  Shape: xy (C, R, R) decoded values -> (3, R/scale, R/scale)."""
    from scipy.ndimage import distance_transform_edt

    occ, labels, c = _reduced(xy, scale)
    R = occ.shape[-1]
    d = distance_to(~np.pad(occ, 1))[1:-1, 1:-1]
    reach = max(1.5, WALL_REACH * R / 512)
    rim = occ & (d <= reach)
    if not rim.any():
        return torch.zeros((3, R, R), dtype=xy.dtype)
    # the outline's own texels read as background (the ring that covers the parser's ragged
    # edge): they belong to the part nearest them, hair or face
    bg = labels == BACKGROUND
    if bg.any() and not bg.all():
        _, (iy, ix) = distance_transform_edt(bg, return_indices=True)
        labels = labels[iy, ix]
    amount = np.clip((reach + 1 - d) / reach, 0, 1)
    out = _towards_group_colour(c, _groups(labels), rim, amount, occ & (d > reach), WALL_FILL_SIGMA * R / 512) - c
    return torch.from_numpy(out).permute(2, 0, 1).to(xy.dtype)


def _solid(occupied: torch.Tensor) -> torch.Tensor:
    """``occupied`` with its enclosed holes filled: the head's outline is its outer contour."""
    from scipy.ndimage import binary_fill_holes

    return torch.from_numpy(binary_fill_holes(occupied.numpy()))


#: cosine (normal to the photo's camera) under which a hole inside the head is one the photo
#: did not see (the far side of a turned head behind its nose and cheek), not a gap it saw
HOLE_VIS = 0.1


def fill_unseen_holes(sem: torch.Tensor, vis: torch.Tensor, below: float = HOLE_VIS) -> torch.Tensor:
    """Texels enclosed by the head that read as background although the photo did not see them
    (``vis`` under ``below``) take the labels of the nearest head texel; their colour is then
    made up by :func:`fade_grazing` (they are that grazing).

    Why: the far side of a turned head, where no mirror image fills it, projects onto the
    photo's background beyond the face; read as background it was a hole through the head
    (white, or the backdrop, in a cheek of the frontal view).
    Shapes: sem (classes, R, R) soft labels, vis (R, R) -> (classes, R, R)."""
    from scipy.ndimage import distance_transform_edt

    occ = (sem[BACKGROUND] < 0.5).numpy()
    holes = _solid(torch.from_numpy(occ)).numpy() & ~occ & (vis.numpy() < below)
    if not holes.any():
        return sem
    _, (iy, ix) = distance_transform_edt(~occ, return_indices=True)
    out = sem.clone()
    h = torch.from_numpy(holes)
    out[:, h] = sem[:, torch.from_numpy(iy[holes]), torch.from_numpy(ix[holes])]
    return out


#: a piece of hair apart from the head in the XY plane (8-connected), smaller than this share of
#: the largest piece of the head and mostly a mirror image, is dropped (:func:`drop_mirrored_strands`)
STRAND_SHARE = 0.01


def drop_mirrored_strands(sem: torch.Tensor, mirrored: torch.Tensor, share: float = STRAND_SHARE) -> torch.Tensor:
    """``sem`` without the small pieces of hair apart from the head that are mostly mirror images
    (``mirrored``): the symmetry fill copies a lock or a strand that stands apart on the photo's
    near side to the far side, where the photo shows none, and side views showed the copy
    floating in front of the background (T^com of training hair pairs 12 and 15: pieces of 190
    and 215 texels).  The photo's own strands stay, and so do mirrored ears.
    Shapes: sem (classes, R, R) soft labels, mirrored (R, R) bool -> (classes, R, R)"""
    n, comp, stats, _ = cv2.connectedComponentsWithStats((sem[BACKGROUND] < 0.5).numpy().astype(np.uint8),
                                                         connectivity=8)
    if n <= 2:
        return sem
    size = np.maximum(stats[:, cv2.CC_STAT_AREA], 1)
    share_of = lambda m: np.bincount(comp.ravel(), weights=np.asarray(m, np.float64).ravel(), minlength=n) / size  # noqa: E731
    small = size[1:] < share * size[1:].max()
    gone = 1 + np.nonzero(small & (share_of(mirrored.numpy())[1:] > 0.5)
                          & (share_of((sem.argmax(0) == HAIR).numpy())[1:] > 0.5))[0]
    if gone.size == 0:
        return sem
    drop = torch.from_numpy(np.isin(comp, gone))
    out = sem.clone()
    out[:, drop] = 0.0
    out[BACKGROUND, drop] = 1.0
    return out


#: size of the backdrop texture (the inpainted background is smooth: more texels add nothing)
BACKDROP_SIZE = 256


#: how far (crop px) from the head a background pixel coloured like the hair is taken for hair the
#: parser missed (a frizzy outline, a lock over the shoulder), so the backdrop's fill does not
#: spread it
BACKDROP_STRAYS = 24


def backdrop(crop: np.ndarray, labels: np.ndarray | None, size: int = BACKDROP_SIZE, work: int = 128) -> torch.Tensor:
    """The photo's background with the person removed and filled from the surrounding background
    at ``work`` px: what stands behind the head in orbit views.  The fill is
    :func:`core.fill.texture_fill` (the background's colours continued smoothly, its fine texture
    copied, Poisson-blended into the border), from background pixels a few pixels away from the
    person, in pieces of some size, and not coloured like hair the parser missed beside it.  (Telea inpainting, used
    before, drew any dark pixel at the border into radial smears and a head-sized shadow.)
    Shape: crop uint8 (S, S, 3), labels uint8 (S, S) -> (3, size, size) float in [0, 1]."""
    from triface_studio.core.fill import texture_fill
    from triface_studio.core.masks import grow_by_colour, large_pieces

    small = cv2.resize(np.ascontiguousarray(crop), (work, work), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    if labels is None:
        return torch.from_numpy(cv2.resize(small, (size, size))).permute(2, 0, 1)
    lab = grow_by_colour(np.asarray(crop, np.float32) / 255, labels, HAIR, (BACKGROUND,), BACKDROP_STRAYS)
    fg = cv2.resize((lab != BACKGROUND).astype(np.float32), (work, work), interpolation=cv2.INTER_AREA) > 0
    fg = cv2.dilate(fg.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    # slivers, specks and small pieces of "background" among the clothes or along the crop's edge
    # are the parser's misses: filled, and no source
    bg = cv2.morphologyEx((~fg).astype(np.uint8), cv2.MORPH_OPEN, np.ones((5, 5), np.uint8)) > 0
    bg = large_pieces(bg, int(0.004 * work * work))
    fg = ~bg
    src = cv2.erode(bg.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    if src.sum() < 0.005 * work * work:
        mean = small[bg].mean(0) if bg.any() else small.reshape(-1, 3).mean(0)
        filled = np.broadcast_to(mean, small.shape).astype(np.float32)
    else:
        filled = texture_fill(small, fg, src, valid=bg.astype(np.float32), fallback=np.broadcast_to(
            small[src].mean(0), small.shape))
        # the fill is smooth and the rest sharp: a little blur makes the backdrop read as one
        # out-of-focus background
        filled = cv2.GaussianBlur(filled, (0, 0), 1.2)
    up = cv2.resize(np.clip(filled, 0, 1), (size, size), interpolation=cv2.INTER_LINEAR)
    return torch.from_numpy(np.ascontiguousarray(up, np.float32)).permute(2, 0, 1)


#: a texel whose photo pixel the face mesh says shows a surface point farther than this (world
#: units in the canonical XY plane, ~15 texels at 512) from the texel is hidden in the photo
MESH_HIDDEN = 0.03


def visible_surface(crop_landmarks: np.ndarray, world_landmarks: np.ndarray, size: int) -> np.ndarray:
    """For each pixel of a ``size`` crop, the canonical (x, y) of the face-mesh surface point the
    photo shows there (the mesh nearest the camera wins); NaN off the mesh.

    Why: the lift reads each texel where its height-field point projects; where the photo's face
    is turned, a far-side texel projects onto the nose or near cheek in front of it and would
    take their colours, a second face in side views.  The mesh, with its depths, knows which
    point of the face each pixel shows.  Shapes: (N, 3) crop px + relative depth, (N, 3) world
    -> (size, size, 2) for the crop of ``size`` px the landmarks are in."""
    from scipy.spatial import Delaunay

    lm = np.asarray(crop_landmarks, np.float64)
    w = np.asarray(world_landmarks, np.float64)[:, :2]
    tri = Delaunay(w).simplices                                    # the frontal face, triangulated
    ids = np.full((size, size), -1, np.int32)
    fixed = np.round(lm[:, :2] * 16).astype(np.int32)              # (4 fractional bits)
    for k in np.argsort(-lm[tri, 2].mean(1)):                      # farthest first: nearer overwrite
        cv2.fillConvexPoly(ids, fixed[tri[k]], int(k), lineType=cv2.LINE_8, shift=4)
    out = np.full((size, size, 2), np.nan, np.float32)
    yy, xx = np.nonzero(ids >= 0)
    if not len(yy):
        return out
    t = tri[ids[yy, xx]]                                           # (M, 3) vertex indices
    a, b, c = (lm[t[:, i], :2] for i in range(3))
    p = np.stack([xx + 0.5, yy + 0.5], -1)                         # barycentric in the crop
    v0, v1, v2 = b - a, c - a, p - a
    den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
    den = np.where(np.abs(den) < 1e-9, 1e-9, den)
    l1 = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / den
    l2 = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / den
    l1, l2 = np.clip(l1, 0, 1), np.clip(l2, 0, 1)
    l0 = np.clip(1 - l1 - l2, 0, 1)
    out[yy, xx] = l0[:, None] * w[t[:, 0]] + l1[:, None] * w[t[:, 1]] + l2[:, None] * w[t[:, 2]]
    return out


def _visibility(front: torch.Tensor, pts: torch.Tensor, cam, inside: torch.Tensor) -> torch.Tensor:
    """Cosine between the height field's normal and the direction to the camera; -1 outside
    the photo.  Shape: front (R, R), pts (R, R, 3) -> (R, R)."""
    R = front.shape[-1]
    dzdx = torch.gradient(front, spacing=1.0 / R, dim=1)[0]
    dzdy = torch.gradient(front, spacing=1.0 / R, dim=0)[0]
    normal = torch.stack([-dzdx, -dzdy, torch.ones_like(front)], -1)
    normal = normal / normal.norm(dim=-1, keepdim=True)
    to_cam = cam.origin.view(1, 1, 3) - pts
    to_cam = to_cam / to_cam.norm(dim=-1, keepdim=True)
    vis = (normal * to_cam).sum(-1)
    return torch.where(inside, vis, torch.full_like(vis, -1.0))


def lift(crop: np.ndarray, labels: np.ndarray | None, camera, resolution: int = RESOLUTION,
         landmarks: np.ndarray | None = None) -> tuple[torch.Tensor, dict]:
    """Lift one 512 crop (uint8 (S, S, 3)) with its labels (uint8 (S, S)) seen by ``camera``.

    Shape: -> planes (1, 3, CHANNELS, R, R), info dict (JSON-able)
    """
    R = resolution
    img = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1).float() / 255.0
    S = img.shape[-1]
    small = F.interpolate(img[None], size=(2 * R, 2 * R), mode="area")[0] if S > 2 * R else img
    no_labels = labels is None
    if no_labels:
        labels = np.full(crop.shape[:2], SKIN, np.uint8)
    lab = torch.from_numpy(np.ascontiguousarray(labels)).long()
    # (float one-hot without the int64 one: an edit lifts two photos at once, each peak counts)
    onehot = torch.zeros(NUM_CLASSES, *lab.shape).scatter_(0, lab[None], 1.0)
    if onehot.shape[-2:] != small.shape[-2:]:
        onehot = F.interpolate(onehot[None], size=small.shape[-2:], mode="area")[0]

    shown = None
    if landmarks is not None:
        from triface_studio.models.face.analyzer import canonical_world_landmarks

        world = canonical_world_landmarks(landmarks)
        front, back = face_height_field(world, R)
        shown = torch.from_numpy(visible_surface(landmarks, world, S)).permute(2, 0, 1)
    else:
        front, back = head_height_field(R)
    cam = camera.to(dtype=torch.float32)
    perm = torch.from_numpy(FLIP_PERMUTATION)

    def read(front, mirror=None):
        """Colour and labels at the surface, the far side of a turned head from its mirror image
        (where ``mirror`` says, else where the mirrored texel is seen much better)."""
        pts = triplane.plane_grid(0, R)
        pts[..., 2] = front
        uv, _ = cam.project(pts, 1)
        colour, sem = _read(small, uv), _read(onehot, uv)
        inside = ((uv >= 0) & (uv <= 1)).all(-1)
        vis = _visibility(front, pts, cam, inside)
        if shown is not None:
            # a texel whose photo pixel shows another point of the face is hidden there
            # (hypot of the channels-first read: a norm over the last dim of its permuted view took 48 ms)
            seen_at = _read(shown, uv, mode="nearest")
            hidden = torch.hypot(seen_at[0] - pts[..., 0], seen_at[1] - pts[..., 1]) > MESH_HIDDEN  # (NaN: False)
            vis = torch.where(hidden & inside, torch.full_like(vis, -1.0), vis)
        # symmetry fill: where the mirrored texel is seen better, take it (with flipped classes);
        # only where the mirrored texel is seen well: two grazing rims of a nearly frontal photo keep their own
        m_vis = vis.flip(1)
        use_mirror = (vis < MIRROR_BELOW) & (m_vis > torch.clamp(vis + 0.1, min=0.5))
        if mirror is not None:
            use_mirror = mirror
        weight = (1 - sem[BACKGROUND]) * inside
        if use_mirror.any():        # (a frontal photo mirrors nothing: no blurs or copies for it)
            colour = torch.where(use_mirror, reshade(colour.flip(2), colour, weight * (vis > 0), inside), colour)
            sem = torch.where(use_mirror, sem.flip(2)[perm], sem)
        vis = torch.where(use_mirror, m_vis, vis)
        # texels outside the photo that no mirror fills would repeat the crop's edge (streaks in
        # side views): they stay empty (sem is this read's own tensor: set in place)
        unseen = ~(inside | use_mirror)
        sem[:, unseen] = 0.0
        sem[BACKGROUND, unseen] = 1.0
        if no_labels:
            # without a parser: the head shell's core (face/skull ellipsoid and neck) is the foreground
            core = (front > 0.03).float()
            sem = torch.zeros_like(sem)
            sem[BACKGROUND], sem[SKIN] = 1 - core, core
        return colour, sem, vis, use_mirror

    colour, sem, vis, use_mirror = read(front)
    if not no_labels:
        # round the outline (its enclosed holes are no outline) and read the colours again at the
        # new depth, with the first read's mirror choices; a texel the new depth would move off
        # the photo's head keeps its first read (for a turned photo the far rim moves a lot)
        front, back = round_outline(front, back, _solid(sem[BACKGROUND] < 0.5))
        first = colour, sem, vis
        colour, sem, vis, use_mirror = read(front, use_mirror)
        lost = (first[1][BACKGROUND] < 0.5) & (sem[BACKGROUND] >= 0.5)
        colour, sem, vis = (torch.where(lost, a, b) for a, b in zip(first, (colour, sem, vis)))
        first = None
        sem = fill_unseen_holes(sem, vis)
        sem = drop_mirrored_strands(sem, use_mirror)
    onehot = None               # (read no more: its memory goes before the planes are built)
    fg = 1.0 - sem[BACKGROUND]
    occupied = fg > 0.5
    if not no_labels:
        labels = sem.max(0).indices          # (argmax, ~4x faster on a CPU)
        colour = smooth_wall(fade_grazing(colour, vis, occupied, labels), occupied, labels)
    colour, front, back, occupied = extend_rim(occupied, colour, front, back)
    # parts without volume of their own keep the slab; hair/hat above the skull extends forward a little
    front = torch.where(occupied, front, torch.full_like(front, EMPTY_FRONT))
    back = torch.where(occupied, back, torch.full_like(back, 1.0))

    planes = torch.zeros(1, 3, CHANNELS, R, R)
    planes[0, 0, 0] = front
    planes[0, 0, 1] = -back
    # XZ plane (cols x, rows z) and ZX plane (cols z, rows x): the z ramp
    zx = triplane.plane_grid(1, R)[..., 2]
    zz = triplane.plane_grid(2, R)[..., 2]
    planes[0, 1, 0], planes[0, 1, 1] = -zx / 2, zx / 2
    planes[0, 2, 0], planes[0, 2, 1] = -zz / 2, zz / 2
    planes[0, 0, 2:5] = colour
    # LOGIT * (2 sem - 1), written in place (the same numbers: the factors are powers of two)
    torch.mul(sem, 2 * LOGIT, out=planes[0, 0, 5:]).sub_(LOGIT)
    planes[0, 0] -= xy_prior(R)
    info = {"mirrored_fraction": float((use_mirror & occupied).float().mean()),
            "classes": [int(c) for c in (HAIR, HAT, NECK, CLOTH)]}
    return planes, info
