"""Training loop for the bundled face parser (CPU-friendly; seed and config saved with the weights)."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from triface_studio.core.semantics import CLASS_NAMES, NUM_CLASSES
from triface_studio.models.parser import dataset as ds
from triface_studio.models.parser.network import ParserNet


@dataclass
class TrainConfig:
    size: int = 128
    width: int = 16
    batch: int = 8
    lr: float = 3e-3
    weight_decay: float = 1e-4
    max_steps: int = 6000
    eval_every: int = 250
    num_val: int = 120
    seed: int = 0
    threads: int = 2
    class_weight_power: float = 0.5
    dice_weight: float = 0.5
    #: repeat-factor sampling threshold (0: uniform); see dataset.repeat_factors
    repeat_threshold: float = 0.0
    #: the weights training started from (a file name), or None from scratch
    init: str | None = None


def save_model(model: ParserNet, path: Path, config: TrainConfig, metrics: dict | None = None) -> None:
    from safetensors.torch import save_file

    meta = {"config": json.dumps(asdict(config)), "classes": json.dumps(list(CLASS_NAMES)),
            "format": "triface-parser-v1"}
    if metrics is not None:
        meta["metrics"] = json.dumps(metrics)
    tmp = path.with_suffix(".tmp")
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(tmp), metadata=meta)
    tmp.replace(path)


@torch.no_grad()
def evaluate(model: ParserNet, images: torch.Tensor, masks_full: torch.Tensor, size: int,
             batch: int = 16) -> dict:
    """Per-class IoU over the whole set (intersections and unions summed), logits upsampled to the
    masks' resolution.  images (N, 3, s, s) uint8 at the model size; masks_full (N, H, W) uint8."""
    model.eval()
    inter = torch.zeros(NUM_CLASSES, dtype=torch.float64)
    union = torch.zeros(NUM_CLASSES, dtype=torch.float64)
    for i in range(0, len(images), batch):
        x = images[i:i + batch].float() / 255.0
        y = masks_full[i:i + batch].long()
        logits = F.interpolate(model(x), size=y.shape[-2:], mode="bilinear", align_corners=False)
        p = logits.argmax(1)
        for c in range(NUM_CLASSES):
            pc, yc = p == c, y == c
            inter[c] += (pc & yc).sum().item()
            union[c] += (pc | yc).sum().item()
    model.train()
    iou = {CLASS_NAMES[c]: (float(inter[c] / union[c]) if union[c] > 0 else None) for c in range(NUM_CLASSES)}
    vals = [v for v in iou.values() if v is not None]
    return {"miou": float(np.mean(vals)), "iou": iou}


def train(data_dir: str | Path, out_dir: str | Path, config: TrainConfig | None = None,
          split_path: str | Path | None = None, log: Callable[[str], None] = print,
          time_budget_s: float | None = None, init_path: str | Path | None = None) -> dict:
    """Train from scratch, or from the weights in ``init_path`` (a parser .safetensors of the same
    width) with a fresh warm-up and cosine schedule.  Returns the best held-out metrics."""
    cfg = config or TrainConfig()
    if init_path is not None:
        cfg = replace(cfg, init=Path(init_path).name)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    names = ds.list_names(data_dir)
    split = ds.load_split(split_path) if split_path else ds.make_split(names, cfg.num_val)
    (out / "split.json").write_text(json.dumps(split, indent=1))
    log(f"train {len(split['train'])} images, held out {len(split['val'])}; config {asdict(cfg)}")
    tr_x, tr_y = ds.load_arrays(data_dir, split["train"], cfg.size)
    va_x, _ = ds.load_arrays(data_dir, split["val"], cfg.size)
    _, va_full = ds.load_arrays(data_dir, split["val"], 512)
    va_y = F.interpolate(va_full[:, None].float(), size=(256, 256), mode="nearest")[:, 0].to(torch.uint8)
    weights = ds.class_weights(tr_y, cfg.class_weight_power)
    repeat = ds.repeat_factors(tr_y, cfg.repeat_threshold)
    if cfg.repeat_threshold > 0:
        log(f"repeat-factor sampling: {int((repeat > 1).sum())} images shown up to {repeat.max():.1f}x as often")
    model = ParserNet(cfg.width)
    if init_path is not None:
        from triface_studio.core.files import read_safetensors

        model.load_state_dict(read_safetensors(init_path)[0])
        log(f"starting from {init_path}")
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    best = {"miou": -1.0}
    history = []
    t0 = time.time()
    warm = 100
    for step in range(1, cfg.max_steps + 1):
        frac = step / cfg.max_steps
        lr = cfg.lr * min(1.0, step / warm) * 0.5 * (1 + math.cos(math.pi * frac))
        for g in opt.param_groups:
            g["lr"] = lr
        if cfg.repeat_threshold > 0:
            idx = torch.multinomial(repeat, cfg.batch, replacement=True, generator=gen)
        else:
            idx = torch.randint(0, len(tr_x), (cfg.batch,), generator=gen)
        x, y = ds.augment(tr_x[idx], tr_y[idx], gen)
        logits = model(x)
        loss = F.cross_entropy(logits, y, weight=weights)
        if cfg.dice_weight > 0:
            prob = logits.softmax(1)
            onehot = F.one_hot(y, NUM_CLASSES).permute(0, 3, 1, 2).float()
            num = (prob * onehot).sum((0, 2, 3))
            den = (prob + onehot).sum((0, 2, 3))
            present = onehot.sum((0, 2, 3)) > 0
            dice = 1 - (2 * num + 1) / (den + 1)
            loss = loss + cfg.dice_weight * dice[present].mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        last = step == cfg.max_steps or (time_budget_s is not None and time.time() - t0 > time_budget_s)
        if step % cfg.eval_every == 0 or last:
            m = evaluate(model, va_x, va_y, cfg.size)
            m.update(step=step, seconds=round(time.time() - t0, 1), loss=loss.item())
            history.append({"step": step, "miou": m["miou"]})
            log(f"step {step} loss {loss.item():.3f} val mIoU {m['miou']:.4f} ({m['seconds']} s)")
            save_model(model, out / "last.safetensors", cfg, m)
            if m["miou"] > best["miou"]:
                best = m
                save_model(model, out / "parser.safetensors", cfg, m)
                (out / "metrics.json").write_text(json.dumps(m, indent=1))
        if last:
            break
    return best
