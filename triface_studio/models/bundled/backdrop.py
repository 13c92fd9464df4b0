"""The backdrop of the bundled tier's orbit views: the photo's own background, with the person
removed and filled (:func:`encoder.backdrop`), on a plane behind the head.

A backdrop fixed in the world would be seen from the side at yaw 45 degrees, far outside
anything the photo saw; one that turned with the camera would have no parallax.  The plane
therefore turns with the camera by ``1 - parallax`` of its angles: the view at (yaw, pitch)
sees it as a fixed plane is seen from (parallax * yaw, parallax * pitch), so the background
slides behind the head as it turns and stays mostly inside the photo.  Beyond the photo the
texture is reflected (it is an out-of-focus, inpainted background: no features to repeat).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from triface_studio.core.cameras import Camera, orbit_cam2world
from triface_studio.core.rays import camera_rays

#: world depth of the backdrop plane (behind the back of the head)
BACKDROP_Z = -0.5
#: share of the camera's turn the backdrop does not follow
PARALLAX = 0.5
#: the point orbit views look at and turn around: the head's centre, so the head stays framed
ORBIT_CENTRE = (0.0, 0.0, 0.0)


def orbit_camera(yaw: float, pitch: float) -> Camera:
    """The orbit camera at UI angles looking at :data:`ORBIT_CENTRE` (EG3D's cameras look at
    the pivot (0, 0, 0.2) in front of the head, so at yaw 45 the head slides a fifth of the
    frame sideways and is cut).  At yaw 0, pitch 0 it is :meth:`Camera.frontal` exactly."""
    return Camera(orbit_cam2world(yaw, pitch, lookat=ORBIT_CENTRE), Camera.frontal().K)


def render_backdrop(texture: torch.Tensor, source: Camera, camera: Camera, resolution: int,
                    parallax: float = PARALLAX, depth: float = BACKDROP_Z) -> torch.Tensor:
    """The backdrop seen by ``camera``: the plane z = ``depth`` textured by projecting it into
    the photo's camera ``source``, seen from the camera turned back to ``parallax`` of its angles.

    Shape: texture (3, H, W) in [0, 1] -> (1, 3, resolution, resolution)
    """
    yaw, pitch = camera.yaw_pitch()
    dist = float(camera.origin.norm())
    view = orbit_cam2world(parallax * yaw, parallax * pitch, radius=dist, lookat=ORBIT_CENTRE)
    origins, dirs = camera_rays(view[None].float(), camera.K[None].float(), resolution)
    dz = torch.where(dirs[..., 2].abs() < 1e-6, torch.full_like(dirs[..., 2], -1e-6), dirs[..., 2])
    t = ((depth - origins[..., 2]) / dz).clamp_min(0)
    points = origins + dirs * t[..., None]                                   # (1, M, 3)
    uv, _ = source.to(dtype=torch.float32).project(points[0], 1)
    grid = (uv * 2 - 1).reshape(1, resolution, resolution, 2)
    return F.grid_sample(texture[None].float(), grid, mode="bilinear", padding_mode="reflection",
                         align_corners=False)


def _backdrop_uv(source: Camera, camera: Camera, uv: torch.Tensor, parallax: float, depth: float) -> torch.Tensor:
    """Where pixels (normalised ``uv``) of ``camera``'s view of the backdrop read the photo,
    in the photo's normalised coordinates. Shape: uv (M, 2) -> (M, 2)."""
    yaw, pitch = camera.yaw_pitch()
    dist = float(camera.origin.norm())
    view = orbit_cam2world(parallax * yaw, parallax * pitch, radius=dist, lookat=ORBIT_CENTRE)
    origins, dirs = camera_rays(view[None].double(), camera.K[None].double(), 1, uv[None].double())
    dz = torch.where(dirs[..., 2].abs() < 1e-6, torch.full_like(dirs[..., 2], -1e-6), dirs[..., 2])
    t = ((depth - origins[..., 2]) / dz).clamp_min(0)
    points = origins + dirs * t[..., None]
    return source.to(dtype=torch.float64).project(points[0], 1)[0]


def backdrop_image(texture: np.ndarray, source: Camera, camera: Camera, resolution: int,
                   parallax: float = PARALLAX, depth: float = BACKDROP_Z) -> np.ndarray:
    """:func:`render_backdrop` as one perspective warp of the texture (a plane seen through two
    pinhole cameras is a homography), a millisecond at 512 px: the orbit previews use it.

    Shape: texture (H, W, 3) float32 -> (resolution, resolution, 3) float32
    """
    r = int(resolution)
    corners = torch.tensor([[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]], dtype=torch.float64)
    src = _backdrop_uv(source, camera, corners, parallax, depth).numpy()
    S = np.array(texture.shape[1::-1], np.float64)
    H = cv2.getPerspectiveTransform((corners.numpy() * r - 0.5).astype(np.float32),
                                    (src * S - 0.5).astype(np.float32))
    return cv2.warpPerspective(texture, H, (r, r), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REFLECT)
