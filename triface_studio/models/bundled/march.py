"""The bundled decoder's density integrated along rays in one compiled loop (numba).

``core.rendering``'s "surface" shading needs, per ray, the compositing weights' mean depth and
the opacity: the density at every sample, then EG3D's midpoint scheme (:func:`march`).  For the
bundled height field the density is two bilinear lookups per plane and two sigmoids, so the
loop costs tens of milliseconds at 512 px where the same work as tensor operations on every
sample costs several times that (and much more on a busy machine).  ``test_bundled_march``
checks it against the tensor path.
"""

from __future__ import annotations

import math

import numpy as np

from triface_studio.core import raster

if raster.AVAILABLE:
    import numba
else:                                    # pragma: no cover
    numba = None


def _bilinear(plane, c, u, v):
    """grid_sample(align_corners=False, padding zeros) of channel ``c`` at normalised (u, v)."""
    R = plane.shape[1]
    x = ((u + 1.0) * R - 1.0) * 0.5
    y = ((v + 1.0) * R - 1.0) * 0.5
    x0 = math.floor(x)
    y0 = math.floor(y)
    fx = x - x0
    fy = y - y0
    out = 0.0
    for dy in range(2):
        yy = y0 + dy
        if yy < 0 or yy >= R:
            continue
        wy = fy if dy == 1 else 1.0 - fy
        for dx in range(2):
            xx = x0 + dx
            if xx < 0 or xx >= R:
                continue
            wx = fx if dx == 1 else 1.0 - fx
            out += wx * wy * plane[c, yy, xx]
    return out


def _density(xy, xz, zx, px, py, pz, scale, k, half):
    if abs(px) >= half or abs(py) >= half or abs(pz) >= half:
        return 0.0
    u, v, w = px * 2.0, py * 2.0, pz * 2.0          # box_warp 1: world -> grid coordinates
    f0 = _bilinear(xy, 0, u, v) + _bilinear(xz, 0, u, w) + _bilinear(zx, 0, w, u)
    f1 = _bilinear(xy, 1, u, v) + _bilinear(xz, 1, u, w) + _bilinear(zx, 1, w, u)
    return scale / (1.0 + math.exp(-k * f0)) / (1.0 + math.exp(-k * f1))


def _march_py(xy, xz, zx, origins, dirs, depths, scale, k, half, depth_out, opacity_out):
    N, S = depths.shape
    dens = np.empty(S, np.float64)
    for i in range(N):
        ox, oy, oz = origins[i, 0], origins[i, 1], origins[i, 2]
        dx, dy, dz = dirs[i, 0], dirs[i, 1], dirs[i, 2]
        for s in range(S):
            t = depths[i, s]
            dens[s] = _density(xy, xz, zx, ox + t * dx, oy + t * dy, oz + t * dz, scale, k, half)
        trans = 1.0
        acc = 0.0
        dacc = 0.0
        for s in range(S - 1):
            delta = depths[i, s + 1] - depths[i, s]
            alpha = 1.0 - math.exp(-0.5 * (dens[s] + dens[s + 1]) * delta)
            w = alpha * trans
            acc += w
            dacc += w * 0.5 * (depths[i, s] + depths[i, s + 1])
            trans *= 1.0 - alpha + 1e-10
        lo, hi = depths[i, 0], depths[i, S - 1]
        d = dacc / acc if acc > 0 else math.inf
        depth_out[i] = min(max(d, lo), hi)
        opacity_out[i] = acc


if numba is not None:
    _bilinear = numba.njit(cache=True, nogil=True, inline="always")(_bilinear)
    _density = numba.njit(cache=True, nogil=True, inline="always")(_density)
    _march = numba.njit(cache=True, nogil=True)(_march_py)


def march_heightfield(planes2: np.ndarray, origins: np.ndarray, dirs: np.ndarray, depths: np.ndarray,
                      scale: float, k: float, half: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Mean depth and opacity of rays through the bundled density (identity activation), on
    the midpoint scheme of ``core.rendering.march``.

    Shape: planes2 (3, 2, R, R) float32, the depth channels of the XY, XZ and ZX planes (prior
    included); origins, dirs (N, 3); depths (N, S) sorted -> depth (N,), opacity (N,) float32
    """
    if numba is None:
        raise RuntimeError("march_heightfield needs numba")
    N = depths.shape[0]
    depth = np.empty(N, np.float32)
    opacity = np.empty(N, np.float32)
    p = np.ascontiguousarray(planes2, np.float32)
    _march(p[0], p[1], p[2], np.ascontiguousarray(origins, np.float32), np.ascontiguousarray(dirs, np.float32),
           np.ascontiguousarray(depths, np.float32), float(scale), float(k), float(half), depth, opacity)
    return depth, opacity
