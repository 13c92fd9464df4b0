"""Masked SDEdit refinement with a diffusers score model (paper eqs. 28-31).

The coarse composite is diffused to time ``t0`` (a fraction of the schedule), then denoised in
``steps`` ancestral DDPM steps (strided through the scheduler's ``alphas_cumprod``).  After each
step the pixels outside the mask are replaced by the coarse image re-noised to the same time,
so only the masked region is regenerated and it stays consistent with its surroundings.  With
``repeats`` K > 1 the procedure runs again from its own result.  The model folder is either a
``UNet2DModel.save_pretrained`` folder (optionally with a ``scheduler`` sub-folder) or a
``DDPMPipeline`` folder with ``unet/`` and ``scheduler/``; without a scheduler the paper's
linear betas 1e-4 .. 0.02 over 1000 steps are used.

Cancellation: ``progress`` is called after every denoising step; an exception raised there
(``pipeline.errors.Cancelled``) propagates unchanged.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F


class ScoreModelError(ValueError):
    """The score-model folder is missing or not a diffusers UNet2DModel."""


def default_scheduler():
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")


def load_score_model(model_dir: str | Path, device="cpu"):
    """(UNet2DModel in eval mode, DDPMScheduler) from a folder."""
    from diffusers import DDPMScheduler, UNet2DModel

    d = Path(model_dir)
    if not d.is_dir():
        raise ScoreModelError(f"{d}: score model folder not found")
    unet_dir = d / "unet" if (d / "unet" / "config.json").is_file() else d
    if not (unet_dir / "config.json").is_file():
        raise ScoreModelError(f"{d}: not a diffusers UNet2DModel folder (no config.json)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            unet = UNet2DModel.from_pretrained(str(unet_dir), use_safetensors=True)
    except Exception as e:  # diffusers raises several kinds
        raise ScoreModelError(f"{d}: cannot load the UNet2DModel ({type(e).__name__}: {e})") from None
    sched = None
    for sd in (d / "scheduler", unet_dir / "scheduler"):
        if (sd / "scheduler_config.json").is_file():
            sched = DDPMScheduler.from_pretrained(str(sd))
            break
    if sched is None:
        sched = default_scheduler()
    return unet.to(device).eval().requires_grad_(False), sched


class SDEditRefiner:
    """Refiner protocol implementation (see the module doc)."""

    def __init__(self, model_dir, device="cpu", t0: float = 0.5, steps: int = 50, repeats: int = 1,
                 dtype: torch.dtype | None = None):
        if not 0 < t0 <= 1:
            raise ValueError(f"t0 must be in (0, 1], got {t0}")
        if steps < 1 or repeats < 1:
            raise ValueError("steps and repeats must be at least 1")
        self.device = torch.device(device)
        self.unet, self.scheduler = load_score_model(model_dir, self.device)
        if dtype is None:
            dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        self.dtype = dtype
        if dtype != torch.float32:
            self.unet.to(dtype)
        self.t0, self.steps, self.repeats = t0, steps, repeats
        self.abar = self.scheduler.alphas_cumprod.to(self.device, torch.float64)
        size = self.unet.config.sample_size
        self.size = size if isinstance(size, int) else int(size[0])

    def timesteps(self) -> list[int]:
        T = len(self.abar)
        top = max(1, min(T - 1, int(round(self.t0 * T)) - 1))
        ts = np.linspace(top, 0, self.steps + 1 if self.steps > 1 else 2).round().astype(int)
        return sorted(set(ts.tolist()), reverse=True)

    def _eps(self, x: torch.Tensor, t: int) -> torch.Tensor:
        tt = torch.full((x.shape[0],), t, device=self.device, dtype=torch.long)
        return self.unet(x.to(self.dtype), tt).sample.to(torch.float64)

    def _noised(self, x0: torch.Tensor, t: int, g: torch.Generator) -> torch.Tensor:
        a = self.abar[t]
        return a.sqrt() * x0 + (1 - a).sqrt() * torch.randn(x0.shape, generator=g, device=self.device,
                                                           dtype=torch.float64)

    @torch.no_grad()
    def refine(self, image: np.ndarray, mask: np.ndarray, *, seed: int = 0,
               progress: Callable[[float], None] | None = None) -> np.ndarray:
        """Shape: image (H, W, 3) float in [0, 1], mask (H, W) in [0, 1] -> (H, W, 3) float32."""
        image = np.asarray(image, dtype=np.float32)
        mask = np.asarray(mask, dtype=np.float32)
        if image.ndim != 3 or image.shape[2] != 3 or mask.shape != image.shape[:2]:
            raise ValueError(f"image must be (H, W, 3) and mask (H, W); got {image.shape} and {mask.shape}")
        if not mask.any():
            return image.copy()
        g = torch.Generator(device=self.device).manual_seed(int(seed))
        img = torch.from_numpy(image).permute(2, 0, 1)[None].to(self.device, torch.float64)
        m_full = torch.from_numpy(mask)[None, None].to(self.device, torch.float64)
        S = self.size
        x0 = F.interpolate(img, size=(S, S), mode="bilinear", align_corners=False, antialias=True) * 2 - 1
        m = F.interpolate(m_full, size=(S, S), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)
        ts = self.timesteps()
        total = self.repeats * len(ts)
        done = 0
        coarse = x0
        for _ in range(self.repeats):
            x = self._noised(coarse, ts[0], g)
            for i, t in enumerate(ts):
                eps = self._eps(x, t)
                a_t = self.abar[t]
                x0_hat = ((x - (1 - a_t).sqrt() * eps) / a_t.sqrt()).clamp(-1, 1)
                if i + 1 < len(ts):
                    s = ts[i + 1]
                    a_s = self.abar[s]
                    beta = 1 - a_t / a_s
                    mean = (a_s.sqrt() * beta / (1 - a_t)) * x0_hat + ((1 - beta).sqrt() * (1 - a_s) / (1 - a_t)) * x
                    var = (1 - a_s) / (1 - a_t) * beta
                    x = mean + var.sqrt() * torch.randn(x.shape, generator=g, device=self.device, dtype=x.dtype)
                    x = m * x + (1 - m) * self._noised(coarse, s, g)
                else:
                    x = m * x0_hat + (1 - m) * coarse
                done += 1
                if progress is not None:
                    progress(done / total)
            coarse = x
        refined = F.interpolate((coarse + 1) / 2, size=image.shape[:2], mode="bilinear", align_corners=False)
        out = refined.clamp(0, 1) * m_full + img * (1 - m_full)
        return out[0].permute(1, 2, 0).cpu().numpy().astype(np.float32)
