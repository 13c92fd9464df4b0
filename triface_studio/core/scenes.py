"""Analytic tri-plane scenes with closed-form answers: a sphere whose squared radius is spread
over the three planes.  Used by tests (silhouette and depth against ray-sphere intersection)
and by ``triface bench`` as a fixed workload that needs no model weights."""

from __future__ import annotations

import torch

from . import triplane
from .rendering import DecoderOutput
from .semantics import NUM_CLASSES, SKIN, HAIR


def sphere_triplane(resolution: int = 128, center=(0.0, 0.0, 0.0), dtype=torch.float32, device=None) -> torch.Tensor:
    """A 4-channel tri-plane: channel 0 sums (over the planes) to |p - center|^2; channels 1-3
    carry a colour that depends on x, y and z.  Shape: -> (1, 3, 4, R, R)."""
    c = torch.as_tensor(center, dtype=dtype, device=device)
    planes = torch.zeros(1, 3, 4, resolution, resolution, dtype=dtype, device=device)
    # an axis read by n planes (x by three, y by one, z by two in EG3D's layout) puts 1/n of its
    # square on each of them
    seen = [sum(axis in ax for ax in triplane.PLANE_AXES) for axis in range(3)]
    for k in range(3):
        pts = triplane.plane_grid(k, resolution, dtype=dtype, device=device)
        col_axis, row_axis = triplane.PLANE_AXES[k]
        a, b = pts[..., col_axis] - c[col_axis], pts[..., row_axis] - c[row_axis]
        planes[0, k, 0] = a * a / seen[col_axis] + b * b / seen[row_axis]
    planes[0, 0, 1] = 0.5 + triplane.plane_grid(0, resolution, dtype=dtype, device=device)[..., 0]  # red ~ x
    planes[0, 0, 2] = 0.5 + triplane.plane_grid(0, resolution, dtype=dtype, device=device)[..., 1]  # green ~ y
    planes[0, 1, 3] = 0.5 + triplane.plane_grid(1, resolution, dtype=dtype, device=device)[..., 2]  # blue ~ z
    return planes


class SphereDecoder(torch.nn.Module):
    """Density ``sharpness * sigmoid((r^2 - |p|^2) * k)``; RGB from channels 1-3; semantics:
    "hair" above ``hair_above`` (world y), "skin" elsewhere inside the sphere."""

    aggregate = "sum"
    density_activation = "identity"

    def __init__(self, radius: float = 0.3, density: float = 200.0, k: float = 400.0, hair_above: float = 0.1):
        super().__init__()
        self.radius, self.density, self.k, self.hair_above = radius, density, k, hair_above

    def forward(self, features: torch.Tensor, points: torch.Tensor, dirs: torch.Tensor) -> DecoderOutput:
        r2 = features[..., :1]
        density = self.density * torch.sigmoid((self.radius ** 2 - r2) * self.k)
        # outside the box the planes read zero (zero padding): no density there
        density = density * (points.abs() < triplane.BOX_HALF).all(-1, keepdim=True)
        sem = torch.full(points.shape[:-1] + (NUM_CLASSES,), -10.0, dtype=features.dtype, device=features.device)
        is_hair = (points[..., 1] > self.hair_above)
        sem[..., HAIR] = torch.where(is_hair, 10.0, -10.0)
        sem[..., SKIN] = torch.where(is_hair, -10.0, 10.0)
        return DecoderOutput(density, features[..., 1:4], sem)
