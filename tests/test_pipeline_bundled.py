"""The whole edit with the shipped models (face analysis, parser, bundled tier) on real held-out
photos of the shared data set: black -> blonde hair, bad input, and the 3D result."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from triface_studio.core.semantics import HAIR, SKIN
from triface_studio.pipeline import EditError, EditPipeline, EditRequest, ReferenceSpec

BLACK_HAIR = "12a94418a3b34478a1d6291d46c1fcbc"
BLONDE_HAIR = "0b340e12b727482c83a0068cc5468bdf"


def _photo(shared_data, name):
    return np.asarray(Image.open(shared_data / "images" / f"{name}.jpg").convert("RGB"))


@pytest.fixture(scope="module")
def pipe():
    return EditPipeline("bundled")


@pytest.fixture(scope="module")
def hair_edit(shared_data, pipe):
    ident, ref = _photo(shared_data, BLACK_HAIR), _photo(shared_data, BLONDE_HAIR)
    res = pipe.run(EditRequest(identity=ident, references=[ReferenceSpec(ref, ("hair",), name="blonde.jpg")],
                               render_resolution=128))
    return ident, res


def test_black_to_blonde_hair_changes_the_hair_and_keeps_the_rest(pipe, hair_edit):
    ident, res = hair_edit
    crop_id = res.identity.crop.astype(np.float32)
    out = res.composite.astype(np.float32)
    assert out.shape == crop_id.shape == (512, 512, 3)
    # the hair of the result, as the parser sees it, is blonde: much lighter than the identity's
    lab_out = pipe.analyzer.parse(res.composite)
    lab_id = np.asarray(res.identity.labels)
    luma = lambda img, m: float((img[m] @ np.array([0.299, 0.587, 0.114])).mean())  # noqa: E731
    assert (lab_out == HAIR).mean() > 0.1
    assert luma(out, lab_out == HAIR) > luma(crop_id, lab_id == HAIR) + 50
    # away from the edit (region, refinement and changed background) the crop is untouched
    untouched = (res.edit_region < 0.5) & (res.sde_mask < 0.01)
    assert untouched.mean() > 0.2
    assert np.abs(out - crop_id)[untouched].mean() < 2.0
    # the face the identity had stays hers: skin both before and after, barely changed
    face = (lab_id == SKIN) & (lab_out == SKIN) & untouched
    assert face.sum() > 5000 and np.abs(out - crop_id)[face].mean() < 2.0
    # removed hair becomes skin only on the bare head; beside it, new hair or background
    from triface_studio.pipeline.composite import bare_head

    assert not ((res.gap_mask > 0.5) & (res.s_blend == SKIN))[~bare_head(lab_id)].any()
    # the full-size photo gets the crop pasted back at the face
    assert res.composite_full.shape == ident.shape
    for stage in ("analyze", "encode", "align", "blend", "render", "composite", "refine", "final", "reencode"):
        assert res.timings[stage] >= 0


def test_the_edit_builds_no_surface_mesh_for_the_tri_planes_it_renders_once(shared_data, pipe):
    """The rasterised surface (~0.4 s per tri-plane) is for orbit views; the edit's own renders of
    the identity, the references and T^blend use the decoder's march (``mesh_bounds=False``)."""
    ident, ref = _photo(shared_data, BLACK_HAIR), _photo(shared_data, BLONDE_HAIR)
    tier = pipe.tier
    built = []
    real = tier.surface
    tier.surface = lambda asset: built.append(asset) or real(asset)
    try:
        pipe.run(EditRequest(identity=ident, references=[ReferenceSpec(ref, ("hair",), name="blonde.jpg")],
                             render_resolution=96, seed=1))
        assert built == []
        pipe.render_view(pipe.tier.encode(pipe.analyze(ident)), 30, 0, 64)
        assert len(built) >= 1                        # an orbit view still uses the surface
    finally:
        del tier.surface


def test_edited_head_turns_in_3d(pipe, hair_edit):
    _, res = hair_edit
    views = [pipe.render_view(res.t_com, yaw, pitch, 96) for yaw, pitch in ((0, 0), (30, 0), (-30, 10))]
    for rgb, labels in views:
        assert rgb.shape == (96, 96, 3) and labels.shape == (96, 96)
        assert (labels == HAIR).mean() > 0.05 and (labels == SKIN).mean() > 0.05
    # turning moves the face: the three views differ
    assert np.abs(views[0][0].astype(int) - views[1][0]).mean() > 5
    assert np.abs(views[1][0].astype(int) - views[2][0]).mean() > 5


def test_a_photo_without_a_face_is_a_clear_error(shared_data, pipe):
    ident = _photo(shared_data, BLACK_HAIR)
    sky = np.full((300, 400, 3), (120, 170, 230), np.uint8)
    with pytest.raises(EditError, match="no face"):
        pipe.run(EditRequest(identity=ident, references=[ReferenceSpec(sky, ("hair",), name="sky.png")]))
