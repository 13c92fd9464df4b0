"""The bundled head as a triangle mesh: fast previews, and the surface that brackets the volume
renderer's rays.

The bundled tri-plane is a height field (see encoder.py): the solid between z_back(x, y) and
z_front(x, y) over the texels where z_front > z_back, coloured and labelled by the XY plane
alone.  Seen from the orbit's cameras what shows is mostly its front surface, along the outline the
wall where the bilinearly interpolated front and back meet within a fraction of a texel
(nearly vertical from z_front down to z_back, seen whole from the side), and past 30 degrees
some of the back surface beyond the far outline.  :func:`surface_mesh` builds that closed
surface once per tri-plane: a vertex at every occupied texel centre at z_front and one at
z_back, each with the texel's colour and label; two triangles per quad of occupied texels
(one where three corners are occupied) on each surface, and a *skirt* from every outline edge
of the front down to the back, which is the wall.  :func:`render_surface` rasterises it
(core.raster) for one camera in a few milliseconds; the volume renderer stays the reference
for exports, semantics and the view on release.

Only the XY plane is read: the side planes of a bundled tri-plane hold the lift's z ramps
(``z_front - z`` and ``z - z_back`` as sums), which the blend and the edit never change.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from triface_studio.core import raster, triplane
from triface_studio.core.cameras import Camera


@dataclass(frozen=True)
class SurfaceMesh:
    """Shape: vertices (V, 3) float32 world; faces (F, 3) int32; colours (V, 3) float32 in [0, 1];
    labels (V,) uint8 class ids; back (V,) bool, the vertices of the back surface."""

    vertices: np.ndarray
    faces: np.ndarray
    colours: np.ndarray
    labels: np.ndarray
    back: np.ndarray


@dataclass(frozen=True)
class SurfaceView:
    """One rasterised view. Shape: rgb (r, r, 3) float32 in [0, 1] (background where nothing
    covers a pixel) or None when not asked for; labels (r, r) uint8 (0 = background) or None; ray_depth (r, r) float32 or None,
    the distance along each pixel's ray to the surface (+inf where empty); covered (r, r) bool."""

    rgb: np.ndarray | None
    labels: np.ndarray | None
    ray_depth: np.ndarray | None
    covered: np.ndarray


def _quad_faces(occupied: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Triangles over a grid: two per quad of occupied corners (diagonal 00-11), one per quad
    with exactly three.  Shape: occupied (R, R) bool, index (R, R) int -> (F, 3) int32."""
    c00, c01 = occupied[:-1, :-1], occupied[:-1, 1:]
    c10, c11 = occupied[1:, :-1], occupied[1:, 1:]
    i00, i01, i10, i11 = index[:-1, :-1], index[:-1, 1:], index[1:, :-1], index[1:, 1:]
    n = c00.astype(np.int8) + c01 + c10 + c11
    tris = []
    full = n == 4
    tris.append(np.stack([i00[full], i01[full], i11[full]], -1))
    tris.append(np.stack([i00[full], i11[full], i10[full]], -1))
    three = n == 3
    for missing, (a, b, c) in ((c00, (i01, i11, i10)), (c01, (i00, i11, i10)),
                               (c10, (i00, i01, i11)), (c11, (i00, i01, i10))):
        m = three & ~missing
        tris.append(np.stack([a[m], b[m], c[m]], -1))
    return np.concatenate(tris).astype(np.int32)


def _outline_edges(faces: np.ndarray) -> np.ndarray:
    """Edges that belong to one triangle only. Shape: (F, 3) -> (E, 2)."""
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    key = np.sort(e, 1)
    uniq, counts = np.unique(key, axis=0, return_counts=True)
    return uniq[counts == 1]


def surface_mesh(planes: torch.Tensor, decoder) -> SurfaceMesh:
    """The mesh of a bundled tri-plane (see the module's docstring), through ``decoder``'s
    decoded XY plane (:meth:`BundledDecoder.effective`).  Shape: planes (1, 3, C, R, R)."""
    with torch.no_grad():
        xy = decoder.effective(planes)[0, 0].float().cpu()
    front, back = xy[0].numpy(), -xy[1].numpy()
    R = front.shape[-1]
    occupied = front > back
    index = np.full((R, R), -1, np.int64)
    rows, cols = np.nonzero(occupied)
    index[rows, cols] = np.arange(rows.size)
    t = triplane.texel_centres(R, dtype=torch.float64).numpy()
    top = np.stack([t[cols], t[rows], front[rows, cols]], -1).astype(np.float32)
    colours = xy[2:5].clamp(0, 1).permute(1, 2, 0).numpy()[rows, cols]
    labels = xy[5:].max(0).indices.to(torch.uint8).numpy()[rows, cols]
    faces = _quad_faces(occupied, index)
    n = top.shape[0]
    edges = _outline_edges(faces) if faces.size else np.zeros((0, 2), np.int64)
    # the back surface: the same grid at z_back (vertex i + n under vertex i)
    under = np.concatenate([top[:, :2], back[rows, cols][:, None].astype(np.float32)], -1)
    # its colours and labels: the back half's (encoder.back_texture), at its coarser grid
    bt = decoder.back(planes)[0].float().cpu()
    s = bt.shape[-1] / R
    br, bc = np.minimum((rows * s).astype(np.int64), bt.shape[-1] - 1), np.minimum((cols * s).astype(np.int64), bt.shape[-1] - 1)
    back_colours = bt[:3].clamp(0, 1).permute(1, 2, 0).numpy()[br, bc]
    back_labels = bt[3:].max(0).indices.to(torch.uint8).numpy()[br, bc]
    a, b = edges[:, 0], edges[:, 1]
    skirt = np.concatenate([np.stack([a, b, b + n], -1), np.stack([a, b + n, a + n], -1)])
    return SurfaceMesh(np.concatenate([top, under]),
                       np.concatenate([faces, faces[:, ::-1] + n, skirt]).astype(np.int32),
                       np.concatenate([colours, back_colours]).astype(np.float32),
                       np.concatenate([labels, back_labels]),
                       np.concatenate([np.zeros(n, bool), np.ones(n, bool)]))


def project(camera: Camera, points: np.ndarray, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """World points -> (pixel x, pixel y, camera-z depth) as :meth:`Camera.project` computes
    them (pixel centres at +0.5), and each point's distance from the camera.
    Shape: points (V, 3) -> (V, 3), (V,)"""
    c2w = camera.cam2world.detach().double().cpu().numpy()
    w2c = np.linalg.inv(c2w)
    return raster.perspective(points, w2c, camera.K.detach().double().cpu().numpy(), resolution)


def render_surface(mesh: SurfaceMesh, camera: Camera, resolution: int, background: np.ndarray | None = None,
                   semantic: bool = True, ray_depth: bool = False, colour: bool = True) -> SurfaceView:
    """Rasterise the mesh seen by ``camera``; ``background`` (r, r, 3) float fills the rest
    (white when None); ``ray_depth``: also the distance along each ray (else None);
    ``colour=False`` skips the RGB image (the volume renderer's ray bounds need depth only).
    -> SurfaceView"""
    r = int(resolution)
    pts, dist = project(camera, mesh.vertices, r)
    frags = raster.rasterize(pts, mesh.faces, r, r)
    rgb = None
    if colour:
        bg = np.ones((r, r, 3), np.float32) if background is None else background
        rgb = raster.interpolate(frags, mesh.faces, mesh.colours, bg)
    labels = raster.nearest_vertex(frags, mesh.faces, mesh.labels) if semantic else None
    depth = None
    if ray_depth:
        depth = raster.interpolate(frags, mesh.faces, dist[:, None], np.full((r, r, 1), np.inf, np.float32))[..., 0]
    return SurfaceView(rgb, labels, depth, frags.covered)
