"""Optional loader for the public BiSeNet face-parsing checkpoint (``79999_iter.pth``: ResNet-18
context path, BiSeNet class order) that a user supplies.  Read with ``torch.load(weights_only=True)``
(never unpickled); labels are mapped to the CelebAMask-HQ order with ``core.semantics.from_bisenet``."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from triface_studio.core.semantics import NUM_CLASSES, TO_BISENET


class ConvBNReLU(nn.Module):
    def __init__(self, cin, cout, k=3, s=1, p=1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, s, p, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        r = F.relu(self.bn1(self.conv1(x)))
        r = self.bn2(self.conv2(r))
        sc = x if self.downsample is None else self.downsample(x)
        return F.relu(sc + r)


class ResNet18(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)

        def layer(cin, cout, stride):
            return nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1))

        self.layer1, self.layer2 = layer(64, 64, 1), layer(64, 128, 2)
        self.layer3, self.layer4 = layer(128, 256, 2), layer(256, 512, 2)

    def forward(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        f8 = self.layer2(self.layer1(x))
        f16 = self.layer3(f8)
        return f8, f16, self.layer4(f16)


class AttentionRefinement(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = ConvBNReLU(cin, cout)
        self.conv_atten = nn.Conv2d(cout, cout, 1, bias=False)
        self.bn_atten = nn.BatchNorm2d(cout)

    def forward(self, x):
        f = self.conv(x)
        a = torch.sigmoid(self.bn_atten(self.conv_atten(f.mean((2, 3), keepdim=True))))
        return f * a


class ContextPath(nn.Module):
    def __init__(self):
        super().__init__()
        self.resnet = ResNet18()
        self.arm16, self.arm32 = AttentionRefinement(256, 128), AttentionRefinement(512, 128)
        self.conv_head32, self.conv_head16 = ConvBNReLU(128, 128), ConvBNReLU(128, 128)
        self.conv_avg = ConvBNReLU(512, 128, 1, 1, 0)

    def forward(self, x):
        f8, f16, f32 = self.resnet(x)
        avg = self.conv_avg(f32.mean((2, 3), keepdim=True))
        s32 = self.arm32(f32) + F.interpolate(avg, size=f32.shape[2:], mode="nearest")
        up32 = self.conv_head32(F.interpolate(s32, size=f16.shape[2:], mode="nearest"))
        s16 = self.arm16(f16) + up32
        up16 = self.conv_head16(F.interpolate(s16, size=f8.shape[2:], mode="nearest"))
        return f8, up16, up32


class FeatureFusion(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.convblk = ConvBNReLU(cin, cout, 1, 1, 0)
        self.conv1 = nn.Conv2d(cout, cout // 4, 1, bias=False)
        self.conv2 = nn.Conv2d(cout // 4, cout, 1, bias=False)

    def forward(self, fsp, fcp):
        f = self.convblk(torch.cat([fsp, fcp], 1))
        a = torch.sigmoid(self.conv2(F.relu(self.conv1(f.mean((2, 3), keepdim=True)))))
        return f * a + f


class BiSeNetOutput(nn.Module):
    def __init__(self, cin, cmid, n):
        super().__init__()
        self.conv = ConvBNReLU(cin, cmid)
        self.conv_out = nn.Conv2d(cmid, n, 1, bias=False)

    def forward(self, x):
        return self.conv_out(self.conv(x))


class BiSeNet(nn.Module):
    """The face-parsing BiSeNet layout (parameter names as in ``79999_iter.pth``)."""

    def __init__(self, n_classes: int = NUM_CLASSES):
        super().__init__()
        self.cp = ContextPath()
        self.ffm = FeatureFusion(256, 256)
        self.conv_out = BiSeNetOutput(256, 256, n_classes)
        self.conv_out16 = BiSeNetOutput(128, 64, n_classes)
        self.conv_out32 = BiSeNetOutput(128, 64, n_classes)

    def forward(self, x):
        f8, cp8, _ = self.cp(x)
        out = self.conv_out(self.ffm(f8, cp8))
        return F.interpolate(out, size=x.shape[2:], mode="bilinear", align_corners=True)


_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


class BiSeNetParser:
    """``parse(crop uint8 (S,S,3)) -> uint8 (S,S)`` in the CelebAMask-HQ order; ``logits(crop, out)``
    (19, out, out) with the channels already in the CelebAMask-HQ order.  ``size`` is the network's
    input side (512 as trained; smaller is faster and coarser)."""

    name = "bisenet"

    def __init__(self, model: BiSeNet, device: str = "cpu", size: int = 512):
        self.model = model.to(device).eval()
        self.device, self.size = device, size
        self._lock = threading.Lock()

    @torch.no_grad()
    def logits(self, crop: np.ndarray, out_size: int | tuple[int, int] | None = None) -> torch.Tensor:
        """Shape: crop (S, S, 3) uint8 -> (19, H, W) float, CelebAMask-HQ channel order, at ``out_size``
        (default the crop's size)."""
        a = np.asarray(crop)
        if a.ndim != 3 or a.shape[2] != 3:
            raise ValueError(f"the parser takes an RGB crop (S, S, 3), got shape {a.shape}")
        x = torch.from_numpy(np.array(a, np.float32)).permute(2, 0, 1)[None] / 255.0
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="area" if a.shape[0] > self.size else "bilinear")
        x = ((x - _MEAN) / _STD).to(self.device)
        with self._lock:
            y = self.model(x)
        out = a.shape[:2] if out_size is None else (
            (out_size, out_size) if isinstance(out_size, int) else tuple(out_size))
        if tuple(y.shape[-2:]) != tuple(out):
            y = F.interpolate(y, size=out, mode="bilinear", align_corners=False)
        return y[0, torch.from_numpy(TO_BISENET)]

    @torch.no_grad()
    def parse(self, crop: np.ndarray) -> np.ndarray:
        return self.logits(crop).max(0).indices.to(torch.uint8).cpu().numpy()


def checked_state(state, model: nn.Module, name: str) -> dict[str, torch.Tensor]:
    """The tensors of ``model``'s layout taken from a loaded state dict (``module.`` prefixes and a
    ``{"state_dict": ...}`` wrapper removed); ``ValueError`` naming ``name`` when one is missing or
    has another shape."""
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{name}: expected a state dict of tensors")
    state = {str(k).removeprefix("module."): v for k, v in state.items()}
    own = model.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    if missing:
        raise ValueError(f"{name}: not a face-parsing BiSeNet checkpoint (missing {len(missing)} tensors, "
                         f"e.g. {missing[0]})")
    bad = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if bad:
        raise ValueError(f"{name}: tensor {bad[0]} has shape {tuple(state[bad[0]].shape)}, expected "
                         f"{tuple(own[bad[0]].shape)}")
    return {k: state[k] for k in own if k in state}


def load_bisenet(path: str | Path, device: str = "cpu", size: int = 512) -> BiSeNetParser:
    """A BiSeNet parser from ``79999_iter.pth`` (``torch.load(weights_only=True)``) or from the
    safetensors file ``triface models install bisenet`` writes; ``ValueError`` for anything else."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        if path.suffix.lower() == ".safetensors":
            from triface_studio.core.files import read_safetensors

            state = read_safetensors(path)[0]
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # pickle errors, zip errors, forbidden globals, damaged safetensors
        raise ValueError(f"{path}: not a loadable BiSeNet checkpoint ({type(e).__name__}: {e})") from None
    model = BiSeNet(NUM_CLASSES)
    model.load_state_dict(checked_state(state, model, str(path)), strict=False)
    return BiSeNetParser(model, device, size)


def installed_bisenet_path() -> Path | None:
    """The weights ``triface models install bisenet`` (or ``models import``) registered, else None."""
    from triface_studio.models import registry

    folder = registry.find_model("bisenet-79999")
    if folder is None:
        return None
    for name in ("bisenet.safetensors", "79999_iter.safetensors", "79999_iter.pth"):
        if (folder / name).is_file():
            return folder / name
    return None
