"""The classical refiner's pieces: Poisson hole filling meets the hole's border exactly, keeps
the fill's gradients inside, and does not let invalid border pixels bleed in."""

from __future__ import annotations

import numpy as np

from triface_studio.core.fill import local_fill, poisson_fill
from triface_studio.pipeline.refiners import ClassicalRefiner


def _two_tone(h=120):
    img = np.zeros((h, h, 3), np.float32)
    img[: h // 2] = 0.8
    img[h // 2:] = 0.2
    holes = np.zeros((h, h), bool)
    holes[30:90, 40:80] = True
    return img, holes


def test_membrane_fill_meets_the_border_on_every_side():
    img, holes = _two_tone()
    out = poisson_fill(img, holes)
    assert abs(out[30, 60, 0] - 0.8) < 0.03 and abs(out[89, 60, 0] - 0.2) < 0.03
    # harmonic in between: monotone from top to bottom, the middle near the mean of the sides
    col = out[30:90, 60, 0]
    assert np.all(np.diff(col) <= 1e-6) and abs(out[60, 60, 0] - 0.5) < 0.05
    np.testing.assert_array_equal(out[~holes], img[~holes])       # nothing outside changes


def test_far_away_specks_do_not_change_a_hole():
    # OpenCV's seamlessClone solved over the holes' bounding box with the pixels around the
    # hole free, so a one-pixel speck in a corner moved the fill by 0.1 at the border
    img, holes = _two_tone()
    specks = holes.copy()
    specks[3, 3] = specks[115, 116] = True
    fill = np.full_like(img, 0.75)
    a = poisson_fill(img, holes, fill, np.ones(holes.shape))
    b = poisson_fill(img, specks, fill, np.ones(holes.shape))
    np.testing.assert_allclose(a[holes], b[holes], atol=1e-5)


def test_fill_gradients_carry_through_and_invalid_border_does_not_bleed():
    h = 80
    yy, xx = np.mgrid[:h, :h].astype(np.float32)
    fill = np.stack([xx / h, yy / h, np.full_like(xx, 0.5)], -1)
    holes = np.zeros((h, h), bool)
    holes[20:60, 20:60] = True
    # outside the hole the image agrees with the fill: the fill comes through unchanged
    np.testing.assert_allclose(poisson_fill(fill.copy(), holes, fill, np.ones((h, h)))[holes], fill[holes], atol=1e-5)
    # red "hair" above the hole, marked invalid: the fill near it stays the fill's colour
    img = fill.copy()
    img[:20] = (1.0, 0.0, 0.0)
    valid = np.ones((h, h))
    valid[:20] = 0
    out = poisson_fill(img, holes, fill, valid)
    np.testing.assert_allclose(out[20, 40], fill[20, 40], atol=1e-5)
    leaky = poisson_fill(img, holes, fill, None)
    assert leaky[20, 40, 0] > out[20, 40, 0] + 0.1                # without valid, the red would bleed in


def test_refiner_changes_only_inside_its_mask():
    img, holes = _two_tone()
    mask = np.zeros(holes.shape, np.float32)
    mask[30:60] = 1.0                                               # half of the hole
    out = ClassicalRefiner().refine(img, mask, holes=holes.astype(np.float32))
    np.testing.assert_array_equal(out[mask == 0], img[mask == 0])
    assert not np.allclose(out[mask == 1], img[mask == 1])


def test_local_fill_fades_into_the_mean_without_a_step():
    h = 256
    img = np.zeros((h, h, 3), np.float32)
    img[:, :32] = (0.9, 0.6, 0.5)                  # a light strip of skin on the left...
    img[:, 32:64] = (0.5, 0.3, 0.2)                # ...next to a darker one
    source = np.zeros((h, h), np.float32)
    source[:, :64] = 1
    fill = local_fill(img, source)
    row = fill[128]
    assert np.abs(np.diff(row, axis=0)).max() < 0.02                  # smooth everywhere
    np.testing.assert_allclose(row[-1], (0.7, 0.45, 0.35), atol=0.02)  # far away: the mean colour
    assert row[8, 0] > row[56, 0]                                     # near the source: its local colour
