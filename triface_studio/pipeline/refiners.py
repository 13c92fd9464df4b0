"""Refiners of the coarse composite (paper eq. 19), behind one small protocol.

The classical refiner needs no learned weights: it fills holes by Poisson (membrane)
interpolation, harmonises the colour of the pasted region with a target colour distribution
(the reference photo's pixels of the attribute), and feathers the seams between pasted and
kept pixels.  The SDEdit refiner lives with the neural models
(:class:`triface_studio.models.neural.sdedit.SDEditRefiner`) and is imported lazily.
"""

from __future__ import annotations

from typing import Callable, Protocol, runtime_checkable

import cv2
import numpy as np

from .errors import EditError


@runtime_checkable
class Refiner(Protocol):
    def refine(self, image: np.ndarray, mask: np.ndarray, *, seed: int = 0,
               progress: Callable[[float], None] | None = None) -> np.ndarray: ...


def _rgb_to_lab(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(img, dtype=np.float32), cv2.COLOR_RGB2Lab)


def _lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    return np.clip(cv2.cvtColor(np.ascontiguousarray(lab, dtype=np.float32), cv2.COLOR_Lab2RGB), 0, 1)


def colour_stats(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Mean and standard deviation (Lab) of ``image`` (float (H, W, 3) in [0, 1]) where
    ``mask`` > 0.5, or None when fewer than 16 pixels are selected."""
    sel = np.asarray(mask) > 0.5
    if sel.sum() < 16:
        return None
    lab = _rgb_to_lab(image)[sel]
    return lab.mean(0), lab.std(0) + 1e-3


def harmonise(image: np.ndarray, region: np.ndarray, target: tuple[np.ndarray, np.ndarray],
              strength: float = 0.8) -> np.ndarray:
    """Move the Lab colour distribution of ``image`` inside ``region`` (soft, (H, W)) towards
    ``target`` (mean, std) by a per-channel affine map (Reinhard-style transfer)."""
    src = colour_stats(image, region)
    if src is None:
        return image
    lab = _rgb_to_lab(image)
    m_s, s_s = src
    m_t, s_t = target
    scale = np.clip(s_t / s_s, 0.5, 2.0)
    moved = (lab - m_s) * scale + m_t
    w = np.clip(region, 0, 1)[..., None] * float(strength)
    return _lab_to_rgb(lab * (1 - w) + moved * w)


def local_fill(image: np.ndarray, source: np.ndarray, sigma: float = 24.0, work: int = 128,
               prior: float = 0.02) -> np.ndarray:
    """A smooth colour map that continues ``image``'s colours inside ``source`` (e.g. skin)
    everywhere: normalised convolution (blur(I * S) + p m) / (blur(S) + p), computed at ``work``
    px, where m is the mean colour over ``source``: far from the source it fades into m
    (continuously: a hard switch would leave a step where the blurred weight runs out)."""
    H, W = source.shape
    small = cv2.resize(image * source[..., None], (work, work), interpolation=cv2.INTER_AREA)
    w = cv2.resize(source.astype(np.float32), (work, work), interpolation=cv2.INTER_AREA)
    s = sigma * work / max(H, W)
    num = cv2.GaussianBlur(small, (0, 0), s)
    den = cv2.GaussianBlur(w, (0, 0), s)[..., None]
    total = float(w.sum())
    mean = small.reshape(-1, 3).sum(0) / max(total, 1e-6)
    out = (num + prior * mean) / (den + prior)
    return cv2.resize(out.astype(np.float32), (W, H), interpolation=cv2.INTER_LINEAR)


def poisson_fill(image: np.ndarray, holes: np.ndarray, fill: np.ndarray | None = None,
                 valid: np.ndarray | None = None) -> np.ndarray:
    """Fill ``holes`` ((H, W) bool) by Poisson blending: inside the holes the result has the
    gradients of ``fill`` (default: flat, i.e. Laplace's equation) and meets the surrounding
    pixels exactly at the hole's border.  Border pixels outside ``valid`` (e.g. hair next to a
    skin gap) take ``fill``'s value instead, so their colour does not bleed into the hole.

    The result is ``fill`` plus a harmonic correction c: 4 c_p - sum of c over p's neighbours
    in the hole = sum over its neighbours outside the hole of (image - fill), solved directly
    (sparse LU, the three channels share one factorisation).  At the image's edge a missing
    neighbour is left out (a free boundary).
    """
    holes = np.asarray(holes, dtype=bool)
    if not holes.any():
        return image
    if holes.all():                  # no border to meet (and a singular system): the fill as it is
        return np.asarray(image if fill is None else fill, np.float32)
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import splu

    img = np.asarray(image, np.float32)
    H, W = holes.shape
    if fill is None:
        base = np.zeros_like(img)
    else:
        base = np.asarray(fill, np.float32)
    diff = img - base
    if fill is not None and valid is not None:
        diff = np.where(np.asarray(valid)[..., None] > 0.5, diff, 0.0)
    ys, xs = np.nonzero(holes)
    n = len(ys)
    index = np.full((H, W), -1, np.int64)
    index[ys, xs] = np.arange(n)
    diag = np.zeros(n)
    rhs = np.zeros((n, img.shape[2]))
    rows, cols = [], []
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        ny, nx = ys + dy, xs + dx
        inside = (ny >= 0) & (ny < H) & (nx >= 0) & (nx < W)
        diag += inside
        ok = np.nonzero(inside)[0]
        nb = index[ny[ok], nx[ok]]
        in_hole = nb >= 0
        rows.append(ok[in_hole])
        cols.append(nb[in_hole])
        edge = ok[~in_hole]
        rhs[edge] += diff[ny[edge], nx[edge]]
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    a = coo_matrix((np.concatenate([diag, -np.ones(len(rows))]),
                    (np.concatenate([np.arange(n), rows]), np.concatenate([np.arange(n), cols]))), shape=(n, n))
    # the matrix is symmetric: a minimum-degree ordering of A^T + A factors it ~1.5x faster
    corr = splu(a.tocsc(), permc_spec="MMD_AT_PLUS_A", options={"SymmetricMode": True}).solve(rhs)
    out = img.copy()
    out[ys, xs] = base[ys, xs] + corr.astype(np.float32)
    return np.clip(out, 0.0, 1.0)


def feather(image: np.ndarray, seams: np.ndarray, sigma: float = 1.2) -> np.ndarray:
    """Soften the image along ``seams`` (soft (H, W) band) with a small Gaussian blur."""
    if not np.any(seams > 0):
        return image
    blurred = cv2.GaussianBlur(image, (0, 0), sigma)
    b = np.clip(seams, 0, 1)[..., None]
    return image * (1 - b) + blurred * b


class ClassicalRefiner:
    """Refinement without learned weights.

    ``refine(image, mask)`` alone feathers nothing and returns the image inside ``mask``
    harmonised with nothing -- the pipeline passes what it knows about the composite:
    ``holes`` (gap pixels to fill), ``seams`` (band along the pasted region's border),
    ``region`` and ``target`` (colour statistics the pasted region should have), ``fill`` (a
    smooth skin colour map for the holes) and ``valid`` (pixels whose colour may continue into
    the holes).
    """

    def __init__(self, harmonise_strength: float = 0.8, feather_sigma: float = 1.2):
        self.harmonise_strength = harmonise_strength
        self.feather_sigma = feather_sigma

    def refine(self, image: np.ndarray, mask: np.ndarray, *, seed: int = 0,
               progress: Callable[[float], None] | None = None, holes: np.ndarray | None = None,
               seams: np.ndarray | None = None, region: np.ndarray | None = None,
               target: tuple[np.ndarray, np.ndarray] | None = None, fill: np.ndarray | None = None,
               valid: np.ndarray | None = None) -> np.ndarray:
        img = np.asarray(image, dtype=np.float32)
        out = img
        if region is not None and target is not None and self.harmonise_strength > 0:
            out = harmonise(out, region, target, self.harmonise_strength)
        if progress is not None:
            progress(0.33)
        if holes is not None:
            out = poisson_fill(out, holes > 0.5, fill, valid)
        if progress is not None:
            progress(0.66)
        if seams is not None:
            out = feather(out, seams, self.feather_sigma)
        if progress is not None:
            progress(1.0)
        m = np.clip(np.asarray(mask, dtype=np.float32), 0, 1)[..., None]
        return (out * m + img * (1 - m)).astype(np.float32)


def make_refiner(settings, device: str = "cpu") -> Refiner:
    """The refiner a :class:`RefineSettings` names."""
    if settings.refiner == "classical":
        return ClassicalRefiner()
    if settings.refiner == "sdedit":
        if not settings.score_model:
            raise EditError("the SDEdit refiner needs a score model folder (--score-model DIR, a diffusers "
                            "UNet2DModel + scheduler)")
        try:
            from triface_studio.models.neural.sdedit import SDEditRefiner
        except ImportError as e:
            raise EditError(f"the SDEdit refiner is not available in this installation ({e})") from None
        try:
            return SDEditRefiner(settings.score_model, device=device, t0=settings.t0, steps=settings.steps,
                                 repeats=settings.repeats)
        except (ValueError, OSError) as e:  # ScoreModelError is a ValueError naming the folder
            raise EditError(f"SDEdit refiner: {e}") from None
    raise EditError(f"unknown refiner {settings.refiner!r}; use classical or sdedit")
