"""Immutable request objects and the result of one edit."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Union

import numpy as np

Background = Union[Literal["identity", "reference", "transparent"], tuple]


@dataclass(frozen=True)
class ReferenceSpec:
    """One reference portrait and the attributes to take from it.

    ``user_mask`` (float32 (H, W) in [0, 1]) is painted on the reference's 512 px crop and
    refines the predicted region with ``mask_mode`` (replace | add | subtract); a mask of
    another size is resized (with a notice in the result's notes).
    """

    image: Any                      # np.ndarray uint8 (H, W, 3) or a path
    attributes: tuple[str, ...]
    name: str = ""
    user_mask: np.ndarray | None = None
    mask_mode: str = "add"


@dataclass(frozen=True)
class RefineSettings:
    """Refinement of the coarse composite inside M^sde (eqs. 18-19).

    ``dilate_radius``/``blur_sigma`` shape M^sde = Blur(Dilate(M_k u M_gap)); ``t0``, ``steps``,
    ``repeats`` and ``score_model`` (a diffusers folder) are used by the SDEdit refiner only.
    """

    refiner: str = "classical"
    dilate_radius: int = 9
    blur_sigma: float = 4.0
    t0: float = 0.5
    steps: int = 50
    repeats: int = 1
    score_model: str | None = None


@dataclass(frozen=True)
class EditRequest:
    """Everything one edit needs.  ``identity_mask`` protects parts of the identity (see the
    field).  ``background``: "identity" (default), "reference",
    "transparent" or an (r, g, b) colour in [0, 1] or 0-255.  ``render_resolution`` is the
    resolution T^blend is rendered at before upsampling to the 512 px crop."""

    identity: Any                   # np.ndarray uint8 (H, W, 3) or a path
    references: list = field(default_factory=list)
    identity_name: str = ""
    #: painted on the identity's 512 px crop (float32 (H, W) in [0, 1], or uint8): where it is 1
    #: the identity's pixels are protected -- kept exactly, whatever the references bring
    identity_mask: Any = None
    refine: RefineSettings = RefineSettings()
    background: Background = "identity"
    seed: int = 0
    device: str = "cpu"
    tier: str = "bundled"
    render_resolution: int = 256


@dataclass
class EditResult:
    """What one edit produced.

    Shape: s_blend uint8 (512, 512) labels; coarse, refined float32 (512, 512, 3) in [0, 1];
    composite uint8 (512, 512, 3) (I^com); composite_full uint8 (H, W, 3) (pasted into the
    identity's photo); gap_mask, sde_mask, edit_region float32 (512, 512); alpha float32
    (512, 512) foreground opacity (used for transparent backgrounds) or None.
    """

    t_blend: Any
    t_com: Any
    s_blend: np.ndarray
    coarse: np.ndarray
    refined: np.ndarray
    composite: np.ndarray
    composite_full: np.ndarray
    gap_mask: np.ndarray
    sde_mask: np.ndarray
    edit_region: np.ndarray
    timings: dict
    notes: list
    identity: Any
    references: list
    request: EditRequest | None = None
    alpha: np.ndarray | None = None
    s_blend_probs: np.ndarray | None = None
