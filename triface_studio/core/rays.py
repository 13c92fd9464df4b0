"""Camera rays, exactly as EG3D's ``RaySampler`` builds them."""

from __future__ import annotations

import torch


def pixel_grid(resolution: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """Normalised pixel centres (u right, v down) in row-major pixel order. Shape: (R*R, 2)."""
    t = (torch.arange(resolution, dtype=dtype, device=device) + 0.5) / resolution
    v, u = torch.meshgrid(t, t, indexing="ij")
    return torch.stack([u.reshape(-1), v.reshape(-1)], -1)


def camera_rays(cam2world: torch.Tensor, K: torch.Tensor, resolution: int,
                uv: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Ray origins and unit directions for every pixel (row-major) or for given ``uv``.

    Shape: cam2world (B, 4, 4), K (B, 3, 3), uv (B, M, 2) or None -> (B, M, 3), (B, M, 3)
    """
    B = cam2world.shape[0]
    if uv is None:
        uv = pixel_grid(resolution, cam2world.dtype, cam2world.device).expand(B, -1, -1)
    fx, fy = K[:, 0, 0, None], K[:, 1, 1, None]
    cx, cy, sk = K[:, 0, 2, None], K[:, 1, 2, None], K[:, 0, 1, None]
    x, y = uv[..., 0], uv[..., 1]
    x_lift = (x - cx + cy * sk / fy - sk * y / fy) / fx
    y_lift = (y - cy) / fy
    d_cam = torch.stack([x_lift, y_lift, torch.ones_like(x_lift)], -1)
    dirs = torch.nn.functional.normalize(d_cam @ cam2world[:, :3, :3].transpose(1, 2), dim=-1)
    origins = cam2world[:, None, :3, 3].expand_as(dirs)
    return origins, dirs


def source_pixels(depth: torch.Tensor, camera, source, resolution: int | None = None) -> torch.Tensor:
    """Where each pixel of a view from ``camera`` lies in a photo taken by ``source``: the
    pixel's ray is followed to its rendered ``depth`` (distance along the ray) and the point
    projected with ``source`` (x right, y down, pixel centres at +0.5, in pixels of a
    ``resolution`` image; default the view's own size).  Shape: depth (R, R) -> (R, R, 2)"""
    R = depth.shape[-1]
    d = depth.reshape(-1).to(torch.float64)
    camera, source = camera.to(depth.device), source.to(depth.device)
    origins, dirs = camera_rays(camera.cam2world[None].double(), camera.K[None].double(), R)
    points = origins[0] + dirs[0] * d[:, None]
    uv, _ = source.project(points, int(resolution or R))
    return uv.reshape(R, R, 2).to(torch.float32)
