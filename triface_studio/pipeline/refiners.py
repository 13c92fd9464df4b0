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

from triface_studio.core import colour
from triface_studio.core.fill import poisson_fill

from .errors import EditError
from .requests import REFINERS


@runtime_checkable
class Refiner(Protocol):
    def refine(self, image: np.ndarray, mask: np.ndarray, *, seed: int = 0,
               progress: Callable[[float], None] | None = None) -> np.ndarray: ...


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
            out = colour.transfer(out, region, target, self.harmonise_strength)
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
    raise EditError(f"unknown refiner {settings.refiner!r}; use {' or '.join(REFINERS)}")
