"""Texture fills and colour transfers of core/ (exemplar fill, white balance)."""

from __future__ import annotations

import numpy as np

from triface_studio.core import colour
from triface_studio.core.fill import local_texture, shift_offsets, texture_fill


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


def test_unmix_takes_back_the_layer_from_its_old_background():
    fg, old, new = np.array([0.1, 0.1, 0.12], np.float32), np.array([0.45, 0.28, 0.2], np.float32), \
        np.array([0.9, 0.75, 0.7], np.float32)
    alpha = np.array([[1.0, 0.6, 0.3, 0.1]], np.float32)
    mixed = alpha[..., None] * fg + (1 - alpha[..., None]) * old
    got = colour.unmix(mixed, alpha, np.broadcast_to(old, mixed.shape))
    # laid over another background, it is what a camera would have seen there: no trace of the old one
    over_new = alpha[..., None] * got + (1 - alpha[..., None]) * new
    want = alpha[..., None] * fg + (1 - alpha[..., None]) * new
    assert np.abs(over_new[0, :3] - want[0, :3]).max() < 1e-5
    # below the floor the division is capped, so the weak pixel stays a mix, not a blown-up colour
    assert np.abs(got[0, 3] - old).max() < np.abs(fg - old).max()
    assert got.min() >= 0.0 and got.max() <= 1.0


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


def test_relight_keeps_a_part_s_contrast_to_its_surroundings_in_the_new_light():
    # lips darker and redder than a dim, warm skin, moved onto a bright, cool skin
    skin_src, lips_src = np.array([0.50, 0.34, 0.25], np.float32), np.array([0.42, 0.16, 0.15], np.float32)
    skin_dst = np.array([0.85, 0.75, 0.72], np.float32)
    img = np.broadcast_to(lips_src, (8, 8, 3)).copy()
    region = np.zeros((8, 8), np.float32)
    region[:, :4] = 1.0
    lab = lambda c: colour.to_lab(np.asarray(c, np.float32).reshape(1, 1, 3))[0, 0]  # noqa: E731
    out = colour.relight(img, region, lab(skin_src), lab(skin_dst))
    got, before = colour.to_lab(out)[0, 0], lab(lips_src)
    ratio = before[0] / lab(skin_src)[0]
    assert abs(got[0] / lab(skin_dst)[0] - ratio) < 0.02                 # as much darker than the skin
    assert np.allclose(got[1:] - lab(skin_dst)[1:], before[1:] - lab(skin_src)[1:], atol=1.0)  # as much redder
    assert got[0] > before[0] + 12                                       # in the brighter light
    assert np.allclose(out[:, 4:], img[:, 4:])                           # nothing outside the region
    # a near-black part (a dark brow) keeps nearly its own colour: the shift scales with its light
    dark = np.broadcast_to(np.array([0.06, 0.05, 0.05], np.float32), (8, 8, 3)).copy()
    moved = colour.to_lab(colour.relight(dark, region, lab(skin_src), lab(skin_dst)))[0, 0]
    shift = np.abs(lab(skin_dst)[1:] - lab(skin_src)[1:])
    assert (np.abs(moved[1:] - colour.to_lab(dark)[0, 0, 1:]) < 0.35 * shift).all()


def test_pasted_lips_take_the_identity_s_light_not_the_reference_s():
    from triface_studio.core.semantics import L_LIP, SKIN, U_LIP
    from triface_studio.pipeline.composite import ReferenceLayer, colour_match

    def face(skin_rgb, lip_rgb):
        img = np.broadcast_to(np.asarray(skin_rgb, np.float32), (96, 96, 3)).copy()
        lab = np.full((96, 96), SKIN, np.uint8)
        lab[50:60, 30:66], img[50:60, 30:66] = U_LIP, lip_rgb
        lab[60:68, 30:66], img[60:68, 30:66] = L_LIP, lip_rgb
        return img, lab

    ref_img, ref_lab = face([0.50, 0.34, 0.25], [0.38, 0.15, 0.14])      # a dim, warm photo
    id_img, id_lab = face([0.86, 0.76, 0.72], [0.75, 0.55, 0.55])        # a bright one
    alpha = np.isin(ref_lab, (U_LIP, L_LIP)).astype(np.float32)
    out = colour_match(ref_img, alpha, id_img, id_lab, [ReferenceLayer(ref_img, ref_lab, frozenset({U_LIP, L_LIP}))],
                       ref_lab, {U_LIP, L_LIP}, taken=alpha)
    L = colour.to_lab(out)[..., 0]
    L_skin_id = colour.to_lab(id_img)[..., 0][id_lab == SKIN].mean()
    # the reference's lips had 0.58 of its skin's lightness: on the bright face they have about
    # as much of its skin's, not the dim photo's near-black (0.28 before lips were relit)
    assert 0.5 * L_skin_id < L[55, 48] < 0.7 * L_skin_id
    assert colour.to_lab(out)[55, 48, 1] > colour.to_lab(id_img)[20, 20, 1] + 5   # and redder than the skin


def test_seamless_paste_keeps_the_patch_s_shading_and_meets_the_image_at_its_edge():
    from triface_studio.core.fill import seamless_paste

    yy, xx = np.mgrid[:64, :64].astype(np.float32)
    img = np.full((64, 64, 3), 0.6, np.float32)
    region = (np.abs(yy - 32) < 14) & (np.abs(xx - 32) < 10)
    shade = 0.1 * np.exp(-((xx - 32) ** 2 + (yy - 32) ** 2) / 60.0)    # a highlight in the middle
    patch = (0.35 + shade)[..., None] * np.ones(3, np.float32)           # in a much darker light
    out = seamless_paste(img, region, patch)
    edge = region & ~(np.abs(yy - 32) < 12) | region & ~(np.abs(xx - 32) < 8)
    assert np.abs(out[edge] - 0.6).max() < 0.02                          # no outline: the edge is the skin's
    rise = out[32, 32, 0] - out[32, 24, 0]
    assert abs(rise - (patch[32, 32, 0] - patch[32, 24, 0])) < 0.02      # the highlight kept
    assert np.allclose(out[~region], img[~region])                       # nothing else changes


def test_even_light_tones_down_a_blown_out_half_and_keeps_strands_and_shadows():
    # hair with fine strands, its right half backlit (much lighter), a dark parting at its left
    size = 128
    x = np.arange(size)[None, :].repeat(size, 0)
    strands = 0.06 * np.sin(x * 1.7)[..., None]
    img = np.full((size, size, 3), (0.55, 0.45, 0.30), np.float32) + strands
    img[:, 64:] += 0.3
    img[:, :12] -= 0.3
    img = np.clip(img, 0, 1).astype(np.float32)
    region = np.zeros((size, size), np.float32)
    region[:, :100] = 1.0
    out = colour.even_light(img, region)
    L_in, L_out = colour.to_lab(img)[..., 0], colour.to_lab(out)[..., 0]
    rise_in = L_in[:, 70:90].mean() - L_in[:, 30:50].mean()
    rise_out = L_out[:, 70:90].mean() - L_out[:, 30:50].mean()
    assert 0.2 * rise_in < rise_out < 0.75 * rise_in                    # toned down, not flattened
    fine = lambda L: np.abs(np.diff(L[:, 70:90], axis=1)).mean()        # noqa: E731
    assert abs(fine(L_out) - fine(L_in)) < 0.15 * fine(L_in)            # the strands stay
    assert np.allclose(L_out[:, :4], L_in[:, :4], atol=0.5)             # the dark parting is not lifted
    assert np.allclose(out[:, 100:], img[:, 100:])                      # nothing outside the region


def _staircase(size=96):
    """A mask whose right edge against ``outside`` is a staircase of 8 px steps, with a speck."""
    m = np.zeros((size, size), np.float32)
    for y in range(size):
        m[y, : 30 + 8 * ((y // 12) % 2)] = 1.0
    m[40:43, 60:63] = 1.0                                   # a speck standing apart
    return m


def test_round_outline_smooths_a_staircase_against_the_outside_only():
    from triface_studio.core.masks import round_outline

    a = _staircase()
    outside = a < 0.5
    out = round_outline(a, outside, sigma=4.0)
    assert out[40:43, 60:63].max() < 0.1                    # the speck goes
    assert out[:, :15].min() == 1.0                          # deep inside unchanged
    # the steps' corners are rounded: each row's edge moves less from row to row than the steps
    edge = (out > 0.5).sum(1).astype(float)
    step = (a > 0.5)[:, :50].sum(1).astype(float)
    assert np.abs(np.diff(edge)).max() < np.abs(np.diff(step)).max()
    # and the edge is a soft ramp, not a cut
    assert ((out > 0.05) & (out < 0.95)).sum() > 2 * 96
    # with nothing outside, nothing changes
    assert np.array_equal(round_outline(a, np.zeros_like(outside)), a)


def test_inner_colour_takes_a_rim_s_colour_from_deeper_in():
    from triface_studio.core.fill import inner_colour

    img = np.zeros((64, 64, 3), np.float32)
    img[:, :32] = (0.9, 0.8, 0.5)                           # blonde
    img[:, 28:32] = (0.5, 0.3, 0.2)                         # a brown rim of the old backdrop
    inside = np.zeros((64, 64), bool)
    inside[:, :32] = True
    outside = ~inside
    out = inner_colour(img, inside, outside, depth=5.0, sigma=3.0)
    assert np.abs(out[:, 31] - (0.9, 0.8, 0.5)).max() < 0.05   # the rim next to the outside is blonde
    assert np.array_equal(out[:, :20], img[:, :20])             # deeper in, untouched
    assert np.array_equal(out[:, 32:], img[:, 32:])             # outside, untouched


def test_old_hair_is_dyed_by_how_much_hair_a_pixel_holds_next_to_its_background():
    from triface_studio.pipeline.composite import _hair_share_against

    img = np.zeros((96, 96, 3), np.float32)
    img[:] = (0.75, 0.8, 0.9)                                # a light backdrop
    img[:, :40] = (0.3, 0.2, 0.15)                           # brown hair
    img[:, 40:44] = (0.525, 0.5, 0.525)                      # its soft edge: half hair, half backdrop
    old = _staircase() > 0.5                                 # the parser's steps, 30-38 px
    bg = ~old
    share = _hair_share_against(img, old, bg)
    assert abs(float(share[50, 42]) - 0.5) < 0.1             # the photo's soft edge, half dyed
    assert share[50, 5] == 1.0                               # far inside the hair, fully
    # dark hair on a dark backdrop: the parser's steps are rounded instead
    img[:, 40:] = (0.04, 0.03, 0.03)
    img[:, :40] = (0.08, 0.05, 0.05)
    share = _hair_share_against(img, old, bg)
    inside = share[old]
    assert inside.min() < 0.5 and share[:, :15].min() == 1.0
    assert ((share > 0.05) & (share < 0.95) & old).sum() > 96


def test_small_pieces_are_what_stands_apart_from_the_main_shape():
    from triface_studio.core.masks import small_pieces

    m = np.zeros((100, 100), bool)
    m[10:60, 10:60] = True          # the head: 2500 px
    m[80:84, 80:84] = True          # a strand apart: 16 px, under 1 %
    m[70:80, 5:10] = True           # a piece of 50 px: 2 %, kept at a 1 % line
    out = small_pieces(m, 0.01)
    assert out[80:84, 80:84].all() and out.sum() == 16
    assert not small_pieces(m[:65, :65], 0.01).any()   # one piece: nothing apart
