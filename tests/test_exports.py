"""Exports of an edit: orbit paths, views, video, mesh and the atomic CLI file set."""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_pipeline_edit import BLACK, BLONDE, portrait  # noqa: E402

from triface_studio.core.images import load_image  # noqa: E402
from triface_studio.core.semantics import HAIR  # noqa: E402
from triface_studio.pipeline import Cancelled, EditError, EditPipeline, EditRequest, ReferenceSpec  # noqa: E402
from triface_studio.pipeline import exports  # noqa: E402
from triface_studio.pipeline.relief import AlignedAnalyzer, ReliefTier  # noqa: E402


@pytest.fixture(scope="module")
def edited():
    an = AlignedAnalyzer()
    ident, lab_id = portrait(BLACK, 120)
    ref, lab_ref = portrait(BLONDE, 60)
    an.add(ident, lab_id)
    an.add(ref, lab_ref)
    pipe = EditPipeline(tier=ReliefTier(resolution=64), analyzer=an)
    res = pipe.run(EditRequest(identity=ident, references=[ReferenceSpec(ref, ("hair",))]))
    return pipe, res


def test_orbit_paths():
    t = exports.orbit_path(8, "turntable", 30, 15)
    assert len(t) == 8 and t[0] == (0.0, 15.0)
    assert max(abs(y) for y, _ in t) == pytest.approx(30)
    y = exports.orbit_path(5, "yaw", 20)
    assert [p[0] for p in y] == [-20, -10, 0, 10, 20] and all(p[1] == 0 for p in y)
    assert exports.orbit_path(3, "pitch", 0, 10) == [(0.0, -10.0), (0.0, 0.0), (0.0, 10.0)]
    assert exports.orbit_path(0) == []
    with pytest.raises(ValueError):
        exports.orbit_path(3, "spiral")


def test_export_views_writes_rgb_and_semantics(edited, tmp_path):
    pipe, res = edited
    paths = exports.export_views(pipe, res.t_com, tmp_path / "out", [(0, 0), (10, 5)], resolution=32)
    names = sorted(p.name for p in paths)
    assert names == ["rgb_0000.png", "rgb_0001.png", "semantic_0000.png", "semantic_0001.png"]
    im = load_image(tmp_path / "out" / "views" / "rgb_0000.png")
    assert im.shape == (32, 32, 3)
    # the semantic map (a palette PNG) reads back as the project palette's colours of the labels
    from triface_studio.core.semantics import colorize

    _, labels = pipe.render_view(res.t_com, 10, 5, 32)
    sem = load_image(tmp_path / "out" / "views" / "semantic_0001.png")
    assert sem.shape == (32, 32, 3) and np.array_equal(sem, colorize(labels))
    # nothing but the result in the parent folder
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_export_views_cancelled_leaves_nothing(edited, tmp_path):
    pipe, res = edited
    cancel = threading.Event()
    calls = []

    def progress(f):
        calls.append(f)
        if len(calls) == 2:
            cancel.set()
    with pytest.raises(Cancelled):
        exports.export_views(pipe, res.t_com, tmp_path / "out", exports.orbit_path(4), 32,
                             progress=progress, cancel=cancel)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("suffix", ["gif", "mp4"])
def test_export_video(tmp_path, suffix):
    import imageio.v2 as imageio

    frames = [np.full((33, 34, 3), i * 40, np.uint8) for i in range(5)]
    p = exports.export_video(frames, tmp_path / f"orbit.{suffix}", fps=10)
    assert p.is_file() and p.stat().st_size > 0
    back = imageio.mimread(p) if suffix == "gif" else [f for f in imageio.get_reader(p, format="FFMPEG")]
    assert len(back) == 5
    assert abs(float(back[-1][..., :3].mean()) - 160) < 10
    assert sorted(os.listdir(tmp_path)) == [f"orbit.{suffix}"]


def test_export_mesh_is_a_valid_coloured_surface(edited, tmp_path):
    import trimesh

    pipe, res = edited
    p = exports.export_mesh(pipe, res.t_com, tmp_path / "head.ply", resolution=48)
    mesh = trimesh.load(p, process=False)
    assert len(mesh.faces) > 500
    lo, hi = mesh.bounds
    # the relief slab: thin in z, as wide as the head in x and y
    assert hi[2] - lo[2] < 0.4 and hi[0] - lo[0] > 0.4
    cols = np.asarray(mesh.visual.vertex_colors)[:, :3]
    assert cols.std() > 5                                    # coloured from the decoder, not flat
    p2 = exports.export_mesh(pipe, res.t_com, tmp_path / "head.obj", resolution=32)
    assert len(trimesh.load(p2, process=False, force="mesh").faces) > 100
    with pytest.raises(EditError):
        exports.export_mesh(pipe, res.t_com, tmp_path / "head.stl")


def test_write_edit_outputs_file_set(edited, tmp_path):
    pipe, res = edited
    out = tmp_path / "edit"
    files = exports.write_edit_outputs(res, out, pipe, views=3, view_resolution=32, mesh=True,
                                       mesh_resolution=32, video="gif")
    names = sorted(str(f.relative_to(out)) for f in files)
    for n in ("edited.png", "edited_crop.png", "coarse.png", "semantic.png", "labels.png", "mask_sde.png",
              "mesh.ply", "orbit.gif", "edit.json", "views/rgb_0002.png", "views/semantic_0002.png"):
        assert n in names
    assert all(f.exists() for f in files)
    labels = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(out / "labels.png"))
    assert np.array_equal(labels, res.s_blend) and (labels == HAIR).any()
    doc = json.loads((out / "edit.json").read_text())
    assert doc["format"] == "triface-edit"
    assert doc["request"]["references"][0]["attributes"] == ["hair"]
    assert {"render", "composite", "views", "mesh"} <= set(doc["timings"])
    assert doc["versions"]["triface_studio"]
    assert sorted(os.listdir(tmp_path)) == ["edit"]          # no staging folder left


def test_write_edit_outputs_cancelled_or_failed_leaves_nothing(edited, tmp_path):
    pipe, res = edited
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        exports.write_edit_outputs(res, tmp_path / "a", pipe, views=2, view_resolution=16, cancel=cancel)
    with pytest.raises(EditError):
        exports.write_edit_outputs(res, tmp_path / "b", None, views=2)   # views need the pipeline
    assert os.listdir(tmp_path) == []
    # an existing folder keeps what it had
    keep = tmp_path / "c"
    keep.mkdir()
    (keep / "edited.png").write_bytes(b"old")
    with pytest.raises(EditError):
        exports.write_edit_outputs(res, keep, None, mesh=True)
    assert os.listdir(keep) == ["edited.png"] and (keep / "edited.png").read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["c"]


def test_unwritable_output_folder_is_refused_early(tmp_path):
    if os.name == "posix" and os.geteuid() == 0:       # permissions do not bind root; /proc does
        with pytest.raises(EditError, match="not writable"):
            exports.check_output_dir("/proc/triface-out")
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            with pytest.raises(EditError, match="not writable"):
                exports.check_output_dir(ro / "out")
        finally:
            ro.chmod(0o700)
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(EditError, match="not a folder"):
        exports.check_output_dir(f)


def test_contact_sheet_tiles_rows():
    a = np.zeros((40, 30, 3), np.uint8)
    b = np.full((50, 50, 3), 255, np.uint8)
    sheet = exports.contact_sheet([[a, b], [b]], cell=20, gap=2)
    assert sheet.shape == (2 * 20 + 3 * 2, 2 * 20 + 3 * 2, 3)
    assert sheet[2:22, 2:22].max() == 0 and sheet[2:22, 24:44].min() == 255
    assert sheet[24:44, 24:44].max() == 24                   # the empty cell shows the background
    captioned = exports.contact_sheet([[b, b]], cell=40, gap=0, captions=[["1. hair", None]])
    assert captioned[:18, :40].mean() < 100 and captioned[:18, 40:].min() == 255   # a strip only where asked


@pytest.mark.parametrize("fps", [10, 12])
def test_video_frames_last_one_over_fps(tmp_path, fps):
    """24 views play for 24/fps seconds: the GIF's frames carry a real delay, the MP4's length follows."""
    import imageio.v2 as imageio
    from PIL import Image

    frames = [np.full((32, 32, 3), i * 10, np.uint8) for i in range(24)]
    gif = exports.export_video(frames, tmp_path / "orbit.gif", fps=fps)
    with Image.open(gif) as im:
        delays = []
        for i in range(im.n_frames):
            im.seek(i)
            delays.append(im.info["duration"])
    assert len(delays) == 24
    assert all(abs(d - 1000 / fps) <= 10 for d in delays)          # GIF stores centiseconds
    assert sum(delays) / 1000 == pytest.approx(24 / fps, abs=0.25)
    mp4 = exports.export_video(frames, tmp_path / "orbit.mp4", fps=fps)
    meta = imageio.get_reader(mp4, format="FFMPEG").get_meta_data()
    assert meta["fps"] == pytest.approx(fps) and meta["duration"] == pytest.approx(24 / fps, abs=0.1)
    with pytest.raises(exports.EditError, match="frame rate"):
        exports.export_video(frames, tmp_path / "bad.gif", fps=0)
