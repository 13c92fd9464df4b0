"""The neural tier: EG3D generator + TriPlaneNet encoder from the user's converted checkpoints.

``NeuralTier.from_checkpoints(folder, device)`` reads every converted checkpoint
(``triface models import``: safetensors with a JSON config) under ``folder``:

* an ``eg3d`` generator (or the ``decoder.*`` generator inside a TriPlaneNet file);
* optionally a ``triplanenet`` encoder (v1 or v2) -- without one, :meth:`encode` inverts the
  photo by optimising the latent ``w`` (slow; says so in the asset's notes);
* optionally trained semantic/RGB decoders (``decoders.safetensors`` from ``triface train
  decoders``) -- with them :meth:`render` also returns semantics.

Rendering follows EG3D: 48 + 48 samples per ray at the neural rendering resolution (128), then
super-resolution to 512 with the latent ``ws`` stored in the asset (a blended asset keeps the
identity's ``ws``), then resizing to the requested resolution.  On CUDA the decoder runs in
float16 (``precision``) and the super-resolution blocks in float16 as EG3D's do; on the CPU
everything works in float32, slowly, with a warning.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from triface_studio.core.asset import TriPlaneAsset
from triface_studio.core.cameras import Camera
from triface_studio.core.rendering import RenderOptions, RenderResult

from ..weights import CheckpointError, is_weights_file, load_safetensors_weights
from .eg3d import EG3DConfig, TriPlaneGenerator, synthesize
from .triplanenet import (EncoderConfig, GradualStyleEncoder, TriPlaneEncoder, encoder_config_from_opts,
                          mirror_camera_label)


class NeuralTierWarning(UserWarning):
    pass


def _resolve_device(device) -> torch.device:
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        warnings.warn("CUDA is not available: the neural tier runs on the CPU (much slower)", NeuralTierWarning,
                      stacklevel=3)
        return torch.device("cpu")
    if dev.type == "cpu":
        warnings.warn("the neural tier runs on the CPU: expect seconds to minutes per render/encode",
                      NeuralTierWarning, stacklevel=3)
    return dev


def _converted_files(folder: Path) -> list[tuple[Path, dict[str, torch.Tensor], dict]]:
    out = []
    for p in sorted(folder.rglob("*.safetensors")):
        if not is_weights_file(p):          # unreadable files are skipped, named below if nothing fits
            continue
        tensors, cfg = load_safetensors_weights(p)
        out.append((p, tensors, cfg))
    return out


class TriPlaneNetEncoder(torch.nn.Module):
    """psp_encoder + triplanenet_encoder of a TriPlaneNet checkpoint (its generator is separate)."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.psp_encoder = GradualStyleEncoder(cfg)
        self.triplanenet_encoder = TriPlaneEncoder(cfg)


class NeuralTier:
    name = "neural"

    def __init__(self, generator: TriPlaneGenerator, encoder: TriPlaneNetEncoder | None = None,
                 latent_avg: torch.Tensor | None = None, device="cpu", semantic_decoder=None,
                 precision: str | None = "auto"):
        self.device = _resolve_device(device)
        self.G = generator.to(self.device).eval().requires_grad_(False)
        self.encoder = None if encoder is None else encoder.to(self.device).eval().requires_grad_(False)
        w_avg = self.G.backbone.mapping.w_avg
        self.latent_avg = (latent_avg if latent_avg is not None else w_avg).to(self.device).float().reshape(-1)
        self.semantic_decoder = semantic_decoder
        if precision == "auto":
            precision = "float16" if self.device.type == "cuda" else None
        self.precision = precision
        rk = self.G.cfg.rendering
        self.render_options = RenderOptions(n_coarse=int(rk["depth_resolution"]),
                                            n_importance=int(rk["depth_resolution_importance"]),
                                            ray_start=float(rk["ray_start"]), ray_end=float(rk["ray_end"]),
                                            box_warp=float(rk["box_warp"]), use_bounds=False, precision=precision)
        self.decoder = self.G.decoder
        self.notes: list[str] = []
        #: optimisation steps of the w-inversion used when no TriPlaneNet encoder is loaded
        self.invert_steps = 100

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_checkpoints(cls, folder=None, device="cpu", precision: str | None = "auto",
                         prefer: str | None = None) -> "NeuralTier":
        """Build the tier from converted checkpoints under ``folder`` (default: the user's
        models folder, :func:`triface_studio.models.paths.user_models_dir`).  When several generators are
        there, one whose path contains ``prefer`` wins (else the first by name); of several
        TriPlaneNet encoders the highest version wins."""
        if folder is None:
            from ..paths import user_models_dir

            folder = user_models_dir()
        folder = Path(folder)
        if not folder.is_dir():
            raise CheckpointError(f"{folder}: no such model folder")
        files = _converted_files(folder)
        if prefer:
            files.sort(key=lambda f: prefer not in str(f[0].relative_to(folder)))
        def is_v2(f) -> bool:
            return f[2].get("kind") == "triplanenet" and "triplanenet_encoder.final_head_two.0.weight" in f[1]

        files.sort(key=lambda f: not is_v2(f))          # stable: v2 encoders first, order kept otherwise
        gen = enc = None
        latent_avg = None
        sem = None
        for p, tensors, cfg in files:
            kind = cfg.get("kind")
            if kind == "eg3d" and gen is None:
                latent_avg = tensors.pop("latent_avg", latent_avg)
                gen = (p, tensors, EG3DConfig.from_dict(cfg["eg3d"]))
            elif kind == "triplanenet" and enc is None:
                enc = (p, tensors, cfg)
            elif kind == "triface-decoders" and sem is None:
                from .decoders import load_decoders

                sem = load_decoders(p)
        if gen is None and enc is not None and any(k.startswith("decoder.") for k in enc[1]):
            dec = {k[len("decoder."):]: v for k, v in enc[1].items() if k.startswith("decoder.")}
            gen = (enc[0], dec, EG3DConfig.from_dict(enc[2].get("eg3d") or {}))
        if gen is None:
            raise CheckpointError(f"{folder}: no converted EG3D generator here; import one with "
                                  "`triface models import ffhq512-128.pkl`")
        G = TriPlaneGenerator(gen[2])
        try:
            G.load_state_dict(gen[1], strict=True)
        except RuntimeError as e:
            raise CheckpointError(f"{gen[0]}: weights do not fit the EG3D generator ({str(e)[:300]})") from None
        encoder = None
        if enc is not None:
            p, tensors, cfg = enc
            ecfg = encoder_config_from_opts(cfg.get("opts") or {}, tensors)
            if "encoder" in cfg:
                ecfg = EncoderConfig.from_dict(cfg["encoder"])
            encoder = TriPlaneNetEncoder(ecfg)
            sd = {k: v for k, v in tensors.items() if k.startswith(("psp_encoder.", "triplanenet_encoder."))}
            try:
                encoder.load_state_dict(sd, strict=True)
            except RuntimeError as e:
                raise CheckpointError(f"{p}: not a TriPlaneNet v{ecfg.version} encoder ({str(e)[:300]})") from None
            latent_avg = tensors.get("latent_avg", latent_avg)
        return cls(G, encoder, latent_avg, device, semantic_decoder=sem, precision=precision)

    # ------------------------------------------------------------------ encoding
    def _image_tensor(self, crop: np.ndarray, size: int) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1)[None].float().to(self.device) / 255
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        return (x - 0.5) / 0.5

    def _synth(self, planes, ws, label):
        cam = [Camera.from_label(lb) for lb in label.cpu()]
        img, _ = synthesize(self.G, planes, ws, [c.to(self.device) for c in cam], options=self.render_options)
        return img

    @torch.no_grad()
    def encode(self, analysis, progress: Callable[[float], None] | None = None) -> TriPlaneAsset:
        """Lift the analysed crop into EG3D's tri-plane space (TriPlaneNet, or latent optimisation)."""
        label = torch.as_tensor(analysis.camera.label(), dtype=torch.float32).reshape(1, 25).to(self.device)
        notes = []
        if self.encoder is None:
            ws, planes = self._invert(analysis.crop, label, progress)
            notes.append("no TriPlaneNet encoder: encoded by optimising w (approximate, slow)")
        else:
            S = self.encoder.cfg.input_size
            x = self._image_tensor(analysis.crop, S)
            codes = self.encoder.psp_encoder(x)
            ws = codes + self.latent_avg.reshape(1, 1, -1)
            planes3 = self.G.planes(ws)                                  # (1, 3, 32, R, R)
            planes0 = planes3.reshape(1, -1, *planes3.shape[-2:])        # EG3D's (1, 96, R, R) layout
            y = F.adaptive_avg_pool2d(self._synth(planes3, ws, label), (S, S))
            if progress:
                progress(0.5)
            if self.encoder.cfg.version == 1:
                off = self.encoder.triplanenet_encoder(torch.cat([y, x - y], 1))
                planes = planes0 + off
            else:
                xm = torch.flip(x, dims=[3])
                ym = F.adaptive_avg_pool2d(self._synth(planes3, ws, mirror_camera_label(label)), (S, S))
                planes = self.encoder.triplanenet_encoder(torch.cat([y, x - y, xm - ym], 1), planes0)
            planes = planes.reshape(1, 3, -1, planes.shape[-2], planes.shape[-1])
            if progress:
                progress(1.0)
        return TriPlaneAsset(planes.float(), "neural", analysis.camera,
                             {"encoder": "optimisation" if self.encoder is None else
                              f"triplanenet-v{self.encoder.cfg.version}", "notes": notes},
                             {"ws": ws.float()})

    def _invert(self, crop, label, progress, lr: float = 0.01):
        steps = self.invert_steps
        size = self.G.cfg.img_resolution
        target = self._image_tensor(crop, size)
        w = self.latent_avg.reshape(1, 1, -1).repeat(1, self.G.num_ws, 1).clone().requires_grad_(True)
        opt = torch.optim.Adam([w], lr=lr)
        with torch.enable_grad():
            for i in range(steps):
                img = self._synth(self.G.planes(w), w, label)
                loss = (img - target).abs().mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                if progress:
                    progress((i + 1) / steps)
        w = w.detach()
        self.last_inversion_loss = float(loss)
        return w, self.G.planes(w)

    # ------------------------------------------------------------------ rendering
    @torch.no_grad()
    def render(self, asset: TriPlaneAsset, camera: Camera, resolution: int, options: RenderOptions | None = None,
               progress: Callable[[float], None] | None = None) -> RenderResult:
        """RGB after super-resolution, resized to ``resolution``; semantics when a trained
        semantic decoder is loaded (else None)."""
        opts = options or self.render_options
        planes = asset.planes.to(self.device, torch.float32)
        ws = asset.tensors.get("ws")
        if ws is None:
            raise ValueError("this tri-plane has no latent ws (not encoded by the neural tier)")
        ws = ws.to(self.device, torch.float32)
        cam = camera.to(self.device)
        img, res = synthesize(self.G, planes, ws, [cam], options=opts, progress=progress)
        rgb = ((img + 1) / 2).clamp(0, 1)
        if rgb.shape[-1] != resolution:
            rgb = F.interpolate(rgb, size=(resolution, resolution), mode="bilinear", align_corners=False,
                                antialias=True)
        opacity = F.interpolate(res.opacity, size=(resolution, resolution), mode="bilinear", align_corners=False)
        depth = F.interpolate(res.depth, size=(resolution, resolution), mode="bilinear", align_corners=False)
        if opts.background is not None:
            bg = torch.tensor(opts.background, dtype=rgb.dtype, device=rgb.device).reshape(1, -1, 1, 1)
            rgb = rgb * opacity + bg * (1 - opacity)
        sem = None
        if self.semantic_decoder is not None:
            from triface_studio.core.rendering import render as core_render

            sres = core_render(planes, self.semantic_decoder.to(self.device).semantic,
                               [cam], resolution, RenderOptions(n_coarse=opts.n_coarse, n_importance=opts.n_importance,
                                                                ray_start=opts.ray_start, ray_end=opts.ray_end,
                                                                use_bounds=False))
            sem = sres.semantics
        return RenderResult(rgb, sem, depth, opacity, res.samples_per_ray, {"neural_resolution": res.rgb.shape[-1]})
