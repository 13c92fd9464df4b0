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
prange = range


def _bilinear2(plane, u, v):
    """grid_sample(align_corners=False, padding zeros) of channels 0 and 1 at normalised (u, v)."""
    R = plane.shape[1]
    x = ((u + 1.0) * R - 1.0) * 0.5
    y = ((v + 1.0) * R - 1.0) * 0.5
    x0 = math.floor(x)
    y0 = math.floor(y)
    fx = x - x0
    fy = y - y0
    a = 0.0
    b = 0.0
    for dy in range(2):
        yy = y0 + dy
        if yy < 0 or yy >= R:
            continue
        wy = fy if dy == 1 else 1.0 - fy
        for dx in range(2):
            xx = x0 + dx
            if xx < 0 or xx >= R:
                continue
            w = (fx if dx == 1 else 1.0 - fx) * wy
            a += w * plane[0, yy, xx]
            b += w * plane[1, yy, xx]
    return a, b


def _density(xy, xz, zx, px, py, pz, scale, k, half):
    if abs(px) >= half or abs(py) >= half or abs(pz) >= half:
        return 0.0
    u, v, w = px * 2.0, py * 2.0, pz * 2.0          # box_warp 1: world -> grid coordinates
    a0, a1 = _bilinear2(xy, u, v)
    b0, b1 = _bilinear2(xz, u, w)
    c0, c1 = _bilinear2(zx, w, u)
    return scale / (1.0 + math.exp(-k * (a0 + b0 + c0))) / (1.0 + math.exp(-k * (a1 + b1 + c1)))


#: transmittance below which a ray's remaining samples are skipped (their weights are smaller)
T_MIN = 1e-6


def _march_py(xy, xz, zx, origins, dirs, depths, scale, k, half, depth_out, opacity_out):
    N, S = depths.shape
    for i in prange(N):
        ox, oy, oz = origins[i, 0], origins[i, 1], origins[i, 2]
        dx, dy, dz = dirs[i, 0], dirs[i, 1], dirs[i, 2]
        t = depths[i, 0]
        prev = _density(xy, xz, zx, ox + t * dx, oy + t * dy, oz + t * dz, scale, k, half)
        trans = 1.0
        acc = 0.0
        dacc = 0.0
        for s in range(1, S):
            t1 = depths[i, s]
            cur = _density(xy, xz, zx, ox + t1 * dx, oy + t1 * dy, oz + t1 * dz, scale, k, half)
            alpha = 1.0 - math.exp(-0.5 * (prev + cur) * (t1 - t))
            w = alpha * trans
            acc += w
            dacc += w * 0.5 * (t + t1)
            trans *= 1.0 - alpha + 1e-10
            prev, t = cur, t1
            if trans < T_MIN:
                break
        lo, hi = depths[i, 0], depths[i, S - 1]
        d = dacc / acc if acc > 0 else math.inf
        depth_out[i] = min(max(d, lo), hi)
        opacity_out[i] = acc


if numba is not None:
    prange = numba.prange
    _bilinear2 = numba.njit(cache=True, nogil=True, inline="always")(_bilinear2)
    _density = numba.njit(cache=True, nogil=True, inline="always")(_density)
    #: rays in parallel on numba's own worker threads (not Python threads)
    _march = numba.njit(cache=True, nogil=True, parallel=True)(_march_py)


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
