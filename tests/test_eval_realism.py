"""The realism measures see what a person sees: flat fills, hard seams, no-ops, foreign skin."""

from __future__ import annotations

import numpy as np

from triface_studio.core.semantics import BACKGROUND, EYEGLASSES, HAIR, SKIN
from triface_studio.evaluation import realism


def _portrait(seed=0):
    rng = np.random.default_rng(seed)
    img = np.empty((128, 128, 3), np.float32)
    img[:] = (0.8, 0.6, 0.5)
    lab = np.full((128, 128), SKIN, np.uint8)
    lab[:40] = HAIR
    img[:40] = (0.15, 0.1, 0.08)
    lab[:, :16] = BACKGROUND
    img[:, :16] = (0.3, 0.4, 0.5)
    img += rng.normal(0, 0.04, img.shape).astype(np.float32)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8), lab


def test_a_flat_patch_counts_as_flat_fill_and_a_textured_one_does_not():
    inp, lab = _portrait()
    flat = inp.copy()
    flat[10:36, 30:90] = (200, 150, 120)                     # a bald cap: flat skin over the hair
    lab_flat = lab.copy()
    lab_flat[10:36, 30:90] = SKIN
    r = realism.realism_metrics("hair", inp, flat, lab, lab_flat, [HAIR])
    assert r["flat_fill"] > 0.6 and r["looks_broken"] == 1      # all but the 3 px rim of the patch
    textured, _ = _portrait(seed=1)
    blond = inp.copy()
    blond[:40, 16:] = np.clip(textured[:40, 16:].astype(int) + 120, 0, 255)   # new hair, with grain
    r2 = realism.realism_metrics("hair", inp, blond, lab, lab, [HAIR])
    assert r2["flat_fill"] < 0.1 and r2["no_op"] == 0


def test_a_plain_black_frame_is_not_a_flat_fill_but_a_flat_patch_beside_it_is():
    inp, lab = _portrait()
    out, lab_out = inp.copy(), lab.copy()
    out[60:70, 30:100] = 15                                  # a thick, plain black frame
    lab_out[60:70, 30:100] = EYEGLASSES
    assert realism.realism_metrics("eyeglasses", inp, out, lab, lab_out, [EYEGLASSES])["flat_fill"] < 0.05
    out[70:90, 30:100] = (200, 150, 120)                     # and a flat patch of pasted skin below it
    assert realism.realism_metrics("eyeglasses", inp, out, lab, lab_out, [EYEGLASSES])["flat_fill"] > 0.6


def test_an_unchanged_result_is_a_no_op():
    inp, lab = _portrait()
    r = realism.realism_metrics("eyeglasses", inp, inp.copy(), lab, lab, [EYEGLASSES])
    assert r["no_op"] == 1 and r["looks_broken"] == 1


def test_part_of_the_hair_recoloured_is_an_edit_and_a_sliver_is_a_no_op():
    inp, lab = _portrait()
    textured, _ = _portrait(seed=1)
    half = inp.copy()
    half[:40, 83:] = np.clip(textured[:40, 83:].astype(int) + 120, 0, 255)   # 45 of its 112 columns, blonde
    assert realism.realism_metrics("hair", inp, half, lab, lab, [HAIR])["no_op"] == 0
    sliver = inp.copy()
    sliver[:40, 116:] = np.clip(textured[:40, 116:].astype(int) + 120, 0, 255)   # 12 of its 112 columns
    assert realism.realism_metrics("hair", inp, sliver, lab, lab, [HAIR])["no_op"] == 1


def test_a_hard_cut_out_has_a_high_seam_contrast():
    inp, lab = _portrait()
    out = inp.copy()
    out[60:100, 40:90] = np.clip(inp[60:100, 40:90].astype(int) - 90, 0, 255)   # a dark pasted block
    hard = realism.realism_metrics("eyeglasses", inp, out, lab, lab, [EYEGLASSES])["seam_contrast"]
    soft_out = inp.astype(np.float32)
    yy, xx = np.mgrid[:128, :128]
    w = np.clip(1 - np.maximum(np.abs(yy - 80) - 12, np.abs(xx - 65) - 17) / 12, 0, 1)
    soft_out = np.clip(soft_out - 90 * w[..., None], 0, 255).astype(np.uint8)
    soft = realism.realism_metrics("eyeglasses", inp, soft_out, lab, lab, [EYEGLASSES])["seam_contrast"]
    assert hard > 2.5 > soft


def test_a_frame_s_own_inner_edge_is_not_a_seam_but_a_pasted_patch_around_it_is():
    inp, lab = _portrait()
    out, lab_out = inp.copy(), lab.copy()
    lab_out[60:90, 30:100] = EYEGLASSES                      # the parser labels frame and lens alike
    ring = np.zeros((128, 128), bool)
    ring[60:90, 30:100] = True
    ring[64:86, 34:96] = False
    out[ring] = (20, 20, 20)                                 # a black frame; the lens shows the identity
    framed = realism.realism_metrics("eyeglasses", inp, out, lab, lab_out, [EYEGLASSES])
    assert not framed["seam_contrast"] > 2.5                  # only the frame's own edges (NaN: none to charge)
    patched = out.copy()
    patched[52:98, 22:108][~np.pad(np.ones((30, 70), bool), ((8, 8), (8, 8)))] = (120, 70, 60)   # foreign skin
    r = realism.realism_metrics("eyeglasses", inp, patched, lab, lab_out, [EYEGLASSES])
    assert r["seam_contrast"] > 2.5 and r["looks_broken"] == 1


def test_new_hair_against_the_background_is_an_edge_not_a_seam():
    """Blonde hair that now falls over a dark wall: the parser sees hair meet background, the
    strong edge there is a photo's own and does not count; the same step inside one class (new
    hair cut off against the old) does."""
    rng = np.random.default_rng(0)
    inp = np.empty((128, 128, 3), np.float32)
    inp[:] = (0.1, 0.1, 0.12)                                    # a dark wall
    lab = np.full((128, 128), BACKGROUND, np.uint8)
    inp[:, 64:], lab[:, 64:] = (0.8, 0.6, 0.5), SKIN             # the face
    inp[:40, 64:], lab[:40, 64:] = (0.15, 0.1, 0.08), HAIR       # its dark hair
    inp = (np.clip(inp + rng.normal(0, 0.02, inp.shape), 0, 1) * 255).astype(np.uint8)
    strands = np.clip(200 + rng.normal(0, 25, (128, 128, 3)), 0, 255).astype(np.uint8)
    out, lab_out = inp.copy(), lab.copy()
    fall = np.zeros(lab.shape, bool)
    fall[40:100, 20:64] = True                                   # new hair beside the face, over the wall
    out[fall], lab_out[fall] = strands[fall], HAIR
    r = realism.realism_metrics("hair", inp, out, lab, lab_out, [HAIR])
    assert r["seam_contrast_all"] > 2.5
    assert np.isnan(r["seam_contrast"])                          # no boundary inside one class: nothing to charge
    cut = inp.copy()
    part = np.zeros(lab.shape, bool)
    part[:40, 64:100] = True                                     # new hair stops mid-way in the old
    cut[part] = strands[part]
    assert realism.realism_metrics("hair", inp, cut, lab, lab, [HAIR])["seam_contrast"] > 2.5


def test_the_reference_complexion_on_the_result_is_foreign_skin():
    inp, lab = _portrait()
    ref = inp.copy()
    ref[lab == SKIN] = (110, 70, 50)                          # a darker complexion
    out = inp.copy()
    out[60:80, 30:100] = (110, 70, 50)                        # pasted with the reference's skin around it
    r = realism.realism_metrics("eyeglasses", inp, out, lab, lab, [EYEGLASSES], ref, lab)
    assert r["foreign_skin"] > 0.5 and r["looks_broken"] == 1
    # new hair in the reference's complexion (strawberry blonde on a fair reference) is hair, not skin
    lab_out = lab.copy()
    lab_out[60:80, 30:100] = HAIR
    h = realism.realism_metrics("hair", inp, out, lab, lab_out, [HAIR], ref, lab)
    assert h["foreign_skin"] < 0.05
    assert realism.realism_metrics("hair", inp, out, lab, lab, [HAIR], ref, lab)["foreign_skin"] > 0.5


def test_parser_agreement_and_parts_kept():
    from triface_studio.core.semantics import L_EYE, NOSE

    lab = np.zeros((64, 64), np.uint8)
    lab[:20] = HAIR
    lab[30:34, 20:28] = L_EYE
    lab[40:50, 28:36] = NOSE
    out = lab.copy()
    out[:10] = BACKGROUND
    assert abs(realism.agreement(lab, out, [HAIR]) - 0.5) < 1e-6
    assert realism.parts_kept(lab, out) == 1.0
    out[40:50, 28:36] = SKIN
    assert realism.parts_kept(lab, out) == 0.5


def test_the_edit_warns_about_glasses_at_the_line_the_eval_calls_a_no_op():
    from triface_studio.evaluation import evaluate, realism
    from triface_studio.pipeline.edit import MIN_SEEN_GLASSES_PX

    assert realism.MIN_GLASSES_PX == MIN_SEEN_GLASSES_PX == evaluate.MIN_GLASSES_PX
