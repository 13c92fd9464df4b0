"""The bundled tier: CPU image-to-plane lift + analytic decoders, no downloaded weights."""

from __future__ import annotations

import dataclasses
from typing import Callable

import torch

from triface_studio.core.asset import TriPlaneAsset
from triface_studio.core.cameras import Camera
from triface_studio.core.rendering import RenderOptions, RenderResult, render

from .backdrop import orbit_camera, render_backdrop
from .decoder import BundledDecoder
from .encoder import RESOLUTION, backdrop, lift


#: the tri-plane layout this tier writes and reads (v2: the XY plane relative to encoder.xy_prior)
ENCODER = "heightfield-v2"


class BundledTier:
    name = "bundled"

    def __init__(self, device: str = "cpu", resolution: int = RESOLUTION):
        self.device = torch.device(device)
        self.resolution = resolution
        self.decoder = BundledDecoder()
        # ray_bounds brackets the surface to +-1.5 march steps, so 8 samples in that bracket
        # need no importance pass: against 64+64 samples the mean RGB error is 0.0018 (8+8:
        # 0.0005) at ~55% of the time ('accuracy' part of `triface bench --stage bundled`)
        self.render_options = RenderOptions(n_coarse=8, n_importance=0, background=(1.0, 1.0, 1.0))

    def encode(self, analysis) -> TriPlaneAsset:
        planes, info = lift(analysis.crop, getattr(analysis, "labels", None), analysis.camera, self.resolution,
                            getattr(analysis, "crop_landmarks", None))
        labels = getattr(analysis, "labels", None)
        tensors = {"backdrop": backdrop(analysis.crop, labels).half()}
        return TriPlaneAsset(planes.to(self.device), "bundled", analysis.camera,
                             {"encoder": ENCODER, "name": str(getattr(analysis, "name", "")), **info}, tensors)

    #: orbit views look at the head's centre (see backdrop.orbit_camera); EditPipeline.render_view uses it
    orbit_camera = staticmethod(orbit_camera)

    def render(self, asset: TriPlaneAsset, camera: Camera, resolution: int,
               options: RenderOptions | None = None,
               progress: Callable[[float], None] | None = None, backdrop: bool = False) -> RenderResult:
        """Volume-render the tri-plane.  ``backdrop``: composite the photo's background
        (:mod:`.backdrop`) behind the head instead of the options' background colour, when the
        asset has one and the options ask for a background at all (None stays transparent)."""
        encoder = asset.extra.get("encoder", ENCODER)
        if encoder != ENCODER:
            raise ValueError(f"this tri-plane was made by the bundled encoder {encoder!r}; this version reads "
                             f"{ENCODER!r} only: encode the photo again")
        options = options or self.render_options
        texture = asset.tensors.get("backdrop")
        use_backdrop = backdrop and texture is not None and options.background is not None \
            and asset.source_camera is not None
        if use_backdrop:
            options = dataclasses.replace(options, background=None)
        with torch.no_grad():
            out = render(asset.planes.to(self.device), self.decoder, camera.to(self.device), resolution,
                         options, progress)
            if use_backdrop:
                bd = render_backdrop(texture.to(self.device), asset.source_camera.to(self.device),
                                     camera.to(self.device), resolution)
                out.rgb = out.rgb + (1 - out.opacity) * bd.to(out.rgb.dtype)
        return out
