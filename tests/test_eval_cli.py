"""`triface eval` on two real pairs of the shared data set (skipped without ../shared)."""

from __future__ import annotations

import csv
import json

import numpy as np
from PIL import Image

from triface_studio.cli.main import main


def test_eval_two_pairs_per_task_on_shared_data(shared_data, tmp_path, capsys):
    data = shared_data
    for task in ("eyeglasses", "hair"):
        out = tmp_path / task
        assert main(["eval", "--task", task, "--data", str(data), "--limit", "2", "--seed", "1",
                     "--tier", "relief", "--out", str(out), "--json"]) == 0
        s = json.loads(capsys.readouterr().out)
        assert s["task"] == task and s["pairs"] == 2 and s["edits_ok"] == 2
        assert 0.8 < s["ssim_outside"] <= 1.0 and 0 <= s["l2_outside"] < 0.05
        assert s["fid_reference_images"] > 10 and s["fid_randproj32"] >= 0
        with open(out / "pairs.csv") as f:
            rows = list(csv.DictReader(f))
        assert [r["index"] for r in rows] == ["0", "1"]
        assert np.asarray(Image.open(out / "contact_sheet.png")).shape[1] == 3 * 164 + 4


def test_eval_lift_on_held_out_photos(shared_data, tmp_path, capsys):
    """`triface eval --task lift`: the bundled lift re-rendered at each photo's camera, and the
    turned photos rendered from the front against the landmark template."""
    out = tmp_path / "lift"
    assert main(["eval", "--task", "lift", "--data", str(shared_data), "--limit", "3", "--out", str(out),
                 "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["task"] == "lift" and s["photos"] == 3 and s["failed"] == 0
    assert 18 < s["psnr_source_parsed"] < 60 and s["psnr_source"] <= s["psnr_source_parsed"] + 3
    assert s["turned_photos"] >= 1 and s["landmark_px"] < s["crop_landmark_px"]
    with open(out / "lift.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and all(float(r["psnr_source"]) > 10 for r in rows)
    assert json.loads((out / "summary.json").read_text()) == s
