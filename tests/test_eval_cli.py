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
        # outside what the pipeline declares it changes, less changes than outside the parser's region
        assert s["ssim_outside"] <= s["ssim_outside_declared"] <= 1.0
        # blanking the edit out of both images can only remove differences from the windows
        assert s["ssim_outside"] <= s["ssim_outside_isolated"] <= 1.0
        assert s["l2_outside_declared"] <= s["l2_outside"]
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
    assert s["psnr_source_interior"] >= s["psnr_source_parsed"] - 1 and 0.9 < s["silhouette_iou"] <= 1
    with open(out / "lift.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and all(float(r["psnr_source"]) > 10 for r in rows)
    assert json.loads((out / "summary.json").read_text()) == s


def test_eval_with_the_sdedit_refiner(shared_data, tmp_path, capsys, tiny_score_model):
    """The paper's SDE ablation is one flag away: the same pairs refined by a (tiny, random)
    diffusers score model instead of the classical refiner."""
    summaries = {}
    for refiner in ("classical", "sdedit"):
        out = tmp_path / refiner
        args = ["eval", "--task", "hair", "--data", str(shared_data), "--limit", "1", "--tier", "relief",
                "--out", str(out), "--json", "--refiner", refiner]
        if refiner == "sdedit":
            args += ["--score-model", str(tiny_score_model), "--steps", "2", "--t0", "0.3"]
        assert main(args) == 0
        summaries[refiner] = json.loads(capsys.readouterr().out)
    assert summaries["sdedit"]["refiner"] == "sdedit" and summaries["classical"]["refiner"] == "classical"
    assert summaries["sdedit"]["edits_ok"] == 1
    assert summaries["sdedit"]["ssim_outside"] != summaries["classical"]["ssim_outside"]


def test_eval_lift_counts_photos_without_a_face_as_failed(tmp_path, capsys):
    """Runs without the shared data: the two sample portraits and a photo of nothing."""
    import shutil

    from triface_studio.resources import resource_path

    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    shutil.copy(resource_path("samples", "astronaut.png"), data / "images" / "astronaut.png")
    shutil.copy(resource_path("samples", "grace_hopper.jpg"), data / "images" / "hopper.jpg")
    Image.fromarray(np.full((256, 256, 3), 128, np.uint8)).save(data / "images" / "grey.png")
    assert main(["eval", "--task", "lift", "--data", str(data), "--out", str(tmp_path / "out"), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["photos"] == 3 and s["failed"] == 1
    assert s["psnr_source_parsed"] > 18
    rows = {r["name"]: r for r in csv.DictReader(open(tmp_path / "out" / "lift.csv"))}
    assert "no face" in rows["grey"]["error"] and rows["astronaut"]["error"] == ""


def test_eval_views_on_one_held_out_photo(shared_data, tmp_path, capsys):
    """`triface eval --task views`: the face is found in the orbit views, none of them is empty
    white (the photo's background stands behind the head) and the contact sheet has a row."""
    out = tmp_path / "views"
    assert main(["eval", "--task", "views", "--data", str(shared_data), "--limit", "1", "--turned", "0",
                 "--out", str(out), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["task"] == "views" and s["photos"] == 1 and s["failed"] == 0
    assert s["extra_parts"] is not None and s["photo_extra_parts"] is not None and s["turned"]["photos"] == 0
    assert s["found"] >= 0.75 and s["landmark_px"] < 15
    assert s["empty_share"] < 0.05 and s["psnr_head"] > 25
    assert 0 <= s["photo_streak_share"] <= s["streak_share"] + 0.5
    assert np.asarray(Image.open(out / "contact_sheet.png")).shape == (160, 8 * 160, 3)
