"""Semantic-guided tri-plane blending (paper eqs. 7-12).

    M_k^ref  = [S^ref in k]           (reference's semantics, rendered frontally)
    M_-k^id  = [S^id not in k]        (identity's semantics, rendered frontally)
    T^blend  = T^id * (M_-k^id, 1, 1) * (1 - (M_k^ref, 1, 1)) + T^ref * (M_k^ref, 1, 1)

The masks act on the XY plane only: the XZ and ZX planes keep the identity's features (the
"(M, 1, 1)" notation marks which plane a mask multiplies).  Masks are drawn in the frontal
image and resampled onto the XY plane in the plane's orientation by projecting every texel
through the frontal camera (:func:`triface_studio.core.triplane.xy_plane_from_frontal`).
"""

from __future__ import annotations

from typing import Iterable, Sequence

import torch

from . import triplane
from .cameras import Camera
from .masks import class_mask


def plane_mask(frontal_mask, resolution: int, camera: Camera | None = None, depth: float = 0.0) -> torch.Tensor:
    """A mask drawn on the frontal image, resampled onto the XY plane. Shape: (H, W) -> (R, R)"""
    m = torch.as_tensor(frontal_mask).float()
    cam = camera if camera is not None else Camera.frontal()
    return triplane.xy_plane_from_frontal(m, cam, resolution, depth=depth).clamp(0, 1)


def blend(t_id: torch.Tensor, t_ref: torch.Tensor, m_ref_k: torch.Tensor,
          m_id_not_k: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 12 on plane masks.

    Shape: t_id, t_ref (B, 3, C, R, R); m_ref_k, m_id_not_k (R, R) or (B, R, R), in [0, 1]
           -> (B, 3, C, R, R).  ``m_id_not_k=None`` keeps all of the identity outside M_k^ref.
    """
    triplane.check_triplane(t_id)
    if t_ref.shape != t_id.shape:
        raise ValueError(f"tri-planes differ in shape: {tuple(t_id.shape)} vs {tuple(t_ref.shape)}")
    R = t_id.shape[-1]

    def prep(m):
        m = torch.as_tensor(m, dtype=t_id.dtype, device=t_id.device)
        if m.shape[-2:] != (R, R):
            raise ValueError(f"plane mask must be {R}x{R}, got {tuple(m.shape)}")
        return m.reshape(-1, 1, R, R)  # (B or 1, 1(C), R, R)

    mk = prep(m_ref_k)
    keep = torch.ones_like(mk) if m_id_not_k is None else prep(m_id_not_k)
    out = t_id.clone()
    out[:, 0] = t_id[:, 0] * keep * (1 - mk) + t_ref[:, 0] * mk
    return out


def blend_labels(t_id: torch.Tensor, t_ref: torch.Tensor, labels_id, labels_ref, classes: Iterable[int],
                 camera: Camera | None = None, user_mask_ref: torch.Tensor | None = None) -> torch.Tensor:
    """Blend from frontal label maps: builds M_k^ref and M_-k^id, resamples them to the plane
    and applies eq. 12.  ``user_mask_ref`` (frontal, [0, 1]) replaces M_k^ref when given.
    Shape: labels (H, W) int."""
    classes = list(classes)
    mk = class_mask(labels_ref, classes) if user_mask_ref is None else torch.as_tensor(user_mask_ref).float()
    m_not = 1 - class_mask(labels_id, classes)
    R = t_id.shape[-1]
    return blend(t_id, t_ref, plane_mask(mk, R, camera), plane_mask(m_not, R, camera))


def blend_sequence(t_id: torch.Tensor, steps: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]) -> torch.Tensor:
    """Several references applied in order: each step is (t_ref, m_ref_k, m_id_not_k) on the plane;
    every step blends into the result of the previous ones."""
    out = t_id
    for t_ref, mk, m_not in steps:
        out = blend(out, t_ref, mk, m_not)
    return out
