"""The Qt-free document model: brush strokes as undo-able box diffs, session files, autosave."""

import zipfile

import numpy as np
import pytest

from triface_studio.document import (Autosave, Reference, Session, SessionError, empty_mask, load_mask_png,
                                     paint_stroke, save_mask_png)


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


def test_session_round_trip_zip_and_folder(tmp_path):
    s = Session(identity_path="/x/id.jpg")
    s.identity_mask = empty_mask()
    s.identity_mask[10:20, 30:40] = 1.0
    ref_mask = empty_mask()
    ref_mask[100:200, 100:300] = 0.5
    s.references = [Reference("/x/ref.png", ["hair", "eyes"], ref_mask, "replace"), Reference("/x/r2.png", ["nose"])]
    s.settings["yaw"] = 12.5
    p = s.save(tmp_path / "a.triface")
    with zipfile.ZipFile(p) as z:
        assert sorted(z.namelist()) == ["identity_mask.png", "reference_0_mask.png", "session.json"]
    folder = tmp_path / "folder"
    folder.mkdir()
    s.save(folder)
    for src in (p, folder):
        t = Session.load(src)
        assert t.identity_path == "/x/id.jpg" and t.settings["yaw"] == 12.5
        assert [r.attributes for r in t.references] == [["hair", "eyes"], ["nose"]]
        assert t.references[0].mask_mode == "replace" and t.references[1].mask is None
        np.testing.assert_allclose(t.references[0].mask, ref_mask, atol=1 / 255)
        np.testing.assert_array_equal(t.identity_mask, s.identity_mask)


def test_bad_session_files_give_clear_errors(tmp_path):
    bad = tmp_path / "bad.triface"
    bad.write_bytes(b"not a zip")
    with pytest.raises(SessionError, match="bad.triface"):
        Session.load(bad)
    with zipfile.ZipFile(tmp_path / "other.triface", "w") as z:
        z.writestr("session.json", '{"format": "something-else"}')
    with pytest.raises(SessionError, match="not a TriFace session"):
        Session.load(tmp_path / "other.triface")
    with pytest.raises(SessionError, match="unknown attribute"):
        Reference("r.png", ["moustache"])


def test_mask_png_and_autosave(tmp_path):
    m = empty_mask()
    m[5:50, 5:50] = 1.0
    save_mask_png(m, tmp_path / "m.png")
    np.testing.assert_array_equal(load_mask_png(tmp_path / "m.png"), m)
    auto = Autosave(tmp_path / "rec")
    assert not auto.pending()
    s = Session(identity_path="id.jpg", path="mine.triface", dirty=True)
    auto.save(s)
    assert auto.pending() and s.path == "mine.triface" and s.dirty     # autosave does not adopt the file
    r = auto.recover()
    assert r.identity_path == "id.jpg" and r.dirty
    auto.clear()
    assert not auto.pending()
    assert not list((tmp_path / "rec").glob(".tmp-*"))
