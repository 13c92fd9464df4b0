"""TriPlaneNet encoders (v1 and v2), with parameter names of the public checkpoints.

A TriPlaneNet checkpoint is ``{'state_dict', 'opts'}`` whose state dict holds
``psp_encoder.*`` (pSp's GradualStyleEncoder on an IR-SE50 backbone: a 256 px image with
mean/std 0.5 -> 14 w+ codes, added to ``latent_avg``), ``triplanenet_encoder.*`` (a second
IR-SE50 with a U-Net style head that predicts tri-plane corrections) and ``decoder.*`` (the EG3D
generator).  v1 feeds [y_psp, x - y_psp] (6 channels) and *adds* its 96-channel output to the
generator's planes; v2 also feeds the mirrored photo's residual against the rendering from the
mirrored camera (9 channels) and refines the planes themselves through a head that sees them.

Sizes come from :class:`EncoderConfig` so tests can build tiny encoders.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class EncoderConfig:
    input_size: int = 256
    depths: tuple[int, int, int, int] = (64, 128, 256, 512)
    units: tuple[int, int, int, int] = (3, 4, 14, 3)
    n_styles: int = 14
    up_channels: tuple[int, int] = (384, 256)   # widths of up2 / up3
    plane_channels: int = 96                    # 3 x 32
    se_reduction: int = 16
    version: int = 1
    use_pixelshuffle: bool = True

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @staticmethod
    def from_dict(d: dict) -> "EncoderConfig":
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in EncoderConfig.__dataclass_fields__}
        return EncoderConfig(**kw)


class SEModule(nn.Module):
    def __init__(self, channels: int, reduction: int):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        return x * self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))


class BottleneckIRSE(nn.Module):
    def __init__(self, in_channel: int, depth: int, stride: int, reduction: int = 16):
        super().__init__()
        if in_channel == depth:
            self.shortcut_layer = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(in_channel, depth, 1, stride, bias=False),
                                                nn.BatchNorm2d(depth))
        self.res_layer = nn.Sequential(nn.BatchNorm2d(in_channel), nn.Conv2d(in_channel, depth, 3, 1, 1, bias=False),
                                       nn.PReLU(depth), nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
                                       nn.BatchNorm2d(depth), SEModule(depth, reduction))

    def forward(self, x):
        return self.res_layer(x) + self.shortcut_layer(x)


def ir_se_body(cfg: EncoderConfig) -> nn.Sequential:
    mods = []
    prev = 64
    for depth, n in zip(cfg.depths, cfg.units):
        mods.append(BottleneckIRSE(prev, depth, 2, cfg.se_reduction))
        mods += [BottleneckIRSE(depth, depth, 1, cfg.se_reduction) for _ in range(n - 1)]
        prev = depth
    return nn.Sequential(*mods)


def _stage_ends(cfg: EncoderConfig) -> tuple[int, int, int, int, int]:
    """Body indices: ends of stages 1-3, first unit of stage 4, end of stage 4."""
    u = cfg.units
    e0 = u[0] - 1
    e1 = e0 + u[1]
    e2 = e1 + u[2]
    return e0, e1, e2, e2 + 1, e2 + u[3]


def _input_layer(in_ch: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))


class EqualLinear(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, lr_mul: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.zeros(out_dim))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul

    def forward(self, x):
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class GradualStyleBlock(nn.Module):
    def __init__(self, in_c: int, out_c: int, spatial: int):
        super().__init__()
        self.out_c = out_c
        mods: list[nn.Module] = [nn.Conv2d(in_c, out_c, 3, 2, 1), nn.LeakyReLU()]
        for _ in range(int(math.log2(spatial)) - 1):
            mods += [nn.Conv2d(out_c, out_c, 3, 2, 1), nn.LeakyReLU()]
        self.convs = nn.Sequential(*mods)
        self.linear = EqualLinear(out_c, out_c)

    def forward(self, x):
        return self.linear(self.convs(x).reshape(-1, self.out_c))


class GradualStyleEncoder(nn.Module):
    """pSp encoder: image (N, 3, S, S) in [-1, 1] -> w+ offsets (N, n_styles, depths[3])."""

    coarse_ind, middle_ind = 3, 7

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.input_layer = _input_layer(3)
        self.body = ir_se_body(cfg)
        d = cfg.depths
        S = cfg.input_size
        self.styles = nn.ModuleList()
        for i in range(cfg.n_styles):
            spatial = S // 16 if i < self.coarse_ind else S // 8 if i < self.middle_ind else S // 4
            self.styles.append(GradualStyleBlock(d[3], d[3], spatial))
        self.latlayer1 = nn.Conv2d(d[2], d[3], 1)
        self.latlayer2 = nn.Conv2d(d[1], d[3], 1)

    @staticmethod
    def _upsample_add(x, y):
        return F.interpolate(x, size=y.shape[-2:], mode="bilinear", align_corners=True) + y

    def forward(self, x):
        _, e1, e2, _, e3 = _stage_ends(self.cfg)
        x = self.input_layer(x)
        for i, layer in enumerate(self.body):
            x = layer(x)
            if i == e1:
                c1 = x
            elif i == e2:
                c2 = x
            elif i == e3:
                c3 = x
        n = self.cfg.n_styles
        lat = [self.styles[j](c3) for j in range(min(self.coarse_ind, n))]
        p2 = self._upsample_add(c3, self.latlayer1(c2))
        lat += [self.styles[j](p2) for j in range(self.coarse_ind, min(self.middle_ind, n))]
        p1 = self._upsample_add(p2, self.latlayer2(c1))
        lat += [self.styles[j](p1) for j in range(self.middle_ind, n)]
        return torch.stack(lat, 1)


class DoubleConv(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.double_conv = nn.Sequential(nn.BatchNorm2d(in_channels), nn.Conv2d(in_channels, out_channels, 3, padding=1),
                                         nn.PReLU(out_channels), nn.Conv2d(out_channels, out_channels, 3, padding=1),
                                         nn.PReLU(out_channels), nn.PReLU(out_channels))

    def forward(self, x):
        return self.double_conv(x)


class Up(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, upscale_factor: int = 2, use_pixelshuffle: bool = True):
        super().__init__()
        self.up = nn.PixelShuffle(upscale_factor) if use_pixelshuffle else nn.Upsample(scale_factor=upscale_factor)
        self.conv = DoubleConv(in_channels, out_channels)

    def forward(self, x1, x2):
        return self.conv(torch.cat([x2, self.up(x1)], 1))


class TriPlaneEncoder(nn.Module):
    """TriPlaneNet's tri-plane branch. v1: (N, 6, S, S) -> offsets (N, 96, S, S); v2:
    (N, 9, S, S) and the generator's planes (N, 96, S, S) -> refined planes."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        d, (u2, u3), P = cfg.depths, cfg.up_channels, cfg.plane_channels
        self.input_layer = _input_layer(6 if cfg.version == 1 else 9)
        self.body = ir_se_body(cfg)
        if cfg.version == 2 and not cfg.use_pixelshuffle:
            self.up1 = Up(2 * d[3], d[3], 1, False)
            self.up2 = Up(d[3] + d[2], d[2], 2, False)
            self.up3 = Up(d[2] + d[1], d[1], 2, False)
            self.up4 = Up(d[1] + d[0], d[0], 2, False)
            self.up5 = nn.Upsample(scale_factor=2)
            head_in = d[0] + P
        else:
            self.up1 = Up(2 * d[3], d[3], 1)
            self.up2 = Up(d[3] // 4 + d[2], u2)
            self.up3 = Up(u2 // 4 + d[1], u3)
            self.up4 = Up(u3 // 4 + d[0], P)
            head_in = P // 4 if cfg.version == 1 else P // 4 + P
            if cfg.version == 1:
                self.head = nn.PixelShuffle(2)
            else:
                self.up5 = nn.PixelShuffle(2)
        head = nn.Sequential(nn.Conv2d(head_in, P, 3, padding=1), nn.PReLU(P), nn.Conv2d(P, P, 3, padding=1),
                             nn.PReLU(P), nn.Conv2d(P, P, 1))
        if cfg.version == 1:
            self.final_head = head
        else:
            self.final_head_two = head

    def forward(self, x, planes: torch.Tensor | None = None):
        e0, e1, e2, s3, _ = _stage_ends(self.cfg)
        x = self.input_layer(x)
        for i, layer in enumerate(self.body):
            x = layer(x)
            if i == e0:
                c0 = x
            if i == e1:
                c1 = x
            if i == e2:
                c2 = x
            elif i == s3:
                c3 = x
        t = self.up4(self.up3(self.up2(self.up1(x, c3), c2), c1), c0)
        if self.cfg.version == 1:
            return self.final_head(self.head(t))
        if planes is None:
            raise ValueError("TriPlaneNet v2 needs the generator's planes")
        t = torch.cat([planes, self.up5(t)], 1)
        return planes + self.final_head_two(t)


def mirror_camera_label(label: torch.Tensor) -> torch.Tensor:
    """The camera seeing the horizontally mirrored photo (world x -> -x). Shape: (N, 25) -> (N, 25)."""
    c2w = label[:, :16].reshape(-1, 4, 4).clone()
    flip = torch.diag(torch.tensor([-1.0, 1.0, 1.0, 1.0], dtype=label.dtype, device=label.device))
    c2w = flip @ c2w @ flip
    return torch.cat([c2w.reshape(-1, 16), label[:, 16:]], 1)


def encoder_config_from_opts(opts: dict, state_dict: dict[str, torch.Tensor]) -> EncoderConfig:
    """Config of a TriPlaneNet checkpoint, read from its tensor shapes (opts only for
    ``use_pixelshuffle``): stage widths and unit counts, number of styles, input size."""
    def w(name):
        return state_dict.get(name)

    pre = "psp_encoder."
    n_body = len({k.split(".")[2] for k in state_dict if k.startswith(pre + "body.")})
    if n_body == 0:
        raise ValueError("no psp_encoder.body.* tensors: not a TriPlaneNet checkpoint")
    depths, units = [], []
    for i in range(n_body):
        d = int(w(f"{pre}body.{i}.res_layer.1.weight").shape[0])
        if not depths or d != depths[-1]:
            depths.append(d)
            units.append(0)
        units[-1] += 1
    if len(depths) != 4:
        raise ValueError(f"expected 4 IR-SE stages, found {len(depths)}")
    n_styles = len({k.split(".")[2] for k in state_dict if k.startswith(pre + "styles.")})
    n_convs = len({k.split(".")[4] for k in state_dict if k.startswith(pre + "styles.0.convs.")})
    inp = w("triplanenet_encoder.input_layer.0.weight")
    version = 2 if (inp is not None and inp.shape[1] == 9) else 1
    up2, up3 = (w(f"triplanenet_encoder.up{j}.conv.double_conv.1.weight") for j in (2, 3))
    head = w("triplanenet_encoder.final_head.4.weight" if version == 1 else "triplanenet_encoder.final_head_two.4.weight")
    se = w(f"{pre}body.0.res_layer.5.fc1.weight")
    return EncoderConfig(input_size=16 * 2 ** n_convs, depths=tuple(depths), units=tuple(units), n_styles=n_styles,
                         up_channels=(int(up2.shape[0]), int(up3.shape[0])) if up2 is not None else (384, 256),
                         plane_channels=int(head.shape[0]) if head is not None else 96,
                         se_reduction=depths[0] // int(se.shape[0]) if se is not None else 16, version=version,
                         use_pixelshuffle=bool(opts.get("use_pixelshuffle", True)))
