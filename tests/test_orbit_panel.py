"""The orbit panel: rasterised previews while dragging (with their frame rate), the volume
render on release, RGB and semantics scaled to fit a panel of any size, its own window, and
exports that turn the head as far as the user asks."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PySide6")

from PySide6.QtWidgets import QSplitter, QWidget  # noqa: E402

from triface_studio.core.images import load_image  # noqa: E402
from triface_studio.qt.export_dialog import ExportDialog, ExportOptions, run_export  # noqa: E402
from triface_studio.qt.orbit_panel import OrbitPanel  # noqa: E402
from triface_studio.qt.worker import PipelineWorker  # noqa: E402
from triface_studio.resources import resource_path  # noqa: E402

TIMEOUT = 120_000


@pytest.fixture(scope="module")
def bundled():
    from triface_studio.models.face import FaceAnalyzer
    from triface_studio.pipeline import EditPipeline

    # the shipped parser by name: a module fixture runs before the per-test user folders are
    # set up, and "auto" would load (and cache for the whole session) a BiSeNet installed there
    pipe = EditPipeline(tier="bundled", device="cpu", analyzer=FaceAnalyzer("cpu", parser="shipped"))
    img = load_image(resource_path("samples", "astronaut.png"))
    return pipe, pipe.encode(pipe.analyze(img, "astronaut", "identity"))


@pytest.fixture
def panel(qtbot, bundled):
    pipe, asset = bundled
    worker = PipelineWorker(lambda: pipe)
    worker.start()
    host = QSplitter()
    host.addWidget(QWidget())
    p = OrbitPanel(worker, full_resolution=128, preview_resolution=256)
    host.addWidget(p)
    qtbot.addWidget(host)
    host.resize(900, 500)
    host.show()
    p.asset = asset
    yield p
    if p.popped_out:
        p.toggle_window()
    worker.stop()          # joined: no thread outlives the test


def _wait_for(qtbot, p, n):
    qtbot.waitUntil(lambda: len(p.renders_received) >= n, timeout=TIMEOUT)


def test_drag_shows_rasterised_previews_with_their_rate_then_the_volume_render(qtbot, panel):
    p = panel
    for d in (4.0, 4.0, 4.0, 4.0):
        p._view_dragged(d, 1.0, False)
        qtbot.wait(40)
    qtbot.waitUntil(lambda: len(p.renders_received) >= 2 and "fps" in p.fps_label.text(), timeout=TIMEOUT)
    assert all(r[3] == 256 for r in p.renders_received)           # previews at the preview size
    jid, yaw, pitch, res = p.renders_received[-1]
    assert p.last_render[0].shape == (256, 256, 3) and p.last_render[1].shape == (256, 256)
    assert p.fps > 0 and p.worker.pipe.can_preview(p.asset)        # the rasterised path, not a volume render
    p._view_dragged(0.0, 0.0, True)                                # release: the full (volume) view
    qtbot.waitUntil(lambda: p.renders_received[-1][3] == 128, timeout=TIMEOUT)
    assert p.pose() == pytest.approx((16.0, 4.0))
    assert p.renders_received[-1][1:3] == pytest.approx((16.0, 4.0))
    assert "ms" in p.fps_label.text() and "fps" not in p.fps_label.text()
    # the preview of the same pose looks like the volume render (same camera, same surface)
    full = p.last_render[0].astype(np.float32) / 255
    prev = p.worker.pipe.preview_view(p.asset, 16.0, 4.0, 128)[0].astype(np.float32) / 255
    assert 10 * np.log10(1 / np.mean((full - prev) ** 2)) > 27


def test_modes_and_the_view_scales_to_fit_when_the_panel_grows(qtbot, panel):
    p = panel
    p.request_full_render()
    _wait_for(qtbot, p, 1)
    assert p.displayed().shape == (128, 256, 3)                    # RGB + semantics side by side
    p.mode.setCurrentText("RGB")
    assert p.displayed().shape == (128, 128, 3)
    p.mode.setCurrentText("Semantics")
    assert p.displayed().shape == (128, 128, 3) and not np.array_equal(p.displayed(), p.last_render[0])
    p.mode.setCurrentText("RGB + semantics")

    def on_screen():
        qtbot.wait(50)
        r = p.view.vb.mapViewToDevice(p.view.image.mapRectToView(p.view.image.boundingRect())).boundingRect()
        return r.width(), r.height(), p.view.width(), p.view.height()

    p.window().resize(700, 400)
    w0, h0, vw0, vh0 = on_screen()
    p.window().resize(1600, 1000)
    w1, h1, vw1, vh1 = on_screen()
    assert vw1 > vw0 * 1.5 and w1 > w0 * 1.5                       # the image grows with the panel
    assert w1 <= vw1 + 2 and h1 <= vh1 + 2                          # and still fits in it
    assert w1 >= 0.9 * vw1 or h1 >= 0.9 * vh1                      # filling one side
    assert w1 / h1 == pytest.approx(2.0, rel=0.02)                 # two square views side by side


def test_pop_out_into_a_window_and_back(qtbot, panel):
    p = panel
    host = p.parentWidget()
    index = host.indexOf(p)
    p.toggle_window()
    assert p.window() is not host.window() and p.popped_out and host.indexOf(p) == -1
    p.window().resize(1200, 800)
    qtbot.wait(20)
    assert p.view.width() > 900
    p.toggle_window()
    assert not p.popped_out and p.parentWidget() is host and host.indexOf(p) == index
    assert p.window() is host.window()


class _Recorder:
    """A pipeline that records the poses an export asks for."""

    def __init__(self):
        self.poses = []

    def render_view(self, asset, yaw, pitch, resolution=256, semantic=True, progress=None, transparent=False):
        self.poses.append((yaw, pitch))
        return np.zeros((resolution, resolution, 3), np.uint8), np.zeros((resolution, resolution), np.uint8)


def test_the_turntable_covers_the_yaw_range_the_user_sets(qtbot, tmp_path):
    import threading

    d = ExportDialog(None, str(tmp_path))
    qtbot.addWidget(d)
    assert d.options().yaw_range == 45.0                            # the default turntable: +-45
    d.yaw_range.setValue(30.0)
    d.frames.setValue(8)
    opts = d.options()
    rec = _Recorder()
    run_export(rec, None, None, opts, lambda *a: None, threading.Event())
    yaws = [y for y, _ in rec.poses]
    assert len(yaws) == 8 and max(yaws) == pytest.approx(30.0) and min(yaws) == pytest.approx(-30.0)
    rec = _Recorder()
    run_export(rec, None, None, ExportOptions(str(tmp_path / "b"), frames=60, single_image=False),
               lambda *a: None, threading.Event())
    yaws = [y for y, _ in rec.poses]
    assert max(yaws) == pytest.approx(45.0) and min(yaws) == pytest.approx(-45.0)
