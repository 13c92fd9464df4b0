"""Cameras in the convention of EG3D's FFHQ checkpoints.

World space: the canonical head sits inside the box [-0.5, 0.5]^3, +y is up, the face looks
towards +z.  A camera is a 4x4 ``cam2world`` matrix in the OpenCV convention (camera x right,
y down, z forward) and 3x3 intrinsics normalised by the image size (so the same camera renders
at any resolution).  EG3D's 25-d camera label is ``cam2world.flatten()`` (16) followed by
``intrinsics.flatten()`` (9).

Orbit cameras sit at radius 2.7 and look at the FFHQ pivot (0, 0, 0.2).  ``yaw``/``pitch`` in
degrees are the UI's angles: yaw > 0 moves the camera towards +x (the subject turns to the
viewer's left), pitch > 0 moves it up.  They map onto EG3D's ``LookAtPoseSampler.sample``
arguments as ``horizontal = pi/2 + yaw``, ``vertical = pi/2 - pitch`` (EG3D's ``gen_videos``
adds its own pitch to ``pi/2``, so its pitch is our negative pitch), see :func:`eg3d_angles`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

FOCAL = 4.2647            # normalised focal length of the FFHQ labels
FOV_DEGREES = 18.837      # EG3D's field of view (see fov_to_focal)
RADIUS = 2.7              # orbit radius
PIVOT = (0.0, 0.0, 0.2)   # look-at point


def intrinsics(focal: float = FOCAL, cx: float = 0.5, cy: float = 0.5,
               dtype=torch.float32, device=None) -> torch.Tensor:
    """Normalised 3x3 intrinsics. Shape: (3, 3)."""
    return torch.tensor([[focal, 0.0, cx], [0.0, focal, cy], [0.0, 0.0, 1.0]], dtype=dtype, device=device)


def fov_to_focal(fov_degrees: float) -> float:
    """Normalised focal length of a field of view as EG3D's ``FOV_to_intrinsics`` defines it:
    1 / (tan(fov / 2) * 1.414) (its FOV is not the image's edge-to-edge angle)."""
    return 1.0 / (math.tan(math.radians(fov_degrees) / 2) * 1.414)


def focal_to_fov(focal: float) -> float:
    """Inverse of :func:`fov_to_focal`."""
    return math.degrees(2 * math.atan(1.0 / (focal * 1.414)))


def look_at(origin: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """cam2world of a camera at ``origin`` looking at ``target`` with world +y up, exactly as
    EG3D's ``create_cam2world_matrix``.

    Shape: origin, target (..., 3) -> (..., 4, 4)
    """
    origin, target = torch.broadcast_tensors(origin, target)
    forward = torch.nn.functional.normalize(target - origin, dim=-1)
    up = torch.zeros_like(forward)
    up[..., 1] = 1.0
    right = -torch.nn.functional.normalize(torch.linalg.cross(up, forward, dim=-1), dim=-1)
    up = torch.nn.functional.normalize(torch.linalg.cross(forward, right, dim=-1), dim=-1)
    m = torch.zeros(origin.shape[:-1] + (4, 4), dtype=origin.dtype, device=origin.device)
    m[..., :3, 0] = right
    m[..., :3, 1] = up
    m[..., :3, 2] = forward
    m[..., :3, 3] = origin
    m[..., 3, 3] = 1.0
    return m


def lookat_pose_sampler(horizontal: float, vertical: float, lookat=PIVOT, radius: float = RADIUS,
                        dtype=torch.float32, device=None) -> torch.Tensor:
    """EG3D's ``LookAtPoseSampler.sample`` with zero spread, as a function of its angles in
    radians.  Note EG3D places the camera on a sphere around the origin (not around the look-at
    point) and then turns it towards the look-at point; we keep that.  Shape: -> (4, 4)."""
    v = min(max(vertical, 1e-5), math.pi - 1e-5)
    theta = horizontal
    phi = math.acos(1 - 2 * (v / math.pi))
    origin = torch.tensor(
        [
            radius * math.sin(phi) * math.cos(math.pi - theta),
            radius * math.cos(phi),
            radius * math.sin(phi) * math.sin(math.pi - theta),
        ],
        dtype=dtype, device=device,
    )
    return look_at(origin, torch.tensor(lookat, dtype=dtype, device=device))


def eg3d_angles(yaw_deg: float, pitch_deg: float) -> tuple[float, float]:
    """UI yaw/pitch (degrees) -> EG3D ``(horizontal_mean, vertical_mean)`` in radians."""
    return math.pi / 2 + math.radians(yaw_deg), math.pi / 2 - math.radians(pitch_deg)


def orbit_cam2world(yaw_deg: float = 0.0, pitch_deg: float = 0.0, radius: float = RADIUS,
                    lookat=PIVOT, dtype=torch.float32, device=None) -> torch.Tensor:
    """cam2world of the orbit camera at UI angles. Shape: -> (4, 4)."""
    h, v = eg3d_angles(yaw_deg, pitch_deg)
    return lookat_pose_sampler(h, v, lookat, radius, dtype=dtype, device=device)


@dataclass(frozen=True)
class Camera:
    """One camera: ``cam2world`` (4, 4) in OpenCV convention and normalised ``K`` (3, 3)."""

    cam2world: torch.Tensor
    K: torch.Tensor

    @staticmethod
    def orbit(yaw_deg: float = 0.0, pitch_deg: float = 0.0, radius: float = RADIUS,
              focal: float = FOCAL, device=None) -> "Camera":
        return Camera(orbit_cam2world(yaw_deg, pitch_deg, radius, device=device), intrinsics(focal, device=device))

    @staticmethod
    def frontal(device=None) -> "Camera":
        return Camera.orbit(0.0, 0.0, device=device)

    @staticmethod
    def from_label(label) -> "Camera":
        """From EG3D's 25-d label (sequence, numpy array or tensor)."""
        t = torch.as_tensor(label, dtype=torch.float32).reshape(-1)
        if t.numel() != 25:
            raise ValueError(f"an EG3D camera label has 25 numbers, got {t.numel()}")
        return Camera(t[:16].reshape(4, 4).clone(), t[16:].reshape(3, 3).clone())

    def label(self) -> torch.Tensor:
        """EG3D's 25-d label. Shape: (25,)."""
        return torch.cat([self.cam2world.reshape(-1), self.K.reshape(-1)]).to(torch.float32)

    @property
    def origin(self) -> torch.Tensor:
        return self.cam2world[:3, 3]

    def to(self, device=None, dtype=None) -> "Camera":
        return Camera(self.cam2world.to(device=device, dtype=dtype), self.K.to(device=device, dtype=dtype))

    def yaw_pitch(self) -> tuple[float, float]:
        """UI angles of this camera, read from its position relative to the world origin
        (the inverse of :meth:`orbit` for orbit cameras)."""
        return yaw_pitch_of(self.cam2world)

    def project(self, points: torch.Tensor, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
        """World points -> pixel coordinates (x right, y down; pixel centres at +0.5) and depth
        along the camera's z axis. Shape: (..., 3) -> (..., 2), (...)"""
        w2c = torch.linalg.inv(self.cam2world.to(points.dtype))
        p = points @ w2c[:3, :3].T + w2c[:3, 3]
        z = p[..., 2]
        uv = p[..., :2] / z.unsqueeze(-1).clamp_min(1e-8)
        K = self.K.to(points.dtype)
        u = (K[0, 0] * uv[..., 0] + K[0, 1] * uv[..., 1] + K[0, 2]) * resolution
        v = (K[1, 1] * uv[..., 1] + K[1, 2]) * resolution
        return torch.stack([u, v], -1), z


def yaw_pitch_of(cam2world: torch.Tensor) -> tuple[float, float]:
    """UI yaw/pitch (degrees) of a camera placed as EG3D's sampler places it."""
    o = cam2world[:3, 3].double()
    r = torch.linalg.norm(o)
    phi = math.acos(float(o[1] / r))
    v = (1 - math.cos(phi)) / 2 * math.pi
    theta = math.pi - math.atan2(float(o[2]), float(o[0]))
    yaw = math.degrees(theta - math.pi / 2)
    yaw = (yaw + 180.0) % 360.0 - 180.0
    return yaw, math.degrees(math.pi / 2 - v)
