"""The paper's tri-plane decoders f^s (semantic) and f^c (RGB), section 3.4, and their
discriminators.

Both are 2-layer MLPs on the aggregated tri-plane features (pix2pix3D-style heads):

* f^s: FC(C -> 64), softplus, FC(64 -> 1 + 64 + 19) -> density, a 64-d feature, 19 semantic logits;
* f^c: FC(C -> 64), softplus, FC(64 -> 1 + 64) -> density and a 64-d feature whose first three
  channels are RGB.

Features use EG3D's clamped sigmoid (x * 1.002 - 0.001); density is raw (the renderer applies
softplus(sigma - 1)).  Both are :class:`triface_studio.core.rendering.Decoder` objects with
aggregate "mean" like EG3D's decoder, so they read the same tri-planes.  ``SemanticRGBDecoders``
bundles both; saved as safetensors with config (kind ``triface-decoders``).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from triface_studio.core.rendering import DecoderOutput
from triface_studio.core.semantics import NUM_CLASSES

from .eg3d import FullyConnectedLayer

KIND = "triface-decoders"


def _clamp_sigmoid(x):
    return torch.sigmoid(x) * (1 + 2 * 0.001) - 0.001


class SemanticDecoder(nn.Module):
    """f^s. ``rgb`` of its output is the 64-d feature."""

    aggregate = "mean"
    density_activation = "softplus"

    def __init__(self, in_features: int = 32, hidden: int = 64, feature_dim: int = 64, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.feature_dim, self.num_classes = feature_dim, num_classes
        self.net = nn.Sequential(FullyConnectedLayer(in_features, hidden), nn.Softplus(),
                                 FullyConnectedLayer(hidden, 1 + feature_dim + num_classes))

    def forward(self, features, points=None, dirs=None) -> DecoderOutput:
        B, M, C = features.shape
        x = self.net(features.reshape(B * M, C)).reshape(B, M, -1)
        f = self.feature_dim
        return DecoderOutput(x[..., :1], _clamp_sigmoid(x[..., 1:1 + f]), x[..., 1 + f:])


class RGBDecoder(nn.Module):
    """f^c. The first three feature channels are RGB in [0, 1]."""

    aggregate = "mean"
    density_activation = "softplus"

    def __init__(self, in_features: int = 32, hidden: int = 64, feature_dim: int = 64):
        super().__init__()
        self.feature_dim = feature_dim
        self.net = nn.Sequential(FullyConnectedLayer(in_features, hidden), nn.Softplus(),
                                 FullyConnectedLayer(hidden, 1 + feature_dim))

    def forward(self, features, points=None, dirs=None) -> DecoderOutput:
        B, M, C = features.shape
        x = self.net(features.reshape(B * M, C)).reshape(B, M, -1)
        return DecoderOutput(x[..., :1], _clamp_sigmoid(x[..., 1:]), None)


class SemanticRGBDecoders(nn.Module):
    def __init__(self, in_features: int = 32, hidden: int = 64, feature_dim: int = 64):
        super().__init__()
        self.config = {"in_features": in_features, "hidden": hidden, "feature_dim": feature_dim}
        self.semantic = SemanticDecoder(in_features, hidden, feature_dim)
        self.rgb = RGBDecoder(in_features, hidden, feature_dim)


class Discriminator(nn.Module):
    """A small conv discriminator (D_c on [RGB, semantics], D_s on semantics): strided convs
    with leaky ReLU, then a linear logit."""

    def __init__(self, in_channels: int, resolution: int, width: int = 64, max_width: int = 256):
        super().__init__()
        layers: list[nn.Module] = []
        ch, r = in_channels, resolution
        w = width
        while r > 4:
            layers += [nn.Conv2d(ch, w, 3, 2, 1), nn.LeakyReLU(0.2)]
            ch, r, w = w, r // 2, min(w * 2, max_width)
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Linear(ch * r * r, 1)

    def forward(self, x):
        return self.fc(self.convs(x).flatten(1))


def save_decoders(model: SemanticRGBDecoders, path: str | Path, extra: dict | None = None) -> Path:
    from ..weights import write_weights

    write_weights(path, model.state_dict(), {"kind": KIND, "decoders": model.config, **(extra or {})})
    return Path(path)


def load_decoders(path: str | Path) -> SemanticRGBDecoders:
    from ..weights import CheckpointError, load_safetensors_weights

    tensors, config = load_safetensors_weights(path)
    if config.get("kind") != KIND:
        raise CheckpointError(f"{path}: not a semantic/RGB decoder file (kind {config.get('kind')!r})")
    model = SemanticRGBDecoders(**config["decoders"])
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: decoder weights do not fit ({str(e)[:300]})") from None
    return model.eval().requires_grad_(False)
