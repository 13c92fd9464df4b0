"""Pure-torch versions of the StyleGAN2 operators EG3D's checkpoints were trained with.

EG3D ships CUDA kernels (``upfirdn2d``, ``bias_act``) with reference fallbacks; these
functions compute the same thing with plain ``torch.nn.functional`` calls so they run on any
device and never compile anything:

* :func:`setup_filter` -- a normalised separable FIR filter as an outer product (``[1,3,3,1]``);
* :func:`upfirdn2d` -- zero-insertion upsampling, padding (negative = crop), FIR filtering
  (true convolution: the filter is flipped) and downsampling;
* :func:`bias_act` -- bias, activation, gain and clamp in that order;
* :func:`conv2d_resample` -- convolution with optional 2x upsampling, padding applied once;
* :func:`modulated_conv2d` -- weight modulation/demodulation as one grouped convolution.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

#: activation -> (function, default gain)
ACTIVATIONS = {
    "linear": (lambda x: x, 1.0),
    "relu": (F.relu, math.sqrt(2)),
    "lrelu": (lambda x: F.leaky_relu(x, 0.2), math.sqrt(2)),
    "sigmoid": (torch.sigmoid, 1.0),
    "softplus": (F.softplus, 1.0),
}


def setup_filter(taps=(1, 3, 3, 1), normalize: bool = True) -> torch.Tensor:
    """2D low-pass filter (outer product of the taps), summing to 1. Shape: -> (k, k)."""
    f = torch.as_tensor(taps, dtype=torch.float32)
    if f.ndim == 1:
        f = torch.outer(f, f)
    if normalize:
        f = f / f.sum()
    return f


def _pad4(padding) -> tuple[int, int, int, int]:
    if isinstance(padding, int):
        return padding, padding, padding, padding
    if len(padding) == 2:
        return padding[0], padding[0], padding[1], padding[1]
    return tuple(padding)  # x0, x1, y0, y1


def upfirdn2d(x: torch.Tensor, f: torch.Tensor | None, up: int = 1, down: int = 1, padding=0,
              gain: float = 1.0) -> torch.Tensor:
    """Upsample by zero insertion, pad, filter with ``f`` (convolution), downsample.

    Shape: x (N, C, H, W), f (k, k) -> (N, C, H', W')
    """
    if f is None:
        f = torch.ones(1, 1, dtype=torch.float32, device=x.device)
    N, C, H, W = x.shape
    x0, x1, y0, y1 = _pad4(padding)
    if up > 1:
        x = x.reshape(N, C, H, 1, W, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(N, C, H * up, W * up)
    x = F.pad(x, [max(x0, 0), max(x1, 0), max(y0, 0), max(y1, 0)])
    x = x[:, :, max(-y0, 0): x.shape[2] - max(-y1, 0), max(-x0, 0): x.shape[3] - max(-x1, 0)]
    k = (f * gain).to(device=x.device, dtype=x.dtype).flip([0, 1])
    x = F.conv2d(x, k[None, None].repeat(C, 1, 1, 1), groups=C)
    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


def upsample2d(x: torch.Tensor, f: torch.Tensor, up: int = 2) -> torch.Tensor:
    """FIR upsampling that keeps the signal's magnitude; output size = up * input size."""
    k = f.shape[-1]
    p = [(k + up - 1) // 2, (k - up) // 2] * 2
    return upfirdn2d(x, f, up=up, padding=[p[0], p[1], p[0], p[1]], gain=up * up)


def bias_act(x: torch.Tensor, b: torch.Tensor | None = None, act: str = "linear", gain: float | None = None,
             clamp: float | None = None, dim: int = 1) -> torch.Tensor:
    """x + b, activation, times ``gain`` (the activation's default gain when None), clamp to +-clamp."""
    fn, def_gain = ACTIVATIONS[act]
    if b is not None:
        shape = [1] * x.ndim
        shape[dim] = -1
        x = x + b.to(x.dtype).reshape(shape)
    x = fn(x)
    g = def_gain if gain is None else gain
    if g != 1:
        x = x * g
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def conv2d_resample(x: torch.Tensor, w: torch.Tensor, f: torch.Tensor | None = None, up: int = 1,
                    padding: int = 0, groups: int = 1) -> torch.Tensor:
    """Cross-correlation with ``w`` (as ``F.conv2d``), optionally upsampling by ``up`` with the
    low-pass filter ``f``; ``padding`` is relative to the upsampled image."""
    out_ch, in_per_group, kh, kw = w.shape
    x0 = x1 = y0 = y1 = padding
    if up == 1:
        return F.conv2d(x, w, padding=padding, groups=groups)
    fk = f.shape[-1]
    x0 += (fk + up - 1) // 2
    x1 += (fk - up) // 2
    y0, y1 = x0, x1
    if kw == 1 and kh == 1:
        x = F.conv2d(x, w, groups=groups)
        return upfirdn2d(x, f, up=up, padding=[x0, x1, y0, y1], gain=up * up)
    # Transposed convolution (stride = up) followed by the low-pass filter.
    if groups == 1:
        wt = w.transpose(0, 1)
    else:
        wt = w.reshape(groups, out_ch // groups, in_per_group, kh, kw).transpose(1, 2)
        wt = wt.reshape(groups * in_per_group, out_ch // groups, kh, kw)
    x0 -= kw - 1
    x1 -= kw - up
    y0 -= kh - 1
    y1 -= kh - up
    pt = max(min(-x0, -x1), 0)
    x = F.conv_transpose2d(x, wt, stride=up, padding=pt, groups=groups)
    return upfirdn2d(x, f, padding=[x0 + pt, x1 + pt, y0 + pt, y1 + pt], gain=up * up)


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, noise: torch.Tensor | None = None,
                     up: int = 1, padding: int = 0, resample_filter: torch.Tensor | None = None,
                     demodulate: bool = True) -> torch.Tensor:
    """StyleGAN2 modulated convolution, computed as one grouped convolution per batch.

    Shape: x (N, I, H, W), weight (O, I, k, k), styles (N, I) -> (N, O, H*up, W*up)
    """
    N = x.shape[0]
    O, I, kh, kw = weight.shape
    if x.dtype == torch.float16 and demodulate:
        # Pre-normalise so float16 does not overflow (as the reference does).
        weight = weight * (1 / math.sqrt(I * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)
    w = weight.unsqueeze(0) * styles.reshape(N, 1, -1, 1, 1)
    if demodulate:
        d = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()
        w = w * d.reshape(N, -1, 1, 1, 1)
    x = x.reshape(1, -1, *x.shape[2:])
    w = w.reshape(-1, I, kh, kw).to(x.dtype)
    x = conv2d_resample(x, w, resample_filter, up=up, padding=padding, groups=N)
    x = x.reshape(N, -1, *x.shape[2:])
    if noise is not None:
        x = x + noise.to(x.dtype)
    return x
