"""A z-buffer triangle rasteriser on the CPU (numba), for previews of surfaces while the user drags.

Triangles come in pixel coordinates (x right, y down, pixel ``i`` spans ``[i, i + 1)``, so its
centre is ``i + 0.5``, as :meth:`Camera.project` returns them) with a depth per vertex; a pixel
is covered when its centre lies inside a triangle, and the nearest triangle wins.  Both sides of
a triangle are drawn.  Barycentric weights are affine in screen space (the triangles of a
preview mesh cover a pixel or two, where perspective correction changes nothing visible).

The result (:class:`Fragments`) names the triangle and the weights of its three vertices at
every pixel; :func:`interpolate` and :func:`nearest_vertex` turn per-vertex values into images.

Without numba (``AVAILABLE`` false) :func:`rasterize` raises; callers fall back to the volume
renderer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

try:
    import numba
    AVAILABLE = True
except ImportError:          # pragma: no cover - numba is a dependency; a frozen app may lack it
    numba = None
    AVAILABLE = False


@dataclass(frozen=True)
class Fragments:
    """What covers each pixel.

    Shape: face (H, W) int32, -1 where no triangle covers the pixel; weights (H, W, 3) float32
    barycentric weights of the triangle's vertices; depth (H, W) float32, +inf where empty.
    """

    face: np.ndarray
    weights: np.ndarray
    depth: np.ndarray

    @property
    def covered(self) -> np.ndarray:
        return self.face >= 0


def _raster_py(x, y, z, faces, height, width, face_out, w_out, depth_out):
    eps = -1e-6
    for f in range(faces.shape[0]):
        a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
        x0, y0, z0 = x[a], y[a], z[a]
        x1, y1, z1 = x[b], y[b], z[b]
        x2, y2, z2 = x[c], y[c], z[c]
        if not (z0 > 0 and z1 > 0 and z2 > 0):
            continue
        area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
        if abs(area) < 1e-12:
            continue
        inv = 1.0 / area
        lo_x = max(int(np.ceil(min(x0, x1, x2) - 0.5)), 0)
        hi_x = min(int(np.floor(max(x0, x1, x2) - 0.5)), width - 1)
        lo_y = max(int(np.ceil(min(y0, y1, y2) - 0.5)), 0)
        hi_y = min(int(np.floor(max(y0, y1, y2) - 0.5)), height - 1)
        if lo_x > hi_x:
            continue
        # along a row the weights are linear in x: w_k = a_k x + b_k; each row's span is where
        # all three are >= 0 (a long sliver of a wall costs its length, not its bounding box)
        a1 = (y2 - y0) * inv
        a2 = -(y1 - y0) * inv
        a0 = -a1 - a2
        for iy in range(lo_y, hi_y + 1):
            cy = iy + 0.5
            b1 = (-x0 * (y2 - y0) - (x2 - x0) * (cy - y0)) * inv
            b2 = ((x1 - x0) * (cy - y0) + x0 * (y1 - y0)) * inv
            b0 = 1.0 - b1 - b2
            xl, xr = lo_x + 0.5, hi_x + 0.5
            empty = False
            for ak, bk in ((a0, b0), (a1, b1), (a2, b2)):
                if ak > 1e-12:
                    xl = max(xl, (eps - bk) / ak)
                elif ak < -1e-12:
                    xr = min(xr, (eps - bk) / ak)
                elif bk < eps:
                    empty = True
            if empty or xl > xr:
                continue
            s0 = max(int(np.ceil(xl - 0.5)) - 1, lo_x)
            s1 = min(int(np.floor(xr - 0.5)) + 1, hi_x)
            for ix in range(s0, s1 + 1):
                cx = ix + 0.5
                w1 = a1 * cx + b1
                w2 = a2 * cx + b2
                w0 = 1.0 - w1 - w2
                if w0 < eps or w1 < eps or w2 < eps:
                    continue
                d = w0 * z0 + w1 * z1 + w2 * z2
                if d < depth_out[iy, ix]:
                    depth_out[iy, ix] = d
                    face_out[iy, ix] = f
                    w_out[iy, ix, 0] = w0
                    w_out[iy, ix, 1] = w1
                    w_out[iy, ix, 2] = w2


def _interp_py(face, weights, faces, values, background, out):
    H, W = face.shape
    C = values.shape[1]
    for iy in range(H):
        for ix in range(W):
            f = face[iy, ix]
            if f < 0:
                for k in range(C):
                    out[iy, ix, k] = background[iy, ix, k]
                continue
            a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
            w0, w1, w2 = weights[iy, ix, 0], weights[iy, ix, 1], weights[iy, ix, 2]
            for k in range(C):
                out[iy, ix, k] = w0 * values[a, k] + w1 * values[b, k] + w2 * values[c, k]


def _nearest_py(face, weights, faces, values, empty, out):
    H, W = face.shape
    for iy in range(H):
        for ix in range(W):
            f = face[iy, ix]
            if f < 0:
                out[iy, ix] = empty
                continue
            k = 0
            if weights[iy, ix, 1] > weights[iy, ix, k]:
                k = 1
            if weights[iy, ix, 2] > weights[iy, ix, k]:
                k = 2
            out[iy, ix] = values[faces[f, k]]


def _perspective_py(points, w2c, K, resolution, out, dist):
    for i in range(points.shape[0]):
        px, py, pz = points[i, 0], points[i, 1], points[i, 2]
        x = w2c[0, 0] * px + w2c[0, 1] * py + w2c[0, 2] * pz + w2c[0, 3]
        y = w2c[1, 0] * px + w2c[1, 1] * py + w2c[1, 2] * pz + w2c[1, 3]
        z = w2c[2, 0] * px + w2c[2, 1] * py + w2c[2, 2] * pz + w2c[2, 3]
        zs = max(z, 1e-8)
        u, v = x / zs, y / zs
        out[i, 0] = (K[0, 0] * u + K[0, 1] * v + K[0, 2]) * resolution
        out[i, 1] = (K[1, 1] * v + K[1, 2]) * resolution
        out[i, 2] = z
        dist[i] = np.sqrt(x * x + y * y + z * z)


if AVAILABLE:
    _raster = numba.njit(cache=True, nogil=True)(_raster_py)
    _interp = numba.njit(cache=True, nogil=True)(_interp_py)
    _nearest = numba.njit(cache=True, nogil=True)(_nearest_py)
    _perspective = numba.njit(cache=True, nogil=True)(_perspective_py)


def _require() -> None:
    if not AVAILABLE:
        raise RuntimeError("the preview rasteriser needs numba (pip install numba)")


def perspective(points: np.ndarray, world_to_camera: np.ndarray, K: np.ndarray,
                resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """World points through a pinhole camera (OpenCV axes, ``K`` normalised by the image size):
    pixel x, pixel y (pixel centres at +0.5) and camera-z depth, and each point's distance from
    the camera.  Shape: points (V, 3), world_to_camera (3, 4) or (4, 4), K (3, 3) -> (V, 3), (V,)"""
    _require()
    pts = np.ascontiguousarray(points, np.float32)
    out = np.empty((pts.shape[0], 3), np.float32)
    dist = np.empty(pts.shape[0], np.float32)
    _perspective(pts, np.ascontiguousarray(world_to_camera[:3], np.float64), np.ascontiguousarray(K, np.float64),
                 float(resolution), out, dist)
    return out, dist


def rasterize(points: np.ndarray, faces: np.ndarray, height: int, width: int) -> Fragments:
    """Rasterise triangles.  Vertices behind the camera (depth <= 0) drop their triangles.

    Shape: points (V, 3) float pixel x, pixel y, depth; faces (F, 3) int -> Fragments (H, W)
    """
    _require()
    points = np.asarray(points, np.float32)
    faces = np.ascontiguousarray(faces, np.int32)
    if points.ndim != 2 or points.shape[1] != 3 or faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"points must be (V, 3) and faces (F, 3), got {points.shape} and {faces.shape}")
    face = np.full((height, width), -1, np.int32)
    weights = np.zeros((height, width, 3), np.float32)
    depth = np.full((height, width), np.inf, np.float32)
    x, y, z = (np.ascontiguousarray(points[:, k]) for k in range(3))
    _raster(x, y, z, faces, int(height), int(width), face, weights, depth)
    return Fragments(face, weights, depth)


def interpolate(frags: Fragments, faces: np.ndarray, values: np.ndarray,
                background: np.ndarray | None = None) -> np.ndarray:
    """Per-vertex values blended with each pixel's weights; ``background`` where nothing is.

    Shape: values (V, C), background (H, W, C) or None (zeros) -> (H, W, C) float32
    """
    values = np.ascontiguousarray(values, np.float32)
    H, W = frags.face.shape
    bg = np.zeros((H, W, values.shape[1]), np.float32) if background is None else \
        np.ascontiguousarray(background, np.float32)
    out = np.empty((H, W, values.shape[1]), np.float32)
    _interp(frags.face, frags.weights, np.ascontiguousarray(faces, np.int32), values, bg, out)
    return out


def nearest_vertex(frags: Fragments, faces: np.ndarray, values: np.ndarray, empty=0) -> np.ndarray:
    """The value of each pixel's heaviest vertex (labels: no blending of class ids).

    Shape: values (V,) -> (H, W) of values' dtype, ``empty`` where nothing is
    """
    values = np.ascontiguousarray(values)
    out = np.empty(frags.face.shape, values.dtype)
    _nearest(frags.face, frags.weights, np.ascontiguousarray(faces, np.int32), values, values.dtype.type(empty), out)
    return out
