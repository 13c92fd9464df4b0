"""Tri-planes: three axis-aligned feature planes inside the box [-0.5, 0.5]^3.

This module is the one place that fixes the layout, which is the one EG3D's released
checkpoints use (``generate_planes`` + ``project_onto_planes`` with box_warp 1):

=========  ===========================  ============================
plane      image columns (grid x)       image rows (grid y)
=========  ===========================  ============================
0  "XY"    world x: -0.5 -> +0.5        world y: -0.5 -> +0.5
1  "XZ"    world x: -0.5 -> +0.5        world z: -0.5 -> +0.5
2  "ZX"    world z: -0.5 -> +0.5        world x: -0.5 -> +0.5
=========  ===========================  ============================

Plane 2 is EG3D's third ``generate_planes`` matrix; ``project_onto_planes`` multiplies points
by its *inverse*, which reads (z, x): columns z, rows x (checked against EG3D's own functions
by ``packaging/compat/compare_eg3d.py``).  The y axis is therefore seen by the XY plane only.

Row 0 of the XY plane is world y = -0.5, i.e. the *bottom* of the head (world +y is up), so the
XY plane looks upside down next to a frontal photo; :func:`xy_plane_from_frontal` takes care of
that.

Sampling is bilinear with ``align_corners=False`` and zero padding: texel (r, c) of an R x R
plane has its centre at ``-0.5 + (c + 0.5) / R`` along the column axis.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

PLANE_NAMES = ("XY", "XZ", "ZX")
#: For each plane, the world axes read by grid x (columns) and grid y (rows).
PLANE_AXES = ((0, 1), (0, 2), (2, 0))
BOX_HALF = 0.5

Aggregate = Literal["sum", "mean", "none"]


def check_triplane(planes: torch.Tensor) -> None:
    if planes.ndim != 5 or planes.shape[1] != 3 or planes.shape[-1] != planes.shape[-2]:
        raise ValueError(f"tri-plane must have shape (B, 3, C, R, R), got {tuple(planes.shape)}")


def project(points: torch.Tensor, box_warp: float = 1.0) -> torch.Tensor:
    """World points -> grid_sample coordinates on each plane.

    Shape: (B, M, 3) -> (B, 3, M, 2), values in [-1, 1] inside the box.
    """
    p = points * (2.0 / box_warp)
    return torch.stack([p[..., list(ax)] for ax in PLANE_AXES], dim=1)


def sample(planes: torch.Tensor, points: torch.Tensor, aggregate: Aggregate = "sum",
           box_warp: float = 1.0, mode: str = "bilinear") -> torch.Tensor:
    """Sample tri-plane features at world points.

    ``aggregate`` is ``"sum"`` (the paper, eq. 3), ``"mean"`` (EG3D's decoder) or ``"none"``.

    Shape: planes (B, 3, C, R, R), points (B, M, 3) -> (B, M, C), or (B, 3, M, C) for "none".
    """
    check_triplane(planes)
    B, _, C, R, _ = planes.shape
    grid = project(points, box_warp).to(planes.dtype)                # (B, 3, M, 2)
    feats = F.grid_sample(planes.reshape(B * 3, C, R, R), grid.reshape(B * 3, 1, -1, 2),
                          mode=mode, padding_mode="zeros", align_corners=False)  # (B*3, C, 1, M)
    feats = feats.reshape(B, 3, C, -1).permute(0, 1, 3, 2)          # (B, 3, M, C)
    if aggregate == "sum":
        return feats.sum(1)
    if aggregate == "mean":
        return feats.mean(1)
    if aggregate == "none":
        return feats
    raise ValueError(f"aggregate must be 'sum', 'mean' or 'none', not {aggregate!r}")


def sample_sum_channels(planes: torch.Tensor, points: torch.Tensor, channels, box_warp: float = 1.0,
                        mode: str = "bilinear") -> torch.Tensor:
    """Like ``sample(..., "sum")`` when plane k is zero outside the channels ``channels[k]``
    (a list of channel indices, or None for all): only those channels are read, so a tri-plane
    whose side planes carry one or two channels costs little more than its XY plane.

    Shape: planes (B, 3, C, R, R), points (B, M, 3) -> (B, M, C)
    """
    check_triplane(planes)
    B, _, C, R, _ = planes.shape
    grid = project(points, box_warp).to(planes.dtype)                # (B, 3, M, 2)
    out = None
    for k in range(3):
        ch = channels[k]
        if ch is None:
            sel = slice(None)
        elif len(ch) == 0:
            continue
        elif list(ch) == list(range(ch[0], ch[0] + len(ch))):
            sel = slice(ch[0], ch[0] + len(ch))                       # a contiguous run: a view
        else:
            sel = list(ch)
        f = F.grid_sample(planes[:, k, sel], grid[:, k, None], mode=mode, padding_mode="zeros",
                          align_corners=False)[:, :, 0]
        if out is None:
            out = f if ch is None else planes.new_zeros(B, C, f.shape[-1])
            if ch is None:
                continue
        out[:, sel] += f
    if out is None:
        out = planes.new_zeros(B, C, points.shape[1])
    return out.transpose(1, 2)


def texel_centres(resolution: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """World coordinate of texel centres along one plane axis. Shape: (R,)."""
    return -BOX_HALF + (torch.arange(resolution, dtype=dtype, device=device) + 0.5) / resolution * (2 * BOX_HALF)


def plane_grid(plane: int, resolution: int, depth: float = 0.0, dtype=torch.float32, device=None) -> torch.Tensor:
    """World points at the texel centres of one plane, with the third coordinate set to
    ``depth``. Shape: -> (R, R, 3), indexed [row, column]."""
    t = texel_centres(resolution, dtype, device)
    rows, cols = torch.meshgrid(t, t, indexing="ij")
    col_axis, row_axis = PLANE_AXES[plane]
    pts = torch.full((resolution, resolution, 3), float(depth), dtype=dtype, device=device)
    pts[..., col_axis] = cols
    pts[..., row_axis] = rows
    return pts


def xy_plane_from_frontal(image: torch.Tensor, camera, resolution: int, depth: float | torch.Tensor = 0.0,
                          mode: str = "bilinear") -> torch.Tensor:
    """Resample an image seen by ``camera`` (normally the frontal one) onto the XY plane.

    Each texel (x, y) of the plane is projected into the image at world z = ``depth`` (a
    number, or a (R, R) tensor of depths per texel) and the image is read there; texels that
    land outside the image read 0.  This is how a frontal semantic mask becomes M_k on the plane.

    Shape: image (C, H, W) or (H, W) -> (C, R, R) or (R, R)
    """
    squeeze = image.ndim == 2
    img = image[None] if squeeze else image
    pts = plane_grid(0, resolution, 0.0, dtype=torch.float32, device=img.device)
    if torch.is_tensor(depth):
        pts[..., 2] = depth.to(pts)
    else:
        pts[..., 2] = float(depth)
    H, W = img.shape[-2:]
    uv, _ = camera.to(img.device).project(pts, 1)                   # normalised [0, 1] coords
    grid = uv * 2 - 1                                               # grid_sample coords
    out = F.grid_sample(img[None].float(), grid[None], mode=mode, padding_mode="zeros", align_corners=False)[0]
    out = out.to(img.dtype) if not img.dtype.is_floating_point and mode == "nearest" else out
    return out[0] if squeeze else out
