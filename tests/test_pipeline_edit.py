"""The edit pipeline end to end on synthetic aligned portraits (no shared data, no weights):
ReliefTier lifts each crop onto the XY plane, so the right answers are known exactly."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from triface_studio.core.semantics import EYEGLASSES, HAIR, SKIN
from triface_studio.pipeline import Cancelled, EditError, EditPipeline, EditRequest, ReferenceSpec, RefineSettings
from triface_studio.pipeline.relief import AlignedAnalyzer, ReliefTier

BG = (90, 140, 200)
BLACK, BLONDE = (20, 15, 10), (230, 200, 120)


def portrait(hair_colour, hair_top: int, glasses: bool = False, size: int = 512):
    yy, xx = np.mgrid[:size, :size]
    lab = np.zeros((size, size), np.uint8)
    img = np.empty((size, size, 3), np.uint8)
    img[:] = BG
    img[..., 0] = np.clip(60 + xx // 8, 0, 255)          # a gradient so the background is not flat
    hair = ((xx - 256) ** 2 / 170 ** 2 + (yy - 250) ** 2 / 200 ** 2 < 1) & (yy < hair_top + 200)
    lab[hair], img[hair] = HAIR, hair_colour
    skin = (xx - 256) ** 2 / 120 ** 2 + (yy - 290) ** 2 / 160 ** 2 < 1
    lab[skin], img[skin] = SKIN, (220, 180, 150)
    if glasses:
        g = (abs(yy - 260) < 14) & (abs(xx - 256) < 100)
        lab[g], img[g] = EYEGLASSES, (20, 20, 20)
    return img, lab


@pytest.fixture(scope="module")
def scene():
    an = AlignedAnalyzer()
    ident, lab_id = portrait(BLACK, 120)
    ref, lab_ref = portrait(BLONDE, 60, glasses=True)
    bald, lab_bald = portrait(BLONDE, -400)
    an.add(ident, lab_id)
    an.add(ref, lab_ref)
    an.add(bald, lab_bald)
    pipe = EditPipeline(tier=ReliefTier(), analyzer=an)
    return dict(pipe=pipe, an=an, ident=ident, lab_id=lab_id, ref=ref, lab_ref=lab_ref, bald=bald)


def run(scene, refs, **kw):
    kw.setdefault("render_resolution", 128)       # keeps the suite fast; the default is 256
    return scene["pipe"].run(EditRequest(identity=scene["ident"], references=refs, **kw))


def test_hair_edit_recolours_hair_and_keeps_the_rest(scene):
    res = run(scene, [ReferenceSpec(scene["ref"], ("hair",), name="ref.png")])
    out = res.composite.astype(np.float32)
    ident = scene["ident"].astype(np.float32)
    hair_ref = scene["lab_ref"] == HAIR
    core = hair_ref & (scene["lab_id"] == HAIR)
    # the hair that both heads have turns blonde
    assert np.abs(out[core].mean(0) - BLONDE).max() < 25
    # pixels far from both hair regions are untouched
    from scipy.ndimage import binary_dilation

    outside = (res.sde_mask == 0) & ~binary_dilation(res.edit_region > 0.5, iterations=4)
    assert outside.mean() > 0.5
    assert np.abs(out[outside] - ident[outside]).max() <= 1
    # S^blend labels hair where the reference has hair, skin on the face
    assert (res.s_blend[core] == HAIR).mean() > 0.9
    assert res.s_blend[290, 256] == SKIN
    # every stage timed, results of the right kinds
    for stage in ("analyze", "encode", "align", "blend", "render", "composite", "refine", "final", "reencode"):
        assert stage in res.timings
    assert res.composite.shape == (512, 512, 3) and res.composite.dtype == np.uint8
    assert res.composite_full.shape == scene["ident"].shape
    assert res.t_com.planes.shape == res.t_blend.planes.shape


def test_identity_mask_protects_what_it_covers(scene):
    """Painting on the identity protects those pixels: the left half of the hair stays black
    while the right half turns blonde; a mask of another size is resized with a note."""
    protect = np.zeros((512, 512), np.float32)
    protect[:, :256] = 1.0
    res = run(scene, [ReferenceSpec(scene["ref"], ("hair",), name="ref.png")], identity_mask=protect)
    out, ident = res.composite.astype(np.float32), scene["ident"].astype(np.float32)
    core = (scene["lab_ref"] == HAIR) & (scene["lab_id"] == HAIR)
    left, right = core.copy(), core.copy()
    left[:, 250:] = False
    right[:, :262] = False
    assert np.abs(out[left] - ident[left]).max() <= 1
    assert np.abs(out[right].mean(0) - BLONDE).max() < 25
    half_size = (protect[::2, ::2] * 255).astype(np.uint8)
    small = run(scene, [ReferenceSpec(scene["ref"], ("hair",))], identity_mask=half_size)
    assert any("identity's mask" in n for n in small.notes)
    assert np.abs(small.composite.astype(np.float32)[left] - ident[left]).max() <= 1


def test_a_nose_takes_the_reference_shape_and_the_identity_complexion(scene):
    """The reference's nose (a darker, redder complexion, with shading) lands in the identity's
    skin tone; its shading survives."""
    from triface_studio.core.semantics import NOSE

    ref, lab = portrait(BLONDE, 60)
    yy, xx = np.mgrid[:512, :512]
    nose = (abs(xx - 256) < 22) & (yy > 260) & (yy < 330)
    ref[(lab == SKIN)] = (150, 90, 70)
    lab[nose] = NOSE
    # a ridge of light down its middle, meeting the cheeks' skin at its sides as a nose does
    ridge = np.exp(-((xx[nose] - 256) / 9.0) ** 2)
    ref[nose] = np.stack([150 + 70 * ridge, 90 + 35 * ridge, 70 + 0 * ridge], -1)
    scene["an"].add(ref, lab)
    res = run(scene, [ReferenceSpec(ref, ("nose",), name="nose.png")])
    out = res.composite.astype(np.float32)
    core = nose & (res.s_blend == NOSE)
    assert core.sum() > 500
    skin_id = np.array((220, 180, 150), np.float32)
    assert np.abs(out[core].mean(0) - skin_id).max() < 30            # the identity's tone
    assert np.abs(out[core].mean(0) - ref[core].mean(0)).max() > 40    # not the reference's
    middle, sides = core & (abs(xx - 256) < 4), core & (abs(xx - 256) > 15)
    assert out[middle, 0].mean() > out[sides, 0].mean() + 10          # its shading (the lit ridge) kept
    edge = cv2.dilate(core.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~core
    assert np.abs(out[edge].mean(0) - skin_id).max() < 12             # and no outline round it


def test_a_taken_nose_is_one_piece_whose_bridge_runs_into_the_identity_s():
    """A reference in eyeglasses shows its nose's bridge between the lenses, cut off from the
    rest by the glasses' bridge: that piece is not pasted (a pale bar between the identity's
    eyes).  The pasted nose's top fades in over part of its height instead of ending in a
    straight edge; below that and at its sides it is whole."""
    from triface_studio.core.semantics import NOSE
    from triface_studio.pipeline.composite import NOSE_FADE_SHARE, nose_bridge_fade, one_nose

    H = W = 128
    labels_id = np.full((H, W), SKIN, np.uint8)
    labels_id[40:100, 55:73] = NOSE                                  # the identity's own nose
    s_blend = labels_id.copy()
    s_blend[50:100, 52:76] = NOSE                                    # the new nose ...
    s_blend[38:44, 58:70] = NOSE                                     # ... and its bridge between the lenses
    s_blend[44:50, 52:76] = SKIN
    from_ref = (s_blend == NOSE).astype(np.float32)
    out = one_nose(s_blend, labels_id, from_ref)
    assert (out[38:44, 58:70] == SKIN).all()
    assert (out[50:100, 52:76] == NOSE).all() and (out == NOSE).sum() == 50 * 24
    # a piece the identity had and no reference gave stays (only what was taken goes)
    own = s_blend.copy()
    assert (one_nose(own, labels_id, (own == NOSE) * (np.arange(H)[:, None] >= 50))[38:44, 58:70] == NOSE).all()

    nose = out == NOSE
    w = nose_bridge_fade(nose)
    ramp = int(np.ceil(NOSE_FADE_SHARE * 50))
    assert w[50, 64] < 0.1 and 0.3 < w[50 + ramp // 2, 64] < 0.7       # rises from its top ...
    assert (w[50 + ramp + 3:, 52:76] > 0.99).all()                     # ... to whole below, sides too
    assert np.all(np.diff(w[50:50 + ramp, 64]) >= 0)
    assert (w[~nose] == 1).all()


def test_identity_only_pixels_between_old_and_new_hair_are_filled(scene):
    # the bald reference has no hair: taking "hair" needs a user mask; subtracting all of it empties the region
    with pytest.raises(EditError, match="shows no hair"):
        run(scene, [ReferenceSpec(scene["bald"], ("hair",), name="bald.png")])


def test_absent_attribute_is_a_clear_error(scene):
    with pytest.raises(EditError, match=r"ident.*no eyeglasses|no eyeglasses"):
        scene["pipe"].run(EditRequest(identity=scene["ref"], references=[
            ReferenceSpec(scene["ident"], ("eyeglasses",), name="ident.png")]))


def test_several_references_apply_in_order(scene):
    res = run(scene, [ReferenceSpec(scene["ref"], ("hair",)), ReferenceSpec(scene["ref"], ("eyeglasses",))])
    g = scene["lab_ref"] == EYEGLASSES
    assert (res.s_blend[g] == EYEGLASSES).mean() > 0.8
    assert res.composite[g].astype(float).mean() < 80           # dark glasses painted in
    assert (res.s_blend[(scene["lab_ref"] == HAIR) & (scene["lab_id"] == HAIR)] == HAIR).mean() > 0.9


def test_user_mask_modes(scene):
    band = np.zeros((512, 512), np.float32)
    band[:, :256] = 1.0                                            # the left half of the picture
    hair_ref = (scene["lab_ref"] == HAIR) & (scene["lab_id"] == HAIR)
    left, right = hair_ref.copy(), hair_ref.copy()
    left[:, 240:] = False
    right[:, :272] = False
    sub = run(scene, [ReferenceSpec(scene["ref"], ("hair",), user_mask=band, mask_mode="subtract")])
    rep = run(scene, [ReferenceSpec(scene["ref"], ("hair",), user_mask=band * 0, mask_mode="add")])
    # subtract: the left half keeps the identity's black hair, the right half turns blonde
    assert sub.composite[left].astype(float).mean() < 60
    assert sub.composite[right].astype(float).mean() > 150
    assert rep.composite[left].astype(float).mean() > 150
    # the kept half is the identity's photo itself (not a render of it), and the border between
    # kept and new hair is a ramp, not a cut
    deep = left.copy()
    deep[:, 200:] = False
    assert np.abs(sub.composite[deep].astype(int) - scene["ident"][deep].astype(int)).mean() < 4
    row = sub.composite[100, 226:290].astype(float).mean(-1)
    assert np.abs(np.diff(row)).max() < 0.6 * (row.max() - row.min())
    # the part taken is laid over the identity's own hair: its old hair beside the taken half
    # that the new hair does not reach stays (removed, it was a gap to invent hair or skin in)
    near_new = cv2.dilate((scene["lab_ref"] == HAIR).astype(np.uint8), np.ones((25, 25), np.uint8)) > 0
    beyond = (scene["lab_id"] == HAIR) & ~near_new                    # (away from the new hair's soft edge)
    beyond[:, :300] = False
    assert beyond.sum() > 500
    assert np.abs(sub.composite[beyond].astype(int) - scene["ident"][beyond].astype(int)).mean() < 6
    full = run(scene, [ReferenceSpec(scene["ref"], ("hair",))])          # (without a mask it goes)
    assert np.abs(full.composite[beyond].astype(int) - scene["ident"][beyond].astype(int)).mean() > 30
    with pytest.raises(EditError, match="empty"):
        run(scene, [ReferenceSpec(scene["ref"], ("hair",), user_mask=band * 0, mask_mode="replace")])


def test_a_fringe_cut_by_a_subtract_mask_fades_out_over_the_forehead(scene):
    """A reference's fringe across its forehead, its right half subtracted by the user's mask:
    over the identity's bare forehead the new hair thins out towards the mask's border instead
    of ending in its straight line."""
    ref, lab = portrait(BLONDE, 60)
    yy, xx = np.mgrid[:512, :512]
    fringe = (lab == SKIN) & (yy < 200)
    lab[fringe], ref[fringe] = HAIR, BLONDE
    scene["an"].add(ref, lab)
    band = np.zeros((512, 512), np.float32)
    band[:, 256:] = 1.0
    res = run(scene, [ReferenceSpec(ref, ("hair",), user_mask=band, mask_mode="subtract")])
    assert (scene["lab_id"][170, 200:320] == SKIN).all()               # the identity's forehead
    skin = scene["ident"][170, 300:320].astype(float).mean(0)
    row = np.linalg.norm(res.composite[170, 200:320].astype(float) - skin, axis=-1)   # how far from skin
    assert row[:10].mean() > 30 and row[-10:].mean() < 4                     # fringe, then forehead
    between = (row > 0.1 * row.max()) & (row < 0.9 * row.max())
    assert between.sum() >= 10                          # a ramp over some 20 px, not a cut of ~5


def test_two_half_hair_references_each_keep_their_half(scene):
    """Hair from two references, each with the other's half subtracted: the cut of one does not
    fade the other's hair out."""
    red, lab_red = portrait((200, 60, 50), 60)
    scene["an"].add(red, lab_red)
    left = np.zeros((512, 512), np.float32)
    left[:, :256] = 1.0
    res = run(scene, [ReferenceSpec(scene["ref"], ("hair",), user_mask=left, mask_mode="subtract"),
                      ReferenceSpec(red, ("hair",), user_mask=1 - left, mask_mode="subtract")])
    hair = (scene["lab_ref"] == HAIR) & (scene["lab_id"] == HAIR)
    hair = cv2.erode(hair.astype(np.uint8), np.ones((21, 21), np.uint8)) > 0    # (not its soft outline)
    out = res.composite.astype(float)
    l_side, r_side = hair.copy(), hair.copy()
    l_side[:, 220:] = False
    r_side[:, :292] = False

    def nearest(c):
        return min((BLONDE, (200, 60, 50), BLACK), key=lambda ref: np.linalg.norm(np.subtract(c, ref)))

    assert nearest(np.median(out[r_side], 0)) == BLONDE             # the first reference's right half
    assert nearest(np.median(out[l_side], 0)) == (200, 60, 50)      # the second's left half


def test_user_mask_of_another_size_is_resized_with_a_note(scene):
    small = np.ones((100, 80), np.float32)
    res = run(scene, [ReferenceSpec(scene["ref"], ("eyeglasses",), user_mask=small * 0, mask_mode="add")])
    assert any("resized" in n for n in res.notes)


def test_no_face_reference_names_the_file(scene):
    blank = np.full((512, 512, 3), 128, np.uint8)
    scene["an"].add(blank, no_face=True)
    with pytest.raises(EditError, match="empty_wall.jpg.*no face"):
        run(scene, [ReferenceSpec(blank, ("hair",), name="empty_wall.jpg")])


def test_unknown_attribute_and_bad_settings(scene):
    with pytest.raises(EditError, match="unknown attribute"):
        run(scene, [ReferenceSpec(scene["ref"], ("moustache",))])
    with pytest.raises(EditError, match="score model"):
        run(scene, [ReferenceSpec(scene["ref"], ("hair",))], refine=RefineSettings(refiner="sdedit"))
    with pytest.raises(EditError, match="at least one reference"):
        run(scene, [])


def test_cancellation_between_stages_and_inside_renders(scene):
    cancel = threading.Event()
    seen = []

    def progress(stage, f):
        seen.append(stage)
        if stage == "render" and 0 < f < 1:
            cancel.set()
    with pytest.raises(Cancelled):
        run_ = scene["pipe"].run
        run_(EditRequest(identity=scene["ident"], references=[ReferenceSpec(scene["ref"], ("hair",))]),
             progress=progress, cancel=cancel)
    assert "render" in seen and "composite" not in seen


def test_backgrounds(scene):
    col = run(scene, [ReferenceSpec(scene["ref"], ("hair",))], background=(255, 0, 0))
    corner = col.composite[:20, :20].astype(int)
    assert (corner[..., 0] > 240).all() and (corner[..., 1:] < 15).all()
    tr = run(scene, [ReferenceSpec(scene["ref"], ("hair",))], background="transparent")
    assert tr.alpha is not None and tr.alpha[:20, :20].max() == 0 and tr.alpha[290, 256] == 1


def test_analysis_is_cached_by_content(scene):
    pipe = scene["pipe"]
    a = pipe.analyze(scene["ident"].copy(), "x.png")
    b = pipe.analyze(scene["ident"].copy(), "x.png")
    assert a is b
    m = pipe.predicted_mask(a, ("hair",))
    assert m.dtype == np.float32 and m.shape == (512, 512)
    assert np.array_equal(m > 0.5, scene["lab_id"] == HAIR)


def test_sdedit_refiner_runs_inside_m_sde_and_cancels(scene, tiny_score_model, tmp_path):
    settings = RefineSettings(refiner="sdedit", score_model=str(tiny_score_model), t0=0.3, steps=2)
    res = run(scene, [ReferenceSpec(scene["ref"], ("hair",))], refine=settings)
    outside = res.sde_mask == 0
    assert np.abs(res.refined[outside] - res.coarse[outside]).max() < 1e-5
    assert np.abs(res.refined - res.coarse)[res.sde_mask > 0.99].mean() > 1e-3   # the model did something
    cancel = threading.Event()

    def progress(stage, f):
        if stage == "refine" and 0 < f < 1:
            cancel.set()
    with pytest.raises(Cancelled):
        scene["pipe"].run(EditRequest(identity=scene["ident"], references=[ReferenceSpec(scene["ref"], ("hair",))],
                                      refine=settings), progress=progress, cancel=cancel)
    with pytest.raises(EditError, match="SDEdit"):
        run(scene, [ReferenceSpec(scene["ref"], ("hair",))],
            refine=RefineSettings(refiner="sdedit", score_model=str(tmp_path / "nope")))


def _glasses_scene(lens):
    """A reference rendered at the identity's camera: skin, two eyes, a black frame ring
    around each, and the lens filled with ``lens`` (None: clear, the skin and eyes show)."""
    from triface_studio.core.semantics import L_EYE, R_EYE

    yy, xx = np.mgrid[:128, :128]
    img = np.empty((128, 128, 3), np.float32)
    img[:] = (0.85, 0.65, 0.55)
    img += (yy / 128.0 * 0.06)[..., None]                # a little shading, as on a real face
    lab = np.full((128, 128), SKIN, np.uint8)
    region = np.zeros((128, 128), np.float32)
    for cx, eye in ((40, L_EYE), (88, R_EYE)):
        d = np.hypot(xx - cx, yy - 60)
        region[d < 20] = 1.0
        ring = (d >= 16) & (d < 20)
        inner = d < 16
        if lens is None:
            e = d < 5
            img[e] = (0.25, 0.15, 0.10)
            lab[e] = eye
        else:
            img[inner] = lens
        img[ring] = (0.05, 0.05, 0.05)
        lab[d < 20] = np.where(lab[d < 20] == SKIN, EYEGLASSES, lab[d < 20])
    return img, lab, region, (yy, xx)


def test_glasses_layer_keeps_the_frame_and_lets_the_identity_show_through_clear_lenses():
    from triface_studio.pipeline.composite import glasses_layer

    img, lab, region, (yy, xx) = _glasses_scene(None)
    layer = glasses_layer(img, lab, region)
    d = np.hypot(xx - 40, yy - 60)
    assert not layer.tinted
    assert layer.alpha[(d >= 16.5) & (d < 19.5)].mean() > 0.8            # the frame comes along
    assert layer.alpha[(d > 7) & (d < 14)].mean() < 0.05                 # the reference's skin does not
    assert layer.alpha[d < 4].mean() < 0.05                              # nor its eyes
    assert layer.alpha[region == 0].max() == 0.0


def test_glasses_layer_leaves_the_reference_s_skin_out_of_the_frame_s_soft_edge():
    from triface_studio.pipeline.composite import glasses_layer

    img, lab, region, (yy, xx) = _glasses_scene(None)
    skin = img[5, 5].copy()
    d = np.hypot(xx - 40, yy - 60)
    edge = (d >= 20) & (d < 21)        # half frame, half the reference's skin, as a camera sees a rim's edge
    img[edge] = 0.5 * np.array((0.05, 0.05, 0.05)) + 0.5 * skin
    region[edge] = 1.0
    layer = glasses_layer(img, lab, region)
    soft = edge & (layer.alpha > 0.2) & (layer.alpha < 0.9)
    assert soft.sum() > 20
    # the colour that comes along there is the frame's, darker than the mixed pixel
    assert layer.colour[soft].mean() < img[soft].mean() - 0.05


def test_a_side_seen_pair_of_glasses_is_made_whole_from_its_nearer_half():
    from triface_studio.core.semantics import L_EYE, R_EYE
    from triface_studio.pipeline.composite import symmetric_glasses

    lab = np.full((64, 100), SKIN, np.uint8)
    img = np.full((64, 100, 3), 0.8, np.float32)
    lab[20:40, 20:50] = EYEGLASSES          # the near lens reaches 30 px from the midline (50)
    lab[25:35, 50:62] = EYEGLASSES          # the far one, foreshortened, 12 px
    img[lab == EYEGLASSES] = 0.1
    lab[28:32, 30:36] = L_EYE
    render, labels, user = symmetric_glasses(img, lab, 50.0, "left")
    glasses = labels == EYEGLASSES
    assert (glasses == glasses[:, ::-1][:, np.r_[99, 0:99]]).mean() > 0.99      # mirror image about column 50
    assert (glasses | (labels == R_EYE))[20:40, 51:80].all() and not glasses[:, 81:].any()
    assert (labels == R_EYE).sum() == (labels == L_EYE).sum() > 0              # the mirrored eye is the other eye
    assert render[30, 75, 0] == np.float32(0.1) and user is None
    # the near half is untouched
    assert (labels[:, :50] == lab[:, :50]).all()


def test_a_mirrored_dark_lens_shows_the_near_lens_s_reflection_shifted_not_mirrored():
    from triface_studio.pipeline.composite import symmetric_glasses

    lab = np.full((64, 100), SKIN, np.uint8)
    img = np.full((64, 100, 3), 0.8, np.float32)
    lab[16:48, 14:46] = EYEGLASSES                     # the near lens, centre column 29.5
    img[lab == EYEGLASSES] = 0.08
    img[26:32, 22:26] = 0.5                            # a glint in its left part
    render, labels, _ = symmetric_glasses(img, lab, 50.0, "left")
    assert (labels[16:48, 55:86] == EYEGLASSES).all()
    shift = 41                                          # the far lens's centre, 70.5, less the near one's
    assert np.allclose(render[26:32, 22 + shift:26 + shift], 0.5)   # the glint in the far lens's left part
    assert np.allclose(render[26:32, 75:79], 0.08)                  # not where the mirror put it
    assert np.allclose(render[16:48, 55], 0.08)                      # the rim: mirrored, dark
    clear = img.copy()
    clear[lab == EYEGLASSES] = 0.75                    # a clear lens: all of it mirrored
    clear[26:32, 22:26] = 0.5
    render, _, _ = symmetric_glasses(clear, lab, 50.0, "left")
    assert np.allclose(render[26:32, 75:79], 0.5) and np.allclose(render[26:32, 63:67], 0.75)


def test_the_nearer_half_is_read_from_the_face_not_from_a_blob_beside_the_far_lens():
    from types import SimpleNamespace

    from triface_studio.pipeline.edit import GLASSES_HALVES, MIDLINE_POINT, nearer_half

    def face(left_reach, right_reach):
        lm = np.zeros((478, 2), np.float64)
        lm[MIDLINE_POINT] = (256, 240)
        for (outer, temple), side, reach in zip(GLASSES_HALVES, (-1, 1), (left_reach, right_reach)):
            lm[outer], lm[temple] = (256 + side * reach, 240), (256 + side * (reach + 40), 235)
        return SimpleNamespace(crop_landmarks=lm)

    frontal = face(70, 70)
    assert nearer_half(face(80, 50), frontal, np.eye(2, 3)) == "left"
    assert nearer_half(face(50, 80), frontal, np.eye(2, 3)) == "right"
    assert nearer_half(face(72, 70), frontal, np.eye(2, 3)) is None            # seen from the front
    assert nearer_half(SimpleNamespace(crop_landmarks=None), frontal, np.eye(2, 3)) is None


def test_glasses_layer_keeps_dark_lenses_dark():
    from triface_studio.pipeline.composite import glasses_layer

    img, lab, region, (yy, xx) = _glasses_scene((0.12, 0.10, 0.10))
    layer = glasses_layer(img, lab, region)
    assert layer.tinted
    assert layer.alpha[np.hypot(xx - 40, yy - 60) < 14].mean() > 0.9


def test_thick_black_frames_round_clear_lenses_are_not_taken_for_sunglasses():
    """Frames as thick as the lens is wide make the glasses' region as dark as a tint; the
    eyes the parser sees through the lenses (labelled eye, not glasses, so outside the region
    itself) tell clear glass: the reference's skin and eyes behind them stay out."""
    from triface_studio.core.semantics import L_EYE, R_EYE
    from triface_studio.pipeline.composite import glasses_layer

    img, lab, region, (yy, xx) = _glasses_scene(None)
    for cx in (40, 88):
        d = np.hypot(xx - cx, yy - 60)
        img[(d >= 11) & (d < 20)] = (0.05, 0.05, 0.05)
        img[(d >= 7) & (d < 11) & (yy < 60)] = (0.5, 0.36, 0.3)     # the skin behind the lens in the frame's shade
    region[np.isin(lab, (L_EYE, R_EYE))] = 0.0          # where glasses go: the glasses' own labels
    layer = glasses_layer(img, lab, region)
    assert not layer.tinted
    d = np.hypot(xx - 40, yy - 60)
    assert layer.alpha[(d >= 12) & (d < 19)].mean() > 0.8               # the frame comes along
    assert layer.alpha[(d > 5.5) & (d < 10)].max() < 0.1                # the skin behind the lens does not,
    assert layer.alpha[(d > 7.5) & (d < 10) & (yy < 58)].max() < 0.1    # in shade either


def test_a_grey_metal_frame_with_a_dark_edge_keeps_all_of_itself():
    """A thin dark line round a lens (a metal frame's shaded edge) encloses it, but the pair is
    mostly grey metal: only what it encloses is left out, not the metal."""
    from triface_studio.pipeline.composite import glasses_layer

    img, lab, region, (yy, xx) = _glasses_scene(None)
    for cx in (40, 88):
        d = np.hypot(xx - cx, yy - 60)
        img[(d >= 16) & (d < 19)] = (0.42, 0.42, 0.44)
        img[(d >= 19) & (d < 20)] = (0.05, 0.05, 0.05)
    layer = glasses_layer(img, lab, region)
    d = np.hypot(xx - 40, yy - 60)
    assert layer.alpha[(d >= 16.5) & (d < 18.5)].mean() > 0.8


def test_a_dark_frame_and_the_clear_lenses_it_encloses_are_told_apart():
    from triface_studio.pipeline.composite import dark_frame

    yy, xx = np.mgrid[:64, :64]
    d = np.hypot(xx - 32, yy - 32)
    L = np.full((64, 64), 60.0)
    rim = (d >= 14) & (d < 18)
    L[rim] = 5.0                                          # a black rim ...
    L[rim & (abs(xx - 32) < 1) & (yy < 20)] = 60.0        # ... with a 1 px gap (glare)
    L[d < 8] = 35.0                                       # shaded skin behind the lens
    glasses = d < 24
    frame, lens = dark_frame(L, glasses, 60.0)
    assert lens[d < 12].all() and not lens[d >= 14].any()
    assert frame[rim].all() and not frame[d >= 19].any()  # the glare closed into the rim
    metal = np.where(rim, 70.0, 60.0)                     # a light frame encloses nothing dark
    assert not any(m.any() for m in dark_frame(metal, glasses, 60.0))


def test_the_result_s_labels_hold_the_pasted_glasses_with_their_clear_lenses():
    from triface_studio.core.semantics import L_EYE
    from triface_studio.pipeline.composite import glasses_labels

    yy, xx = np.mgrid[:64, :64]
    d = np.hypot(xx - 32, yy - 32)
    labels_id = np.full((64, 64), SKIN, np.uint8)
    labels_id[d < 4] = L_EYE
    s_out = labels_id.copy()
    s_out[(d < 20) & (xx > 40)] = EYEGLASSES             # the blend's glasses, partly beyond the layer
    glass = ((d >= 14) & (d < 18)).astype(np.float32)    # the pasted frame: a ring round a clear lens
    out = glasses_labels(s_out, labels_id, glass)
    assert (out[(d >= 14) & (d < 18)] == EYEGLASSES).all()
    assert (out[(d >= 4) & (d < 14)] == EYEGLASSES).all()          # the lens it encloses
    assert (out[d < 4] == L_EYE).all()                              # the eye seen through it
    assert (out[(d >= 18) & (d < 20) & (xx > 40)] == SKIN).all()    # beyond the layer: the identity's


def test_bare_head_is_the_face_hull_and_the_cranium_above_the_brows():
    """Hair removed beside the neck reveals background, not skin; the cranium above the brows
    is head across the face's width."""
    from triface_studio.core.semantics import L_BROW, NECK
    from triface_studio.pipeline.composite import bare_head

    yy, xx = np.mgrid[:512, :512]
    lab = np.zeros((512, 512), np.uint8)
    lab[(xx - 256) ** 2 / 120 ** 2 + (yy - 300) ** 2 / 150 ** 2 < 1] = SKIN
    lab[(abs(xx - 256) < 60) & (yy > 430)] = NECK
    lab[(abs(yy - 240) < 6) & (abs(xx - 256) > 20) & (abs(xx - 256) < 90)] = L_BROW
    long_hair = (abs(xx - 256) > 130) & (abs(xx - 256) < 200) & (yy > 200)
    lab[long_hair] = HAIR
    head = bare_head(lab)
    assert head[300, 256] and head[480, 256]                       # face and neck
    assert head[100, 150] and head[100, 360]                       # cranium, above the brows
    assert not head[100, 100] and not head[100, 420]               # beyond the face's width
    assert not head[long_hair & (yy > 300)].any()                  # beside the face and neck
    assert bare_head(np.zeros((64, 64), np.uint8)) is None


def _head_labels():
    """A face (skin ellipse, brows, eyes, nose) under a tall head of hair. -> labels (512, 512)"""
    from triface_studio.core.semantics import L_BROW, L_EYE, NOSE, R_BROW, R_EYE

    yy, xx = np.mgrid[:512, :512]
    lab = np.zeros((512, 512), np.uint8)
    lab[(xx - 256) ** 2 / 150 ** 2 + (yy - 200) ** 2 / 170 ** 2 < 1] = HAIR
    lab[(xx - 256) ** 2 / 110 ** 2 + (yy - 300) ** 2 / 140 ** 2 < 1] = SKIN
    lab[(abs(yy - 250) < 5) & (abs(xx - 206) < 30)] = L_BROW
    lab[(abs(yy - 250) < 5) & (abs(xx - 306) < 30)] = R_BROW
    lab[(abs(yy - 275) < 6) & (abs(xx - 206) < 20)] = L_EYE
    lab[(abs(yy - 275) < 6) & (abs(xx - 306) < 20)] = R_EYE
    lab[(abs(yy - 320) < 30) & (abs(xx - 256) < 15)] = NOSE
    return lab, yy, xx


def test_old_hair_on_the_scalp_grows_new_hair_unless_painted_bare():
    from triface_studio.pipeline.composite import regions

    lab, yy, xx = _head_labels()
    # the new hair is a thin cap on top: the old hair between it and the brows is left uncovered
    s_blend = np.where(lab == HAIR, SKIN, lab).astype(np.uint8)
    s_blend[(lab == HAIR) & (yy < 90)] = HAIR
    reg = regions(lab, s_blend, [HAIR])
    crown = (lab == HAIR) & (yy > 100) & (yy < 150) & (abs(xx - 256) < 60)
    assert (reg.gap_scalp[crown] > 0.5).mean() > 0.9                 # hair, not a bald cap
    assert (reg.s_blend[crown] == HAIR).mean() > 0.9
    bare = regions(lab, s_blend, [HAIR], bare=np.ones((512, 512), np.float32))
    assert (bare.gap_scalp[crown] > 0.5).sum() == 0 and (bare.gap_face[crown] > 0.5).mean() > 0.9
    assert (bare.s_blend[crown] == SKIN).mean() > 0.9


def test_a_fringe_over_an_eye_never_turns_into_background():
    from triface_studio.core.semantics import BACKGROUND
    from triface_studio.pipeline.composite import regions

    lab, yy, xx = _head_labels()
    fringe = (abs(xx - 306) < 45) & (yy > 235) & (yy < 290)          # the old hair over the right eye
    lab[fringe] = HAIR
    s_blend = lab.copy()
    s_blend[lab == HAIR] = BACKGROUND                                # nothing lifted behind the removed hair
    s_blend[(lab == HAIR) & ~fringe] = HAIR
    reg = regions(lab, s_blend, [HAIR])
    assert (reg.m_bg[fringe] > 0.5).mean() < 0.05
    assert (reg.gap[fringe] > 0.5).mean() > 0.9
    # it stays hair (the old fringe, dyed): skin there would have to invent an eye and a brow
    assert (reg.s_blend[fringe] == HAIR).mean() > 0.9
    bare = regions(lab, s_blend, [HAIR], bare=np.ones((512, 512), np.float32))
    assert (bare.s_blend[fringe] == HAIR).mean() < 0.1                # painted bare: skin


def test_old_hair_left_uncovered_takes_the_new_hair_s_colour_and_keeps_its_own_shading():
    from triface_studio.pipeline.composite import Regions, dye_old_hair

    lab, yy, xx = _head_labels()
    rng = np.random.default_rng(0)
    i_id = np.full((512, 512, 3), 0.8, np.float32) * np.array([1.0, 0.8, 0.7], np.float32)   # skin
    old = lab == HAIR
    shade = 0.10 + 0.06 * (xx / 512.0)                                 # dark hair, lit from the right
    i_id[old] = (shade[old, None] + rng.normal(0, 0.01, (old.sum(), 1))).astype(np.float32) * [1.0, 0.9, 0.8]
    pasted = (rng.uniform(0.75, 0.95, (512, 512, 1)) * np.array([1.0, 0.85, 0.53])).astype(np.float32)  # blonde
    new = old & (yy < 90)
    s_out = np.where(new, HAIR, SKIN).astype(np.uint8)
    alpha = new.astype(np.float32)
    z = np.zeros((512, 512), np.float32)
    reg = Regions(m_k=alpha, m_k_id=old.astype(np.float32), m_bg=z, bg_id=z, gap_face=z, gap_scalp=z, gap_bg=z,
                  s_blend=s_out)
    dyed, ok = dye_old_hair(i_id, lab, pasted, alpha, s_out, reg, np.zeros((512, 512), bool))
    assert ok
    gap = old & ~new & (yy > 120)
    assert np.abs(dyed[gap].mean(0) - pasted[new].mean(0)).max() < 0.08   # blonde, not the old dark
    left, right = gap & (xx < 200), gap & (xx > 312)
    assert dyed[right].mean() > dyed[left].mean() + 0.01                # its own light stays
    face = (xx - 256) ** 2 / 100 ** 2 + (yy - 310) ** 2 / 120 ** 2 < 1
    assert np.allclose(dyed[face], i_id[face], atol=3e-3)                # the face untouched
    kept = old & (xx > 256)                                             # a subtract mask keeps these
    dyed_k, _ = dye_old_hair(i_id, lab, pasted, alpha, s_out, reg, kept)
    far = kept & (xx > 300) & (yy > 120)
    assert np.allclose(dyed_k[far], i_id[far], atol=0.02)


def test_pasted_hair_keeps_the_reference_photo_s_strands_not_the_render_s_blur(scene):
    """Fine strands (2 px stripes) in the reference's hair survive the edit: the hair pixels are
    read from the reference's photo where its surface point lands, not from the 128 px render."""
    ref = scene["ref"].copy()
    hair = scene["lab_ref"] == HAIR
    stripes = (np.arange(512) // 2 % 2 == 0)[None, :] & hair
    ref[stripes] = (ref[stripes].astype(int) - 70).clip(0, 255).astype(np.uint8)
    scene["an"].add(ref, scene["lab_ref"])
    res = run(scene, [ReferenceSpec(ref, ("hair",))])
    both = hair & (scene["lab_id"] == HAIR)
    both[:, :200] = False
    both[:, 312:] = False
    both[:60] = False
    lum = res.composite.astype(float).mean(-1)
    across = np.abs(np.diff(lum, axis=1))[both[:, 1:] & both[:, :-1]]
    assert across.mean() > 25                       # the stripes are still there
    assert lum[both].mean() > 120                   # and the hair is the reference's blonde


def test_tinted_glasses_lose_the_specks_the_parser_puts_beside_them():
    from triface_studio.pipeline.composite import glasses_layer

    img, lab, region, (yy, xx) = _glasses_scene((0.12, 0.10, 0.10))
    speck = (abs(xx - 40) < 2) & (abs(yy - 100) < 2)
    region = region.copy()
    region[speck] = 1.0
    layer = glasses_layer(img, lab, region)
    assert layer.tinted
    assert layer.alpha[speck].max() < 0.1
    assert layer.alpha[np.hypot(xx - 40, yy - 60) < 14].mean() > 0.9


def test_a_dark_pair_leaves_the_reference_s_skin_round_its_frame_behind():
    """The parser's outline of sunglasses takes in a rim of the reference's own skin (here 3 px
    round each frame, shaded a little): that rim is not part of the layer; the frame and the dark
    lens are."""
    from triface_studio.pipeline.composite import glasses_layer

    img, lab, region, (yy, xx) = _glasses_scene((0.12, 0.10, 0.10))
    rim = np.zeros((128, 128), bool)
    for cx in (40, 88):
        d = np.hypot(xx - cx, yy - 60)
        rim |= (d >= 20) & (d < 23)
    img[rim] = (0.78, 0.58, 0.48)                        # the reference's skin, in the frame's shadow
    lab[rim] = EYEGLASSES
    region = np.maximum(region, rim.astype(np.float32))
    layer = glasses_layer(img, lab, region)
    assert layer.tinted
    assert layer.alpha[rim].mean() < 0.3
    lens = np.zeros_like(rim)
    for cx in (40, 88):
        lens |= np.hypot(xx - cx, yy - 60) < 15
    assert layer.alpha[lens].min() > 0.95


def test_stretched_hair_takes_strands_from_the_rest_and_keeps_its_colour():
    from triface_studio.pipeline.composite import unstreak_hair

    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[:128, :128]
    strands = 0.1 * np.sin(xx * 1.3 + rng.normal(0, 0.3, (128, 128)))             # vertical strands
    pasted = (np.array([0.8, 0.65, 0.4]) + strands[..., None]).astype(np.float32)
    hair = np.ones((128, 128), bool)
    stretched = (xx > 70) & (yy > 30) & (yy < 100)
    streaky = pasted.copy()
    streaky[stretched] = pasted[stretched].mean(0)
    streaky[stretched] += (0.05 * np.sin(yy[stretched] * 2.0))[:, None]             # one texel per row
    out = unstreak_hair(streaky, stretched, hair)
    along = lambda im: np.abs(np.diff(im[..., 0], axis=1))[stretched[:, 1:] & stretched[:, :-1]].mean()  # noqa: E731
    assert along(out) > 3 * along(streaky)                                          # strands across the streaks
    assert np.abs(out[stretched].mean(0) - streaky[stretched].mean(0)).max() < 0.03   # its colour stays
    assert np.allclose(out[~stretched & (xx < 60)], streaky[~stretched & (xx < 60)])  # the rest untouched


def test_old_hair_between_the_face_and_the_new_hair_beside_it_grows_hair():
    from triface_studio.core.semantics import BACKGROUND
    from triface_studio.pipeline.composite import regions

    lab, yy, xx = _head_labels()
    lab[(abs(xx - 256) < 200) & (yy > 200) & (yy < 420) & (lab != SKIN)] = HAIR      # long old hair
    # the new hair: a cap and a lock far to the right of the face, a 60 px band of old hair between
    s_blend = np.where(lab == HAIR, BACKGROUND, lab).astype(np.uint8)
    s_blend[(lab == HAIR) & (yy < 90)] = HAIR
    lock = (xx > 430) & (xx < 450) & (yy > 200) & (yy < 420)
    s_blend[lock & (lab == HAIR)] = HAIR
    reg = regions(lab, s_blend, [HAIR])
    band = (lab == HAIR) & (xx > 380) & (xx < 420) & (yy > 260) & (yy < 380)
    assert (reg.s_blend[band] == HAIR).mean() > 0.9                  # inside the head: hair, not a hole
    beyond = (lab == HAIR) & (xx < 100) & (yy > 260) & (yy < 380)     # no new hair out there
    assert (reg.s_blend[beyond] == BACKGROUND).mean() > 0.9


def test_hair_sharpness_tells_a_blurred_photo_from_a_sharp_one():
    import cv2

    from triface_studio.pipeline.edit import SOFT_HAIR, hair_sharpness

    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[:512, :512]
    lab = np.zeros((512, 512), np.uint8)
    lab[:200] = HAIR
    strands = 170 + 25 * np.sin(xx * 0.9 + rng.normal(0, 0.5, (512, 512))) + rng.normal(0, 6, (512, 512))
    sharp = np.clip(np.stack([strands, strands * 0.9, strands * 0.6], -1), 0, 255).astype(np.uint8)
    blurred = cv2.GaussianBlur(sharp, (0, 0), 4.0)
    assert hair_sharpness(sharp, lab) > 3 * SOFT_HAIR
    assert hair_sharpness(blurred, lab) < SOFT_HAIR
    assert hair_sharpness(sharp, np.zeros_like(lab)) == float("inf")      # no hair: nothing to say


def test_pasted_hair_without_strands_takes_them_from_the_rest_and_keeps_its_colour():
    from triface_studio.core.fill import local_texture
    from triface_studio.pipeline.composite import regrain_flat_hair

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:128, :128]
    strands = 0.08 * np.sin(xx * 1.3 + 0.4 * rng.standard_normal((128, 128)).cumsum(0) * 0.1)
    img = np.clip(np.full((128, 128, 3), (0.6, 0.45, 0.3), np.float32) + strands[..., None], 0, 1).astype(np.float32)
    patch = (abs(yy - 64) < 20) & (abs(xx - 64) < 20)
    img[patch] = (0.9, 0.85, 0.8)                          # a blown-out patch: pale and flat
    hair = np.ones((128, 128), bool)
    hair[:, 120:] = False
    out = regrain_flat_hair(img, hair)
    tex = lambda im: local_texture(im[..., 0] * 100)       # noqa: E731
    core = (abs(yy - 64) < 14) & (abs(xx - 64) < 14)
    assert tex(out)[core].mean() > 0.5 * tex(img)[hair & ~patch].mean()     # strands now
    assert np.abs(out[core].mean(0) - img[core].mean(0)).max() < 0.06         # its light and colour kept
    assert np.allclose(out[:, 124:], img[:, 124:])                           # nothing beyond the hair
    plain = np.clip(np.full((128, 128, 3), 0.5, np.float32) + strands[..., None], 0, 1).astype(np.float32)
    assert np.allclose(regrain_flat_hair(plain, hair), plain)                 # hair with strands stays


def test_islands_of_new_hair_on_the_identity_s_neck_or_background_are_dropped():
    from triface_studio.core.semantics import BACKGROUND, NECK
    from triface_studio.pipeline.composite import drop_hair_fragments

    lab, yy, xx = _head_labels()
    lab[(yy > 440) & (abs(xx - 256) < 60)] = NECK
    s_blend = np.where(lab == HAIR, BACKGROUND, lab).astype(np.uint8)
    s_blend[(yy < 120) & (abs(xx - 256) < 150)] = HAIR                            # the new hairdo
    speck_bg = (abs(yy - 300) < 6) & (abs(xx - 490) < 6)                          # on the background
    speck_neck = (abs(yy - 470) < 5) & (abs(xx - 250) < 5)                        # on the neck
    s_blend[speck_bg | speck_neck] = HAIR
    lock = (abs(yy - 250) < 6) & (abs(xx - 125) < 6)                              # an island over old hair
    assert (lab[lock] == HAIR).all()
    s_blend[lock] = HAIR
    strip = (abs(yy - 300) < 60) & (xx < 12)                                      # the reference's crop edge
    s_blend[strip] = HAIR
    out = drop_hair_fragments(s_blend, lab)
    assert (out[speck_bg] == BACKGROUND).all() and (out[speck_neck] == NECK).all()
    assert (out[strip] == lab[strip]).all()
    away = np.roll(strip, 30, axis=1)                       # the same island off the frame's side stays
    assert (drop_hair_fragments(np.where(away, HAIR, np.where(strip, lab, s_blend)).astype(np.uint8),
                                lab)[away] == HAIR).all()
    assert (out[lock] == HAIR).all()                 # over the identity's own hair: the gap rules decide
    hairdo = (s_blend == HAIR) & ~speck_bg & ~speck_neck & ~strip
    assert (out[hairdo] == HAIR).all()


def test_clear_lenses_leave_the_reference_s_lids_and_lashes_behind():
    from triface_studio.pipeline.composite import glasses_layer

    img, lab, region, (yy, xx) = _glasses_scene(None)
    d = np.hypot(xx - 40, yy - 60)
    lashes = (d >= 5) & (d < 8)                     # dark lashes round the left eye ...
    img[lashes] = (0.15, 0.10, 0.08)
    bridge = (abs(yy - 60) < 1.5) & (xx > 44) & (xx < 57)     # ... joined to the rim by a dark line
    img[bridge] = (0.05, 0.05, 0.05)
    layer = glasses_layer(img, lab, region)
    assert layer.alpha[lashes].mean() < 0.1
    assert layer.alpha[(d >= 16.5) & (d < 19.5)].mean() > 0.8            # the frame still comes along


def test_glasses_the_parser_cannot_find_on_the_result_are_reported():
    from triface_studio.core.semantics import EYEGLASSES
    from triface_studio.pipeline.edit import unseen_glasses

    placed = np.zeros((128, 128), np.uint8)
    placed[50:70, 20:108] = EYEGLASSES
    found = placed.copy()
    notes = unseen_glasses(found, placed, {EYEGLASSES}, ["gh.jpg"])
    assert notes == []                                                  # seen: nothing to say
    faint = np.zeros_like(placed)
    faint[55:58, 20:60] = EYEGLASSES                                    # a few pixels of a thin rim
    notes = unseen_glasses(faint, placed, {EYEGLASSES}, ["gh.jpg"])
    assert len(notes) == 1 and "gh.jpg" in notes[0] and "hard to see" in notes[0] and "add mode" in notes[0]
    assert unseen_glasses(faint, placed, {HAIR}, ["gh.jpg"]) == []       # no glasses asked for


class _TwoAtATime(ReliefTier):
    """A relief tier that says it may lift on two threads, and records which thread lifted what
    and how many lifts ran at once."""

    concurrent_encode = True

    def __init__(self):
        super().__init__()
        self.lock, self.running, self.most, self.threads = threading.Lock(), 0, 0, []
        self.both = threading.Barrier(2, timeout=5)

    def encode(self, fa):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.threads.append(threading.current_thread().name)
            first_two = len(self.threads) <= 2
        try:
            if self.both is not None and first_two:
                self.both.wait()            # the second lift starts while the first runs
            return super().encode(fa)
        finally:
            with self.lock:
                self.running -= 1


def _encode_threads():
    return [t for t in threading.enumerate() if t.name.startswith("triface-encode")]


def test_photos_are_lifted_two_at_a_time_where_the_tier_allows_and_no_thread_outlives_the_edit(scene):
    import torch

    tier = _TwoAtATime()
    pipe = EditPipeline(tier=tier, analyzer=scene["an"])
    threads_before = torch.get_num_threads()
    res = pipe.run(EditRequest(identity=scene["ident"], references=[ReferenceSpec(scene["ref"], ("hair",))],
                               render_resolution=128))
    assert tier.most == 2 and all(n.startswith("triface-encode") for n in tier.threads[:2])
    assert tier.threads[2] == threading.current_thread().name      # the result's, after the edit
    assert not _encode_threads() and torch.get_num_threads() == threads_before
    # the same edit as one lifted photo after the other on the calling thread
    seq = run(scene, [ReferenceSpec(scene["ref"], ("hair",))])
    assert np.array_equal(res.composite, seq.composite)


def test_a_cancel_while_two_photos_are_lifted_stops_the_edit_and_leaves_no_thread(scene):
    import torch

    tier = _TwoAtATime()
    pipe = EditPipeline(tier=tier, analyzer=scene["an"])
    threads_before = torch.get_num_threads()
    cancel = threading.Event()

    def progress(stage, f):
        if stage == "encode" and 0 < f < 1:
            cancel.set()
    refs = [ReferenceSpec(scene["ref"], ("hair",)), ReferenceSpec(scene["bald"], ("nose",))]
    tier.both = None                # three photos: the third is dropped, not waited for
    with pytest.raises(Cancelled):
        pipe.run(EditRequest(identity=scene["ident"], references=refs, render_resolution=128),
                 progress=progress, cancel=cancel)
    assert not _encode_threads() and torch.get_num_threads() == threads_before
    assert len(tier.threads) <= 3


def test_a_tier_that_does_not_allow_it_lifts_on_the_calling_thread(scene):
    seen = []

    class OneAtATime(ReliefTier):
        def encode(self, fa):
            seen.append(threading.current_thread().name)
            return super().encode(fa)
    pipe = EditPipeline(tier=OneAtATime(), analyzer=scene["an"])
    pipe.run(EditRequest(identity=scene["ident"], references=[ReferenceSpec(scene["ref"], ("hair",))],
                         render_resolution=128))
    assert seen == [threading.current_thread().name] * 3        # identity, reference, result


def _face_with_lips(skin_rgb, lips_rgb, size=128):
    from triface_studio.core.semantics import L_LIP, U_LIP

    img = np.empty((size, size, 3), np.float32)
    img[:] = np.asarray(skin_rgb, np.float32) / 255
    lab = np.full((size, size), SKIN, np.uint8)
    yy, xx = np.mgrid[:size, :size]
    upper = ((xx - 64) / 28.0) ** 2 + ((yy - 80) / 6.0) ** 2 < 1
    lower = ((xx - 64) / 26.0) ** 2 + ((yy - 90) / 7.0) ** 2 < 1
    for m, cls in ((upper, U_LIP), (lower & ~upper, L_LIP)):
        img[m], lab[m] = np.asarray(lips_rgb, np.float32) / 255, cls
    return img, lab


@pytest.mark.parametrize("ref_lips, lighter", [((120, 80, 70), True), ((40, 20, 20), False)])
def test_lips_from_a_darker_face_are_not_lit_past_the_identity_s_skin(ref_lips, lighter):
    """Lips lighter than the dark skin around them, moved by the skin's lightness ratio onto a
    fair face, came out lighter than that face's skin (a pale, glowing mouth): they take the
    identity's own lips' lightness against its skin instead.  Lips darker than their skin (dark
    lipstick) keep the plain ratio: they stay dark."""
    from triface_studio.core import colour
    from triface_studio.core.semantics import L_LIP, U_LIP
    from triface_studio.pipeline.composite import ReferenceLayer, relight_parts

    ref, lab_ref = _face_with_lips((80, 50, 35), ref_lips)              # a dark face
    ident, lab_id = _face_with_lips((235, 200, 180), (190, 110, 110))   # a fair face, darker lips
    lips = np.isin(lab_id, (U_LIP, L_LIP))
    pasted = ident.copy()
    pasted[lips] = ref[np.isin(lab_ref, (U_LIP, L_LIP))][: lips.sum()]
    layer = ReferenceLayer(crop=ref, labels=lab_ref, classes=frozenset({U_LIP, L_LIP}))
    out, relit = relight_parts(pasted, lips.astype(np.float32), ident, lab_id, [layer], lab_id, (U_LIP, L_LIP))
    assert relit[lips].all()
    L = lambda img, m: float(np.median(colour.to_lab(img)[..., 0][m]))      # noqa: E731
    skin_id, lips_id = L(ident, lab_id == SKIN), L(ident, lips)
    if lighter:
        assert L(ref, np.isin(lab_ref, (U_LIP, L_LIP))) > L(ref, lab_ref == SKIN)   # the case
        assert L(out, lips) < skin_id - 5 and abs(L(out, lips) - lips_id) < 3
    else:                       # dark lipstick stays much darker than the identity's own lips
        assert L(out, lips) < lips_id - 15


def test_a_moved_part_replaces_the_blend_s_and_the_rest_of_the_old_one_becomes_skin():
    from types import SimpleNamespace

    from triface_studio.core.semantics import L_EYE, L_LIP, MOUTH, R_EYE, U_LIP
    from triface_studio.pipeline.edit import MOVED_PARTS, landmark_similarity, put_part

    MOUTH_POINTS = MOVED_PARTS[0][1]

    size = 64
    labels_id = np.full((size, size), SKIN, np.uint8)
    labels_id[30:40, 10:54] = L_LIP                       # the identity's wide open mouth
    labels_id[30:33, 10:54] = MOUTH
    s_blend = labels_id.copy()
    s_blend[30:40, 10:54] = SKIN
    s_blend[44:48, 20:44] = U_LIP                          # where the tri-plane put the reference's
    labels = np.full((size, size), SKIN, np.uint8)         # the reference's mouth, moved onto it
    labels[31:38, 14:50] = L_LIP
    crop = np.full((size, size, 3), 0.3, np.float32)
    render = np.full((size, size, 3), 0.8, np.float32)
    from_ref = np.zeros((size, size), np.float32)
    from_ref[44:48, 20:44] = 1.0
    s, r, f = put_part(s_blend, render, from_ref, labels_id, crop, labels, {MOUTH, U_LIP, L_LIP})
    new = labels == L_LIP
    assert (s[new] == L_LIP).all() and np.allclose(r[new], 0.3) and (f[new] == 1).all()
    # the old mouth it does not cover, and the tri-plane's misplaced one, are skin taken from no reference
    gone = ((labels_id != SKIN) | (s_blend != SKIN)) & ~new
    assert (s[gone] == SKIN).all() and (f[gone] == 0).all()
    # there and round the new part the render is the moved crop (what the part's soft edge shows)
    near = cv2.dilate(new.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    assert np.allclose(r[gone | near], 0.3)
    # elsewhere nothing changes
    rest = ~(gone | new)
    assert (s[rest] == s_blend[rest]).all() and np.allclose(r[rest & ~near], 0.8)
    # a moved mouth of too few pixels changes nothing
    tiny = np.full_like(labels, SKIN)
    tiny[31, 20:22] = L_LIP
    s2, r2, f2 = put_part(s_blend, render, from_ref, labels_id, crop, tiny, {MOUTH, U_LIP, L_LIP})
    assert s2 is s_blend and r2 is render and f2 is from_ref
    # the similarity takes the reference's mouth points onto the identity's
    pts = np.zeros((478, 3), np.float32)
    pts[list(MOUTH_POINTS), :2] = np.random.default_rng(0).uniform(100, 200, (len(MOUTH_POINTS), 2))
    moved = pts.copy()
    moved[:, :2] = pts[:, :2] * 1.2 + (15, -8)
    m = landmark_similarity(SimpleNamespace(crop_landmarks=pts), SimpleNamespace(crop_landmarks=moved), MOUTH_POINTS)
    assert np.allclose(m, [[1.2, 0, 15], [0, 1.2, -8]], atol=1e-3)
    assert landmark_similarity(SimpleNamespace(), SimpleNamespace(crop_landmarks=moved), MOUTH_POINTS) is None
    # an eye is kept to its half of the face: the other eye, of the other class, stays as it was
    eyes_id = np.full((size, size), SKIN, np.uint8)
    eyes_id[20:26, 8:24], eyes_id[20:26, 40:56] = R_EYE, L_EYE
    moved_eye = np.full((size, size), SKIN, np.uint8)
    moved_eye[19:27, 10:26] = L_EYE                 # the reference's eye, of either class
    moved_eye[19:27, 40:50] = R_EYE                 # (its other eye, moved by the wrong points)
    s3, r3, _ = put_part(eyes_id, render, from_ref, eyes_id, crop, moved_eye, {L_EYE, R_EYE}, ("left", 32))
    assert (s3[19:27, 10:26] == L_EYE).all() and (s3[20:26, 8:10] == SKIN).all()
    assert (s3[:, 32:] == eyes_id[:, 32:]).all() and np.allclose(r3[:, 32:], 0.8)


@pytest.mark.parametrize("upper_rgb, hidden", [((30, 25, 22), True),       # a dark moustache over it
                                               ((90, 20, 40), False),      # dark red lipstick
                                               ((170, 95, 90), False)])    # a plain lip
def test_a_lip_under_a_moustache_is_hidden_and_dark_lipstick_is_not(upper_rgb, hidden):
    """A reference lip far darker than its skin and no redder is facial hair or a shadow over
    it: pasted, it read as a dark moustache on the identity.  Dark lipstick is as dark but red."""
    from triface_studio.core.semantics import L_LIP, MOUTH, U_LIP
    from triface_studio.pipeline.composite import hidden_lips

    img, lab = _face_with_lips((150, 100, 80), (170, 95, 90))
    img[lab == U_LIP] = np.asarray(upper_rgb, np.float32) / 255
    got = hidden_lips(img, lab, {MOUTH, U_LIP, L_LIP})
    assert got == (frozenset({U_LIP}) if hidden else frozenset())
    assert hidden_lips(img, lab, {MOUTH}) == frozenset()            # only the lips asked for are looked at


def _mouth_landmarks(gap: float, width: float = 40.0) -> np.ndarray:
    pts = np.zeros((478, 3), np.float32)
    pts[78, :2], pts[308, :2] = (64 - width / 2, 85), (64 + width / 2, 85)
    pts[13, :2], pts[14, :2] = (64, 85 - gap / 2), (64, 85 + gap / 2)
    return pts


def test_a_shut_reference_mouth_recolours_the_identity_s_open_one():
    """A shut mouth moved onto an open smile left a band of skin where the teeth were; a lip
    under a moustache came along as one.  Then the identity keeps its own mouth (teeth, lips'
    shape) with its lips in the reference's colour; a mouth as open as the identity's, or more,
    is still moved."""
    from types import SimpleNamespace

    from triface_studio.core import colour
    from triface_studio.core.semantics import L_LIP, MOUTH, U_LIP
    from triface_studio.pipeline.edit import mouth_opening

    ident, lab_id = _face_with_lips((235, 200, 180), (200, 120, 120))
    lab_id[84:87, 44:84] = MOUTH                                      # its teeth
    ident[lab_id == MOUTH] = 0.95
    ref, lab_ref = _face_with_lips((150, 100, 80), (120, 40, 50))
    ident, ref = (np.round(x * 255).astype(np.uint8) for x in (ident, ref))       # crops are uint8
    fa_id = SimpleNamespace(crop=ident, labels=lab_id, crop_landmarks=_mouth_landmarks(10))
    shut = SimpleNamespace(crop=ref, labels=lab_ref, crop_landmarks=_mouth_landmarks(1))
    assert mouth_opening(fa_id) == pytest.approx(0.25) and mouth_opening(SimpleNamespace()) == 0.0
    pipe = EditPipeline(tier=ReliefTier(), analyzer=AlignedAnalyzer())
    spec = ReferenceSpec(ref, ("lips",))
    assert pipe._recolour_mouth(spec, shut, fa_id)
    crop, labels, classes, side = pipe._recoloured_mouth(spec, shut, fa_id)
    assert side is None and classes == {MOUTH, U_LIP, L_LIP} and (labels == lab_id).all()
    assert np.allclose(crop[lab_id == MOUTH], 242 / 255, atol=5e-3)     # its own teeth
    lips = np.isin(lab_id, (U_LIP, L_LIP))
    def a(img, m):                                                    # mean CIELAB colour under m
        return colour.to_lab(np.asarray(img, np.float32) / (255 if img.dtype == np.uint8 else 1))[m].mean(0)
    assert np.abs(a(crop, lips) - a(ref, np.isin(lab_ref, (U_LIP, L_LIP)))).max() < 2   # the reference's lips' colour
    rest = ~lips & (lab_id != MOUTH)
    assert np.allclose(crop[rest], ident[rest] / 255, atol=5e-3)     # (a CIELAB round trip)
    wide = SimpleNamespace(crop=ref, labels=lab_ref, crop_landmarks=_mouth_landmarks(12))
    assert not pipe._recolour_mouth(spec, wide, fa_id)
    # a lip under a moustache: recoloured, from the lip the reference shows
    ref[lab_ref == U_LIP] = (30, 25, 22)
    assert pipe._hidden_lips(spec, wide) == {U_LIP} and pipe._recolour_mouth(spec, wide, fa_id)
    crop, *_ = pipe._recoloured_mouth(spec, wide, fa_id)
    assert np.abs(a(crop, lips) - a(ref, lab_ref == L_LIP)).max() < 2


def test_the_removed_hair_s_faint_fringe_goes_with_it():
    """Strands at the old hair's edge that the parser calls background, too faint to be grown
    into the hair by colour, stayed as a grey outline of the old hair on the new background."""
    ident, lab_id = portrait(BLACK, 120)
    ref, lab_ref = portrait(BLONDE, 60)                    # shorter: the old hair's tips become background
    yy, xx = np.mgrid[:512, :512]
    hair = lab_id == HAIR
    ring = (cv2.dilate(hair.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0) & ~hair & (lab_id == 0)
    ring &= (yy > 270) & (yy < 315)                        # beside the old hair's tips, below the new hair
    ident = ident.copy()
    ident[ring] = (ident[ring].astype(np.float32) * 0.5 + np.float32(BLACK) * 0.5).astype(np.uint8)   # faint strands
    an = AlignedAnalyzer()
    an.add(ident, lab_id)
    an.add(ref, lab_ref)
    res = EditPipeline(tier=ReliefTier(), analyzer=an).run(
        EditRequest(identity=ident, references=[ReferenceSpec(ref, ("hair",))], render_resolution=128))
    out = res.composite.astype(np.float32)
    clean, _ = portrait(BLACK, -400)                        # the same background without any hair
    bg = clean.astype(np.float32)
    tips = ring & (np.abs(xx - 256) > 150)                 # beside the face, away from the new hair
    assert tips.sum() > 50
    assert np.abs(out[tips] - bg[tips]).mean() < 12        # background, not a grey outline
    assert np.abs(ident[tips].astype(np.float32) - bg[tips]).mean() > 30    # (what it was)


def test_hair_cut_by_its_reference_s_crop_near_the_frame_bottom_goes_on_to_it():
    """New hair that ended in a straight line where its reference's crop ended, a little short
    of the identity's frame bottom, left a strip of old hair or background below it: it goes on
    to the frame, the rows above its end reflected (drawn here upside down).  A round outline
    that the reference shows whole stays as it is, nothing is continued over the face, and at
    the top nothing is continued."""
    from triface_studio.pipeline.composite import reach_frame

    H = W = 128
    yy, xx = np.mgrid[:H, :W]
    colour = np.zeros((H, W, 3), np.float32)
    colour[..., 0] = yy / H                                   # the hair's rows tell apart
    s_out = np.zeros((H, W), np.uint8)
    s_out[20:] = HAIR                                         # cut straight at row 20 ...
    alpha = (s_out == HAIR).astype(np.float32)
    taken = s_out == HAIR
    ends = np.zeros((H, W), np.float32)
    ends[:40] = 1.0                                           # ... where its reference's crop ended
    labels = np.zeros((H, W), np.uint8)
    labels[100:, 40:90] = SKIN                                # a face below it
    s_out[labels == SKIN] = SKIN
    fl = lambda *xs: [np.ascontiguousarray(x[::-1]) for x in xs]      # noqa: E731 - the bottom edge
    c, a, s, t, cont = fl(*reach_frame(*fl(colour, alpha, s_out, taken, ends, labels)))
    assert (s[:20] == HAIR).all() and (a[:20] > 0.5).all() and t[:20].all()
    edge = 20 + 3                                              # reflected a few rows inside the hair
    assert np.allclose(c[5, :, 0], (2 * edge - 5) / H)
    assert cont[:20].all()                                    # (not faded out there)
    assert (s[100:, 40:90] == SKIN).all()                     # the face is not covered
    # a round top the reference showed whole (no crop end there) stays
    top = 20 + ((xx - 64) / 64.0) ** 2 * 18
    round_s = np.where(yy >= top, HAIR, 0).astype(np.uint8)
    c2, a2, s2, _, _ = fl(*reach_frame(*fl(colour, (round_s == HAIR).astype(np.float32), round_s, round_s == HAIR,
                                           np.zeros((H, W), np.float32), labels)))
    assert (s2 == round_s).all() and np.allclose(c2, colour)
    # too far from the frame: stays
    far = np.zeros((H, W), np.uint8)
    far[60:] = HAIR
    _, _, s3, _, _ = fl(*reach_frame(*fl(colour, (far == HAIR).astype(np.float32), far, far == HAIR, ends, labels)))
    assert (s3[:60] == 0).all()
    # at the top it does not: a head's outline is round there
    _, _, s4, _, _ = reach_frame(colour, alpha, s_out, taken, ends, labels)
    assert (s4[:20] == 0).all()


def test_hair_cut_straight_just_below_the_frame_top_goes_on_to_it_with_round_corners():
    """At the top only a cut straight across, a few px short of the frame (the reference's crop
    ended there), goes on to the frame; its ends reach it over a taper, not as a block with
    straight sides; a cut further down, or a round crown, stays."""
    from triface_studio.pipeline.composite import TOP_REACH_PX, TOP_TAPER_PX, reach_frame

    H = W = 160
    yy, xx = np.mgrid[:H, :W]
    colour = np.zeros((H, W, 3), np.float32)
    colour[..., 0] = yy / H
    labels = np.zeros((H, W), np.uint8)
    none = np.zeros((H, W), np.float32)

    def run(s_out):
        return reach_frame(colour, (s_out == HAIR).astype(np.float32), s_out, s_out == HAIR, none, labels,
                           None, TOP_REACH_PX, "top", TOP_TAPER_PX)

    s_out = np.zeros((H, W), np.uint8)
    s_out[12:, 20:140] = HAIR                                 # cut straight 12 px below the top
    c, a, s, t, cont = run(s_out)
    assert (s[:12, 60:100] == HAIR).all() and (a[:12, 60:100] > 0.5).all()
    assert np.allclose(c[2, 60:100, 0], (2 * (12 + 3) - 2) / H)           # reflected, as at the bottom
    assert (s[:12, 20:24] != HAIR).any()                      # its ends: a round corner ...
    assert (s[:6, 20:24] != HAIR).all() and (s[:12, :20] != HAIR).all()   # ... and nothing beside it
    assert cont[:12, 60:100].all()
    low = np.zeros((H, W), np.uint8)
    low[40:, 20:140] = HAIR                                   # too far from the frame
    assert (run(low)[2] == low).all()
    crown = np.where(yy >= 12 + ((xx - 80) / 60.0) ** 2 * 30, HAIR, 0).astype(np.uint8)
    crown[:, :20] = crown[:, 140:] = 0
    assert (run(crown)[2] == crown).all()                      # a round crown stays as it is


def test_eyes_seen_only_through_the_reference_s_glasses_are_not_taken(scene):
    """Eyes (and brows under the rim) moved from behind a reference's glasses brought the lens's
    tint and pieces of the rim along: the identity keeps its own, with a note; when nothing
    asked for is left, a clear error."""
    from triface_studio.core.semantics import EYEGLASSES as G
    from triface_studio.core.semantics import L_BROW, L_EYE, R_BROW, R_EYE
    from triface_studio.pipeline.composite import behind_glasses

    lab = np.zeros((128, 128), np.uint8)
    lab[30:60, 20:60] = G                    # a frame round the left eye (its lens is not glasses)
    lab[34:56, 24:56] = 0
    lab[40:48, 30:50] = L_EYE
    lab[40:48, 80:100] = R_EYE               # the other eye, bare
    lab[27:30, 25:55] = L_BROW               # on the rim
    lab[20:24, 80:100] = R_BROW              # well above any glasses
    assert behind_glasses(lab, {L_EYE, R_EYE, L_BROW, R_BROW}) == {L_EYE, L_BROW}
    assert behind_glasses(lab, {R_EYE, R_BROW}) == frozenset()
    assert behind_glasses(np.where(lab == G, 0, lab), {L_EYE, L_BROW}) == frozenset()    # no glasses
    # in the pipeline: the scene's reference wears glasses over its eyes
    yy, xx = np.mgrid[:512, :512]
    ref, lab_ref = scene["ref"].copy(), scene["lab_ref"].copy()
    for cx, cls in ((206, L_EYE), (306, R_EYE)):
        eye = (abs(yy - 260) < 5) & (abs(xx - cx) < 14)
        lab_ref[eye], ref[eye] = cls, (250, 250, 250)
    scene["an"].add(ref, lab_ref)
    with pytest.raises(EditError, match="only through its eyeglasses"):
        run(scene, [ReferenceSpec(ref, ("eyes",))])
    res = run(scene, [ReferenceSpec(ref, ("eyes", "hair"))])
    assert any("only through its eyeglasses" in n for n in res.notes)
    eyes_id = (abs(yy - 260) < 5) & (abs(np.abs(xx - 256) - 50) < 14)
    assert np.abs(res.composite[eyes_id].astype(int) - scene["ident"][eyes_id].astype(int)).mean() < 20


def test_glasses_from_a_turned_reference_are_mirrored_onto_a_frontal_face_and_a_too_turned_one_is_turned_in_3d(monkeypatch):
    from types import SimpleNamespace

    import triface_studio.pipeline.edit as edit_mod

    # the reference's pair, already on the identity's eyes (the similarity is the identity
    # here): the near lens reaches 60 px from the midline at column 256, the far one 25
    crop = np.full((512, 512, 3), 200, np.uint8)
    labels = np.full((512, 512), SKIN, np.uint8)
    labels[220:260, 196:256] = EYEGLASSES
    labels[228:252, 256:281] = EYEGLASSES
    crop[labels == EYEGLASSES] = 20
    monkeypatch.setattr(edit_mod, "eye_similarity", lambda fa, fa_id: np.eye(2, 3))
    landmarks = np.zeros((478, 2), np.float32)
    landmarks[edit_mod.MIDLINE_POINT] = (256.0, 240.0)
    identity = SimpleNamespace(crop_landmarks=landmarks, pose=(3.0, 0.0, 0.0))
    # the reference's face, turned: its left half (the near one) reaches further from the midline
    turned = landmarks.copy()
    for (outer, temple), reach in zip(edit_mod.GLASSES_HALVES, (-60.0, 25.0)):
        turned[outer], turned[temple] = (256 + reach, 240), (256 + 1.3 * reach, 236)
    pipe = EditPipeline(tier=ReliefTier(), analyzer=AlignedAnalyzer())
    spec = ReferenceSpec(crop, ("eyeglasses",))

    def glasses(yaw):
        notes = []
        ref = SimpleNamespace(crop=crop, labels=labels, pose=(yaw, 0.0, 0.0), name="ref.png",
                              crop_landmarks=turned if abs(yaw) > 10 else landmarks)
        out = pipe._glasses_render(spec, ref, None, None, 512, notes, identity)
        return (out["render_labels"] == EYEGLASSES), notes

    mirrored, notes = glasses(25.0)
    assert mirrored[220:260, 257:316].all() and any("mirrored" in n for n in notes)
    as_seen, notes = glasses(3.0)                          # a frontal reference's pair is its own
    assert (as_seen == (labels == EYEGLASSES)).all() and not notes
    # far from the side onto a frontal face: the tri-plane's render (here the pair as seen), its
    # nearer half mirrored
    monkeypatch.setattr(pipe, "_rendered_glasses", lambda t_ref, cam, rr, user: {
        "render": crop.astype(np.float32) / 255, "render_labels": labels.copy(), "user_region": user})
    turned_3d, notes = glasses(-40.0)
    assert turned_3d[220:260, 257:316].all() and any("turned to the front in 3D" in n for n in notes)
    # onto a turned face: moved as it is, with a note
    identity.pose = (20.0, 0.0, 0.0)
    too_turned, notes = glasses(-40.0)
    assert (too_turned == (labels == EYEGLASSES)).all()
    assert any("turned 40 degrees" in n and "lopsided" in n for n in notes)


def test_glasses_are_foreshortened_half_by_half_onto_a_turned_face():
    from types import SimpleNamespace

    from triface_studio.pipeline.edit import GLASSES_HALVES, MIDLINE_POINT, half_affines, warp_halves

    ref_lm = np.zeros((478, 2), np.float64)
    ref_lm[MIDLINE_POINT] = (256, 240)
    for (outer, temple), side in zip(GLASSES_HALVES, (-1, 1)):
        ref_lm[outer], ref_lm[temple] = (256 + side * 70, 240), (256 + side * 110, 235)
    id_lm = ref_lm.copy()
    far = list(GLASSES_HALVES[1])
    id_lm[far, 0] = 256 + 0.6 * (ref_lm[far, 0] - 256)          # the far half, turned away
    left, right, mid = half_affines(SimpleNamespace(crop_landmarks=ref_lm), SimpleNamespace(crop_landmarks=id_lm),
                                    np.eye(2, 3))
    assert mid == 256 and np.allclose(left, np.eye(2, 3))
    assert np.allclose(right[:, :2], [[0.6, 0], [0, 1]]) and np.isclose(right @ [256, 0, 1], [256, 0]).all()
    # a lens 60 px wide on the far side comes out 36 px wide; the near one as it was
    lab = np.zeros((512, 512), np.uint8)
    lab[230:250, 266:326] = EYEGLASSES
    lab[230:250, 186:246] = EYEGLASSES
    out = warp_halves(lab, left, right, mid, flags=cv2.INTER_NEAREST) == EYEGLASSES
    assert abs(int(out[240, 256:].sum()) - 36) <= 2 and int(out[240, :256].sum()) == 60


def test_pasted_hair_s_outline_is_rounded_against_the_background_but_not_against_the_face():
    from types import SimpleNamespace

    from triface_studio.pipeline.composite import hair_outline

    s = np.zeros((96, 96), np.uint8)
    for y in range(96):
        s[y, 8 + 8 * ((y // 12) % 2):] = HAIR                 # a staircase against the background
    s[:, 70:] = SKIN                                          # and the face on the other side
    alpha = (s == HAIR).astype(np.float32)
    out, rim = hair_outline(alpha, s, SimpleNamespace(m_bg=(s == 0).astype(np.float32)))
    assert rim[:, 8].any() and not rim[:, 75].any()           # the background beyond, not the face
    soft = (out > 0.05) & (out < 0.95)
    assert soft[:, :30].sum() > 96                            # a soft edge along the steps
    assert np.array_equal(out[:, 50:], alpha[:, 50:])          # hair meeting the face keeps its edge
    assert out[:, 35:70].min() == 1.0


def test_old_hair_between_the_crown_and_a_low_hairline_is_the_head_s_not_background():
    """The crown is estimated from the brows; where the identity's own hairline lies lower, the
    band between the two was called background: a flat strip of backdrop across the forehead."""
    from triface_studio.core.semantics import L_BROW, L_EYE, NOSE, R_BROW, R_EYE
    from triface_studio.pipeline.composite import regions, scalp

    yy, xx = np.mgrid[:512, :512]
    lab = np.zeros((512, 512), np.uint8)
    lab[((xx - 256) / 150.0) ** 2 + ((yy - 250) / 230.0) ** 2 < 1] = HAIR
    lab[((xx - 256) / 110.0) ** 2 + ((yy - 320) / 165.0) ** 2 < 1] = SKIN      # hairline at y ~155
    lab[(np.abs(yy - 232) < 5) & (np.abs(xx - 206) < 30)] = L_BROW
    lab[(np.abs(yy - 232) < 5) & (np.abs(xx - 306) < 30)] = R_BROW
    lab[(np.abs(yy - 262) < 6) & (np.abs(xx - 206) < 20)] = L_EYE
    lab[(np.abs(yy - 262) < 6) & (np.abs(xx - 306) < 20)] = R_EYE
    lab[(yy > 250) & (yy < 335) & (np.abs(xx - 256) < 15)] = NOSE
    crown = scalp(lab)
    rows = np.nonzero(crown[:, 256])[0]
    band = slice(rows.max() + 2, 153)                   # below the crown, above the skin
    assert band.stop - band.start >= 4 and (lab[band, 256] == HAIR).all()
    s_blend = np.where(lab == HAIR, SKIN, lab).astype(np.uint8)       # the new head shows no hair there
    reg = regions(lab, s_blend, [HAIR])
    assert (reg.gap_scalp[band, 256] > 0.5).all()       # new hair, not a strip of backdrop
    assert (reg.gap_bg[band, 256] < 0.5).all() and (reg.s_blend[band, 256] == HAIR).all()


def test_a_tall_scalp_gap_beside_a_thin_band_of_new_hair_gets_strands_everywhere():
    """A short haircut's new hair is a thin band; the old hair's place below it, on the scalp,
    is filled with its strands all over, not a few bands of strands with smooth hair between."""
    from triface_studio.core.fill import local_texture
    from triface_studio.pipeline.composite import Regions, fill

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:512, :512]
    lab = np.full((512, 512), SKIN, np.uint8)
    band = (yy >= 40) & (yy < 46) & (abs(xx - 256) < 100)              # the new hair: 6 rows
    gap = (yy >= 50) & (yy < 190) & (abs(xx - 256) < 100)              # the old hair's place
    lab[band | gap] = HAIR
    img = np.full((512, 512, 3), 0.5, np.float32)
    img[band] += rng.normal(0, 0.08, (band.sum(), 1)).astype(np.float32)   # strands
    img = np.clip(img, 0, 1)
    s_blend = lab.copy()
    alpha = band.astype(np.float32)
    z = np.zeros((512, 512), np.float32)
    reg = Regions(m_k=alpha, m_k_id=(band | gap).astype(np.float32), m_bg=z, bg_id=z, gap_face=z,
                  gap_scalp=gap.astype(np.float32), gap_bg=z, s_blend=s_blend)
    out = fill(img, img, lab, reg, alpha, [])
    tex = local_texture(out[..., 0] * 100, 2)
    source = float(np.median(local_texture(img[..., 0] * 100, 2)[band & (yy >= 42) & (yy < 44)]))
    inner = gap & (yy >= 60) & (yy < 180) & (abs(xx - 256) < 90)
    # every 10-row stripe of the gap has strands over nearly all of its width
    for top in range(60, 180, 10):
        stripe = inner & (yy >= top) & (yy < top + 10)
        assert (tex[stripe] > 0.3 * source).mean() > 0.9, top


def test_the_re_encode_takes_the_edit_s_debris_apart_from_the_head_for_background():
    from triface_studio.core.semantics import BACKGROUND
    from triface_studio.pipeline.edit import without_debris

    lab = np.full((512, 512), BACKGROUND, np.uint8)
    lab[100:400, 150:350] = SKIN
    lab[60:100, 150:350] = HAIR
    lab[450:460, 20:30] = HAIR                       # a fragment of old hair by the shoulder
    out = without_debris(lab)
    assert (out[450:460, 20:30] == BACKGROUND).all()
    assert np.array_equal(out[:440], lab[:440])      # the head as it was


def test_glasses_from_a_reference_seen_far_from_the_side_are_turned_in_3d_onto_a_frontal_face():
    from triface_studio.pipeline.edit import FRONTAL_YAW, SIDE_YAW, TURNED_YAW, glasses_route

    assert glasses_route(SIDE_YAW + 1, 3.0) == "turned in 3D"
    assert glasses_route(-(SIDE_YAW + 7), -3.0) == "turned in 3D"
    assert glasses_route(SIDE_YAW + 1, FRONTAL_YAW + 5) == "side"       # onto a turned face: as it is, with a note
    assert glasses_route(TURNED_YAW + 10, 2.0) == "mirrored"
    assert glasses_route(TURNED_YAW + 10, FRONTAL_YAW + 5) == "moved"
    assert glasses_route(TURNED_YAW - 1, 20.0) == "halves"
