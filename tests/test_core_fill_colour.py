"""Texture fills and colour transfers of core/ (exemplar fill, white balance)."""

from __future__ import annotations

import numpy as np

from triface_studio.core import colour
from triface_studio.core.fill import shift_offsets, texture_fill
from triface_studio.evaluation.realism import local_texture


def _textured(seed=0, size=96):
    rng = np.random.default_rng(seed)
    img = np.empty((size, size, 3), np.float32)
    img[:] = (0.6, 0.45, 0.35)
    img += rng.normal(0, 0.05, (size, size, 1)).astype(np.float32)
    return np.clip(img, 0, 1)


def test_texture_fill_keeps_the_source_texture_and_meets_the_border():
    img = _textured()
    holes = np.zeros(img.shape[:2], bool)
    holes[30:60, 30:60] = True
    source = ~holes
    damaged = img.copy()
    damaged[holes] = 0.0
    out = texture_fill(damaged, holes, source)
    tex = local_texture(out[..., 0] * 100)
    real = local_texture(img[..., 0] * 100)
    inner = np.zeros_like(holes)
    inner[34:56, 34:56] = True
    assert tex[inner].mean() > 0.6 * real[~holes].mean()      # not a flat patch
    assert abs(out[holes].mean() - img[~holes].mean()) < 0.03  # the source's colour
    assert np.array_equal(out[~holes], damaged[~holes])        # nothing outside changes


def test_texture_fill_copies_only_from_the_source():
    img = _textured()
    img[:, 48:] = (0.1, 0.2, 0.9)                              # another region: not to be copied
    holes = np.zeros(img.shape[:2], bool)
    holes[20:40, 20:40] = True
    source = np.zeros_like(holes)
    source[:, :44] = True
    out = texture_fill(img, holes, source, valid=source.astype(np.float32))
    assert out[holes][:, 2].max() < 0.6                        # no blue in the fill


def test_shift_offsets_cover_the_hole_from_the_source():
    holes = np.zeros((64, 64), bool)
    holes[10:20, 10:20] = True
    source = np.zeros_like(holes)
    source[40:60, 40:60] = True
    offsets, assign = shift_offsets(holes, source)
    assert offsets and (assign[holes] >= 0).all()
    ys, xs = np.nonzero(holes)
    for y, x in zip(ys, xs):
        dy, dx = offsets[assign[y, x]]
        assert source[y + dy, x + dx]


def test_white_balance_gain_undoes_a_colour_cast_and_keeps_luminance():
    skin = _textured().reshape(-1, 3)
    cast = np.clip(colour.linear_to_srgb(colour.srgb_to_linear(skin) * np.array([0.8, 1.0, 1.25])), 0, 1)
    g = colour.white_balance_gain(cast, skin, strength=1.0, limit=2.0)
    assert g[0] > 1.1 and g[2] < 0.9
    assert abs(0.2126 * g[0] + 0.7152 * g[1] + 0.0722 * g[2] - 1.0) < 0.05
    fixed = colour.apply_gain(cast, g)
    assert np.abs(fixed.mean(0) - skin.mean(0)).max() < np.abs(cast.mean(0) - skin.mean(0)).max() / 2


def test_whole_pixel_copies_carry_a_pattern_into_the_hole():
    """grain=None (hair, backgrounds): the source's own pattern continues, not just its grain."""
    yy, xx = np.mgrid[:96, :96]
    img = np.repeat((0.5 + 0.4 * np.sign(np.sin(xx / 3.0)))[..., None], 3, -1).astype(np.float32)  # stripes
    holes = np.zeros((96, 96), bool)
    holes[30:60, 30:60] = True
    damaged = img.copy()
    damaged[holes] = 0.5
    out = texture_fill(damaged, holes, ~holes, grain=None)
    inner = out[36:54, 36:54, 0]
    assert inner.std() > 0.25                                  # stripes, not a flat grey
    assert np.abs(np.diff(inner, axis=0)).mean() < 0.05       # and they run the source's way (vertical)


def test_a_large_hole_is_joined_to_its_border_at_half_resolution_as_well():
    from triface_studio.core.fill import LARGE_HOLE, blend_into_border, poisson_fill

    yy, xx = np.mgrid[:256, :256]
    img = np.stack([xx / 255.0, yy / 255.0, 0.5 + 0 * xx], -1).astype(np.float32)   # a smooth ramp
    holes = (np.hypot(yy - 128, xx - 128) < 80)
    assert holes.sum() > LARGE_HOLE
    guide = np.full_like(img, 0.3)                         # a flat, wrong guess inside the hole
    exact = poisson_fill(img, holes, guide)
    fast = blend_into_border(img, holes, guide)
    assert np.abs(fast - exact)[holes].max() < 0.02          # the same membrane, to within 2 %
    ring = holes & ~(np.hypot(yy - 128, xx - 128) < 78)
    assert np.abs(fast - img)[ring].max() < 0.03             # and it meets the border


def test_dye_moves_a_region_to_the_target_colour_keeping_its_order_and_detail():
    rng = np.random.default_rng(1)
    img = np.full((64, 64, 3), 0.5, np.float32)
    yy, xx = np.mgrid[:64, :64]
    src = (yy < 32)
    img[src] = (0.05 + 0.1 * xx[src] / 64)[:, None] * [1.0, 0.9, 0.8]      # dark, brighter to the right
    target = rng.uniform(0.6, 0.9, (500, 1)) * np.array([1.0, 0.85, 0.55], np.float32)
    out = colour.dye(img, src.astype(np.float32), src, target)
    lab_out, lab_t = colour.to_lab(out), colour.to_lab(target[None].astype(np.float32))[0]
    assert abs(lab_out[src][:, 0].mean() - lab_t[:, 0].mean()) < 6      # the target's lightness
    assert np.abs(lab_out[src][:, 1:].mean(0) - lab_t[:, 1:].mean(0)).max() < 4
    row = lab_out[10, :, 0]
    assert np.all(np.diff(row) >= -1e-3)                                # the order of its shades kept
    assert np.allclose(out[~src], img[~src], atol=1e-3)                  # nothing else changes


def test_mix_share_reads_how_much_of_the_foreground_a_pixel_holds():
    fg, bg = np.array([0.1, 0.08, 0.05], np.float32), np.array([0.9, 0.7, 0.6], np.float32)
    img = np.stack([fg, bg, 0.5 * fg + 0.5 * bg])[None].astype(np.float32)
    share = colour.mix_share(img, fg, bg)[0]
    assert share[0] > 0.95 and share[1] < 0.05 and 0.25 < share[2] < 0.75


def test_row_span_closes_each_row_between_its_outermost_pixels():
    from triface_studio.core.masks import row_span

    m = np.zeros((4, 10), bool)
    m[1, 2] = m[1, 7] = True
    m[2, 5] = True
    out = row_span(m)
    assert out[1, 2:8].all() and not out[1, :2].any() and not out[1, 8:].any()
    assert out[2].sum() == 1 and not out[0].any() and not out[3].any()


def test_neighbouring_copies_cross_fade_instead_of_meeting_in_a_line():
    from triface_studio.core.fill import _feathered_detail

    rng = np.random.default_rng(3)
    detail = rng.normal(0, 1, (64, 64, 1)).astype(np.float32)
    holes = np.zeros((64, 64), bool)
    holes[20:40, 20:44] = True
    src = ~holes
    assign = np.full((64, 64), -1, np.int32)
    assign[20:40, 20:32], assign[20:40, 32:44] = 0, 1
    offsets = [(0, -20), (0, 20)]                                   # copy from the left / the right
    out = np.zeros((64, 64, 1), np.float32)
    out[holes] = _feathered_detail(detail, holes, src, offsets, assign, 3.0)
    left, right = np.roll(detail, 20, axis=1), np.roll(detail, -20, axis=1)   # each copy alone
    assert np.allclose(out[30, 22], left[30, 22], atol=1e-3)       # far from the seam: one copy
    assert np.allclose(out[30, 42], right[30, 42], atol=1e-3)
    w = out[30, 31, 0] - right[30, 31, 0]
    assert 0.2 < w / (left[30, 31, 0] - right[30, 31, 0]) < 0.8    # at the seam: a mix of both
