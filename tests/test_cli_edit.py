"""``triface edit`` from argument parsing to the written files.  The weight-free ReliefTier and
AlignedAnalyzer stand in for the bundled models (the models' own end-to-end test is in
tests/test_pipeline_real.py)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_pipeline_edit import BLACK, BLONDE, portrait  # noqa: E402

import triface_studio.pipeline as pipeline_pkg  # noqa: E402
from triface_studio.cli.main import main  # noqa: E402
from triface_studio.core.images import load_image, save_image  # noqa: E402
from triface_studio.pipeline.relief import AlignedAnalyzer, ReliefTier  # noqa: E402


@pytest.fixture
def photos(tmp_path, monkeypatch):
    an = AlignedAnalyzer()
    ident, lab_id = portrait(BLACK, 120)
    ref, lab_ref = portrait(BLONDE, 60, glasses=True)
    wall = np.full((512, 512, 3), 128, np.uint8)
    an.add(ident, lab_id)
    an.add(ref, lab_ref)
    an.add(wall, no_face=True)
    paths = {}
    for name, im in (("ident.png", ident), ("ref.png", ref), ("wall.png", wall)):
        save_image(tmp_path / name, im)
        paths[name] = str(tmp_path / name)
    created = []

    class Pipe(pipeline_pkg.EditPipeline):
        def __init__(self, tier="bundled", device="cpu", analyzer=None, checkpoint_dir=None):
            created.append(tier)
            super().__init__(tier=ReliefTier(resolution=64), device=device, analyzer=an)

    monkeypatch.setattr(pipeline_pkg, "EditPipeline", Pipe)
    paths["created"] = created
    return paths


def test_edit_writes_the_file_set_and_reruns_from_json(photos, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["edit", "--identity", photos["ident.png"], "--reference", photos["ref.png"], "--attribute", "hair",
               "--reference", photos["ref.png"], "--attribute", "eyeglasses", "--out", str(out), "--views", "2",
               "--view-resolution", "32", "--gif", "--seed", "3", "--quiet"])
    assert rc == 0
    for n in ("edited.png", "edited_crop.png", "coarse.png", "semantic.png", "labels.png", "mask_sde.png",
              "edit.json", "orbit.gif", "views/rgb_0001.png", "views/semantic_0001.png"):
        assert (out / n).is_file(), n
    doc = json.loads((out / "edit.json").read_text())
    assert [r["attributes"] for r in doc["request"]["references"]] == [["hair"], ["eyeglasses"]]
    assert doc["request"]["seed"] == 3 and doc["exports"]["views"] == 2
    # the same edit again from edit.json, into another folder
    out2 = tmp_path / "again"
    assert main(["edit", "--from", str(out / "edit.json"), "--out", str(out2), "--quiet"]) == 0
    a, b = load_image(out / "edited_crop.png"), load_image(out2 / "edited_crop.png")
    assert np.array_equal(a, b)
    assert sorted(os.listdir(out2 / "views")) == sorted(os.listdir(out / "views"))


def test_identity_mask_is_applied_and_recorded(photos, tmp_path, capsys):
    from PIL import Image

    protect = np.zeros((512, 512), np.uint8)
    protect[:, :256] = 255
    mpath = tmp_path / "protect.png"
    Image.fromarray(protect).save(mpath)
    out = tmp_path / "out"
    assert main(["edit", "--identity", photos["ident.png"], "--reference", photos["ref.png"], "--attribute", "hair",
                 "--identity-mask", str(mpath), "--out", str(out), "--views", "0", "--quiet"]) == 0
    doc = json.loads((out / "edit.json").read_text())
    assert doc["request"]["identity_mask"] == str(mpath.absolute())
    plain = tmp_path / "plain"
    assert main(["edit", "--identity", photos["ident.png"], "--reference", photos["ref.png"], "--attribute", "hair",
                 "--out", str(plain), "--views", "0", "--quiet"]) == 0
    a, b = load_image(out / "edited_crop.png"), load_image(plain / "edited_crop.png")
    ident = load_image(photos["ident.png"])
    assert np.array_equal(a[:, :200], ident[:, :200]) and not np.array_equal(b[:, :200], ident[:, :200])
    assert np.array_equal(a[:, 300:], b[:, 300:])
    # re-run from edit.json: the mask comes back with it
    again = tmp_path / "again"
    assert main(["edit", "--from", str(out / "edit.json"), "--out", str(again), "--quiet"]) == 0
    assert np.array_equal(load_image(again / "edited_crop.png"), a)


def test_mask_of_another_size_is_resized_with_a_note(photos, tmp_path, capsys):
    mask = np.zeros((100, 100), np.uint8)
    mask[:, :50] = 255
    save_image(tmp_path / "m.png", mask)
    rc = main(["edit", "--identity", photos["ident.png"], "--reference", photos["ref.png"], "--attribute", "hair",
               "--mask", str(tmp_path / "m.png"), "--mask-mode", "subtract", "--out", str(tmp_path / "o"),
               "--views", "0"])
    assert rc == 0
    err = capsys.readouterr().err
    assert "resized" in err
    doc = json.loads((tmp_path / "o" / "edit.json").read_text())
    assert doc["request"]["references"][0]["mask"].endswith("m.png")
    assert doc["request"]["references"][0]["mask_mode"] == "subtract"


def test_bad_input_gives_clear_errors_and_no_files(photos, tmp_path, capsys):
    out = tmp_path / "o"
    rc = main(["edit", "--identity", photos["ident.png"], "--reference", photos["wall.png"], "--attribute", "hair",
               "--out", str(out), "--views", "0"])
    assert rc == 2
    assert "wall.png" in capsys.readouterr().err and not out.exists()
    rc = main(["edit", "--identity", photos["ident.png"], "--reference", photos["ident.png"],
               "--attribute", "eyeglasses", "--out", str(out), "--views", "0"])
    assert rc == 2
    assert "no eyeglasses" in capsys.readouterr().err and not out.exists()
    rc = main(["edit", "--identity", photos["ident.png"], "--reference", photos["ref.png"], "--attribute", "hair",
               "--out", "/proc/triface-out" if os.geteuid() == 0 else "/nonexistent-root/x", "--views", "0"])
    assert rc == 2 and "not writable" in capsys.readouterr().err
    n = len(photos["created"])
    # unwritable folder, missing pairs: refused before any model is built
    rc = main(["edit", "--identity", photos["ident.png"], "--reference", photos["ref.png"], "--out", str(out)])
    assert rc == 2 and "one --attribute per --reference" in capsys.readouterr().err
    rc = main(["edit", "--identity", str(tmp_path / "missing.jpg"), "--reference", photos["ref.png"],
               "--attribute", "hair", "--out", str(out), "--views", "0"])
    assert rc == 2 and "missing.jpg" in capsys.readouterr().err
    assert len(photos["created"]) == n and not out.exists()      # photos are checked before the models
    assert sorted(os.listdir(tmp_path)) == ["ident.png", "ref.png", "wall.png"]


def test_help_lists_edit(capsys):
    with pytest.raises(SystemExit):
        main(["edit", "--help"])
    assert "--identity" in capsys.readouterr().out


def test_edit_from_a_session_file(photos, tmp_path, capsys):
    """`triface edit --from` takes a session the app saved: its masks, mode, settings; flags override."""
    import zipfile

    from triface_studio.document import EditSetup, ReferenceSetup, empty_mask
    protect = empty_mask()
    protect[:, :256] = 1.0
    s = EditSetup(photos["ident.png"], [ReferenceSetup(photos["ref.png"], ["hair"])], identity_mask=protect, seed=2)
    (tmp_path / "sessions").mkdir()
    path = s.save(tmp_path / "sessions" / "work.triface")
    assert main(["edit", "--from", str(path), "--views", "0", "--quiet"]) == 0
    out = tmp_path / "sessions" / "work_edit"                         # beside the session by default
    a = load_image(out / "edited_crop.png")
    ident = load_image(photos["ident.png"])
    assert np.array_equal(a[:, :200], ident[:, :200])                # the session's protect mask applied
    doc = json.loads((out / "edit.json").read_text())
    assert doc["request"]["seed"] == 2 and doc["request"]["identity"] == photos["ident.png"]
    assert main(["edit", "--from", str(path), "--seed", "9", "--out", str(tmp_path / "o9"), "--views", "0",
                 "--quiet"]) == 0
    assert json.loads((tmp_path / "o9" / "edit.json").read_text())["request"]["seed"] == 9
    # the session's result is not needed to re-run it (a broken one does not stop the edit)
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    doc = json.loads(members["session.json"])
    doc["result"] = {"files": {"t_com": "result/missing.safetensors"}}
    members["session.json"] = json.dumps(doc).encode()
    with zipfile.ZipFile(path, "w") as z:
        for n, data in members.items():
            z.writestr(n, data)
    assert main(["edit", "--from", str(path), "--out", str(tmp_path / "o2"), "--views", "0", "--quiet"]) == 0
    # a broken session: one line naming it, exit 2, nothing written
    bad = tmp_path / "bad.triface"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("session.json", json.dumps({"format": "triface-session", "version": 2,
                                               "request": {"identity": "a.png", "references": "x"}}))
    capsys.readouterr()
    assert main(["edit", "--from", str(bad), "--out", str(tmp_path / "ob"), "--views", "0"]) == 2
    err = capsys.readouterr().err
    assert "bad.triface" in err and "references" in err and "Traceback" not in err
    assert not (tmp_path / "ob").exists()
