"""The orbit-view measures of `triface eval --task views` and the bundled tier's backdrop."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from triface_studio.core.cameras import Camera
from triface_studio.evaluation.views import empty_share, extra_parts, streak_share
from triface_studio.models.bundled.backdrop import orbit_camera, render_backdrop


def test_streak_share_finds_stretched_rows_not_texture():
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    region = np.ones((64, 64), bool)
    assert streak_share(noise, region) == 0.0
    stretched = np.repeat(noise[:, :1], 64, axis=1)          # each row one colour: a streak
    assert streak_share(stretched, region) > 0.95          # all but the first row, which has none above
    flat = np.full((64, 64, 3), 255, np.uint8)                # a blown-out highlight: flat both ways
    assert streak_share(flat, region) == 0.0
    half = noise.copy()
    half[:, :32] = stretched[:, :32]
    assert 0.45 < streak_share(half, region) < 0.55
    assert streak_share(stretched, np.zeros_like(region)) == 0.0


def test_extra_parts_counts_a_third_eye_not_a_split_one_or_a_speck():
    from triface_studio.core.semantics import L_BROW, L_EYE, R_BROW, R_EYE

    lab = np.zeros((512, 512), np.uint8)
    for cls, x in ((L_EYE, 180), (R_EYE, 330)):
        cv2.ellipse(lab, (x, 250), (30, 12), 0, 0, 360, int(cls), -1)
    for cls, x in ((L_BROW, 180), (R_BROW, 330)):
        cv2.ellipse(lab, (x, 215), (40, 6), 0, 0, 360, int(cls), -1)
    assert extra_parts(lab) == 0
    split = lab.copy()
    split[:, 178:181][split[:, 178:181] == L_EYE] = 0              # a lash line cuts one eye in two
    assert extra_parts(split) == 0
    speck = lab.copy()
    speck[400:403, 100:103] = R_EYE                                 # a 9 px speck is no eye
    assert extra_parts(speck) == 0
    third = lab.copy()
    cv2.ellipse(third, (60, 255), (25, 10), 0, 0, 360, int(L_EYE), -1)   # the mirrored copy beside the far eye
    assert extra_parts(third) == 1
    cv2.ellipse(third, (60, 220), (30, 5), 0, 0, 360, int(R_BROW), -1)
    assert extra_parts(third) == 2
    # the same at another size (the measure is in px at 512)
    assert extra_parts(cv2.resize(third, (256, 256), interpolation=cv2.INTER_NEAREST)) == 2


def test_empty_share_counts_white():
    img = np.zeros((10, 10, 3), np.uint8)
    img[:5] = 255
    assert empty_share(img) == 0.5


def test_orbit_camera_is_frontal_at_zero_and_centres_the_head():
    assert torch.allclose(orbit_camera(0, 0).cam2world, Camera.frontal().cam2world, atol=1e-5)
    for yaw, pitch in ((45, 0), (-45, 0), (0, 25), (0, -25)):
        uv, _ = orbit_camera(yaw, pitch).project(torch.zeros(1, 3), 512)
        assert torch.allclose(uv, torch.tensor([[256.0, 256.0]]), atol=0.5)
        yaw_back, pitch_back = orbit_camera(yaw, pitch).yaw_pitch()
        assert abs(yaw_back - yaw) < 1e-3 and abs(pitch_back - pitch) < 1e-3


def test_backdrop_is_the_photo_at_its_camera_and_slides_when_turned():
    tex = torch.linspace(0, 1, 64).view(1, 1, 64).expand(3, 64, 64).contiguous()   # dark left, light right
    cam = Camera.frontal()
    front = render_backdrop(tex, cam, cam, 64)[0]
    assert front.shape == (3, 64, 64)
    # at the photo's own camera the backdrop is the texture itself
    assert (front - tex).abs().mean() < 0.03
    # turned, the backdrop slides but stays covered and textured (parallax, no empty space)
    turned = render_backdrop(tex, cam, orbit_camera(40, 0), 64)[0]
    assert (turned - front).abs().mean() > 0.02 and turned.std() > 0.05


def test_backdrop_fills_the_person_with_the_background_not_with_missed_hair():
    from triface_studio.core.semantics import BACKGROUND, HAIR, SKIN
    from triface_studio.models.bundled.encoder import backdrop

    rng = np.random.default_rng(1)
    crop = np.clip(rng.normal(215, 6, (512, 512, 3)), 0, 255).astype(np.uint8)   # a light, grainy wall
    labels = np.full((512, 512), BACKGROUND, np.uint8)
    yy, xx = np.mgrid[:512, :512]
    head = (yy - 300) ** 2 / 200 ** 2 + (xx - 256) ** 2 / 150 ** 2 < 1
    hair = head & (yy < 230)
    crop[head], labels[head] = (200, 150, 120), SKIN
    crop[hair], labels[hair] = (40, 25, 15), HAIR
    # frizz along the left of the hair, up to 20 px out, that the parser called background
    lock = (cv2.dilate(hair.astype(np.uint8), np.ones((41, 41), np.uint8)) > 0) & ~head & (xx < 220)
    crop[lock] = (40, 25, 15)
    tex = backdrop(crop, labels).permute(1, 2, 0).numpy() * 255
    wall = crop[~head & ~lock].mean(0)
    # nowhere darker than a shade of the wall: neither the hair nor the lock spread into the fill
    assert np.abs(tex - wall).max() < 40, np.abs(tex - wall).max()
    # and the fill is not flat: the wall's grain goes on where the person was
    inside = cv2.resize(head.astype(np.uint8), (256, 256)) > 0
    assert tex[inside].std(0).mean() > 0.5


def test_the_turned_set_is_the_most_turned_photos_past_the_yaw_line(monkeypatch):
    from pathlib import Path
    from types import SimpleNamespace

    import triface_studio.evaluation.views as views
    from triface_studio.pipeline import EditError

    yaws = {"a": 5.0, "b": -40.0, "c": 30.0, "d": 26.0, "e": -20.0}

    class Pipe:                      # the face analysis, by file name
        def analyze(self, image, name, role):
            if name == "noface.png":
                raise EditError("photo noface.png: no face")
            return SimpleNamespace(pose=(yaws[Path(name).stem], 0.0, 0.0))

    monkeypatch.setattr(views, "load_image", lambda path: None)
    paths = {n: Path(f"{n}.png") for n in [*yaws, "noface"]}
    assert views.most_turned(Pipe(), sorted(paths), paths, 2) == ["b", "c"]
    assert views.most_turned(Pipe(), sorted(paths), paths, 9) == ["b", "c", "d"]      # |yaw| >= 25 only
    assert views.most_turned(Pipe(), sorted(paths), paths, 0) == []


def test_floating_share_counts_the_head_apart_from_its_largest_piece():
    from triface_studio.evaluation.views import floating_share

    head = np.zeros((64, 64), bool)
    head[10:50, 10:50] = True                 # 1600 px
    assert floating_share(head) == 0.0
    head[55:60, 55:60] = True                 # 25 px floating beside it
    head[0, 63] = True                        # a speck: not counted
    assert abs(floating_share(head) - 25 / 1626) < 1e-6
