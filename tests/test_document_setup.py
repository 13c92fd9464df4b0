"""The Qt-free document: brush strokes as undo-able box diffs, the edit setup (changes, dirty,
out-of-date result, the request), its files (.triface zip or folder, version 1, edit.json) and autosave."""

import json
import zipfile

import numpy as np
import pytest
import torch

from triface_studio.core.asset import TriPlaneAsset
from triface_studio.document import (Autosave, EditSetup, ReferenceSetup, SavedResult, SetupError, empty_mask,
                                     load_mask_png, paint_stroke, save_mask_png)


def test_stroke_is_a_box_diff_that_undoes_and_redoes():
    m = empty_mask()
    edit = paint_stroke(m, [(50, 60), (200, 60)], radius=10, hardness=1.0)
    y0, y1, x0, x1 = edit.box
    assert (y0, x0) == (50, 40) and y1 == 71 and x1 == 211     # the stroke's extent only
    assert edit.before.shape == (y1 - y0, x1 - x0)
    assert m[60, 125] == 1.0 and m[60, 30] == 0.0 and m[100, 100] == 0.0
    painted = m.copy()
    edit.undo(m)
    assert not m.any()
    edit.redo(m)
    np.testing.assert_array_equal(m, painted)
    # interpolation: no gaps along a long, fast stroke
    assert (m[60, 40:211] > 0).all()


def test_erase_and_soft_edges():
    m = np.ones((512, 512), np.float32)
    paint_stroke(m, [(100, 100)], radius=20, hardness=0.0, erase=True)
    assert m[100, 100] == 0.0 and 0.0 < m[100, 112] < 1.0 and m[100, 125] == 1.0
    assert paint_stroke(m, [(-100, -100)], radius=5) is None       # off the crop: no undo step


def _setup(root):
    (root / "photos").mkdir(parents=True, exist_ok=True)
    for n in ("id.jpg", "ref.png", "r2.png"):
        (root / "photos" / n).write_bytes(b"")
    s = EditSetup(str(root / "photos" / "id.jpg"))
    s.identity_mask = empty_mask()
    s.identity_mask[10:20, 30:40] = 1.0
    ref_mask = empty_mask()
    ref_mask[100:200, 100:300] = 0.5
    s.references = [ReferenceSetup(str(root / "photos" / "ref.png"), ["hair", "eyes"], ref_mask, "replace"),
                    ReferenceSetup(str(root / "photos" / "r2.png"), ["nose"])]
    s.update(background=(10, 20, 30), seed=7, refine={"refiner": "sdedit", "score_model": str(root / "score"),
                                                      "steps": 4})
    s.set_view(12.5, -3.0)
    return s


def test_setup_round_trip_zip_and_folder(tmp_path):
    s = _setup(tmp_path)
    p = s.save(tmp_path / "sessions" / "a.triface")
    with zipfile.ZipFile(p) as z:
        assert sorted(z.namelist()) == ["identity_mask.png", "reference_0_mask.png", "session.json"]
        doc = json.loads(z.read("session.json"))
    # photo paths relative to the session's folder; the request object is edit.json's
    assert doc["request"]["identity"] == "../photos/id.jpg"
    assert doc["request"]["references"][0] == {"image": "../photos/ref.png", "name": "", "attributes": ["hair", "eyes"],
                                               "mask_mode": "replace", "mask": "reference_0_mask.png"}
    folder = tmp_path / "folder"
    folder.mkdir()
    s.write(folder)
    for src in (p, folder):
        t = EditSetup.load(src)
        assert t.identity == str(tmp_path / "photos" / "id.jpg") and (t.yaw, t.pitch) == (12.5, -3.0)
        assert [r.attributes for r in t.references] == [["hair", "eyes"], ["nose"]]
        assert t.references[0].mask_mode == "replace" and t.references[1].mask is None
        np.testing.assert_allclose(t.references[0].mask, s.references[0].mask, atol=1 / 255)
        np.testing.assert_array_equal(t.identity_mask, s.identity_mask)
        assert t.background == (10.0, 20.0, 30.0) and t.seed == 7 and not t.dirty
        assert t.refine.refiner == "sdedit" and t.refine.steps == 4 and t.refine.score_model == str(tmp_path / "score")
        req = t.to_request()
        assert req.references[1].image == str(tmp_path / "photos" / "r2.png") and req.seed == 7
        assert req.refine.score_model == str(tmp_path / "score") and req.background == (10.0, 20.0, 30.0)


def test_a_moved_session_finds_its_photos_where_they_were(tmp_path):
    s = _setup(tmp_path)
    p = s.save(tmp_path / "sessions" / "a.triface")
    moved = tmp_path / "elsewhere" / "deeper" / "a.triface"
    moved.parent.mkdir(parents=True)
    p.rename(moved)
    t = EditSetup.load(moved)
    assert t.identity == str(tmp_path / "photos" / "id.jpg")     # via the folder it was saved from


def test_changes_notify_and_dirty_is_derived(tmp_path):
    s = EditSetup()
    seen = []
    s.subscribe(seen.append)
    assert not s.dirty
    s.set_view(10, 0)
    assert not s.dirty and seen == ["view"]                   # turning the head is no work to lose
    ref = s.add_reference(ReferenceSetup("r.png"))
    s.update_reference(ref, attributes=["hair"])
    s.update_reference(ref, mask=empty_mask())                 # a fresh canvas: no change of the edit
    assert seen[1:] == ["references", "references", "masks"] and s.dirty
    s.save(tmp_path / "x.triface")
    assert not s.dirty and seen[-1] == "saved"
    s.update_reference(ref, mask=empty_mask())
    assert not s.dirty
    ref.mask[3, 3] = 1.0
    s.masks_changed()
    assert s.dirty
    other = s.add_reference(ReferenceSetup("r2.png", ["nose"], empty_mask()))
    s.remove_reference(other)                        # by identity, not by comparing masks
    assert s.references == [ref]
    with pytest.raises(SetupError, match="seed"):
        s.update(seed=-1)
    with pytest.raises(SetupError, match="unknown attribute"):
        s.update_reference(ref, attributes=["moustache"])
    with pytest.raises(SetupError, match="background"):
        s.update(background="purple")
    assert s.seed == 0 and ref.attributes == ["hair"] and s.background == "identity"


def test_to_request_and_the_result_out_of_date(tmp_path):
    s = EditSetup("id.png")
    with pytest.raises(SetupError, match="Add a reference"):
        s.to_request()
    ref = s.add_reference(ReferenceSetup("ref.png"))
    with pytest.raises(SetupError, match="choose at least one attribute"):
        s.to_request()
    s.update_reference(ref, attributes=["hair"])
    m = empty_mask()
    m[:4] = 0.123456
    s.update(identity_mask=m, bare_mask=empty_mask(), background="transparent", tier="neural", seed=5)
    req = s.to_request()
    assert req.identity == "id.png" and req.references[0].image == "ref.png" and req.references[0].user_mask is None
    assert req.background == "transparent" and req.tier == "neural" and req.seed == 5 and req.bare_mask is None
    # the request's mask is a copy at the precision the session file keeps (re-runs from the file match)
    assert req.identity_mask is not m and req.identity_mask[0, 0] == pytest.approx(round(0.123456 * 255) / 255)
    s.set_result(object())
    assert not s.result_out_of_date
    s.update(identity="other.png")
    assert s.result_out_of_date


def test_the_result_belongs_to_the_session(tmp_path):
    rng = np.random.default_rng(0)
    res = SavedResult(composite=rng.integers(0, 255, (512, 512, 3), dtype=np.uint8),
                      composite_full=rng.integers(0, 255, (300, 200, 3), dtype=np.uint8),
                      coarse=rng.random((512, 512, 3), dtype=np.float32),
                      s_blend=rng.integers(0, 19, (512, 512), dtype=np.uint8),
                      sde_mask=np.ones((512, 512), np.float32), gap_mask=np.zeros((512, 512), np.float32),
                      t_com=TriPlaneAsset(torch.rand(1, 3, 4, 16, 16), "relief"), notes=["a note"])
    s = _setup(tmp_path)
    s.set_result(res)
    p = s.save(tmp_path / "r.triface")
    with zipfile.ZipFile(p) as z:
        names = set(z.namelist())
    assert {"result/edited.png", "result/t_com.safetensors"} <= names
    assert not [n for n in names if n.endswith((".pkl", ".pt", ".pth"))]       # safe formats only
    t = EditSetup.load(p)
    r = t.result
    np.testing.assert_array_equal(r.composite, res.composite)
    np.testing.assert_array_equal(r.composite_full, res.composite_full)
    np.testing.assert_array_equal(r.s_blend, res.s_blend)
    np.testing.assert_allclose(r.coarse, res.coarse, atol=1 / 255)
    torch.testing.assert_close(r.t_com.planes, res.t_com.planes)
    assert r.notes == ["a note"] and t.result_identity == t.identity and not t.result_out_of_date


def test_version_1_sessions_still_open(tmp_path):
    p = tmp_path / "old.triface"
    mask = empty_mask()
    mask[:10] = 1
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("session.json", json.dumps({
            "format": "triface-session", "version": 1,
            "identity": {"path": "/x/id.jpg", "mask": "identity_mask.png"},
            "references": [{"path": "/x/ref.png", "attributes": ["hair"], "mask_mode": "subtract", "mask": None}],
            "settings": {"yaw": 4.0, "pitch": 1.0, "refiner": "classical", "seed": 3, "background": "identity"}}))
        save_mask_png(mask, tmp_path / "m.png")
        z.write(tmp_path / "m.png", "identity_mask.png")
    s = EditSetup.load(p)
    assert s.identity == "/x/id.jpg" and s.references[0].attributes == ["hair"]
    assert s.references[0].mask_mode == "subtract" and s.seed == 3 and s.yaw == 4.0
    np.testing.assert_array_equal(s.identity_mask, mask)


def test_an_edit_json_opens_as_a_setup(tmp_path):
    mask = empty_mask()
    mask[5:9] = 1
    save_mask_png(mask, tmp_path / "half.png")
    (tmp_path / "edit.json").write_text(json.dumps({"format": "triface-edit", "request": {
        "identity": "me.jpg", "references": [{"image": "/abs/ref.jpg", "attributes": ["hair"], "mask": "half.png",
                                              "mask_mode": "replace"}],
        "refine": {"refiner": "classical", "t0": 0.3}, "background": [1, 2, 3], "seed": 9}, "exports": {}}))
    s = EditSetup.load(tmp_path / "edit.json")
    assert s.identity == str(tmp_path / "me.jpg") and s.references[0].path == "/abs/ref.jpg"
    np.testing.assert_array_equal(s.references[0].mask, mask)
    assert s.background == (1.0, 2.0, 3.0) and s.seed == 9 and s.refine.t0 == 0.3 and s.path == ""


def test_bad_session_files_give_clear_errors(tmp_path):
    bad = tmp_path / "bad.triface"
    bad.write_bytes(b"not a zip")
    with pytest.raises(SetupError, match="bad.triface"):
        EditSetup.load(bad)
    with zipfile.ZipFile(tmp_path / "other.triface", "w") as z:
        z.writestr("session.json", '{"format": "something-else"}')
    with pytest.raises(SetupError, match="not a TriFace session"):
        EditSetup.load(tmp_path / "other.triface")
    with zipfile.ZipFile(tmp_path / "seed.triface", "w") as z:
        z.writestr("session.json", json.dumps({"format": "triface-session", "version": 2,
                                               "request": {"identity": "a.png", "seed": "many"}}))
    with pytest.raises(SetupError, match=r"seed.triface: request.seed must be a whole number"):
        EditSetup.load(tmp_path / "seed.triface")
    with zipfile.ZipFile(tmp_path / "pickle.triface", "w") as z:     # a "tri-plane" that is a pickle
        z.writestr("session.json", json.dumps({"format": "triface-session", "version": 2,
                                               "request": {"identity": "a.png"},
                                               "result": {"files": {k: f"result/{k}.png" for k in (
                                                   "composite", "composite_full", "coarse", "s_blend", "sde_mask",
                                                   "gap_mask")} | {"t_com": "result/t.safetensors"}}}))
        for k in ("composite", "composite_full", "coarse", "s_blend", "sde_mask", "gap_mask"):
            z.writestr(f"result/{k}.png", _png_bytes())
        import pickle
        z.writestr("result/t.safetensors", pickle.dumps({"planes": 1}))
    with pytest.raises(SetupError, match="saved tri-plane"):
        EditSetup.load(tmp_path / "pickle.triface")
    with pytest.raises(SetupError, match="unknown attribute"):
        ReferenceSetup("r.png", ["moustache"])


def _png_bytes():
    from triface_studio.core.images import encode_png
    return encode_png(np.zeros((8, 8), np.uint8))


def test_mask_png_and_autosave(tmp_path):
    m = empty_mask()
    m[5:50, 5:50] = 1.0
    save_mask_png(m, tmp_path / "m.png")
    np.testing.assert_array_equal(load_mask_png(tmp_path / "m.png"), m)
    auto = Autosave(tmp_path / "rec")
    assert not auto.pending()
    s = EditSetup("id.jpg")
    s.save(tmp_path / "mine.triface")
    s.update(seed=4)
    auto.save(s)
    assert auto.pending() and s.path == str(tmp_path / "mine.triface") and s.dirty   # not adopted
    r = auto.recover()
    assert r.identity.endswith("id.jpg") and r.seed == 4 and r.dirty and r.path == ""
    auto.clear()
    assert not auto.pending()
    assert not [p for p in (tmp_path / "rec").iterdir() if p.name.startswith(".")]
