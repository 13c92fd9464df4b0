"""Bundled face analysis: detection, landmarks, pose, alignment, camera, bad input."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from triface_studio.core.images import load_image
from triface_studio.models.face import CANONICAL_LANDMARKS, FaceAnalyzer, NoFaceError
from triface_studio.models.face.analyzer import (canonical_world_landmarks, fit_crop_camera, pose_from_rotation,
                                                 rigid_rotation, rotation_from_pose, template_world_landmarks)
from triface_studio.resources import resource_path


@pytest.fixture(scope="module")
def analyzer():
    return FaceAnalyzer("cpu")


@pytest.fixture(scope="module")
def astronaut():
    return load_image(resource_path("samples", "astronaut.png"))


def _eye_centres(lm):
    return lm[[33, 133]].mean(0), lm[[263, 362]].mean(0)


def test_canonical_template_shape_and_frontal():
    assert CANONICAL_LANDMARKS.shape == (468, 3) and CANONICAL_LANDMARKS.dtype == np.float32
    r, l = _eye_centres(CANONICAL_LANDMARKS)
    assert abs(r[1] - l[1]) < 3 and r[0] < 256 < l[0]          # eyes level, subject's right on image left
    assert abs(CANONICAL_LANDMARKS[1, 0] - 256) < 8            # nose tip near the centre line
    yaw, pitch, roll = pose_from_rotation(np.eye(3))
    assert abs(yaw) < 1e-6 and abs(pitch) < 1e-6 and abs(roll) < 1e-6


@pytest.mark.parametrize("yaw,pitch", [(20.0, 0.0), (-15.0, 8.0), (5.0, -12.0)])
def test_pose_round_trip_through_rotation(yaw, pitch):
    R = rotation_from_pose(yaw, pitch)
    obs = CANONICAL_LANDMARKS.astype(np.float64) @ R.T * 1.3 + np.array([40.0, -20.0, 5.0])
    y, p, _ = pose_from_rotation(rigid_rotation(CANONICAL_LANDMARKS.astype(np.float64), obs))
    assert y == pytest.approx(yaw, abs=1e-3) and p == pytest.approx(pitch, abs=1e-3)


def test_world_template_projects_back_onto_the_template():
    import torch

    from triface_studio.core.cameras import Camera

    W = torch.from_numpy(template_world_landmarks())
    uv = Camera.frontal().to(dtype=torch.float64).project(W, 512)[0].numpy()
    np.testing.assert_allclose(uv, CANONICAL_LANDMARKS[:, :2], atol=1e-3)
    # the nose tip is the front of the face; the face is about as wide as a head in EG3D's box
    assert W[:, 2].argmax() == CANONICAL_LANDMARKS[:, 2].argmin()
    assert 0.25 < W[:, 0].max() - W[:, 0].min() < 0.4


@pytest.mark.parametrize("yaw,pitch,roll,scale,shift", [(25.0, -10.0, 0.1, 1.1, (7, -5)),
                                                        (-30.0, 12.0, -0.05, 0.9, (-3, 4))])
def test_crop_camera_absorbs_the_alignment_similarity(yaw, pitch, roll, scale, shift):
    """Landmarks seen by an orbit camera and then moved by an in-plane similarity (what the 2D
    crop alignment leaves for a turned head): the fitted camera projects onto them exactly and
    keeps the orbit's yaw/pitch."""
    import torch

    from triface_studio.core.cameras import Camera

    W = torch.from_numpy(template_world_landmarks())
    uv = Camera.orbit(yaw, pitch).to(dtype=torch.float64).project(W, 512)[0].numpy()
    c, s = np.cos(roll), np.sin(roll)
    seen = (uv - 256) @ np.array([[c, -s], [s, c]]).T * scale + 256 + np.array(shift)
    cam = fit_crop_camera(seen, yaw, pitch)
    got = cam.to(dtype=torch.float64).project(W, 512)[0].numpy()
    assert np.abs(got - seen).max() < 1e-3
    assert cam.yaw_pitch() == pytest.approx((yaw, pitch), abs=1e-3)


def test_canonical_world_landmarks_undo_the_rotation():
    R = rotation_from_pose(30.0, -10.0)
    C = CANONICAL_LANDMARKS.astype(np.float64)
    seen = (C - C.mean(0)) @ R.T * 0.9 + C.mean(0) + np.array([12.0, -6.0, 3.0])
    np.testing.assert_allclose(canonical_world_landmarks(seen), template_world_landmarks(), atol=1e-6)


def test_sample_portrait(analyzer, astronaut):
    fa = analyzer.analyze(astronaut, name="astronaut.png", parse=False)
    x0, y0, x1, y1 = fa.bbox
    assert 150 < x0 < x1 < 300 and 50 < y0 < y1 < 220          # the face in the 512x512 NASA portrait
    assert fa.landmarks.shape == (468, 3) and fa.crop.shape == (512, 512, 3)
    assert fa.num_faces == 1 and fa.face_index == 0
    # the crop puts the landmarks where the template has them (eyes level)
    err = np.linalg.norm(fa.crop_landmarks[:, :2] - CANONICAL_LANDMARKS[:, :2], axis=1).mean()
    assert err < 15
    r, l = _eye_centres(fa.crop_landmarks)
    assert abs(r[1] - l[1]) < 4
    assert abs(fa.pose[0]) < 15 and abs(fa.pose[1]) < 15
    label = fa.camera_label()
    assert label.shape == (25,)
    assert np.linalg.norm(label[[3, 7, 11]]) == pytest.approx(2.7, abs=1e-3)  # EG3D: radius from the origin
    assert fa.camera.yaw_pitch() == pytest.approx(fa.pose[:2], abs=1e-3)


def test_mirror_flips_yaw_and_roll(analyzer, astronaut):
    # rotate in-plane and mirror: the roll follows the rotation, yaw changes sign
    a = analyzer.analyze(astronaut, "a", parse=False)
    b = analyzer.analyze(np.ascontiguousarray(astronaut[:, ::-1]), "b", parse=False)
    assert b.pose[0] == pytest.approx(-a.pose[0], abs=2.5)
    assert b.pose[1] == pytest.approx(a.pose[1], abs=2.5)
    rot = np.asarray(Image.fromarray(astronaut).rotate(25, resample=Image.BILINEAR))
    c = analyzer.analyze(rot, "c", parse=False)
    assert abs(abs(c.pose[2] - a.pose[2]) - 25) < 4
    r, l = _eye_centres(c.crop_landmarks)
    assert abs(r[1] - l[1]) < 4                                  # alignment removes the roll


def test_no_face_raises_naming_the_file(analyzer):
    rng = np.random.default_rng(0)
    noise = (rng.random((240, 320, 3)) * 255).astype(np.uint8)
    with pytest.raises(NoFaceError, match="holiday.jpg"):
        analyzer.analyze(noise, name="holiday.jpg")
    assert analyzer.detect(np.full((64, 64, 3), 127, np.uint8)) == []


def test_greyscale_small_face_and_large_image(analyzer, astronaut):
    grey = astronaut.mean(2).astype(np.uint8)
    assert analyzer.analyze(grey, "grey", parse=False).num_faces == 1
    # the portrait small (face ~45 px) inside a big canvas
    small = np.asarray(Image.fromarray(astronaut).resize((256, 256)))
    canvas = np.full((1200, 1600, 3), 200, np.uint8)
    canvas[700:956, 1100:1356] = small
    fa = analyzer.analyze(canvas, "canvas", parse=False)
    assert 1100 < fa.bbox[0] < fa.bbox[2] < 1356 and 700 < fa.bbox[1] < fa.bbox[3] < 956
    # a huge photo is analysed downscaled, results in original pixels
    big = np.asarray(Image.fromarray(astronaut).resize((3000, 3000)))
    fb = analyzer.analyze(big, "big", parse=False)
    ref = analyzer.analyze(astronaut, "ref", parse=False)
    assert np.abs(fb.landmarks[:, :2] / (3000 / 512) - ref.landmarks[:, :2]).mean() < 3
    assert any("large image" in n for n in fb.notes)


def test_several_faces_largest_first(analyzer, astronaut):
    canvas = np.full((512, 900, 3), 230, np.uint8)
    canvas[:, :512] = astronaut
    canvas[60:460, 500:900] = np.asarray(Image.fromarray(astronaut).resize((400, 400)))
    boxes = analyzer.detect(canvas)
    assert len(boxes) == 2 and boxes[0][0] < 500 < boxes[1][0]
    fa = analyzer.analyze(canvas, "two.png", parse=False)
    assert fa.num_faces == 2 and fa.bbox[2] < 500 and any("2 faces" in n for n in fa.notes)
    other = analyzer.analyze(canvas, "two.png", parse=False, face_index=1)
    assert other.bbox[0] > 550


def test_exif_rotated_file(analyzer, astronaut, tmp_path):
    im = Image.fromarray(astronaut).rotate(90, expand=True)       # stored sideways
    exif = Image.Exif()
    exif[0x0112] = 8                                              # display: rotate 90 CW back... (orientation 8)
    p = tmp_path / "sideways.jpg"
    im.save(p, exif=exif, quality=95)
    img = load_image(p)
    fa = analyzer.analyze(img, p.name, parse=False)
    r, l = _eye_centres(fa.landmarks)
    assert abs(r[1] - l[1]) < 15 and r[0] < l[0]                  # upright after EXIF transpose
    assert abs(fa.pose[2]) < 10


def test_alignment_round_trip(analyzer, astronaut):
    fa = analyzer.analyze(astronaut, "a", parse=False)
    back = fa.paste_back(fa.crop, astronaut)
    x0, y0, x1, y1 = (int(v) for v in fa.bbox)
    diff = np.abs(back[y0:y1, x0:x1].astype(int) - astronaut[y0:y1, x0:x1].astype(int))
    assert diff.mean() < 4                                        # the crop maps back onto the face
    edited = np.zeros_like(fa.crop)
    mask = np.zeros((512, 512), np.float32)
    mask[200:320, 200:320] = 1
    out = fa.paste_back(edited, astronaut, mask)
    inv_centre = np.linalg.solve(fa.crop_matrix[:, :2], np.array([260.0, 260.0]) - fa.crop_matrix[:, 2])
    cx, cy = (int(round(v)) for v in inv_centre)
    assert out[cy, cx].max() < 30                                 # edited region pasted (black)
    assert np.array_equal(out[:20, :20], astronaut[:20, :20])     # far away untouched


def test_data_image_lands_on_template(analyzer, shared_data):
    names = sorted((shared_data / "images").glob("*.jpg"))[:3]
    for p in names:
        fa = analyzer.analyze(load_image(p), p.name, parse=False)
        # data images are already aligned: the crop transform is close to identity
        assert np.abs(fa.crop_matrix[:, :2] - np.eye(2)).max() < 0.12
        assert np.abs(fa.crop_matrix[:, 2]).max() < 30


def test_corrupt_file_is_an_error(tmp_path):
    from triface_studio.core.images import ImageError

    p = tmp_path / "broken.jpg"
    p.write_bytes(b"\xff\xd8\xff\xe0garbage" + bytes(100))
    with pytest.raises(ImageError, match="broken.jpg"):
        load_image(p)


def test_sixteen_bit_and_cmyk_files(analyzer, astronaut, tmp_path):
    grey16 = (astronaut.mean(2) * 257).astype(np.uint16)
    p16 = tmp_path / "sixteen.png"
    Image.fromarray(grey16).save(p16)
    pc = tmp_path / "cmyk.jpg"
    Image.fromarray(astronaut).convert("CMYK").save(pc, quality=95)
    for p in (p16, pc):
        img = load_image(p)
        assert img.dtype == np.uint8 and img.shape == (512, 512, 3)
        assert analyzer.analyze(img, p.name, parse=False).num_faces == 1
    buf = io.BytesIO()
    Image.fromarray(astronaut).save(buf, format="PNG")
    assert buf.tell() > 0


def test_a_profile_the_landmarks_cannot_follow_says_so(analyzer, shared_data):
    """A face seen from the side is detected, but the face mesh cannot follow it: the message
    says that, rather than claiming there is no face at all."""
    img = np.asarray(Image.open(shared_data / "images" / "3052049e8d45486299f222769833253d.jpg").convert("RGB"))
    assert analyzer.detect(img)
    with pytest.raises(NoFaceError, match="from the side"):
        analyzer.analyze(img, "profile.jpg")
