"""Coarse-to-fine 2D compositing of the paper (eqs. 13-20), on float images in [0, 1].

Shapes: images (H, W, 3) or (B, 3, H, W) tensors; masks (H, W) or (B, 1, H, W) -- the two
layouts are not mixed within one call.  With HWC images, masks are (H, W).
"""

from __future__ import annotations

import torch

from .masks import dilate, gaussian_blur


def _m(mask: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Broadcast a mask against an image of either layout."""
    if image.ndim == 3 and mask.ndim == 2:      # HWC image
        return mask[..., None]
    return mask


def coarse_composite(i_id: torch.Tensor, i_ref_hat: torch.Tensor, m_k: torch.Tensor, m_bg: torch.Tensor) -> torch.Tensor:
    """Eq. 13: I^coarse = I^id * M_-bg * M_-k + I^ref_hat * M_k."""
    mk, mbg = _m(m_k, i_id), _m(m_bg, i_id)
    return i_id * (1 - mbg) * (1 - mk) + i_ref_hat * mk


def gap_mask(m_k_blend: torch.Tensor, m_bg_blend: torch.Tensor, m_k_id: torch.Tensor) -> torch.Tensor:
    """Eqs. 15-16: pixels the identity's region k covered that the blended head no longer
    covers with k yet are not background: M_gap = M_k^id * (1 - M_k^blend) * (1 - M_bg^blend)."""
    return (m_k_id * (1 - m_k_blend) * (1 - m_bg_blend)).clamp(0, 1)


def mean_colour(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean colour of ``image`` inside ``mask`` (eq. 17's mean skin colour). -> (3,) or (B, 3)"""
    if image.ndim == 3:
        w = mask.reshape(-1, 1)
        return (image.reshape(-1, 3) * w).sum(0) / w.sum().clamp_min(1e-6)
    w = mask
    return (image * w).sum((2, 3)) / w.sum((2, 3)).clamp_min(1e-6)


def fill_gaps(image: torch.Tensor, m_gap: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
    """Eq. 17: put ``colour`` into the gap pixels."""
    mg = _m(m_gap, image)
    c = colour.view(1, 1, 3) if image.ndim == 3 else colour.view(-1, 3, 1, 1)
    return image * (1 - mg) + c * mg


def sde_mask(m_k: torch.Tensor, m_gap: torch.Tensor, radius: int = 9, sigma: float = 4.0) -> torch.Tensor:
    """Eq. 18: M^sde = Blur(Dilate(M_k u M_gap))."""
    return gaussian_blur(dilate(torch.maximum(m_k, m_gap), radius), sigma).clamp(0, 1)


def refine_blend(i_refined: torch.Tensor, i_coarse: torch.Tensor, m_sde: torch.Tensor) -> torch.Tensor:
    """Eq. 19's masking: keep the coarse image outside M^sde."""
    m = _m(m_sde, i_coarse)
    return i_refined * m + i_coarse * (1 - m)


def final_composite(i_refine: torch.Tensor, m_bg: torch.Tensor, i_bg: torch.Tensor) -> torch.Tensor:
    """Eq. 20: I^com = I^refine * M_-bg + I^bg * M_bg."""
    mbg = _m(m_bg, i_refine)
    return i_refine * (1 - mbg) + i_bg * mbg
