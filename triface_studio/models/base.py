"""What the edit pipeline needs from a model tier (bundled or neural)."""

from __future__ import annotations

from typing import Callable, Protocol, runtime_checkable

import torch

from triface_studio.core.asset import TriPlaneAsset
from triface_studio.core.cameras import Camera
from triface_studio.core.rendering import Decoder, RenderOptions, RenderResult


@runtime_checkable
class Tier(Protocol):
    """Image-to-plane encoder, decoders and renderer of one tier.

    ``encode`` lifts an analysed portrait (a ``triface_studio.models.face.FaceAnalysis``: the
    canonical 512 px crop, its camera, landmarks and semantic labels) into a tri-plane in the
    canonical head space.  ``render`` returns RGB in [0, 1] (``rgb`` has 3 channels, after any
    super-resolution) and per-class semantic probabilities.
    """

    name: str
    device: torch.device
    decoder: Decoder
    render_options: RenderOptions

    def encode(self, analysis) -> TriPlaneAsset: ...

    def render(self, asset: TriPlaneAsset, camera: Camera, resolution: int,
               options: RenderOptions | None = None,
               progress: Callable[[float], None] | None = None) -> RenderResult: ...
