"""Cameras: EG3D's look-at mapping re-derived independently in numpy, label round trips,
projection against ray generation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from triface_studio.core import cameras
from triface_studio.core.cameras import Camera
from triface_studio.core.rays import camera_rays


def eg3d_lookat_numpy(h, v, lookat, radius):
    """EG3D's LookAtPoseSampler.sample (zero spread) + create_cam2world_matrix, from the formulas."""
    v = np.clip(v, 1e-5, math.pi - 1e-5)
    phi = np.arccos(1 - 2 * v / math.pi)
    o = np.array([radius * np.sin(phi) * np.cos(math.pi - h), radius * np.cos(phi),
                  radius * np.sin(phi) * np.sin(math.pi - h)])
    f = np.asarray(lookat) - o
    f /= np.linalg.norm(f)
    up = np.array([0.0, 1.0, 0.0])
    r = -np.cross(up, f)
    r /= np.linalg.norm(r)
    u = np.cross(f, r)
    u /= np.linalg.norm(u)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = r, u, f, o
    return m


@pytest.mark.parametrize("yaw,pitch", [(0, 0), (35, 0), (-35, 10), (12.5, -20), (90, 30)])
def test_orbit_matches_eg3d_lookat(yaw, pitch):
    h, v = math.pi / 2 + math.radians(yaw), math.pi / 2 - math.radians(pitch)
    assert cameras.eg3d_angles(yaw, pitch) == pytest.approx((h, v))
    ref = eg3d_lookat_numpy(h, v, (0, 0, 0.2), 2.7)
    got = cameras.orbit_cam2world(yaw, pitch, dtype=torch.float64).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-12)
    back = Camera(torch.from_numpy(got), cameras.intrinsics(dtype=torch.float64)).yaw_pitch()
    assert back == pytest.approx((yaw, pitch), abs=1e-9)


def test_frontal_camera_geometry():
    c2w = cameras.orbit_cam2world(0, 0, dtype=torch.float64)
    np.testing.assert_allclose(c2w[:3, 3].numpy(), [0, 0, 2.7], atol=1e-12)
    # OpenCV convention: camera x = world +x, camera y (down) = world -y, forward towards -z-ish
    np.testing.assert_allclose(c2w[:3, 0].numpy(), [1, 0, 0], atol=1e-12)
    assert c2w[1, 1] < -0.99 and c2w[2, 2] < -0.99
    assert cameras.focal_to_fov(cameras.FOCAL) == pytest.approx(cameras.FOV_DEGREES, abs=0.01)
    assert cameras.fov_to_focal(cameras.FOV_DEGREES) == pytest.approx(cameras.FOCAL, abs=5e-3)


def test_positive_yaw_moves_camera_to_plus_x_and_pitch_up():
    assert cameras.orbit_cam2world(30, 0)[0, 3] > 0.5
    assert cameras.orbit_cam2world(0, 20)[1, 3] > 0.5


def test_label_round_trip():
    cam = Camera.orbit(17.0, -8.0)
    label = cam.label()
    assert label.shape == (25,)
    np.testing.assert_allclose(label[16:].numpy(), [4.2647, 0, 0.5, 0, 4.2647, 0.5, 0, 0, 1], atol=1e-6)
    back = Camera.from_label(label.numpy())
    torch.testing.assert_close(back.cam2world, cam.cam2world)
    with pytest.raises(ValueError, match="25"):
        Camera.from_label([0.0] * 24)


def test_projection_inverts_ray_generation():
    cam = Camera.orbit(20, 10).to(dtype=torch.float64)
    res = 16
    o, d = camera_rays(cam.cam2world[None], cam.K[None], res)
    pts = o[0] + 2.6 * d[0]
    uv, z = cam.project(pts, res)
    ii, jj = torch.meshgrid(torch.arange(res), torch.arange(res), indexing="ij")
    expected = torch.stack([jj.reshape(-1) + 0.5, ii.reshape(-1) + 0.5], -1).double()
    torch.testing.assert_close(uv, expected, atol=1e-9, rtol=0)
    assert (z > 0).all()


def test_source_pixels_of_a_view_in_its_own_photo_are_its_pixel_centres():
    """A view's pixels followed to a surface and projected back with the same camera land on
    themselves; with another camera they land where that camera sees the same points."""
    from triface_studio.core.cameras import Camera
    from triface_studio.core.rays import camera_rays, source_pixels

    cam = Camera.orbit(20.0, 5.0)
    o, d = camera_rays(cam.cam2world[None], cam.K[None], 32)
    t = -(o[0, :, 2]) / d[0, :, 2]                     # the plane z = 0
    depth = t.reshape(32, 32)
    uv = source_pixels(depth, cam, cam)
    centres = torch.stack(torch.meshgrid(torch.arange(32) + 0.5, torch.arange(32) + 0.5, indexing="xy"), -1)
    assert torch.allclose(uv, centres.float(), atol=1e-3)
    front = Camera.frontal()
    points = (o[0] + d[0] * t[:, None]).reshape(32, 32, 3)
    expect, _ = front.project(points, 64)
    assert torch.allclose(source_pixels(depth, cam, front, 64), expect, atol=1e-3)
