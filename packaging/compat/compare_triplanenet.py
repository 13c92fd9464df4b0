"""Compare TriFace Studio's TriPlaneNet encoders with the reference implementation.

    python packaging/compat/compare_triplanenet.py /path/to/triplanenet   # the repo root (has models/encoders)

Builds the reference pSp GradualStyleEncoder (IR-SE50) and TriPlane_Encoder v1 and v2 with
random weights (BatchNorm statistics randomised too), loads their state_dicts into ours with
``strict=True`` and prints max abs differences of the outputs on random 256 px inputs.

The reference ``psp_encoders`` imports ``EqualLinear`` from its StyleGAN2 port, whose import
compiles CUDA kernels, and ``triplane_encoders_v2`` imports torchvision; both are replaced by
small stand-ins (EqualLinear re-implemented from its formula, torchvision's resnet34 unused).
"""

from __future__ import annotations

import argparse
import math
import sys
import types

import torch


def _install_stubs():
    class EqualLinear(torch.nn.Module):
        def __init__(self, in_dim, out_dim, bias=True, bias_init=0, lr_mul=1, activation=None):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
            self.bias = torch.nn.Parameter(torch.zeros(out_dim).fill_(bias_init))
            self.scale = (1 / math.sqrt(in_dim)) * lr_mul
            self.lr_mul = lr_mul

        def forward(self, x):
            return torch.nn.functional.linear(x, self.weight * self.scale, bias=self.bias * self.lr_mul)

    sg = types.ModuleType("models.stylegan2.model")
    sg.EqualLinear = EqualLinear
    sys.modules["models.stylegan2"] = types.ModuleType("models.stylegan2")
    sys.modules["models.stylegan2.model"] = sg
    tv = types.ModuleType("torchvision")
    tvm = types.ModuleType("torchvision.models")
    tvm.resnet34 = None
    tv.models = tvm
    sys.modules.setdefault("torchvision", tv)
    sys.modules.setdefault("torchvision.models", tvm)


def _randomise(m: torch.nn.Module):
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.normal_(0, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
                mod.weight.normal_(1, 0.1)
                mod.bias.normal_(0, 0.1)
            if isinstance(mod, torch.nn.PReLU):
                mod.weight.uniform_(0.1, 0.4)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("triplanenet_dir")
    args = ap.parse_args()
    sys.path.insert(0, args.triplanenet_dir)
    _install_stubs()
    from models.encoders import psp_encoders, triplane_encoders, triplane_encoders_v2  # reference code

    from triface_studio.models.neural.triplanenet import EncoderConfig, GradualStyleEncoder, TriPlaneEncoder

    torch.manual_seed(0)
    res = {}
    with torch.no_grad():
        opts = types.SimpleNamespace(n_styles=14, use_pixelshuffle=True)
        ref = psp_encoders.GradualStyleEncoder(50, "ir_se", opts).eval()
        _randomise(ref)
        ours = GradualStyleEncoder(EncoderConfig()).eval()
        ours.load_state_dict(ref.state_dict(), strict=True)
        x = torch.randn(1, 3, 256, 256)
        a, b = ref(x), ours(x)
        res["pSp codes (1, 14, 512)"] = ((a - b).abs().max().item(), a.abs().max().item())

        ref = triplane_encoders.TriPlane_Encoder().eval()
        _randomise(ref)
        ours = TriPlaneEncoder(EncoderConfig(version=1)).eval()
        ours.load_state_dict(ref.state_dict(), strict=True)
        x = torch.randn(1, 6, 256, 256)
        a, b = ref(x), ours(x)
        res["v1 tri-plane offsets (1, 96, 256, 256)"] = ((a - b).abs().max().item(), a.abs().max().item())

        ref = triplane_encoders_v2.TriPlane_Encoder(opts).eval()
        _randomise(ref)
        ours = TriPlaneEncoder(EncoderConfig(version=2)).eval()
        ours.load_state_dict(ref.state_dict(), strict=True)
        x, planes = torch.randn(1, 9, 256, 256), torch.randn(1, 96, 256, 256)
        a, b = ref(x, planes), ours(x, planes)
        res["v2 refined tri-planes (1, 96, 256, 256)"] = ((a - b).abs().max().item(), a.abs().max().item())
    print("state_dict names/shapes: identical (strict loads)")
    for k, (d, scale) in res.items():
        print(f"{k:42s} max abs diff {d:.3e}   (output max abs {scale:.3e})")


if __name__ == "__main__":
    main()
