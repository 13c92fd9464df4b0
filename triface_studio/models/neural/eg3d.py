"""EG3D's tri-plane generator, written so its parameter names match the released checkpoints.

``TriPlaneGenerator`` holds ``backbone`` (a StyleGAN2 generator: ``backbone.mapping.*``,
``backbone.synthesis.b{res}.*``) that outputs 3 x 32 channels at 256 x 256, ``decoder``
(:class:`OSGDecoder`, ``decoder.net.0`` / ``decoder.net.2``) and ``superresolution``
(``block0``/``block1`` taking the latent ``ws``).  Sizes come from :class:`EG3DConfig` so tests
build tiny generators; :meth:`EG3DConfig.ffhq512` is the released FFHQ 512 configuration.

Weight scaling follows StyleGAN2: weights are stored unscaled (N(0, 1) at init) and multiplied
at run time by ``lr_multiplier / sqrt(fan_in)``; biases by ``lr_multiplier``.  The mapping
network uses lr_multiplier 0.01 and leaky ReLU (gain sqrt 2), affine layers start at bias 1.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from triface_studio.core.rendering import DecoderOutput

from . import ops


class FullyConnectedLayer(nn.Module):
    def __init__(self, in_features: int, out_features: int, bias: bool = True, activation: str = "linear",
                 lr_multiplier: float = 1.0, bias_init: float = 0.0):
        super().__init__()
        self.in_features, self.out_features, self.activation = in_features, out_features, activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return ops.bias_act(x.matmul(w.t()), b, act=self.activation)


class MappingNetwork(nn.Module):
    """z (and camera label c) -> ws (N, num_ws, w_dim)."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int, num_layers: int = 2,
                 lr_multiplier: float = 0.01, w_avg_beta: float = 0.998):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws, self.num_layers = z_dim, c_dim, w_dim, num_ws, num_layers
        embed = w_dim if c_dim > 0 else 0
        feats = [z_dim + embed] + [w_dim] * num_layers
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed)
        for i in range(num_layers):
            setattr(self, f"fc{i}", FullyConnectedLayer(feats[i], feats[i + 1], activation="lrelu",
                                                        lr_multiplier=lr_multiplier))
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor, c: torch.Tensor, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None) -> torch.Tensor:
        x = ops.normalize_2nd_moment(z.float()) if self.z_dim > 0 else None
        if self.c_dim > 0:
            y = ops.normalize_2nd_moment(self.embed(c.float()))
            x = y if x is None else torch.cat([x, y], 1)
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        x = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        if truncation_psi != 1:
            cut = self.num_ws if truncation_cutoff is None else truncation_cutoff
            x = x.clone()
            x[:, :cut] = self.w_avg.lerp(x[:, :cut], truncation_psi)
        return x


class SynthesisLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, kernel_size: int = 3,
                 up: int = 1, use_noise: bool = True, activation: str = "lrelu", conv_clamp: float | None = None):
        super().__init__()
        self.in_channels, self.out_channels, self.resolution, self.up = in_channels, out_channels, resolution, up
        self.use_noise, self.activation, self.conv_clamp = use_noise, activation, conv_clamp
        self.register_buffer("resample_filter", ops.setup_filter())
        self.padding = kernel_size // 2
        self.act_gain = ops.ACTIVATIONS[activation][1]
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        if use_noise:
            self.register_buffer("noise_const", torch.randn(resolution, resolution))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "const", gain: float = 1.0) -> torch.Tensor:
        styles = self.affine(w)
        noise = None
        if self.use_noise and noise_mode == "random":
            noise = torch.randn(x.shape[0], 1, self.resolution, self.resolution, device=x.device) * self.noise_strength
        elif self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        x = ops.modulated_conv2d(x, self.weight, styles, noise, up=self.up, padding=self.padding,
                                 resample_filter=self.resample_filter)
        clamp = None if self.conv_clamp is None else self.conv_clamp * gain
        return ops.bias_act(x, self.bias, self.activation, gain=self.act_gain * gain, clamp=clamp)


class ToRGBLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, w_dim: int, kernel_size: int = 1,
                 conv_clamp: float | None = None):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = ops.modulated_conv2d(x, self.weight, styles, demodulate=False)
        return ops.bias_act(x, self.bias, clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution of the 'skip' architecture; ``up=False`` is EG3D's SynthesisBlockNoUp."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                 is_last: bool, use_fp16: bool = False, conv_clamp: float | None = None, up: bool = True):
        super().__init__()
        self.in_channels, self.resolution, self.img_channels, self.use_fp16, self.up = (
            in_channels, resolution, img_channels, use_fp16, up)
        self.register_buffer("resample_filter", ops.setup_filter())
        self.num_conv, self.num_torgb = 0, 0
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2 if up else 1,
                                        conv_clamp=conv_clamp)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp)
        self.num_conv += 1
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
        self.num_torgb += 1

    def forward(self, x, img, ws: torch.Tensor, noise_mode: str = "const", force_fp32: bool = False):
        w = ws.unbind(1)
        dtype = torch.float16 if (self.use_fp16 and ws.device.type == "cuda" and not force_fp32) else torch.float32
        if self.in_channels == 0:
            x = self.const.to(dtype).unsqueeze(0).repeat(ws.shape[0], 1, 1, 1)
            x = self.conv1(x, w[0], noise_mode)
            i = 1
        else:
            x = x.to(dtype)
            x = self.conv0(x, w[0], noise_mode)
            x = self.conv1(x, w[1], noise_mode)
            i = 2
        if img is not None and self.up:
            img = ops.upsample2d(img, self.resample_filter)
        y = self.torgb(x, w[i]).float()
        img = y if img is None else img + y
        return x, img


class SynthesisNetwork(nn.Module):
    """ws -> image (N, img_channels, R, R); blocks ``b4`` ... ``b{R}``."""

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, channel_base: int = 32768,
                 channel_max: int = 512, num_fp16_res: int = 0, conv_clamp: float | None = None):
        super().__init__()
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        log2 = int(math.log2(img_resolution))
        self.block_resolutions = [2 ** i for i in range(2, log2 + 1)]
        ch = {r: min(channel_base // r, channel_max) for r in self.block_resolutions}
        fp16_res = max(2 ** (log2 + 1 - num_fp16_res), 8)
        self.num_ws = 0
        for r in self.block_resolutions:
            block = SynthesisBlock(ch[r // 2] if r > 4 else 0, ch[r], w_dim, r, img_channels,
                                   is_last=(r == img_resolution), use_fp16=(r >= fp16_res), conv_clamp=conv_clamp)
            self.num_ws += block.num_conv
            setattr(self, f"b{r}", block)
        self.num_ws += 1

    def forward(self, ws: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        ws = ws.float()
        x = img = None
        idx = 0
        for r in self.block_resolutions:
            block = getattr(self, f"b{r}")
            x, img = block(x, img, ws.narrow(1, idx, block.num_conv + block.num_torgb), noise_mode)
            idx += block.num_conv
        return img


class StyleGAN2Backbone(nn.Module):
    def __init__(self, z_dim: int, c_dim: int, w_dim: int, img_resolution: int, img_channels: int,
                 mapping_layers: int = 2, **synthesis_kwargs):
        super().__init__()
        self.synthesis = SynthesisNetwork(w_dim, img_resolution, img_channels, **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, self.num_ws, num_layers=mapping_layers)


class OSGDecoder(nn.Module):
    """EG3D's decoder as a :class:`triface_studio.core.rendering.Decoder`: mean of the three
    planes' features -> FC -> softplus -> FC -> (sigma, 32 features); features squashed by
    sigmoid * 1.002 - 0.001 (the first three are RGB)."""

    aggregate = "mean"
    density_activation = "softplus"

    def __init__(self, n_features: int = 32, hidden: int = 64, out_features: int = 32, lr_multiplier: float = 1.0):
        super().__init__()
        self.net = nn.Sequential(FullyConnectedLayer(n_features, hidden, lr_multiplier=lr_multiplier), nn.Softplus(),
                                 FullyConnectedLayer(hidden, 1 + out_features, lr_multiplier=lr_multiplier))

    def forward(self, features: torch.Tensor, points: torch.Tensor | None = None,
                dirs: torch.Tensor | None = None) -> DecoderOutput:
        B, M, C = features.shape
        x = self.net(features.reshape(B * M, C)).reshape(B, M, -1)
        rgb = torch.sigmoid(x[..., 1:]) * (1 + 2 * 0.001) - 0.001
        return DecoderOutput(x[..., :1], rgb, None)


class SuperResolution(nn.Module):
    """EG3D's SuperresolutionHybrid8X (128 -> 512 for the FFHQ checkpoints): two up-blocks
    driven by the last latent of ``ws``; inputs are resized to ``input_resolution`` first."""

    def __init__(self, channels: int = 32, w_dim: int = 512, input_resolution: int = 128, img_resolution: int = 512,
                 block_channels: tuple[int, int] = (128, 64), use_fp16: bool = True, antialias: bool = True):
        super().__init__()
        if img_resolution != input_resolution * 4:
            raise ValueError("super-resolution goes from input_resolution to 4x that")
        self.input_resolution, self.antialias = input_resolution, antialias
        clamp = 256 if use_fp16 else None
        self.block0 = SynthesisBlock(channels, block_channels[0], w_dim, input_resolution * 2, 3, False,
                                     use_fp16=use_fp16, conv_clamp=clamp)
        self.block1 = SynthesisBlock(block_channels[0], block_channels[1], w_dim, img_resolution, 3, True,
                                     use_fp16=use_fp16, conv_clamp=clamp)

    def forward(self, rgb: torch.Tensor, x: torch.Tensor, ws: torch.Tensor, noise_mode: str = "none") -> torch.Tensor:
        ws = ws[:, -1:, :].repeat(1, 3, 1)
        if x.shape[-1] != self.input_resolution:
            size = (self.input_resolution, self.input_resolution)
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=self.antialias)
            rgb = F.interpolate(rgb, size=size, mode="bilinear", align_corners=False, antialias=self.antialias)
        x, rgb = self.block0(x, rgb, ws, noise_mode)
        x, rgb = self.block1(x, rgb, ws, noise_mode)
        return rgb


#: EG3D super-resolution modules (128 -> 512) and their block widths
SR_MODULES = {"SuperresolutionHybrid8XDC": (256, 128), "SuperresolutionHybrid8X": (128, 64)}


@dataclass
class EG3DConfig:
    """Sizes of a tri-plane generator. Defaults are the released FFHQ 512 (ffhq512-128) ones."""

    z_dim: int = 512
    c_dim: int = 25
    w_dim: int = 512
    plane_resolution: int = 256
    plane_channels: int = 32
    channel_base: int = 32768
    channel_max: int = 512
    mapping_layers: int = 2
    num_fp16_res: int = 0
    conv_clamp: float | None = None
    decoder_hidden: int = 64
    decoder_lr_mul: float = 1.0
    neural_rendering_resolution: int = 128
    img_resolution: int = 512
    #: (256, 128) is SuperresolutionHybrid8XDC (the released 512 px checkpoints); (128, 64) is 8X
    sr_channels: tuple[int, int] = (256, 128)
    sr_fp16: bool = True
    sr_antialias: bool = True
    c_scale: float = 1.0
    c_gen_conditioning_zero: bool = False
    rendering: dict = field(default_factory=lambda: {"depth_resolution": 48, "depth_resolution_importance": 48,
                                                     "ray_start": 2.25, "ray_end": 3.3, "box_warp": 1.0})

    @staticmethod
    def ffhq512() -> "EG3DConfig":
        return EG3DConfig()

    def to_dict(self) -> dict:
        d = asdict(self)
        d["sr_channels"] = list(self.sr_channels)
        return d

    @staticmethod
    def from_dict(d: dict) -> "EG3DConfig":
        known = {k: v for k, v in d.items() if k in EG3DConfig.__dataclass_fields__}
        if "sr_channels" in known:
            known["sr_channels"] = tuple(known["sr_channels"])
        return EG3DConfig(**known)

    @staticmethod
    def from_eg3d_init_kwargs(kw: dict) -> "EG3DConfig":
        """From the ``init_kwargs`` EG3D stores with its generator (pickle or TriPlaneNet file)."""
        rk = dict(kw.get("rendering_kwargs", {}))
        mk = dict(kw.get("mapping_kwargs", {}))
        sr_mod = str(rk.get("superresolution_module", "SuperresolutionHybrid8XDC")).rsplit(".", 1)[-1]
        if sr_mod not in SR_MODULES:
            raise ValueError(f"unsupported super-resolution module {sr_mod!r} (supported: "
                             f"{', '.join(SR_MODULES)}, the 512 px ones of the FFHQ checkpoints)")
        fp16 = int(kw.get("num_fp16_res", 0))
        return EG3DConfig(
            z_dim=int(kw["z_dim"]), c_dim=int(kw["c_dim"]), w_dim=int(kw["w_dim"]),
            channel_base=int(kw.get("channel_base", 32768)), channel_max=int(kw.get("channel_max", 512)),
            mapping_layers=int(mk.get("num_layers", 8)), num_fp16_res=fp16,
            conv_clamp=kw.get("conv_clamp", 256 if fp16 > 0 else None),
            decoder_lr_mul=float(rk.get("decoder_lr_mul", 1.0)),
            neural_rendering_resolution=int(rk.get("neural_rendering_resolution", 128)),
            img_resolution=int(kw.get("img_resolution", 512)), sr_channels=SR_MODULES[sr_mod],
            sr_fp16=int(kw.get("sr_num_fp16_res", 0)) > 0, sr_antialias=bool(rk.get("sr_antialias", True)),
            c_scale=float(rk.get("c_scale", 0.0)), c_gen_conditioning_zero=bool(rk.get("c_gen_conditioning_zero", False)),
            rendering={"depth_resolution": int(rk.get("depth_resolution", 48)),
                       "depth_resolution_importance": int(rk.get("depth_resolution_importance", 48)),
                       "ray_start": float(rk.get("ray_start", 2.25)), "ray_end": float(rk.get("ray_end", 3.3)),
                       "box_warp": float(rk.get("box_warp", 1.0))},
        )


class TriPlaneGenerator(nn.Module):
    """EG3D's generator minus the renderer (the project's core renderer does that part)."""

    def __init__(self, cfg: EG3DConfig = EG3DConfig()):
        super().__init__()
        self.cfg = cfg
        self.backbone = StyleGAN2Backbone(cfg.z_dim, cfg.c_dim, cfg.w_dim, cfg.plane_resolution,
                                          3 * cfg.plane_channels, mapping_layers=cfg.mapping_layers,
                                          channel_base=cfg.channel_base, channel_max=cfg.channel_max,
                                          num_fp16_res=cfg.num_fp16_res, conv_clamp=cfg.conv_clamp)
        self.superresolution = SuperResolution(cfg.plane_channels, cfg.w_dim, cfg.img_resolution // 4,
                                               cfg.img_resolution, tuple(cfg.sr_channels), cfg.sr_fp16,
                                               cfg.sr_antialias)
        self.decoder = OSGDecoder(cfg.plane_channels, cfg.decoder_hidden, cfg.plane_channels, cfg.decoder_lr_mul)

    @property
    def num_ws(self) -> int:
        return self.backbone.num_ws

    def mapping(self, z: torch.Tensor, c: torch.Tensor, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None) -> torch.Tensor:
        if self.cfg.c_gen_conditioning_zero:
            c = torch.zeros_like(c)
        return self.backbone.mapping(z, c * self.cfg.c_scale, truncation_psi, truncation_cutoff)

    def planes(self, ws: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        """ws -> tri-planes. Shape: (N, num_ws, w_dim) -> (N, 3, C, R, R)."""
        p = self.backbone.synthesis(ws, noise_mode)
        return p.view(len(p), 3, self.cfg.plane_channels, p.shape[-2], p.shape[-1])

    def super_resolve(self, composite: torch.Tensor, ws: torch.Tensor, noise_mode: str = "none") -> torch.Tensor:
        """Volume-rendered features as the core renderer composites them (N, 32, r, r), about
        [0, 1] -> image (N, 3, 512, 512) in about [-1, 1].  EG3D's ray marcher maps the
        composite to [-1, 1] before super-resolution; that happens here."""
        x = composite * 2 - 1
        return self.superresolution(x[:, :3], x, ws, noise_mode)


def synthesize(G: TriPlaneGenerator, planes: torch.Tensor, ws: torch.Tensor, cameras, neural_resolution: int | None = None,
               options=None, progress=None, super_resolution: bool = True):
    """EG3D's ``synthesis`` on given planes through the core renderer: volume-render the
    features at the neural rendering resolution, then super-resolve with ``ws``.

    Returns (image (N, 3, img_res, img_res) in about [-1, 1] or None, RenderResult of the raw
    features (rgb holds the 32 composited features, EG3D's 'image_raw' is rgb[:, :3] * 2 - 1)).
    """
    from triface_studio.core.rendering import RenderOptions, render

    cfg = G.cfg
    r = neural_resolution or cfg.neural_rendering_resolution
    if options is None:
        rk = cfg.rendering
        options = RenderOptions(n_coarse=int(rk.get("depth_resolution", 48)),
                                n_importance=int(rk.get("depth_resolution_importance", 48)),
                                ray_start=float(rk.get("ray_start", 2.25)), ray_end=float(rk.get("ray_end", 3.3)),
                                box_warp=float(rk.get("box_warp", 1.0)), use_bounds=False)
    res = render(planes, G.decoder, cameras, r, options, progress)
    img = G.super_resolve(res.rgb, ws) if super_resolution else None
    return img, res
