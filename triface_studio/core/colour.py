"""Colour statistics and transfers (float RGB in [0, 1], (H, W, 3)).

- :func:`stats` / :func:`transfer`: Reinhard-style transfer of a region's CIELAB mean and
  spread towards a target distribution.
- :func:`white_balance_gain`: the per-channel gain (von Kries, in linear RGB) that takes one
  photo's illuminant to another's, each estimated by the shades-of-grey rule (Finlayson &
  Trezzi 2004: the Minkowski p-norm of the pixels, p = 6), normalised to keep luminance.
"""

from __future__ import annotations

import cv2
import numpy as np


def to_lab(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(img, dtype=np.float32), cv2.COLOR_RGB2Lab)


def from_lab(lab: np.ndarray) -> np.ndarray:
    return np.clip(cv2.cvtColor(np.ascontiguousarray(lab, dtype=np.float32), cv2.COLOR_Lab2RGB), 0, 1)


def stats(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Mean and standard deviation (Lab) of ``image`` where ``mask`` > 0.5, or None when fewer
    than 16 pixels are selected."""
    sel = np.asarray(mask) > 0.5
    if sel.sum() < 16:
        return None
    lab = to_lab(image)[sel]
    return lab.mean(0), lab.std(0) + 1e-3


def transfer(image: np.ndarray, region: np.ndarray, target: tuple[np.ndarray, np.ndarray] | None,
             strength: float = 0.8) -> np.ndarray:
    """Move the Lab colour distribution of ``image`` inside ``region`` (soft, (H, W)) towards
    ``target`` (mean, std) by a per-channel affine map (Reinhard-style transfer)."""
    src = stats(image, region)
    if src is None or target is None:
        return image
    lab = to_lab(image)
    m_s, s_s = src
    m_t, s_t = target
    scale = np.clip(s_t / s_s, 0.5, 2.0)
    moved = (lab - m_s) * scale + m_t
    w = np.clip(region, 0, 1)[..., None] * float(strength)
    return from_lab(lab * (1 - w) + moved * w)


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0, 1)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0, 1)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1 / 2.4) - 0.055)


def illuminant(image: np.ndarray, p: float = 6.0) -> np.ndarray:
    """Shades-of-grey illuminant estimate of an image: the p-norm mean of each linear channel,
    normalised to unit sum. -> (3,)"""
    lin = srgb_to_linear(np.asarray(image, np.float32)).reshape(-1, 3).astype(np.float64)
    if len(lin) == 0:
        return np.full(3, 1 / 3, np.float32)
    e = np.power(np.mean(np.power(lin, p), 0), 1.0 / p) + 1e-6
    return (e / e.sum()).astype(np.float32)


def white_balance_gain(source: np.ndarray, target: np.ndarray, strength: float = 0.5,
                       limit: float = 1.15) -> np.ndarray:
    """Per-channel gain, to apply in linear RGB, that moves a part of ``source``'s photo to
    ``target``'s illuminant (each estimated on the pixels given, e.g. each person's skin,
    whose chromaticity varies far less between people than between lights); luminance-neutral,
    ``strength`` of the way, each channel within [1/limit, limit]. -> (3,) float32"""
    g = illuminant(target) / illuminant(source)
    g = g / float(0.2126 * g[0] + 0.7152 * g[1] + 0.0722 * g[2])
    g = np.power(g, strength)
    return np.clip(g, 1 / limit, limit).astype(np.float32)


def apply_gain(image: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """``image`` (sRGB) with a linear-RGB per-channel ``gain``."""
    return linear_to_srgb(srgb_to_linear(image) * np.asarray(gain, np.float32)).astype(np.float32)


def dye(image: np.ndarray, region: np.ndarray, source: np.ndarray, target: np.ndarray,
        target_image: np.ndarray | None = None, target_mask: np.ndarray | None = None,
        detail_sigma: float = 2.0) -> np.ndarray:
    """Recolour ``image`` inside ``region`` (soft, (H, W)) so that the pixels of ``source``
    (bool (H, W): e.g. a person's hair) take the colour of ``target`` ((N, 3) RGB pixels: e.g.
    another person's hair).  CIELAB lightness: its broad shading (a blur of ``detail_sigma``
    px) by an affine map to the target's mean and spread (gain within [0.5, 2.5]: black hair
    with crushed shadows has almost no spread, and a quantile map would throw its faint
    highlights to the target's brightest); its fine detail (the strands) scaled to the
    contrast of the same detail in ``target_image`` inside ``target_mask`` when given (gain
    within [1, 3]), so dark hair made light keeps its texture; the result within 5 units of the
    target's 1st-99th percentiles.  a and b: moved to the target's mean, the image's own variation
    never amplified.  Shape: (H, W, 3) -> (H, W, 3)"""
    sel = np.asarray(source, bool)
    tgt = np.asarray(target, np.float32).reshape(-1, 3)
    if sel.sum() < 16 or len(tgt) < 16:
        return np.asarray(image, np.float32)
    lab = to_lab(image)
    t = to_lab(tgt[None])[0]
    low = cv2.GaussianBlur(lab[..., 0], (0, 0), detail_sigma)
    hf = lab[..., 0] - low
    gain_low = float(np.clip(t[:, 0].std() / (low[sel].std() + 1e-3), 0.5, 2.5))
    gain_hf = 1.0
    if target_image is not None and target_mask is not None and np.asarray(target_mask).sum() >= 16:
        lt_img = to_lab(target_image)[..., 0]
        t_hf = (lt_img - cv2.GaussianBlur(lt_img, (0, 0), detail_sigma))[np.asarray(target_mask, bool)]
        gain_hf = float(np.clip(t_hf.std() / (hf[sel].std() + 1e-3), 1.0, 3.0))
    moved = lab.copy()
    lo, hi = np.percentile(t[:, 0], (1, 99)) + np.array([-5.0, 5.0])
    moved[..., 0] = np.clip((low - low[sel].mean()) * gain_low + t[:, 0].mean() + gain_hf * hf, lo, hi)
    scale = np.clip((t[:, 1:].std(0) + 1e-3) / (lab[sel][:, 1:].std(0) + 1e-3), 0.3, 1.0)
    moved[..., 1:] = (lab[..., 1:] - lab[sel][:, 1:].mean(0)) * scale + t[:, 1:].mean(0)
    w = np.clip(np.asarray(region, np.float32), 0, 1)[..., None]
    return from_lab(lab * (1 - w) + moved * w)


def mix_share(image: np.ndarray, fg: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """How much of colour ``fg`` each pixel holds when it is a mix of ``fg`` and ``bg`` (RGB
    (3,) each; e.g. hair over skin along a hairline): the pixel's CIELAB position projected on
    the line from ``bg`` to ``fg``, in [0, 1].  Shape: (H, W, 3) -> (H, W) float32"""
    lab = to_lab(image)
    f = to_lab(np.asarray(fg, np.float32).reshape(1, 1, 3))[0, 0]
    b = to_lab(np.asarray(bg, np.float32).reshape(1, 1, 3))[0, 0]
    d = f - b
    t = ((lab - b) @ d) / max(float(d @ d), 1e-6)
    return np.clip(t, 0.0, 1.0).astype(np.float32)


def unmix(image: np.ndarray, alpha: np.ndarray, background: np.ndarray, floor: float = 0.25) -> np.ndarray:
    """The foreground colour of pixels that are a mix of a layer and what was behind it:
    ``image = alpha * fg + (1 - alpha) * background`` solved for ``fg`` (RGB, linear in the
    pixel values as a camera mixes a thin frame with the skin behind it), so the layer laid over
    another background does not bring its old one along.  Below ``floor`` the division is
    capped there (a weak alpha is more often an estimate's error than a faint layer).
    Shape: (H, W, 3), (H, W), (H, W, 3) -> (H, W, 3) float32 in [0, 1]"""
    img = np.asarray(image, np.float32)
    bg = np.asarray(background, np.float32)
    a = np.maximum(np.asarray(alpha, np.float32), floor)[..., None]
    return np.clip(bg + (img - bg) / a, 0.0, 1.0).astype(np.float32)


def relight(image: np.ndarray, region: np.ndarray, source_around: np.ndarray, target_around: np.ndarray,
            max_ratio: float = 2.0) -> np.ndarray:
    """``image`` inside ``region`` (weights in [0, 1]) moved from one photo's light to another's,
    keeping how it stands against its surroundings: CIELAB lightness as a ratio to the
    surroundings' (``source_around``: the typical Lab colour, e.g. the median, of what surrounded
    it in its own photo), a/b as an offset from them (scaled down for pixels under half the
    surroundings' lightness, as light scales colour), both put onto ``target_around`` (the same
    of what surrounds it now).  E.g. lips redder and darker than the skin around them stay so
    on a paler or warmer face, instead of keeping the other photo's colour.  The lightness ratio
    is clipped to [1/max_ratio, max_ratio].  Shape: (H, W, 3) RGB in [0, 1], (H, W), (3,), (3,) -> (H, W, 3)"""
    img = np.asarray(image, np.float32)
    w = np.clip(np.asarray(region, np.float32), 0, 1)[..., None]
    if w.max() <= 0:
        return img
    src, dst = np.asarray(source_around, np.float32), np.asarray(target_around, np.float32)
    lab = to_lab(img)
    moved = lab.copy()
    moved[..., 0] = lab[..., 0] * float(np.clip(dst[0] / max(src[0], 1.0), 1.0 / max_ratio, max_ratio))
    # the colour shift whole down to half the surroundings' lightness, less below: a change of
    # light and white balance scales colours (von Kries), so a near-black pixel moves little;
    # one offset for all turned a near-black brow blue on a cooler face than its own
    share = np.clip(lab[..., :1] / max(0.5 * float(src[0]), 1.0), 0.0, 1.0)
    moved[..., 1:] = lab[..., 1:] + (dst[1:] - src[1:]) * share
    return np.where(w > 0, from_lab(lab * (1 - w) + moved * w), img).astype(np.float32)


def even_light(image: np.ndarray, region: np.ndarray, sigma: float = 24.0, keep: float = 0.4) -> np.ndarray:
    """``image`` inside ``region`` with its broad highlights evened out: where the CIELAB
    lightness smoothed over ``sigma`` px within the region (a backlit half) is above the
    region's median, it is moved down towards it, ``keep`` of the rise left; detail finer than
    ``sigma`` (strands, their sheen) stays as it is, and so do shadows (lifted, a dark parting
    became a grey blur).  The photo a part was cut from lit it its own way; on another person's
    head a blown-out half reads as a pale patch.  (The smoothing is the normalised convolution
    of :func:`triface_studio.core.fill.local_fill`, at full size: only one channel is needed.)
    Shape: (H, W, 3) RGB in [0, 1], (H, W) weights in [0, 1] -> (H, W, 3) float32"""
    img = np.asarray(image, np.float32)
    w = np.clip(np.asarray(region, np.float32), 0, 1)
    sel = w > 0.5
    if sel.sum() < 64:
        return img
    lab = to_lab(img)
    m = sel.astype(np.float32)
    low = cv2.GaussianBlur(lab[..., 0] * m, (0, 0), sigma) / np.maximum(cv2.GaussianBlur(m, (0, 0), sigma), 1e-3)
    moved = lab.copy()
    moved[..., 0] = lab[..., 0] - np.maximum(low - float(np.median(lab[..., 0][sel])), 0.0) * (1.0 - keep)
    return np.where(w[..., None] > 0, from_lab(lab * (1 - w[..., None]) + moved * w[..., None]), img).astype(np.float32)
