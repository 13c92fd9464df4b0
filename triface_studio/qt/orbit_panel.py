"""The orbit panel: the edited head from any angle, large and resizable.

RGB and semantics side by side (scaled to fit the viewport) or one of them; yaw and pitch
sliders; dragging the viewport turns the head.  While a slider or the viewport is dragged the
worker draws rasterised previews at full size (``EditPipeline.preview_view``: milliseconds on
the bundled tier) and the panel shows their frame rate; on release it asks for the volume
render.  *Pop out* moves the panel into its own window (and back), for a view as large as the
screen.

Renders are newest-wins: the worker drops queued renders a newer one replaced, and a result
older than the one on screen is dropped here.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QSplitter, QVBoxLayout, QWidget
from superqt import QLabeledDoubleSlider
from superqt.utils import qthrottled

from triface_studio.core.semantics import colorize

from .canvas import OrbitView
from .panels import stale_banner
from .worker import RenderJob

MODES = ("RGB + semantics", "RGB", "Semantics")
#: frames over which the preview frame rate is averaged
FPS_WINDOW = 12


class OrbitPanel(QWidget):
    """Shape of what it shows: the worker's (rgb (r, r, 3) uint8, labels (r, r) uint8 or None)."""

    poseChanged = Signal(float, float)          # yaw, pitch (degrees), on every change
    frameShown = Signal(str, float)             # "preview" | "full", seconds the worker took

    def __init__(self, worker, full_resolution: int = 512, preview_resolution: int = 512,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.worker = worker
        self.full_resolution, self.preview_resolution = int(full_resolution), int(preview_resolution)
        self._asset = None
        self.last_render = None                 # (rgb, labels) on screen
        self.last_render_id = 0
        self.shown_render_id = 0
        self.renders_received: list[tuple[int, float, float, int]] = []   # id, yaw, pitch, resolution
        self.stale_dropped = 0
        self._render_jobs: dict[int, RenderJob] = {}
        self._dragging = False
        self._frame_times: deque = deque(maxlen=FPS_WINDOW)
        self.fps = 0.0
        self._home: tuple[QWidget, int] | None = None
        self._window: QWidget | None = None

        ol = QVBoxLayout(self)
        head = QHBoxLayout()
        head.addWidget(QLabel("<b>Orbit</b>"))
        head.addStretch(1)
        self.fps_label = QLabel("")
        self.fps_label.setToolTip("Frames per second while you drag (rasterised previews); the time of the "
                                  "full render after you let go")
        head.addWidget(self.fps_label)
        self.mode = QComboBox()
        self.mode.addItems(list(MODES))
        self.mode.currentIndexChanged.connect(self._mode_changed)
        head.addWidget(self.mode)
        self.pop_button = QPushButton("Pop out")
        self.pop_button.setToolTip("Show the orbit view in its own window (again to put it back)")
        self.pop_button.clicked.connect(self.toggle_window)
        head.addWidget(self.pop_button)
        ol.addLayout(head)
        self.stale = stale_banner()
        ol.addWidget(self.stale)
        self.view = OrbitView()
        self.view.setMinimumSize(320, 200)
        self.view.dragged.connect(self._view_dragged)
        ol.addWidget(self.view, 1)
        self.yaw = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
        self.yaw.setRange(-60, 60)
        self.pitch = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
        self.pitch.setRange(-35, 35)
        for name, s in (("Yaw", self.yaw), ("Pitch", self.pitch)):
            s.setValue(0.0)
            s.valueChanged.connect(self._slider_moved)
            s.sliderReleased.connect(self.request_full_render)
            row = QHBoxLayout()
            row.addWidget(QLabel(name))
            row.addWidget(s, 1)
            ol.addLayout(row)
        row = QHBoxLayout()
        for text, slot in (("Reset", self.reset_view), ("Front", self.snap_front)):
            b = QPushButton(text)
            b.clicked.connect(slot)
            row.addWidget(b)
        row.addStretch(1)
        ol.addLayout(row)
        # leading-edge throttle: the first tick renders at once, then at most one per 15 ms
        # (the worker drops what a newer request replaced, so the rate is the renderer's)
        self._preview = qthrottled(self._request_preview, timeout=15, parent=self)
        worker.render_done.connect(self._on_render)

    # -- state -------------------------------------------------------------------------------
    @property
    def asset(self):
        return self._asset

    @asset.setter
    def asset(self, value) -> None:
        self._asset = value

    def pose(self) -> tuple[float, float]:
        return float(self.yaw.value()), float(self.pitch.value())

    def set_pose(self, yaw: float, pitch: float, render: bool = False) -> None:
        """Move the sliders without a render per slider (a session being loaded, Front)."""
        for s, v in ((self.yaw, yaw), (self.pitch, pitch)):
            s.blockSignals(True)
            s.setValue(max(s.minimum(), min(s.maximum(), float(v))))
            s.blockSignals(False)
        self.poseChanged.emit(*self.pose())
        if render:
            self.request_full_render()

    @property
    def dragging(self) -> bool:
        sliders = (getattr(s, "_slider", s) for s in (self.yaw, self.pitch))
        return self._dragging or any(s.isSliderDown() for s in sliders)

    # -- interaction -------------------------------------------------------------------------
    def _slider_moved(self, *_) -> None:
        self.poseChanged.emit(*self.pose())
        if self.dragging:
            self._preview()
        else:
            self.request_full_render()

    def _view_dragged(self, dyaw: float, dpitch: float, finished: bool) -> None:
        self._dragging = not finished
        y, p = self.pose()
        self.set_pose(y + dyaw, p + dpitch)
        if finished:
            self.request_full_render()
        else:
            self._preview()

    def reset_view(self) -> None:
        self.mode.setCurrentIndex(0)
        self.snap_front()

    def snap_front(self) -> None:
        self.set_pose(0.0, 0.0, render=True)

    def _mode_changed(self, *_) -> None:
        had_labels = self.last_render is not None and self.last_render[1] is not None
        self._show_render()
        if self.mode.currentText() != "RGB" and not had_labels:
            self.request_full_render()         # the one on screen was rendered without semantics

    # -- renders -----------------------------------------------------------------------------
    def _request_preview(self) -> None:
        self.request_render(self.preview_resolution, preview=True)

    def request_full_render(self) -> int:
        self._dragging = False
        self._preview.cancel()        # a trailing throttled preview must not supersede this
        return self.request_render(self.full_resolution)

    def request_render(self, resolution: int, preview: bool = False) -> int:
        if self._asset is None:
            return 0
        yaw, pitch = self.pose()
        job = RenderJob(self._asset, yaw, pitch, int(resolution), semantic=self.mode.currentText() != "RGB",
                        preview=preview)
        self._render_jobs[job.id] = job
        self.last_render_id = self.worker.submit(job)
        return job.id

    def _on_render(self, jid: int, out, seconds: float) -> None:
        # Newest wins: a result older than the one on screen is stale and dropped; a preview that
        # arrives while a newer request is still queued is shown (the user sees motion while dragging).
        job = self._render_jobs.pop(jid, None)
        if job is None or jid <= self.shown_render_id:
            self.stale_dropped += 1
            return
        self.shown_render_id = jid
        for old in [k for k in self._render_jobs if k < jid]:
            del self._render_jobs[old]      # superseded; the worker dropped or will be ignored
        self.last_render = out
        self.renders_received.append((jid, job.yaw, job.pitch, job.resolution))
        self._show_render()
        if job.preview:
            now = time.perf_counter()
            self._frame_times.append(now)
            if len(self._frame_times) >= 2:
                span = self._frame_times[-1] - self._frame_times[0]
                self.fps = (len(self._frame_times) - 1) / span if span > 0 else 0.0
                self.fps_label.setText(f"{self.fps:.0f} fps, {job.resolution} px")
        else:
            self._frame_times.clear()
            self.fps_label.setText(f"{job.resolution} px in {seconds * 1000:.0f} ms")
        self.frameShown.emit("preview" if job.preview else "full", float(seconds))

    def displayed(self) -> np.ndarray | None:
        """The image the viewport shows now (what the mode asks for)."""
        if self.last_render is None:
            return None
        rgb, labels = self.last_render
        rgb = np.asarray(rgb)[..., :3]
        mode = self.mode.currentText()
        if labels is None or mode == "RGB":
            return rgb
        if mode == "Semantics":
            return colorize(labels)
        return np.concatenate([rgb, colorize(labels)], 1)

    def _show_render(self, *_) -> None:
        img = self.displayed()
        if img is not None:
            self.view.set_image(img)

    # -- its own window ------------------------------------------------------------------------
    def toggle_window(self) -> None:
        """Into a window of its own (as large as the user likes) and back into its place.  The
        panel always has a Qt parent (the window, then its old place again), so that Qt, not
        Python, owns it throughout and deletes it once."""
        if self._window is None:
            parent = self.parentWidget()
            if parent is None:
                return
            index = parent.indexOf(self) if isinstance(parent, QSplitter) else -1
            self._home = (parent, index)
            win = QWidget(None, Qt.WindowType.Window)
            win.setWindowTitle("TriFace Studio - Orbit")
            QVBoxLayout(win).setContentsMargins(0, 0, 0, 0)
            win.layout().addWidget(self)
            win.resize(max(self.width(), 1100), max(self.height(), 700))
            win.show()
            self._window = win
            self.pop_button.setText("Put back")
        else:
            parent, index = self._home
            win, self._window, self._home = self._window, None, None
            if isinstance(parent, QSplitter):
                parent.insertWidget(max(index, 0), self)
            elif parent.layout() is not None:
                parent.layout().addWidget(self)
            else:
                self.setParent(parent)
            self.show()
            win.close()
            win.deleteLater()
            self.pop_button.setText("Pop out")

    @property
    def popped_out(self) -> bool:
        return self._window is not None
