"""Bundled tier: lift of synthetic heads with known geometry, symmetry fill, pose
canonicalisation, render at the source camera, hair blending, save/load and the CLI."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from triface_studio.core import triplane
from triface_studio.core.asset import TriPlaneAsset
from triface_studio.core.blending import blend
from triface_studio.core.cameras import Camera
from triface_studio.core.rendering import RenderOptions
from triface_studio.core.semantics import BACKGROUND, HAIR, SKIN
from triface_studio.models.base import Tier
from triface_studio.models.bundled import BundledTier, decoded_xy, head_height_field, lift

R = 64
OPTS = RenderOptions(n_coarse=8, n_importance=8, background=(1.0, 1.0, 1.0))


def _pattern(size=128, seed=0):
    """A smooth colour pattern photo and labels: an ellipse of skin with hair above y=0.35 of the image."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    f = rng.uniform(1.5, 3.0, 3)
    img = np.stack([0.5 + 0.4 * np.sin(2 * np.pi * f[0] * xx), 0.5 + 0.4 * np.cos(2 * np.pi * f[1] * yy),
                    0.5 + 0.3 * np.sin(2 * np.pi * f[2] * (xx + yy))], -1)
    inside = ((xx - 0.5) / 0.33) ** 2 + ((yy - 0.5) / 0.45) ** 2 < 1
    labels = np.where(inside, np.where(yy < 0.35, HAIR, SKIN), BACKGROUND).astype(np.uint8)
    return (img * 255).astype(np.uint8), labels


def _fa(img, labels, camera):
    return SimpleNamespace(crop=img, labels=labels, camera=camera, name="synthetic")


def _tier():
    t = BundledTier("cpu", resolution=R)
    t.render_options = OPTS
    return t


def _psnr(a, b, m):
    mse = float(((a - b) ** 2)[m].mean())
    return 10 * np.log10(1 / max(mse, 1e-10))


def test_tier_protocol_and_round_trip_geometry(tmp_path):
    tier = _tier()
    assert isinstance(tier, Tier)
    img, labels = _pattern()
    asset = tier.encode(_fa(img, labels, Camera.frontal()))
    assert asset.tier == "bundled" and asset.planes.shape == (1, 3, 24, R, R)
    # the summed front channel is z_front - z at any point: known geometry of the default shell
    front, _ = head_height_field(R)
    pts = torch.tensor([[[0.0, 0.0, 0.1], [0.0, 0.0, -0.1]]])
    f = tier.decoder.sample_features(asset.planes, pts)[0, :, 0]
    z0 = float(front[R // 2, R // 2] + front[R // 2 - 1, R // 2 - 1]) / 2
    assert abs(float(f[0]) - (z0 - 0.1)) < 0.02 and abs(float(f[1]) - (z0 + 0.1)) < 0.02
    # rendered depth at the image centre = camera distance to the shell's front
    res = tier.render(asset, Camera.frontal(), 32)
    d = float(res.depth[0, 0, 16, 16])
    cam_z = float(Camera.frontal().origin[2])
    assert abs(d - (cam_z - z0)) < 0.03
    assert float(res.opacity[0, 0, 16, 16]) > 0.95 and float(res.opacity[0, 0, 0, 0]) < 0.05
    # save/load keeps planes, tier and camera
    asset.save(tmp_path / "t.safetensors")
    back = TriPlaneAsset.load(tmp_path / "t.safetensors")
    assert torch.equal(back.planes, asset.planes) and back.tier == "bundled"
    assert torch.allclose(back.source_camera.label(), Camera.frontal().label(), atol=1e-5)


@pytest.mark.parametrize("yaw,pitch", [(0.0, 0.0), (15.0, -8.0)])
def test_render_at_source_camera_matches_input(yaw, pitch):
    tier = _tier()
    img, labels = _pattern(seed=1)
    cam = Camera.orbit(yaw, pitch)
    asset = tier.encode(_fa(img, labels, cam))
    res = tier.render(asset, cam, 64)
    rgb = res.rgb[0].permute(1, 2, 0).numpy()
    ref = torch.nn.functional.interpolate(torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255,
                                          size=(64, 64), mode="area")[0].permute(1, 2, 0).numpy()
    lab = labels[::2, ::2]
    core = (lab != BACKGROUND)
    # away from the silhouette (one-pixel erosion) the re-render reproduces the photo
    from scipy.ndimage import binary_erosion
    m = binary_erosion(core, iterations=2)
    assert _psnr(rgb, ref, m) > 20.0
    sem = res.labels()[0].numpy()
    assert (sem[m] == lab[m]).mean() > 0.9


def test_pose_canonicalisation():
    """A head photographed at yaw 20 lifts to the same canonical colour plane as the frontal photo."""
    tier = _tier()
    img, labels = _pattern(seed=2)
    gt = tier.encode(_fa(img, labels, Camera.frontal()))
    cam = Camera.orbit(20.0, 5.0)
    res = tier.render(gt, cam, 128)
    photo = (res.rgb[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255).astype(np.uint8)
    sem = res.labels()[0].numpy().astype(np.uint8)
    posed = tier.encode(_fa(photo, sem, cam))
    a, b = decoded_xy(gt.planes)[0, 2:5], decoded_xy(posed.planes)[0, 2:5]
    t = triplane.texel_centres(R)
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    central = (xx.abs() < 0.12) & (yy.abs() < 0.15)
    err = (a - b).abs().mean(0)[central]
    assert float(err.mean()) < 0.05
    # and it is not trivially so: the crop itself is not aligned with the frontal photo
    assert np.abs(photo[32:96, 32:96].astype(float) - img[32:96, 32:96]).mean() > 5


def test_symmetry_fill_of_the_far_side():
    img, labels = _pattern(seed=3)
    front_only, info0 = lift(img, labels, Camera.frontal(), R)
    assert info0["mirrored_fraction"] == 0.0
    planes, info = lift(img, labels, Camera.orbit(45.0, 0.0), R)
    assert info["mirrored_fraction"] > 0.01
    xy = decoded_xy(planes)[0]
    colour = xy[2:5]
    # far-side texels equal their mirror images (the photo's camera is at +x: the -x side is hidden)
    row = R // 2
    far_cols = [c for c in range(R // 8, R // 2) if float(xy[0, row, c]) > -0.5]
    mirrored = [c for c in far_cols if torch.allclose(colour[:, row, c], colour[:, row, R - 1 - c], atol=1e-5)]
    assert len(mirrored) >= 2
    # no hole: every occupied far-side texel has a real colour (not the white/black border)
    assert float(colour[:, row, far_cols].std(1).mean()) > 0.01


def test_hair_blend_moves_hair_shape_and_colour_only():
    tier = _tier()
    img_id, lab_id = _pattern(seed=4)
    img_ref, lab_ref = _pattern(seed=5)
    # the reference's hair is taller (shape) and red (colour)
    yy, xx = np.mgrid[0:128, 0:128] / 128
    tall = (((xx - 0.5) / 0.4) ** 2 + ((yy - 0.45) / 0.45) ** 2 < 1) & (yy < 0.35)
    lab_ref = np.where(tall, HAIR, lab_ref).astype(np.uint8)
    img_ref[lab_ref == HAIR] = (220, 30, 30)
    cam = Camera.frontal()
    t_id = tier.encode(_fa(img_id, lab_id, cam))
    t_ref = tier.encode(_fa(img_ref, lab_ref, cam))
    sem_id = decoded_xy(t_id.planes)[0, 5:].argmax(0)
    sem_ref = decoded_xy(t_ref.planes)[0, 5:].argmax(0)
    m_ref = (sem_ref == HAIR).float()
    m_id_not = (sem_id != HAIR).float()
    out = t_id.replace(blend(t_id.planes, t_ref.planes, m_ref, m_id_not))
    r_id, r_out = tier.render(t_id, cam, 64), tier.render(out, cam, 64)
    r_ref = tier.render(t_ref, cam, 64)
    hair_ref = r_ref.labels()[0] == HAIR
    # hair region and colour follow the reference
    assert float(((r_out.labels()[0] == HAIR) == hair_ref).float().mean()) > 0.95
    red = r_out.rgb[0, :, hair_ref]
    assert float(red[0].mean()) > 0.7 and float(red[1].mean()) < 0.25
    # the face (identity skin that the reference's hair does not cover) is untouched
    skin = (r_id.labels()[0] == SKIN) & ~hair_ref
    skin = torch.from_numpy(__import__("scipy.ndimage", fromlist=["binary_erosion"]).binary_erosion(
        skin.numpy(), iterations=2))
    assert float((r_out.rgb[0, :, skin] - r_id.rgb[0, :, skin]).abs().max()) < 0.02


def test_ray_bounds_skip_empty_rays_and_match_dense_render():
    tier = _tier()
    img, labels = _pattern(seed=6)
    asset = tier.encode(_fa(img, labels, Camera.frontal()))
    cam = Camera.orbit(25.0, 10.0)
    fast = tier.render(asset, cam, 48)
    dense = tier.render(asset, cam, 48, RenderOptions(n_coarse=128, n_importance=64, use_bounds=False,
                                                      background=(1.0, 1.0, 1.0)))
    assert fast.samples_per_ray < 16
    assert float((fast.opacity - dense.opacity).abs().mean()) < 0.03
    assert float((fast.rgb - dense.rgb).abs().mean()) < 0.03


def test_decoder_feature_lookup_equals_full_tri_plane_sum():
    """The bundled decoder reads only the side planes' live channels (and adds the XY prior);
    that is the full sum in front of the head's middle, also after the planes are edited in
    place, except that points deeper below the front surface than WALL_DEPTH (a steep rim seen
    from the side) add the rim's wall texture to their colour; behind the middle, colour and labels
    turn to the back half's (encoder.back_texture of the wall-corrected colours)."""
    import torch.nn.functional as F

    from triface_studio.models.bundled.encoder import (BACK_K, ROUND_MID, WALL_DEPTH, WALL_K, back_texture,
                                                       wall_texture)

    tier = _tier()
    img, labels = _pattern(seed=7)
    planes = tier.encode(_fa(img, labels, Camera.orbit(15.0, -5.0))).planes
    pts = torch.rand(1, 1000, 3) - 0.5
    # and points on the rim, inside the head in front of its middle, where the wall texture is
    xy0 = decoded_xy(planes)[0]
    w0 = wall_texture(xy0)
    iy, ix = (w0.abs().amax(0) > 0.02).nonzero().T
    assert len(iy) > 0
    t = triplane.texel_centres(w0.shape[-1])
    rim = torch.stack([t[ix], t[iy], torch.full((len(ix),), ROUND_MID + 0.025)], -1)
    pts = torch.cat([pts, rim[None].to(pts.dtype)], 1)
    front = pts[0, :, 2] > ROUND_MID + 0.02

    def lookup(tex):
        return F.grid_sample(tex[None], (pts[:, None, :, :2] * 2), mode="bilinear", padding_mode="border",
                             align_corners=False)[0, :, 0].T

    def full(p):
        with_prior = p.clone()
        with_prior[:, 0] = decoded_xy(p)
        want = triplane.sample(with_prior, pts, "sum")
        # the wall: weight of the depth below the front surface (channel 0 is z_front - z), looked
        # up where it is above the decoder's BACK_MIN
        ww = torch.sigmoid(WALL_K * (want[0, :, 0] - WALL_DEPTH))[:, None]
        ww = ww * (ww > tier.decoder.BACK_MIN)
        wall = lookup(wall_texture(decoded_xy(p)[0]))
        want[0, :, 2:5] += ww * wall
        return want, ww[:, 0] * wall.abs().amax(1)

    got = tier.decoder.sample_features(planes, pts)
    want, walled = full(planes)
    assert (walled > 0.02).sum() >= len(iy) // 2     # the rim's points change
    torch.testing.assert_close(got[:, front], want[:, front])
    planes[0, 2, 7] = 0.25                                   # a new live channel on ZX: the cache notices
    got, (want, _) = tier.decoder.sample_features(planes, pts), full(planes)
    torch.testing.assert_close(got[:, front], want[:, front])
    # behind: depth channels as summed, colour and logits blended towards the back texture
    torch.testing.assert_close(got[..., :2], want[..., :2])
    xy = decoded_xy(planes)[0].clone()
    xy[2:5] += F.interpolate(wall_texture(xy)[None], size=xy.shape[-2:], mode="bilinear", align_corners=False)[0]
    back = lookup(back_texture(xy))
    w = torch.sigmoid(BACK_K * (ROUND_MID - pts[0, :, 2]))[:, None]
    deep = pts[0, :, 2] < ROUND_MID - 0.05
    assert deep.sum() > 50
    torch.testing.assert_close(got[0, deep, 2:], ((1 - w) * want[0, :, 2:] + w * back)[deep], atol=1e-4, rtol=1e-4)


def test_face_surface_follows_the_landmarks_without_a_step():
    from triface_studio.models.bundled.encoder import face_height_field
    from triface_studio.models.face.analyzer import template_world_landmarks

    W = template_world_landmarks()
    Rr = 128
    front, back = face_height_field(W, Rr)
    ix = np.floor((W[:, 0] + 0.5) * Rr).astype(int)
    iy = np.floor((W[:, 1] + 0.5) * Rr).astype(int)
    err = np.abs(front.numpy()[iy, ix] - W[:, 2])
    assert np.median(err) < 0.01                     # the surface passes through the landmarks
    assert float(front.max()) == pytest.approx(W[:, 2].max(), abs=0.01)     # the nose is the front
    assert bool((back < front).all())
    # no cliff where the face meets the shell: neighbouring texels of the head differ little
    head = front > 0.03
    dx = (front[:, 1:] - front[:, :-1]).abs()[head[:, 1:] & head[:, :-1]]
    dy = (front[1:] - front[:-1]).abs()[head[1:] & head[:-1]]
    assert float(torch.cat([dx, dy]).max()) < 0.03


def test_posed_photo_rendered_frontally_lands_on_the_template(shared_data):
    """The paper's alignment step: a turned reference, lifted and rendered from the front,
    puts its landmarks near the canonical template (much nearer than its own 2D-aligned crop)."""
    from PIL import Image

    from triface_studio.models.face import CANONICAL_LANDMARKS, FaceAnalyzer

    analyzer = FaceAnalyzer("cpu")
    tier = BundledTier("cpu")
    key = [33, 133, 263, 362, 1, 61, 291, 199, 10, 152]
    for name in ("1c82f1d87e1941d99dfd540f43ffcfa8", "3249eba022d94cbc9ceaa6308ef1db8f"):
        path = next((shared_data / "images").glob(name[:8] + "*.jpg"))
        fa = analyzer.analyze(np.asarray(Image.open(path).convert("RGB")), name, parse=True)
        assert abs(fa.pose[0]) > 25
        r = tier.render(tier.encode(fa), Camera.frontal(), 512)
        img = (r.rgb[0, :3].clamp(0, 1).permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        seen = analyzer.analyze(img, "render", parse=False)
        err = np.linalg.norm(seen.landmarks[key, :2] - CANONICAL_LANDMARKS[key, :2], axis=1).mean()
        crop_err = np.linalg.norm(fa.crop_landmarks[key, :2] - CANONICAL_LANDMARKS[key, :2], axis=1).mean()
        assert err < 10 and err < 0.7 * crop_err, (name, err, crop_err)


def test_removed_region_without_replacement_is_a_skin_gap_not_a_hole():
    """Blending away the identity's hair where the reference has none leaves the bare head,
    labelled skin (the paper's gap, filled later), not a hole through the head; away from the
    head it leaves empty space."""
    tier = _tier()
    img, labels = _pattern(seed=8)
    t_id = tier.encode(_fa(img, labels, Camera.frontal()))
    cam = Camera.frontal()
    r_id = tier.render(t_id, cam, 64)
    hair = r_id.labels()[0] == HAIR
    assert int(hair.sum()) > 50
    sem_id = decoded_xy(t_id.planes)[0, 5:].argmax(0)
    keep = (sem_id != HAIR).float()
    nothing = torch.zeros_like(keep)
    out = tier.render(t_id.replace(blend(t_id.planes, t_id.planes, nothing, keep)), cam, 64)
    lab = out.labels()[0]
    core = torch.from_numpy(head_height_field(64)[0].numpy() > 0.03)
    # hair pixels over the head core: now opaque skin; the rest of the image unchanged
    img_core = torch.flip(core, [0])            # XY row 0 is world y = -0.5 (the bottom of the image)
    over_core = hair & img_core
    assert int(over_core.sum()) > 20
    assert float((lab[over_core] == SKIN).float().mean()) > 0.9
    assert float(out.opacity[0, 0][over_core].min()) > 0.9
    assert int((lab == HAIR).sum()) == 0
    same = ~hair
    assert float((out.rgb[0][:, same] - r_id.rgb[0][:, same]).abs().mean()) < 0.02


def test_a_tri_plane_from_an_older_encoder_is_refused_clearly():
    tier = _tier()
    img, labels = _pattern(seed=9)
    asset = tier.encode(_fa(img, labels, Camera.frontal()))
    old = TriPlaneAsset(asset.planes, "bundled", asset.source_camera, {**asset.extra, "encoder": "heightfield-v1"})
    with pytest.raises(ValueError, match="encode the photo again"):
        tier.render(old, Camera.frontal(), 16)


def test_texels_outside_the_photo_stay_empty():
    """Hair touching the crop's edge does not continue as a streak beyond the photo."""
    img, labels = _pattern(seed=10)
    labels[:, :12] = HAIR                     # hair along the left edge of the crop
    planes, _ = lift(img, labels, Camera.frontal(), R)
    xy = decoded_xy(planes)[0]
    t = triplane.texel_centres(R)
    beyond = t < -0.4                         # columns well left of what the frontal crop shows
    assert beyond.any()
    assert bool((xy[0][:, beyond] < -0.5).all())          # no surface there
    edge = (t > -0.3) & (t < -0.27)                         # just inside the crop: the hair is there
    assert bool((xy[0][:, edge] > -0.5).any())


def test_silhouette_covers_a_ragged_outline_at_the_source_camera():
    """The lift's outline is coarser than the labels: without the rim a pixel of head here and
    there renders as background. With it every labelled pixel is covered, the overshoot is at
    most about a texel, and the rim carries the edge's colour, not the photo's background."""
    from scipy.ndimage import distance_transform_edt, gaussian_filter

    img, labels = _pattern(seed=11)
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:128, 0:128] / 128
    wobble = gaussian_filter(rng.standard_normal((128, 128)), 2.0) * 0.3
    ragged = ((xx - 0.5) / 0.33) ** 2 + ((yy - 0.5) / 0.45) ** 2 + wobble < 1
    labels = np.where(ragged, labels.clip(min=SKIN), BACKGROUND).astype(np.uint8)
    img[~ragged] = 255                                   # a white backdrop
    img[ragged & (yy < 0.35)] = (40, 30, 20)             # dark hair
    tier = _tier()
    asset = tier.encode(_fa(img, labels, Camera.frontal()))
    res = tier.render(asset, Camera.frontal(), 128)
    opaque = res.opacity[0, 0].numpy() > 0.5
    head = labels != BACKGROUND
    assert opaque[head].all()
    texel_px = 128 / (0.62 * R) * 1.2                   # ~ crop pixels per texel, with slack
    assert distance_transform_edt(~head)[opaque].max() <= texel_px + 1
    # rendered labels still end at the labels' outline (to about a pixel)
    sem = res.labels()[0].numpy()
    assert ((sem != BACKGROUND) != head).mean() < 0.03
    # the opaque pixels just outside the hair show hair colour, not the white backdrop
    rgb = res.rgb[0].permute(1, 2, 0).numpy()
    rim = opaque & ~head & (yy < 0.3)
    assert rim.any() and float(rgb[rim].mean()) < 0.5


def test_decoder_caches_survive_the_renderers_per_chunk_views():
    """The renderer hands the decoder ``planes[b:b + 1]`` (a new view per chunk): the decoded
    tri-plane is computed once per tri-plane, not once per chunk, and a new tri-plane in the
    same memory is still noticed."""
    tier = _tier()
    img, labels = _pattern(seed=8)
    planes = tier.encode(_fa(img, labels, Camera.frontal())).planes
    first = tier.decoder.effective(planes[0:1])
    assert tier.decoder.effective(planes[0:1]) is first
    assert tier.decoder.head_box(planes[0:1]) is tier.decoder.head_box(planes[0:1])
    other = planes.clone()
    other[0, 0, 2] += 0.1
    assert tier.decoder.effective(other[0:1]) is not first
    # the textures derived from the decoded plane (back half, rim wall) follow a new tri-plane
    # whose memory, version and shape are the old one's: a new tensor over the same storage,
    # written without a version bump
    back, wall = tier.decoder.back(planes[0:1]), tier.decoder.wall(planes[0:1])
    assert tier.decoder.back(planes[0:1]) is back
    same = planes.detach()
    same.data[0, 0, 2:5] = 1.0 - same.data[0, 0, 2:5]
    assert tier.decoder.back(same[0:1]) is not back and tier.decoder.wall(same[0:1]) is not wall


@pytest.mark.parametrize("yaw", [0.0, 40.0])
def test_a_render_for_semantics_only_has_the_same_semantics_and_leaves_the_colour_render_alone(yaw):
    """The edit's frontal renders read their semantics alone: ``semantics_only`` skips the rim's
    wall colour and the back half's colour blur, yet its semantics, depth and opacity are the
    full render's exactly, and a colour render of the same tri-plane afterwards is unchanged."""
    tier = _tier()
    img, labels = _pattern(seed=5)
    fa = _fa(img, labels, Camera.frontal())
    cam = Camera.orbit(yaw, 0.0)                        # (from 40 degrees the back half shows)
    full = tier.render(tier.encode(fa), cam, 48)
    asset = tier.encode(fa)                             # a new tri-plane: its caches are cold
    sem_only = tier.render(asset, cam, 48, semantics_only=True)
    assert torch.equal(sem_only.semantics, full.semantics)
    assert torch.equal(sem_only.depth, full.depth) and torch.equal(sem_only.opacity, full.opacity)
    assert torch.equal(tier.render(asset, cam, 48).rgb, full.rgb)


def test_the_outline_wall_takes_the_smooth_colour_of_the_head_inside_it():
    """The texels the wall at the height field's outline is coloured by lose their row-to-row
    stripes (the photo's outline, half background) and take the nearby head's colour; the
    texels further in keep theirs exactly."""
    from scipy.ndimage import distance_transform_edt

    from triface_studio.models.bundled.encoder import WALL_BAND, smooth_wall

    n = 96
    yy, xx = np.mgrid[0:n, 0:n]
    occupied = ((xx - n / 2) / 30) ** 2 + ((yy - n / 2) / 40) ** 2 < 1
    d = distance_transform_edt(np.pad(occupied, 1))[1:-1, 1:-1]
    rng = np.random.default_rng(0)
    colour = np.full((3, n, n), 0.3, np.float32)
    colour[:, occupied] += rng.normal(0, 0.02, (3, int(occupied.sum()))).astype(np.float32)
    rim = occupied & (d <= WALL_BAND)
    stripes = rng.uniform(0.4, 1.0, (n, 1)).astype(np.float32)        # white-ish, one value per row
    colour[:, rim] = np.broadcast_to(stripes, (n, n))[rim]
    labels = torch.full((n, n), HAIR)
    out = smooth_wall(torch.from_numpy(colour), torch.from_numpy(occupied), labels).numpy()
    outline = occupied & (d <= 1)
    # at the outline two thirds of the way to the head's colour: the stripes' contrast is cut to a third
    before = np.abs(colour[:, outline] - 0.3).mean()
    after = np.abs(out[:, outline] - 0.3).mean()
    assert before > 0.3 and after < 0.4 * before
    inner = occupied & (d > WALL_BAND)
    assert np.array_equal(out[:, inner], colour[:, inner])
    assert np.array_equal(out[:, ~occupied], colour[:, ~occupied])


def test_visible_surface_shows_the_nearer_of_two_folded_triangles():
    """Where the face mesh folds over itself in the photo (a turned head's nose over its far
    cheek), a pixel shows the point nearer the camera; off the mesh it shows nothing."""
    from triface_studio.models.bundled.encoder import visible_surface

    world = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1.2, 1.2, 0]], float)   # triangles (0,1,2), (1,3,2)
    for z3, nearer_second in ((-10.0, True), (10.0, False)):
        crop = np.array([[10, 10, 0], [50, 10, 0], [10, 50, 0], [12, 12, z3]], float)  # 3 folded onto 0
        shown = visible_surface(crop, world, 64)
        x, y = shown[20, 20]
        # the second triangle lies at x + y >= 1 in the canonical plane, the first below it
        assert (x + y > 1.0) == nearer_second
        if not nearer_second:
            assert abs(x - (20.5 - 10) / 40) < 0.03 and abs(y - (20.5 - 10) / 40) < 0.03
        assert np.isnan(shown[60, 60]).all()


def test_a_small_mirrored_lock_apart_from_the_head_is_dropped_and_the_photo_s_own_stays():
    from triface_studio.core.semantics import L_EAR
    from triface_studio.models.bundled.encoder import drop_mirrored_strands

    R = 128
    sem = torch.zeros(19, R, R)
    sem[BACKGROUND] = 1.0
    head, own, copy, ear = (torch.zeros(R, R, dtype=torch.bool) for _ in range(4))
    head[20:100, 30:90] = True
    own[5:9, 5:9] = True              # a lock the photo shows beside the head
    copy[5:9, 115:119] = True         # its mirror image, made by the symmetry fill
    ear[50:56, 100:104] = True        # a mirrored ear apart from the head: it stays
    for m, c in ((head, SKIN), (own, HAIR), (copy, HAIR), (ear, L_EAR)):
        sem[BACKGROUND, m], sem[c, m] = 0.0, 1.0
    out = drop_mirrored_strands(sem, copy | ear)
    assert (out[BACKGROUND, copy] == 1).all()
    assert (out[HAIR, own] == 1).all() and (out[SKIN, head] == 1).all() and (out[L_EAR, ear] == 1).all()
