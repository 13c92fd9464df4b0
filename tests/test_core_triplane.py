"""Tri-plane layout and sampling against a hand-written bilinear lookup; blending identities;
masks; compositing equations; semantics tables; the asset file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from triface_studio.core import blending, compositing, masks, semantics, triplane
from triface_studio.core.asset import AssetError, TriPlaneAsset
from triface_studio.core.cameras import Camera


def bilinear_numpy(plane, u, v):
    """Sample a (C, R, R) plane at world coords u (columns) and v (rows) in [-0.5, 0.5],
    texel centres at -0.5 + (i + 0.5) / R, zero outside."""
    C, R, _ = plane.shape
    x = (u + 0.5) * R - 0.5
    y = (v + 0.5) * R - 0.5
    x0, y0 = int(np.floor(x)), int(np.floor(y))
    out = np.zeros(C)
    for dy in (0, 1):
        for dx in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            w = (1 - abs(x - xi)) * (1 - abs(y - yi))
            if 0 <= xi < R and 0 <= yi < R:
                out += w * plane[:, yi, xi]
    return out


def test_sampling_layout_matches_documented_axes():
    g = torch.Generator().manual_seed(1)
    planes = torch.rand(1, 3, 2, 8, 8, generator=g, dtype=torch.float64)
    pts = torch.rand(1, 20, 3, generator=g, dtype=torch.float64) - 0.5
    per_plane = triplane.sample(planes, pts, aggregate="none")
    for k, (ca, ra) in enumerate(triplane.PLANE_AXES):
        for m in range(20):
            p = pts[0, m].numpy()
            ref = bilinear_numpy(planes[0, k].numpy(), p[ca], p[ra])
            np.testing.assert_allclose(per_plane[0, k, m].numpy(), ref, atol=1e-12)
    torch.testing.assert_close(triplane.sample(planes, pts, "sum"), per_plane.sum(1))
    torch.testing.assert_close(triplane.sample(planes, pts, "mean"), per_plane.mean(1))
    # documented orientation: XY plane row 0 is world y = -0.5, column 0 is x = -0.5
    planes = torch.zeros(1, 3, 1, 4, 4)
    planes[0, 0, 0, 0, 3] = 1.0
    v = triplane.sample(planes, torch.tensor([[[0.375, -0.375, 0.0]]]), "none")
    assert v[0, 0, 0, 0] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        triplane.sample(torch.zeros(1, 2, 1, 4, 4), pts.float())


def test_projection_matches_eg3d_inverse_plane_matrices():
    """EG3D's ``generate_planes`` axes and ``project_onto_planes`` (points times the inverse
    of each axis matrix, first two components): written out here from the published
    matrices, independently of PLANE_AXES."""
    eg3d_axes = torch.tensor([[[1, 0, 0], [0, 1, 0], [0, 0, 1]],
                              [[1, 0, 0], [0, 0, 1], [0, 1, 0]],
                              [[0, 0, 1], [1, 0, 0], [0, 1, 0]]], dtype=torch.float64)
    pts = torch.rand(2, 50, 3, dtype=torch.float64) - 0.5
    ref = torch.stack([(2 * pts) @ torch.linalg.inv(eg3d_axes[k]) for k in range(3)], dim=1)[..., :2]
    torch.testing.assert_close(triplane.project(pts), ref)
    # the third plane has columns z and rows x: y is seen by the XY plane only
    assert triplane.PLANE_AXES[2] == (2, 0)


def test_plane_grid_points_sample_their_own_texels():
    planes = torch.rand(1, 3, 3, 16, 16)
    for k in range(3):
        pts = triplane.plane_grid(k, 16).reshape(1, -1, 3)
        got = triplane.sample(planes, pts, "none")[0, k]
        torch.testing.assert_close(got, planes[0, k].reshape(3, -1).T)


def test_blend_identities():
    g = torch.Generator().manual_seed(2)
    t_id, t_ref = torch.randn(2, 1, 3, 4, 16, 16, generator=g)
    zero, one = torch.zeros(16, 16), torch.ones(16, 16)
    assert torch.equal(blending.blend(t_id, t_ref, zero, one), t_id)
    full = blending.blend(t_id, t_ref, one, one)
    assert torch.equal(full[:, 0], t_ref[:, 0]) and torch.equal(full[:, 1:], t_id[:, 1:])
    half = zero.clone()
    half[:, :8] = 1
    hole = one.clone()
    hole[4:6, 10:12] = 0
    out = blending.blend(t_id, t_ref, half, hole)
    assert torch.equal(out[0, 0, :, :, :8], t_ref[0, 0, :, :, :8])
    assert torch.all(out[0, 0, :, 4:6, 10:12] == 0)          # identity's k removed: a gap
    assert torch.equal(out[0, 0, :, :4, 8:], t_id[0, 0, :, :4, 8:])
    seq = blending.blend_sequence(t_id, [(t_ref, half, None), (t_id * 2, 1 - half, None)])
    assert torch.equal(seq[0, 0, :, :, :8], t_ref[0, 0, :, :, :8])
    assert torch.equal(seq[0, 0, :, :, 8:], 2 * t_id[0, 0, :, :, 8:])


def test_plane_mask_orientation_follows_the_frontal_camera():
    # a mask on the top half of the frontal image must land on the world +y half of the plane,
    # which is the high-row half of the XY plane (row 0 is y = -0.5)
    m = torch.zeros(64, 64)
    m[:32] = 1
    pm = blending.plane_mask(m, 32)
    assert pm[18:26, 8:24].mean() > 0.95 and pm[:14, 8:24].max() == 0 and pm[28:].max() == 0  # beyond the view
    right = torch.zeros(64, 64)
    right[:, 40:] = 1
    pr = blending.plane_mask(right, 32)
    assert pr[8:24, 22:26].mean() > 0.95 and pr[8:24, :14].max() == 0   # image right = world +x


def test_mask_ops():
    m = torch.zeros(41, 41)
    m[20, 20] = 1
    d = masks.dilate(m, 5)
    assert d.sum() == (np.add.outer(np.arange(-5, 6) ** 2, np.arange(-5, 6) ** 2) <= 25).sum()
    b = masks.gaussian_blur(m, 2.0)
    assert b.sum() == pytest.approx(1.0, abs=1e-5) and b.argmax() == 20 * 41 + 20
    pred = torch.zeros(8, 8)
    pred[:4] = 1
    user = torch.zeros(16, 16)
    user[:, :8] = 1                                             # another size: resized
    assert torch.equal(masks.combine_user_mask(pred, user, "replace")[:, :4], torch.ones(8, 4))
    assert masks.combine_user_mask(pred, user, "add").sum() == 32 + 16
    assert masks.combine_user_mask(pred, user, "subtract").sum() == 16
    with pytest.raises(ValueError):
        masks.combine_user_mask(pred, user, "xor")
    labels = np.array([[0, 13], [3, 13]])
    assert masks.class_mask(labels, semantics.attribute_classes("hair")).tolist() == [[0, 1], [0, 1]]


def test_dilate_is_the_max_over_the_disc_or_the_square_at_the_border_and_in_batches():
    g = torch.Generator().manual_seed(0)
    binary = (torch.rand(2, 1, 30, 30, generator=g) > 0.97).float()
    soft = torch.rand(3, 30, 30, generator=g) * (torch.rand(3, 30, 30, generator=g) > 0.9)
    r = 4
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    for mask, shape in ((binary, (yy ** 2 + xx ** 2) <= r * r), (soft, np.ones((9, 9), bool))):
        a = mask.numpy().reshape(-1, 30, 30)
        padded = np.pad(a, ((0, 0), (r, r), (r, r)))                 # nothing beyond the border
        want = np.zeros_like(a)
        for dy, dx in zip(*np.nonzero(shape)):
            want = np.maximum(want, padded[:, dy:dy + 30, dx:dx + 30])
        got = masks.dilate(mask, r)
        assert got.shape == mask.shape and got.dtype == torch.float32
        np.testing.assert_array_equal(got.numpy().reshape(-1, 30, 30), want)


def test_compositing_equations():
    g = torch.Generator().manual_seed(3)
    i_id, i_ref = torch.rand(2, 8, 8, 3, generator=g)
    mk = torch.zeros(8, 8)
    mk[2:5, 2:5] = 1
    mbg = torch.zeros(8, 8)
    mbg[:, 7] = 1
    coarse = compositing.coarse_composite(i_id, i_ref, mk, mbg)
    assert torch.equal(coarse[3, 3], i_ref[3, 3]) and torch.equal(coarse[0, 0], i_id[0, 0])
    assert torch.all(coarse[0, 7] == 0)
    mk_id = torch.zeros(8, 8)
    mk_id[1:6, 1:6] = 1
    gap = compositing.gap_mask(mk, mbg, mk_id)
    assert gap.sum() == 25 - 9
    skin = torch.zeros(8, 8)
    skin[6, :] = 1
    colour = compositing.mean_colour(i_id, skin)
    torch.testing.assert_close(colour, i_id[6].mean(0))
    filled = compositing.fill_gaps(coarse, gap, colour)
    torch.testing.assert_close(filled[1, 1], colour)
    sde = compositing.sde_mask(mk, gap, radius=1, sigma=0.5)
    assert sde[3, 3] > 0.99 and sde[7, 7] < 0.01
    bg = torch.rand(8, 8, 3, generator=g)
    com = compositing.final_composite(filled, mbg, bg)
    assert torch.equal(com[:, 7], bg[:, 7]) and torch.equal(com[3, 3], filled[3, 3])


def test_semantics_tables():
    assert len(semantics.CLASS_NAMES) == semantics.NUM_CLASSES == 19
    ids = np.arange(19)
    assert (semantics.from_bisenet(semantics.to_bisenet(ids)) == ids).all()
    # the documented data-set mapping to BiSeNet ids
    assert semantics.TO_BISENET.tolist() == [0, 1, 10, 6, 4, 5, 2, 3, 7, 8, 11, 12, 13, 17, 18, 9, 15, 14, 16]
    lab = np.array([[semantics.L_EYE, semantics.HAIR, semantics.R_BROW]])
    assert semantics.flip_labels(lab).tolist() == [[semantics.L_BROW, semantics.HAIR, semantics.R_EYE]]
    assert semantics.colorize(lab).shape == (1, 3, 3)
    assert semantics.attribute_classes(["eyes", "lips"]) == {4, 5, 10, 11, 12}
    with pytest.raises(KeyError, match="known"):
        semantics.attribute_classes("moustache")


def test_asset_round_trip_and_errors(tmp_path):
    a = TriPlaneAsset(torch.randn(1, 3, 5, 8, 8), "bundled", Camera.orbit(12, -4), {"source": "x.jpg"},
                      {"ws": torch.randn(1, 14, 8)})
    p = tmp_path / "t.safetensors"
    a.save(p)
    b = TriPlaneAsset.load(p)
    assert torch.equal(a.planes, b.planes) and torch.equal(a.tensors["ws"], b.tensors["ws"])
    assert b.tier == "bundled" and b.extra == {"source": "x.jpg"}
    assert b.source_camera.yaw_pitch() == pytest.approx((12, -4), abs=1e-4)
    (tmp_path / "bad.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(AssetError):
        TriPlaneAsset.load(tmp_path / "bad.safetensors")
    with pytest.raises(AssetError, match="no such"):
        TriPlaneAsset.load(tmp_path / "missing.safetensors")


def test_sum_over_live_channels_equals_full_sum():
    g = torch.Generator().manual_seed(5)
    planes = torch.rand(1, 3, 6, 16, 16, generator=g, dtype=torch.float64)
    planes[0, 1, 2:] = 0          # XZ carries channels 0-1 only
    planes[0, 2, :4] = 0          # ZX carries channels 4-5 only
    planes[0, 2, 5] = 0
    pts = torch.rand(1, 40, 3, generator=g, dtype=torch.float64) * 1.2 - 0.6   # some outside the box
    full = triplane.sample(planes, pts, "sum")
    torch.testing.assert_close(triplane.sample_sum_channels(planes, pts, [None, [0, 1], [4]]), full)
    torch.testing.assert_close(triplane.sample_sum_channels(planes, pts, [[0, 2, 3, 1, 4, 5], [0, 1], [4]]), full)
    # a plane with no live channels is skipped
    planes[0, 2] = 0
    torch.testing.assert_close(triplane.sample_sum_channels(planes, pts, [None, [0, 1], []]),
                               triplane.sample(planes, pts, "sum"))
