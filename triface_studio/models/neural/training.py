"""Training of the paper's decoders (stage 1) and of the SDEdit score model (stage 2).

Data folder (EG3D's layout plus two optional sub-folders)::

    DIR/dataset.json          {"labels": [["img0001.png", [25 camera numbers]], ...]}  (EG3D format)
    DIR/<image files>         aligned face crops named in dataset.json (or every image in DIR)
    DIR/labels/<stem>.png     19-class parser labels (CelebAMask-HQ order); the project's parser writes them
    DIR/planes/<stem>.safetensors   tri-planes of each photo (TriPlaneAsset files, e.g. from the neural
                                    tier's encoder); needed by stage 1

Stage 1 (``train_decoders``): render the tri-planes with f^c and f^s from the photo's camera
and minimise

    L = L_rec(I, I_hat) + lambda_seg * L_bce(S, S_hat) + lambda_adv * (L_G(D_c) + L_G(D_s))

where L_rec is L1 plus a perceptual distance (LPIPS-VGG when the user gives its weights as a
local file; otherwise the fallback 1 - MS-SSIM, documented in :class:`Perceptual`), L_bce is the
class-balanced cross-entropy of eq. 22 (:func:`balanced_cross_entropy`) and the adversarial
terms are non-saturating logistic losses of D_c on [RGB, semantics] and D_s on semantics
(eqs. 24-27), with the discriminators trained on real [photo, one-hot labels].

Stage 2 (``train_score``): a diffusers UNet2DModel trained by denoising score matching
(eqs. 28-29: predicting the noise eps of x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps is
score matching with s(x_t, t) = -eps / sqrt(1 - abar_t)) under DDPMScheduler's linear betas
1e-4 .. 0.02; saved as ``OUT/unet`` + ``OUT/scheduler``, the folder SDEditRefiner loads.

Both write ``OUT/log.jsonl`` (one JSON object per logged step), keep a resumable state
(``OUT/train_state.pt``, read back with ``weights_only=True``), seed every generator from
``seed`` and stop after ``max_steps``.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from triface_studio.core.cameras import Camera
from triface_studio.core.files import atomic_path
from triface_studio.core.rendering import RenderOptions, render
from triface_studio.core.semantics import NUM_CLASSES

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


class TrainingError(ValueError):
    """Bad training data or settings (user-facing message)."""


# ---------------------------------------------------------------------------------- data
@dataclass
class Sample:
    name: str
    image: torch.Tensor          # (3, S, S) in [0, 1]
    camera: torch.Tensor         # (25,)
    labels: torch.Tensor | None  # (S, S) long
    planes: torch.Tensor | None  # (3, C, R, R)


def _read_image(path: Path, size: int) -> torch.Tensor:
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        if im.size != (size, size):
            im = im.resize((size, size), Image.BICUBIC)
        a = np.asarray(im, dtype=np.float32) / 255
    return torch.from_numpy(a).permute(2, 0, 1).contiguous()


def _read_labels(path: Path, size: int) -> torch.Tensor:
    from PIL import Image

    with Image.open(path) as im:
        if im.size != (size, size):
            im = im.resize((size, size), Image.NEAREST)
        a = np.asarray(im)
    if a.ndim == 3:
        a = a[..., 0]
    if a.max() >= NUM_CLASSES:
        raise TrainingError(f"{path}: label ids must be < {NUM_CLASSES}")
    return torch.from_numpy(a.astype(np.int64))


def load_dataset(data_dir: str | Path, resolution: int, need_labels: bool = False,
                 need_planes: bool = False) -> list[Sample]:
    d = Path(data_dir)
    if not d.is_dir():
        raise TrainingError(f"{d}: no such data folder")
    entries: list[tuple[str, list[float] | None]]
    meta = d / "dataset.json"
    if meta.is_file():
        try:
            labels = json.loads(meta.read_text())["labels"]
            entries = [(str(n), list(c) if c is not None else None) for n, c in labels]
        except (ValueError, KeyError, TypeError) as e:
            raise TrainingError(f"{meta}: not an EG3D dataset.json ({e})") from None
    else:          # a plain folder of photos, or one with images/ inside (as the parser trainer takes)
        def photos(folder):
            return [(str(p.relative_to(d)), None) for p in sorted(folder.iterdir())
                    if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]

        entries = photos(d) or (photos(d / "images") if (d / "images").is_dir() else [])
    if not entries:
        raise TrainingError(f"{d}: no images (looked for photos in it and in {d / 'images'})")
    out = []
    for name, cam in entries:
        p = d / name
        if not p.is_file():
            raise TrainingError(f"{p}: listed in dataset.json but missing")
        stem = Path(name).stem
        lab = d / "labels" / f"{stem}.png"
        pl = d / "planes" / f"{stem}.safetensors"
        if need_labels and not lab.is_file():
            raise TrainingError(f"{lab}: parser labels missing (stage 1 needs labels/<name>.png for every photo)")
        if need_planes and not pl.is_file():
            raise TrainingError(f"{pl}: tri-planes missing (stage 1 needs planes/<name>.safetensors for every photo)")
        if need_planes and cam is None:
            raise TrainingError(f"{d}: stage 1 needs camera labels in dataset.json")
        planes = None
        if need_planes:
            from triface_studio.core.asset import TriPlaneAsset

            planes = TriPlaneAsset.load(pl).planes[0].float()
        camera = torch.tensor(cam, dtype=torch.float32) if cam is not None else Camera.frontal().label()
        out.append(Sample(stem, _read_image(p, resolution), camera,
                          _read_labels(lab, resolution) if need_labels else None, planes))
    return out


def _batch(samples: list[Sample], idx: list[int]):
    s = [samples[i] for i in idx]
    img = torch.stack([x.image for x in s])
    cams = torch.stack([x.camera for x in s])
    labels = torch.stack([x.labels for x in s]) if s[0].labels is not None else None
    planes = torch.stack([x.planes for x in s]) if s[0].planes is not None else None
    return img, cams, labels, planes


# ---------------------------------------------------------------------------------- losses
def balanced_cross_entropy(probs: torch.Tensor, labels: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Eq. 22: cross-entropy with per-class weights w_k = 1 / (K' * f_k), f_k the fraction of
    pixels of class k in the batch and K' the number of classes present, so every present class
    contributes equally whatever its area (absent classes get weight 0).

    Shape: probs (B, K, H, W) probabilities, labels (B, H, W) long -> scalar
    """
    K = probs.shape[1]
    counts = torch.bincount(labels.reshape(-1), minlength=K).float()
    present = counts > 0
    freq = counts / counts.sum()
    w = torch.where(present, 1.0 / (present.sum() * freq.clamp_min(eps)), torch.zeros_like(freq))
    logp = torch.log(probs.clamp_min(eps))
    nll = -logp.gather(1, labels[:, None])[:, 0]                          # (B, H, W)
    return (w[labels] * nll).mean()


def _gauss(size: int, sigma: float, device, dtype) -> torch.Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    return g / g.sum()


def ssim(x: torch.Tensor, y: torch.Tensor, window: int = 7, sigma: float = 1.5, cs_only: bool = False):
    """SSIM (or its contrast-structure term) of images in [0, 1], mean over pixels. Shape: (B, C, H, W)."""
    C = x.shape[1]
    win = min(window, x.shape[-1], x.shape[-2])
    g = _gauss(win, sigma, x.device, x.dtype)
    k = (g[:, None] * g[None, :])[None, None].repeat(C, 1, 1, 1)

    def f(t):
        return F.conv2d(t, k, groups=C)

    mx, my = f(x), f(y)
    sxx, syy, sxy = f(x * x) - mx ** 2, f(y * y) - my ** 2, f(x * y) - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    if cs_only:
        return cs.mean()
    return ((2 * mx * my + c1) / (mx ** 2 + my ** 2 + c1) * cs).mean()


def ms_ssim(x: torch.Tensor, y: torch.Tensor, scales: int = 3) -> torch.Tensor:
    """Multi-scale SSIM (product of contrast-structure terms over scales, SSIM at the coarsest)."""
    weights = torch.tensor([0.0448, 0.2856, 0.3001, 0.2363, 0.1333][:scales], device=x.device)
    weights = weights / weights.sum()
    vals = []
    for s in range(scales):
        last = s == scales - 1 or min(x.shape[-2:]) < 8
        vals.append(ssim(x, y, cs_only=not last).clamp_min(1e-4))
        if last:
            weights = weights[:len(vals)] / weights[:len(vals)].sum()
            break
        x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    return torch.prod(torch.stack(vals) ** weights)


class VGG16Features(torch.nn.Module):
    """torchvision's VGG16 ``features`` layout (indices match its state_dict names)."""

    CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
    TAPS = (3, 8, 15, 22, 29)          # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3

    def __init__(self):
        super().__init__()
        layers, ch = [], 3
        for v in self.CFG:
            if v == "M":
                layers.append(torch.nn.MaxPool2d(2, 2))
            else:
                layers += [torch.nn.Conv2d(ch, v, 3, padding=1), torch.nn.ReLU()]
                ch = v
        self.features = torch.nn.Sequential(*layers)

    def forward(self, x):
        outs = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.TAPS:
                outs.append(x)
        return outs


class Perceptual(torch.nn.Module):
    """L_rec's perceptual term.

    With ``weights`` (a local safetensors or tensor-only .pth file, or several, holding
    torchvision's ``features.N.*`` VGG16 weights and LPIPS's ``linK.model.1.weight``), this is
    LPIPS-VGG.  Without weights it falls back to ``1 - MS-SSIM`` (3 scales, 7 px Gaussian
    window): no download, a structural rather than learned perceptual distance.
    """

    SHIFT = (-0.030, -0.088, -0.188)
    SCALE = (0.458, 0.448, 0.450)

    def __init__(self, weights: list[str | Path] | None = None):
        super().__init__()
        self.kind = "ms-ssim"
        if weights:
            sd: dict[str, torch.Tensor] = {}
            for p in weights:
                sd.update(_load_tensor_file(p))
            self.vgg = VGG16Features()
            chans = (64, 128, 256, 512, 512)
            self.lins = torch.nn.ModuleList(torch.nn.Conv2d(c, 1, 1, bias=False) for c in chans)
            vsd = {k: v for k, v in sd.items() if k.startswith("features.")}
            try:
                self.vgg.load_state_dict(vsd, strict=True)
                for k in range(5):
                    self.lins[k].weight.data.copy_(sd[f"lin{k}.model.1.weight"])
            except (RuntimeError, KeyError) as e:
                raise TrainingError(f"perceptual weights: expected torchvision VGG16 features.* and LPIPS "
                                    f"lin0..lin4 tensors ({str(e)[:200]})") from None
            self.requires_grad_(False)
            self.register_buffer("shift", torch.tensor(self.SHIFT).view(1, 3, 1, 1))
            self.register_buffer("scale", torch.tensor(self.SCALE).view(1, 3, 1, 1))
            self.kind = "lpips-vgg"

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x, y in [0, 1], (B, 3, H, W) -> scalar distance."""
        if self.kind == "ms-ssim":
            return 1 - ms_ssim(x, y)
        fx = self.vgg(((x * 2 - 1) - self.shift) / self.scale)
        fy = self.vgg(((y * 2 - 1) - self.shift) / self.scale)
        total = 0
        for k, (a, b) in enumerate(zip(fx, fy)):
            a = a / (a.square().sum(1, keepdim=True).sqrt() + 1e-10)
            b = b / (b.square().sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + self.lins[k]((a - b) ** 2).mean()
        return total


def _load_tensor_file(path) -> dict[str, torch.Tensor]:
    p = Path(path)
    if not p.is_file():
        raise TrainingError(f"{p}: perceptual weights file not found")
    if p.suffix == ".safetensors":
        from triface_studio.core.files import SafetensorsError, read_safetensors

        try:
            return read_safetensors(p)[0]
        except SafetensorsError as e:
            raise TrainingError(str(e)) from None
    try:
        sd = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise TrainingError(f"{p}: not a tensor-only weights file ({type(e).__name__})") from None
    if not isinstance(sd, dict):
        raise TrainingError(f"{p}: expected a state dict")
    return sd


def d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating logistic discriminator loss (eqs. 25, 27)."""
    return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()


def g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator side (eqs. 24, 26)."""
    return F.softplus(-fake_logits).mean()


# ---------------------------------------------------------------------------------- helpers
def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


class _Log:
    def __init__(self, path: Path):
        self.path = path

    def write(self, **rec):
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")


def _save_state(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _load_state(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise TrainingError(f"{path}: cannot resume from this state file ({type(e).__name__}: {e})") from None


@dataclass
class DecoderTrainConfig:
    resolution: int = 64          # render / photo resolution during training
    batch_size: int = 4
    lr: float = 2e-3
    d_lr: float = 2e-3
    lambda_perc: float = 1.0
    lambda_seg: float = 1.0
    lambda_adv: float = 0.05
    hidden: int = 64
    feature_dim: int = 64
    n_coarse: int = 24
    n_importance: int = 24
    log_every: int = 10
    ckpt_every: int = 100


def train_decoders(data_dir, out_dir, max_steps: int, cfg: DecoderTrainConfig = DecoderTrainConfig(), seed: int = 0,
                   device="cpu", perceptual: list[str] | None = None, resume: bool = True,
                   progress: Callable[[float], None] | None = None) -> dict:
    """Stage 1. Returns a summary dict (steps, last losses, files)."""
    from .decoders import Discriminator, SemanticRGBDecoders, load_decoders, save_decoders

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(device)
    gen = seed_everything(seed)
    data = load_dataset(data_dir, cfg.resolution, need_labels=True, need_planes=True)
    C = data[0].planes.shape[1]
    model = SemanticRGBDecoders(C, cfg.hidden, cfg.feature_dim).to(dev)
    d_c = Discriminator(3 + NUM_CLASSES, cfg.resolution).to(dev)
    d_s = Discriminator(NUM_CLASSES, cfg.resolution).to(dev)
    opt_g = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.0, 0.99))
    opt_d = torch.optim.Adam(list(d_c.parameters()) + list(d_s.parameters()), lr=cfg.d_lr, betas=(0.0, 0.99))
    perc = Perceptual(perceptual).to(dev)
    step = 0
    state = _load_state(out / "train_state.pt") if resume else None
    if state is not None:
        if state.get("stage") != "decoders":
            raise TrainingError(f"{out}: holds a {state.get('stage')!r} run, not decoders")
        model.load_state_dict(load_decoders(out / "decoders.safetensors").state_dict())
        d_c.load_state_dict(state["d_c"])
        d_s.load_state_dict(state["d_s"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        step = int(state["step"])
        gen.manual_seed(seed + step)
    log = _Log(out / "log.jsonl")
    opts = RenderOptions(n_coarse=cfg.n_coarse, n_importance=cfg.n_importance, perturb=True, use_bounds=False,
                         semantic_background=True)
    last = {}
    start = step
    while step < max_steps:
        idx = torch.randint(len(data), (min(cfg.batch_size, len(data)),), generator=gen).tolist()
        img, cams, labels, planes = (t.to(dev) if t is not None else None for t in _batch(data, idx))
        cameras = [Camera.from_label(c) for c in cams.cpu()]
        cameras = [c.to(dev) for c in cameras]
        rgb = render(planes, model.rgb, cameras, cfg.resolution, opts).rgb[:, :3]
        sem = render(planes, model.semantic, cameras, cfg.resolution, opts).semantics
        sem = sem / sem.sum(1, keepdim=True).clamp_min(1e-6)
        real_onehot = F.one_hot(labels, NUM_CLASSES).permute(0, 3, 1, 2).float()
        # discriminators
        l_d = d_loss(d_c(torch.cat([img, real_onehot], 1)), d_c(torch.cat([rgb, sem], 1).detach())) + \
            d_loss(d_s(real_onehot), d_s(sem.detach()))
        opt_d.zero_grad(set_to_none=True)
        l_d.backward()
        opt_d.step()
        # decoders
        l_rec = (rgb - img).abs().mean() + cfg.lambda_perc * perc(rgb, img)
        l_seg = balanced_cross_entropy(sem, labels)
        l_adv = g_loss(d_c(torch.cat([rgb, sem], 1))) + g_loss(d_s(sem))
        loss = l_rec + cfg.lambda_seg * l_seg + cfg.lambda_adv * l_adv
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
        step += 1
        last = {"step": step, "loss": loss.item(), "rec": l_rec.item(), "seg": l_seg.item(), "adv": l_adv.item(),
                "d": l_d.item(), "perceptual": perc.kind}
        if not all(math.isfinite(v) for k, v in last.items() if isinstance(v, float)):
            raise TrainingError(f"training diverged at step {step}: {last}")
        if step % cfg.log_every == 0 or step == max_steps or step == start + 1:
            log.write(**last)
        if step % cfg.ckpt_every == 0 or step == max_steps:
            save_decoders(model, out / "decoders.safetensors", {"step": step, "seed": seed})
            _save_state(out / "train_state.pt", {"stage": "decoders", "step": step, "d_c": d_c.state_dict(),
                                                 "d_s": d_s.state_dict(), "opt_g": opt_g.state_dict(),
                                                 "opt_d": opt_d.state_dict()})
        if progress:
            progress(step / max_steps)
    return {"steps": step, "last": last, "files": ["decoders.safetensors", "train_state.pt", "log.jsonl"]}


@dataclass
class ScoreTrainConfig:
    resolution: int = 64
    batch_size: int = 16
    lr: float = 2e-4
    block_out_channels: tuple[int, ...] = (64, 128, 128, 256)
    layers_per_block: int = 2
    num_train_timesteps: int = 1000
    log_every: int = 10
    ckpt_every: int = 500


def make_unet(cfg: ScoreTrainConfig):
    from diffusers import UNet2DModel

    n = len(cfg.block_out_channels)
    groups = math.gcd(*cfg.block_out_channels) if n > 1 else cfg.block_out_channels[0]
    return UNet2DModel(sample_size=cfg.resolution, in_channels=3, out_channels=3, layers_per_block=cfg.layers_per_block,
                       block_out_channels=tuple(cfg.block_out_channels), down_block_types=("DownBlock2D",) * n,
                       up_block_types=("UpBlock2D",) * n, norm_num_groups=min(32, groups))


def train_score(data_dir, out_dir, max_steps: int, cfg: ScoreTrainConfig = ScoreTrainConfig(), seed: int = 0,
                device="cpu", resume: bool = True, progress: Callable[[float], None] | None = None) -> dict:
    """Stage 2: denoising score matching of a UNet2DModel on the photos (random x-flips)."""
    from diffusers import DDPMScheduler, UNet2DModel

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(device)
    gen = seed_everything(seed)
    data = load_dataset(data_dir, cfg.resolution)
    images = torch.stack([s.image for s in data]) * 2 - 1
    sched = DDPMScheduler(num_train_timesteps=cfg.num_train_timesteps, beta_start=1e-4, beta_end=0.02,
                          beta_schedule="linear")
    state = _load_state(out / "train_state.pt") if resume else None
    if state is not None:
        if state.get("stage") != "score":
            raise TrainingError(f"{out}: holds a {state.get('stage')!r} run, not score")
        unet = UNet2DModel.from_pretrained(str(out / "unet"), use_safetensors=True)
    else:
        unet = make_unet(cfg)
    unet = unet.to(dev).train()
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.lr)
    step = 0
    if state is not None:
        opt.load_state_dict(state["opt"])
        step = int(state["step"])
        gen.manual_seed(seed + step)
    abar = sched.alphas_cumprod.to(dev)
    log = _Log(out / "log.jsonl")
    last = {}
    start = step
    while step < max_steps:
        idx = torch.randint(len(images), (min(cfg.batch_size, len(images)),), generator=gen)
        x0 = images[idx].to(dev)
        flip = torch.rand(len(idx), generator=gen) < 0.5
        x0 = torch.where(flip.to(dev)[:, None, None, None], x0.flip(3), x0)
        t = torch.randint(0, cfg.num_train_timesteps, (len(idx),), generator=gen).to(dev)
        eps = torch.randn(x0.shape, generator=gen).to(dev)
        a = abar[t].view(-1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
        loss = F.mse_loss(unet(xt, t).sample, eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        last = {"step": step, "loss": loss.item()}
        if not math.isfinite(last["loss"]):
            raise TrainingError(f"training diverged at step {step}")
        if step % cfg.log_every == 0 or step == max_steps or step == start + 1:
            log.write(**last)
        if step % cfg.ckpt_every == 0 or step == max_steps:
            unet.save_pretrained(str(out / "unet"), safe_serialization=True)
            sched.save_pretrained(str(out / "scheduler"))
            _save_state(out / "train_state.pt", {"stage": "score", "step": step, "opt": opt.state_dict()})
        if progress:
            progress(step / max_steps)
    return {"steps": step, "last": last, "files": ["unet", "scheduler", "train_state.pt", "log.jsonl"]}
