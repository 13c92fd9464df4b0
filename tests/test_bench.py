"""`triface bench --json`: the document's shape, with the render and export stages."""

from __future__ import annotations

import json

import pytest

from triface_studio.cli.main import main
from triface_studio.evaluation import bench


def test_bench_quick_json_render_and_export(capsys, tmp_path):
    out = tmp_path / "bench.json"
    rc = main(["bench", "--quick", "--json", "--stage", "render", "--stage", "export", "--out", str(out)])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == doc
    assert doc["device"].startswith("cpu") and doc["torch"] and doc["threads"] >= 1 and doc["peak_rss_mb"] > 0
    render = [r for r in doc["results"] if r["stage"] == "render"]
    assert [r["res"] for r in render] == [64, 128]
    for r in doc["results"]:
        assert r["ms_median"] > 0 and r["peak_rss_mb"] > 0
    # no comparison of the timings themselves: a busy machine (CI) can reorder them
    assert all(r["samples_per_ray"] > 0 for r in render)
    export = [r for r in doc["results"] if r["stage"] == "export"]
    assert export and export[0]["frames"] == 4 and export[0]["gif_ms_per_frame"] > 0


def test_bench_rejects_unknown_stage_and_missing_cuda(capsys):
    assert main(["bench", "--stage", "nope"]) == 2
    assert "unknown bench stage" in capsys.readouterr().err
    import torch

    if not torch.cuda.is_available():
        assert main(["bench", "--device", "cuda", "--stage", "render"]) == 2
        assert "CUDA" in capsys.readouterr().err


def test_every_stage_is_registered():
    assert {"render", "export", "edit", "edit-relief"} <= set(bench.stages())


def test_time_ms_is_a_median():
    ctx = bench.BenchContext(__import__("torch").device("cpu"), repeats=3, warmup=0)
    calls = []
    ms = ctx.time_ms(lambda: calls.append(1))
    assert len(calls) == 3 and 0 <= ms < 50
    with pytest.raises(ZeroDivisionError):
        ctx.time_ms(lambda: 1 / 0)


def test_bench_bundled_stage_reports_speed_and_accuracy(capsys):
    assert main(["bench", "--quick", "--json", "--stage", "bundled"]) == 0
    doc = json.loads(capsys.readouterr().out)
    parts = {r["part"]: r for r in doc["results"] if r["stage"] == "bundled"}
    assert {"encode", "render_128", "render_512", "accuracy"} <= set(parts)
    assert parts["render_128"]["ms_median"] > 0 and parts["render_512"]["target_ms"] == 500
    # the fast default sampling agrees with a dense render
    assert parts["accuracy"]["rgb_mean_abs_error"] < 0.01 and parts["accuracy"]["label_disagreement"] < 0.02


def test_bench_orbit_stage_records_preview_release_turntable_and_likeness(capsys):
    assert main(["bench", "--quick", "--json", "--stage", "orbit"]) == 0
    doc = json.loads(capsys.readouterr().out)
    parts = {r["part"]: r for r in doc["results"] if r["stage"] == "orbit"}
    assert set(parts) == {"preview", "preview_vs_volume", "release", "turntable_export"}
    assert parts["preview"]["fps"] > 0 and parts["preview"]["target_fps"] == 30
    assert parts["release"]["target_ms"] == 150 and parts["turntable_export"]["target_s"] == 10
    assert parts["turntable_export"]["files"] == 2 * parts["turntable_export"]["frames"]
    # the preview looks like the volume render at every compared pose (quick: 128 px)
    assert len(parts["preview_vs_volume"]["psnr_db"]) == 4
    assert min(parts["preview_vs_volume"]["psnr_db"].values()) > 22          # measured 23.8 at (45, 25)
