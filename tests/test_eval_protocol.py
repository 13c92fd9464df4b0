"""Pairing rules of the evaluation protocol and the eval command on a tiny synthetic folder."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from triface_studio.cli.main import main
from triface_studio.core.semantics import BACKGROUND, EYEGLASSES, HAIR, L_EYE, R_EYE, SKIN
from triface_studio.evaluation import protocol
from triface_studio.evaluation.evaluate import pair_metrics

ROWS = [  # name, eyeglasses, hat, hair_tone
    ("a0", 0, 0, "black"), ("a1", 0, 0, "black"), ("a2", 0, 1, "black"), ("a3", 0, 0, "brown"),
    ("a4", 0, 0, "black"), ("g0", 1, 0, "brown"), ("g1", 1, 0, "blonde"), ("b0", 0, 0, "blonde"),
    ("b1", 0, 0, "blonde"), ("missing", 1, 0, "blonde"),
]


def _labels(glasses: bool) -> np.ndarray:
    lab = np.full((512, 512), BACKGROUND, np.uint8)
    lab[96:480, 96:416] = SKIN
    lab[40:140, 80:432] = HAIR
    lab[200:230, 170:230] = L_EYE
    lab[200:230, 280:340] = R_EYE
    if glasses:
        lab[185:245, 150:360] = EYEGLASSES
    return lab


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    with open(tmp_path / "tags.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "eyeglasses", "hat", "hair_tone"])
        for name, g, hat, tone in ROWS:
            w.writerow([name, g, hat, tone])
            if name == "missing":
                continue
            lab = _labels(bool(g))
            img = (rng.random((512, 512, 3)) * 40 + 100).astype(np.uint8)
            img[lab == HAIR] = (240, 210, 120) if tone == "blonde" else (20, 20, 20)
            img[lab == EYEGLASSES] = (10, 10, 60)
            Image.fromarray(img).save(tmp_path / "images" / f"{name}.png")
            Image.fromarray(lab, mode="L").save(tmp_path / "masks" / f"{name}.png")
    return tmp_path


def test_pairs_follow_the_tag_rules(folder):
    eg = protocol.make_pairs(folder, "eyeglasses", seed=0)
    assert {p.identity for p in eg} == {"a0", "a1", "a2", "a3", "a4", "b0", "b1"}
    assert {p.reference for p in eg} <= {"g0", "g1"}          # "missing" has no image
    hair = protocol.make_pairs(folder, "hair", seed=0)
    assert {p.identity for p in hair} == {"a0", "a1", "a4"}   # a2 wears a hat
    assert {p.reference for p in hair} == {"b0", "b1", "g1"}
    assert all(p.identity_mask is not None and p.identity_path.is_file() for p in hair)
    assert [p.name for p in protocol.attribute_images(folder, "eyeglasses")] == ["g0.png", "g1.png"]


def test_pairing_is_deterministic_per_seed(folder):
    key = lambda ps: [(p.identity, p.reference) for p in ps]  # noqa: E731
    assert key(protocol.make_pairs(folder, "eyeglasses", seed=3)) == key(protocol.make_pairs(folder, "eyeglasses", seed=3))
    orders = {tuple(key(protocol.make_pairs(folder, "eyeglasses", seed=s))) for s in range(6)}
    assert len(orders) > 1
    assert len(protocol.make_pairs(folder, "eyeglasses", limit=2)) == 2


def test_bad_folders_and_tasks_are_clear(tmp_path, folder):
    with pytest.raises(ValueError, match="tags.csv"):
        protocol.make_pairs(tmp_path / "nowhere", "hair")
    with pytest.raises(ValueError, match="unknown task"):
        protocol.make_pairs(folder, "beard")


def test_pair_metrics_success_rules():
    lab_in, lab_out = _labels(False), _labels(True)
    inp = np.full((512, 512, 3), 120, np.uint8)
    out = inp.copy()
    out[lab_out == EYEGLASSES] = 10
    m = pair_metrics("eyeglasses", inp, out, lab_in, lab_out)
    assert m["success"] == 1 and m["glasses_px"] == int((lab_out == EYEGLASSES).sum())
    assert m["ssim_outside"] > 0.98 and m["l2_outside"] < 1e-3   # the change is inside the region
    assert pair_metrics("eyeglasses", inp, inp, lab_in, lab_in)["success"] == 0

    ref = inp.copy()
    ref[lab_in == HAIR] = (240, 210, 120)
    dark = inp.copy()
    dark[lab_in == HAIR] = 20
    moved = dark.copy()
    moved[lab_in == HAIR] = (200, 170, 100)
    ok = pair_metrics("hair", dark, moved, lab_in, lab_in, ref, lab_in)
    assert ok["success"] == 1 and ok["hair_dist_after"] < ok["hair_dist_before"]
    assert pair_metrics("hair", dark, dark, lab_in, lab_in, ref, lab_in)["success"] == 0


def test_eval_command_on_the_relief_stand_in(folder, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["eval", "--task", "eyeglasses", "--data", str(folder), "--limit", "2", "--tier", "relief",
               "--out", str(out), "--json", "--rendered"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["task"] == "eyeglasses" and summary["pairs"] == 2 and summary["edits_ok"] == 2
    for k in ("ssim_outside", "l2_outside", "success_rate", "sec_per_edit", "fid_randproj32", "kid_randproj32"):
        assert isinstance(summary[k], float), k
    assert 0.5 < summary["ssim_outside"] <= 1.0 and summary["success_rate"] == 1.0
    assert 0.3 < summary["ssim_outside_t_com"] <= 1.0 and summary["l2_outside_t_com"] >= summary["l2_outside"]
    assert "fid" not in summary                                    # never an unlabelled FID
    assert json.loads((out / "summary.json").read_text()) == summary
    with open(out / "pairs.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and all(r["ok"] == "1" for r in rows)
    sheet = np.asarray(Image.open(out / "contact_sheet.png"))
    assert sheet.shape[0] > 2 * 160 and sheet.shape[1] == 3 * 164 + 4


def test_eval_command_errors_are_clear(folder, tmp_path, capsys):
    rc = main(["eval", "--task", "hair", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "o")])
    assert rc == 2 and "tags.csv" in capsys.readouterr().err
    (folder / "masks" / "a0.png").unlink()
    rc = main(["eval", "--task", "hair", "--data", str(folder), "--tier", "relief", "--out", str(tmp_path / "o")])
    assert rc == 2 and "masks" in capsys.readouterr().err
    assert not (tmp_path / "o" / "summary.json").exists()
