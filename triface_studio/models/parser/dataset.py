"""celebamask-mini loading, the recorded train/held-out split, and augmentation."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from triface_studio.core.semantics import FLIP_PERMUTATION, NUM_CLASSES


def list_names(data_dir: str | Path) -> list[str]:
    d = Path(data_dir)
    names = sorted(p.stem for p in (d / "images").glob("*.jpg") if (d / "masks" / f"{p.stem}.png").exists())
    if not names:
        raise ValueError(f"{d}: no images/NAME.jpg with masks/NAME.png found")
    return names


def make_split(names: list[str], num_val: int = 120) -> dict[str, list[str]]:
    """Deterministic split: the ``num_val`` names with the smallest sha1 hash are held out."""
    ranked = sorted(names, key=lambda n: hashlib.sha1(n.encode()).hexdigest())
    val = sorted(ranked[:num_val])
    vs = set(val)
    return {"train": [n for n in names if n not in vs], "val": val}


def load_split(path: str | Path) -> dict[str, list[str]]:
    return json.loads(Path(path).read_text())


def load_arrays(data_dir: str | Path, names: list[str], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 3, S, S) uint8 and masks (N, S, S) uint8 resized to ``size``."""
    d = Path(data_dir)
    ims = np.empty((len(names), size, size, 3), np.uint8)
    mks = np.empty((len(names), size, size), np.uint8)
    for i, n in enumerate(names):
        with Image.open(d / "images" / f"{n}.jpg") as im:
            ims[i] = np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR))
        with Image.open(d / "masks" / f"{n}.png") as m:
            mks[i] = np.asarray(m.resize((size, size), Image.NEAREST))
    return torch.from_numpy(ims).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(mks)


_FLIP = torch.from_numpy(FLIP_PERMUTATION)


def augment(images: torch.Tensor, masks: torch.Tensor, gen: torch.Generator,
            max_rot: float = 15.0, scale: tuple[float, float] = (0.85, 1.2)) -> tuple[torch.Tensor, torch.Tensor]:
    """Random flip (with left/right class swap), scale, rotation, shift and colour jitter.
    images (B, 3, S, S) uint8 -> float [0, 1]; masks (B, S, S) uint8 -> int64."""
    b = images.shape[0]
    x = images.float() / 255.0
    m = masks.long()
    flip = torch.rand(b, generator=gen) < 0.5
    if flip.any():
        x[flip] = x[flip].flip(-1)
        m[flip] = _FLIP[m[flip].flip(-1)]
    ang = (torch.rand(b, generator=gen) * 2 - 1) * math.radians(max_rot)
    s = torch.exp(torch.empty(b).uniform_(math.log(scale[0]), math.log(scale[1]), generator=gen))
    t = (torch.rand(b, 2, generator=gen) * 2 - 1) * 0.08
    cos, sin = torch.cos(ang) / s, torch.sin(ang) / s
    theta = torch.stack([torch.stack([cos, -sin, t[:, 0]], 1), torch.stack([sin, cos, t[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    m = F.grid_sample(m[:, None].float(), grid, mode="nearest", padding_mode="zeros",
                      align_corners=False)[:, 0].long()
    # colour: brightness, contrast, saturation, per-channel gain, occasional greyscale
    br = 1 + (torch.rand(b, 1, 1, 1, generator=gen) * 2 - 1) * 0.3
    ct = 1 + (torch.rand(b, 1, 1, 1, generator=gen) * 2 - 1) * 0.3
    gain = 1 + (torch.rand(b, 3, 1, 1, generator=gen) * 2 - 1) * 0.08
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = ((x - mean) * ct + mean) * br * gain
    grey = x.mean(1, keepdim=True)
    sat = torch.rand(b, 1, 1, 1, generator=gen) * 1.3
    sat[torch.rand(b, generator=gen) < 0.1] = 0.0
    x = grey + (x - grey) * sat.clamp(0, 1.3)
    return x.clamp(0, 1), m


def class_weights(masks: torch.Tensor, power: float = 0.5) -> torch.Tensor:
    """Class-balancing weights ~ frequency^-power, normalised to mean 1 over present classes."""
    cnt = torch.bincount(masks.reshape(-1).long(), minlength=NUM_CLASSES).double()
    freq = cnt / cnt.sum()
    w = torch.where(cnt > 0, (freq + 1e-6) ** -power, torch.zeros_like(freq))
    w = w / w[cnt > 0].mean()
    return w.clamp(max=10.0).float()


def repeat_factors(masks: torch.Tensor, threshold: float) -> torch.Tensor:
    """Per-image sampling weights that show rare classes more often (repeat-factor sampling, Gupta
    et al., LVIS 2019): a class in a fraction f_c of the images gets r_c = max(1, sqrt(threshold /
    f_c)), an image the largest r_c of its classes.  ``threshold`` 0 gives every image weight 1."""
    n = masks.shape[0]
    if threshold <= 0:
        return torch.ones(n)
    present = torch.zeros(n, NUM_CLASSES, dtype=torch.bool)
    for c in range(NUM_CLASSES):
        present[:, c] = (masks == c).reshape(n, -1).any(1)
    frac = present.float().mean(0).clamp(min=1.0 / n)
    r_class = (threshold / frac).sqrt().clamp(min=1.0)
    return torch.where(present, r_class, torch.ones_like(r_class)).amax(1)
