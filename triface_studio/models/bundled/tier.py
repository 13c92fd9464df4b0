"""The bundled tier: CPU image-to-plane lift + analytic decoders, no downloaded weights."""

from __future__ import annotations

import dataclasses
import weakref
from typing import Callable

import cv2
import numpy as np
import torch

from triface_studio.core.asset import TriPlaneAsset
from triface_studio.core.cameras import Camera
from triface_studio.core.rendering import RenderOptions, RenderResult, render

from triface_studio.core import raster

from .backdrop import backdrop_image, orbit_camera, render_backdrop
from .decoder import BundledDecoder, SemanticsOnly
from .encoder import RESOLUTION, backdrop, lift
from .surface import SurfaceMesh, render_surface, surface_mesh

#: how far (world units) the volume renderer's rays reach on either side of the rasterised
#: surface (the sigmoid edge of the density is ~0.01 wide; see ``surface_bounds``)
SURFACE_MARGIN = 0.015


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
        # (and with "surface" shading the density alone is integrated along the rays, by a
        # compiled loop, and colour and semantics are read once per ray: measured against the
        # dense render it is as close as per-sample shading after the 40-step march was; one
        # chunk: the rays of a 512 px view fit in memory easily at 8 samples)
        self.render_options = RenderOptions(n_coarse=8, n_importance=0, background=(1.0, 1.0, 1.0),
                                            shading="surface" if raster.AVAILABLE else "samples", chunk=1 << 18)
        #: bracket the volume renderer's rays by the rasterised surface (``surface_bounds``)
        #: instead of the decoder's 40-step march, where the rasteriser is available
        self.surface_bounds = raster.AVAILABLE
        self._meshes: list[tuple[weakref.ref, tuple, SurfaceMesh, np.ndarray | None]] = []

    #: :meth:`encode` keeps no state between calls (the lift and the backdrop are functions of
    #: the photo): an edit may lift its identity and reference on two threads at once
    concurrent_encode = True
    #: ``render(semantics_only=True)`` gives exact semantics for less (see :meth:`render`)
    semantics_only_render = True

    def encode(self, analysis) -> TriPlaneAsset:
        planes, info = lift(analysis.crop, getattr(analysis, "labels", None), analysis.camera, self.resolution,
                            getattr(analysis, "crop_landmarks", None))
        labels = getattr(analysis, "labels", None)
        tensors = {"backdrop": backdrop(analysis.crop, labels).half()}
        return TriPlaneAsset(planes.to(self.device), "bundled", analysis.camera,
                             {"encoder": ENCODER, "name": str(getattr(analysis, "name", "")), **info}, tensors)

    #: orbit views look at the head's centre (see backdrop.orbit_camera); EditPipeline.render_view uses it
    orbit_camera = staticmethod(orbit_camera)

    # -- the surface (previews while dragging, ray bounds) ---------------------------------------
    def surface(self, asset: TriPlaneAsset) -> tuple[SurfaceMesh, np.ndarray | None]:
        """The asset's mesh (:func:`surface_mesh`) and backdrop texture (HWC float32 or None),
        built once per tri-plane (the last four are kept)."""
        planes = asset.planes
        key = (planes.data_ptr(), planes._version, tuple(planes.shape))
        for ref, k, mesh, tex in self._meshes:
            if k == key and ref() is planes:
                return mesh, tex
        mesh = surface_mesh(planes.to(self.device), self.decoder)
        t = asset.tensors.get("backdrop")
        tex = None if t is None else np.ascontiguousarray(t.float().permute(1, 2, 0).cpu().numpy())
        self._meshes = [(weakref.ref(planes), key, mesh, tex)] + self._meshes[:3]
        return mesh, tex

    def preview(self, asset: TriPlaneAsset, camera: Camera, resolution: int, semantic: bool = True,
                backdrop: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """A rasterised view of the surface, in milliseconds (the orbit view while dragging);
        it matches :meth:`render` up to the volume's soft edges.  ``backdrop``: the photo's
        background behind the head (else white).
        -> rgb float32 (r, r, 3) in [0, 1], labels uint8 (r, r) or None"""
        mesh, tex = self.surface(asset)
        bg = None
        if backdrop and tex is not None and asset.source_camera is not None:
            bg = backdrop_image(tex, asset.source_camera, camera, resolution)
        view = render_surface(mesh, camera, resolution, bg, semantic=semantic)
        return view.rgb, view.labels

    def ray_bounds(self, asset: TriPlaneAsset, camera: Camera, resolution: int) -> torch.Tensor:
        """Per-pixel (near, far) for :func:`render`: the rasterised surface's distance along each
        ray +- ``SURFACE_MARGIN``, widened to the 3 x 3 neighbourhood so that the silhouette's
        pixels the mesh just misses are still sampled.  Shape: -> (1, resolution**2, 2)"""
        mesh, _ = self.surface(asset)
        d = render_surface(mesh, camera, resolution, semantic=False, ray_depth=True, colour=False).ray_depth
        big = np.float32(1e3)
        k = np.ones((3, 3), np.uint8)
        finite = np.isfinite(d)
        near = cv2.erode(np.where(finite, d, big), k, borderType=cv2.BORDER_CONSTANT, borderValue=float(big))
        far = cv2.dilate(np.where(finite, d, -big), k, borderType=cv2.BORDER_CONSTANT, borderValue=-float(big))
        hit = near < big / 2
        near = np.where(hit, near - SURFACE_MARGIN, 0.0)
        far = np.where(hit, far + SURFACE_MARGIN, 0.0)
        return torch.from_numpy(np.stack([near, far], -1).reshape(1, -1, 2).astype(np.float32))

    def render(self, asset: TriPlaneAsset, camera: Camera, resolution: int,
               options: RenderOptions | None = None,
               progress: Callable[[float], None] | None = None, backdrop: bool = False,
               mesh_bounds: bool | None = None, semantics_only: bool = False) -> RenderResult:
        """Volume-render the tri-plane.  ``backdrop``: composite the photo's background
        (:mod:`.backdrop`) behind the head instead of the options' background colour, when the
        asset has one and the options ask for a background at all (None stays transparent).
        ``mesh_bounds``: bracket the rays by the rasterised surface (default
        ``self.surface_bounds``); False keeps the decoder's march, which needs no mesh: the
        edit's own renders of tri-planes it sees once, where building a mesh (~0.4 s) costs more
        than it saves.  ``semantics_only``: the semantics (and densities) exact, the colour not
        (:class:`.decoder.SemanticsOnly`), for renders whose colour nobody reads."""
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
            bounds = None
            if (self.surface_bounds if mesh_bounds is None else mesh_bounds) and options.use_bounds:
                bounds = self.ray_bounds(asset, camera, resolution)
            decoder = SemanticsOnly(self.decoder) if semantics_only else self.decoder
            out = render(asset.planes.to(self.device), decoder, camera.to(self.device), resolution,
                         options, progress, bounds=bounds)
            if use_backdrop:
                _, tex = self.surface(asset) if self.surface_bounds else (None, None)
                if tex is not None:       # the same image as render_backdrop, by one perspective warp
                    bd = torch.from_numpy(backdrop_image(tex, asset.source_camera, camera, resolution))
                    bd = bd.permute(2, 0, 1)[None].to(self.device)
                else:
                    bd = render_backdrop(texture.to(self.device), asset.source_camera.to(self.device),
                                         camera.to(self.device), resolution)
                out.rgb = out.rgb + (1 - out.opacity) * bd.to(out.rgb.dtype)
        return out
