"""The preview rasteriser against hand-computed coverage, depth order and interpolation."""

from __future__ import annotations

import numpy as np
import torch

from triface_studio.core import raster
from triface_studio.core.cameras import Camera


def _inside(px, py, tri):
    """Pixel centres inside a triangle (same-sign edge functions), computed independently."""
    (x0, y0), (x1, y1), (x2, y2) = tri
    def edge(ax, ay, bx, by):
        return (bx - ax) * (py - ay) - (by - ay) * (px - ax)
    e = np.stack([edge(x0, y0, x1, y1), edge(x1, y1, x2, y2), edge(x2, y2, x0, y0)])
    return (e >= 0).all(0) | (e <= 0).all(0)


def test_coverage_of_a_triangle_is_its_pixel_centres_inside():
    tri = [(3.2, 2.7), (27.9, 9.1), (11.4, 30.6)]
    pts = np.array([[x, y, 1.0] for x, y in tri], np.float32)
    fr = raster.rasterize(pts, np.array([[0, 1, 2]]), 32, 32)
    yy, xx = np.mgrid[0:32, 0:32] + 0.5
    expect = _inside(xx, yy, tri)
    # a pixel centre within float rounding of an edge may go either way
    assert (fr.covered != expect).sum() <= 2
    assert expect.sum() > 200 and fr.covered.sum() > 200


def test_long_thin_sliver_is_drawn_along_its_length():
    """A wall seen edge-on: one pixel tall, 60 wide, diagonal bounding box handled by spans."""
    pts = np.array([[2.0, 2.0, 1.0], [62.0, 50.0, 1.0], [62.0, 52.0, 1.0]], np.float32)
    fr = raster.rasterize(pts, np.array([[0, 1, 2]]), 64, 64)
    yy, xx = np.mgrid[0:64, 0:64] + 0.5
    assert (fr.covered != _inside(xx, yy, [(2, 2), (62, 50), (62, 52)])).sum() <= 2


def test_nearest_triangle_wins_and_empty_pixels_say_so():
    square = np.array([[0, 0], [16, 0], [16, 16], [0, 16]], np.float32)
    near = np.concatenate([square, np.full((4, 1), 2.0, np.float32)], 1)
    far = np.concatenate([square + 4, np.full((4, 1), 5.0, np.float32)], 1)
    pts = np.concatenate([far, near])
    faces = np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    fr = raster.rasterize(pts, faces, 24, 24)
    assert (fr.face[:16, :16] >= 2).all()                      # the near square covers the far one
    assert np.allclose(fr.depth[:16, :16], 2.0)
    assert (fr.face[18:20, 18:20] < 2).all() and np.allclose(fr.depth[18:20, 18:20], 5.0)
    assert (fr.face[22:, :4] == -1).all() and np.isinf(fr.depth[22:, :4]).all()


def test_interpolation_reproduces_a_linear_function_and_labels_take_the_heaviest_vertex():
    pts = np.array([[0, 0, 1], [40, 0, 1], [0, 40, 1]], np.float32)
    f = lambda x, y: 0.25 + 0.01 * x - 0.02 * y                # noqa: E731
    vals = np.array([[f(x, y)] for x, y, _ in pts], np.float32)
    fr = raster.rasterize(pts, np.array([[0, 1, 2]]), 40, 40)
    out = raster.interpolate(fr, np.array([[0, 1, 2]]), vals, np.full((40, 40, 1), -9, np.float32))[..., 0]
    yy, xx = np.mgrid[0:40, 0:40] + 0.5
    m = fr.covered
    np.testing.assert_allclose(out[m], f(xx, yy)[m], atol=1e-5)
    assert (out[~m] == -9).all()
    lab = raster.nearest_vertex(fr, np.array([[0, 1, 2]]), np.array([7, 8, 9], np.uint8))
    assert lab[2, 2] == 7 and lab[2, 35] == 8 and lab[35, 2] == 9 and lab[39, 39] == 0


def test_perspective_matches_the_cameras_projection():
    cam = Camera.orbit(33.0, -12.0)
    pts = (torch.rand(200, 3, generator=torch.Generator().manual_seed(0)) - 0.5) * 0.8
    uv, z = cam.project(pts, 256)
    w2c = np.linalg.inv(cam.cam2world.double().numpy())
    out, dist = raster.perspective(pts.numpy(), w2c, cam.K.double().numpy(), 256)
    np.testing.assert_allclose(out[:, :2], uv.numpy(), atol=1e-3)
    np.testing.assert_allclose(out[:, 2], z.numpy(), atol=1e-5)
    np.testing.assert_allclose(dist, (pts - cam.origin).norm(dim=-1).numpy(), atol=1e-5)
