"""The main window: identity, references, result, orbit viewport; worker, menus, settings."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence, QShortcut, QUndoStack
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QInputDialog,
                               QLabel, QMainWindow, QMessageBox, QProgressBar, QProgressDialog, QPushButton,
                               QScrollArea, QSpinBox, QSplitter, QToolBar, QVBoxLayout, QWidget)

from triface_studio.document import (Autosave, JobBoard, Reference, Session, SessionError, load_mask_png,
                                     save_mask_png)

from .export_dialog import ExportDialog, ExportOptions, run_export
from .orbit_panel import OrbitPanel
from .panels import ImagePanel, ReferencePanel, ResultPanel, icon
from .worker import CallJob, EditJob, PipelineWorker

IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.webp *.bmp *.tif *.tiff)"
SESSION_FILTER = "TriFace sessions (*.triface)"
MAX_RECENT = 10
AUTOSAVE_DELAY_MS = 2000          # the recovery file follows a change after this quiet time
Button = QMessageBox.StandardButton


def config_dir() -> Path:
    env = os.environ.get("TRIFACE_CONFIG_DIR")
    if env:
        return Path(env)
    import platformdirs
    return Path(platformdirs.user_config_dir("triface-studio", appauthor=False))


def app_settings() -> QSettings:
    """QSettings in an INI file under the config folder (TRIFACE_CONFIG_DIR when set)."""
    d = config_dir()
    d.mkdir(parents=True, exist_ok=True)
    return QSettings(str(d / "triface-studio.ini"), QSettings.Format.IniFormat)


def default_pipeline_factory(tier: str = "bundled", device: str | None = None) -> Callable:
    def make():
        import torch

        from triface_studio.pipeline import EditPipeline
        dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
        return EditPipeline(tier=tier, device=dev)
    return make


def _crop_around(image: np.ndarray, bbox, scale: float = 2.2) -> np.ndarray:
    """A square crop of ``image`` centred on a face box (to analyse a chosen face on its own)."""
    x0, y0, x1, y1 = [float(v) for v in bbox[:4]]
    cx, cy, s = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * scale / 2
    H, W = image.shape[:2]
    a, b = int(max(0, cx - s)), int(min(W, cx + s))
    c, d = int(max(0, cy - s)), int(min(H, cy + s))
    return np.ascontiguousarray(image[c:d, a:b])


class MainWindow(QMainWindow):
    def __init__(self, pipeline_factory: Callable | None = None, settings: QSettings | None = None,
                 orbit_resolution: int = 512, preview_resolution: int = 512, device_label: str = "",
                 edit_resolution: int = 256):
        super().__init__()
        self.setWindowTitle("TriFace Studio")
        self.setAcceptDrops(True)
        self.settings = settings or app_settings()
        self.orbit_resolution, self.preview_resolution = orbit_resolution, preview_resolution
        self.edit_resolution = edit_resolution      # the edit's render of T^blend (EditRequest)
        self.undo_stack = QUndoStack(self)
        self.session = Session()
        self.autosave = Autosave(config_dir() / "recovery")
        self.result = None
        self.last_error = ""
        self.timings: dict[str, float] = {}
        self._calls: dict[int, tuple] = {}
        self._edit_id = 0
        self._export_id = 0
        self._export_dialog: QProgressDialog | None = None
        self.choose_face: Callable[[list[str]], int | None] = self._ask_face
        # every yes/no/cancel question goes through here (tests answer it): (title, text, buttons, default) -> button
        self.ask: Callable[[str, str, Button, Button], Button] = self._ask_user
        self.jobs = JobBoard()          # the running edits and exports: the one source of "a job is running"
        self.references: list[ReferencePanel] = []

        self.worker = PipelineWorker(pipeline_factory or default_pipeline_factory(
            str(self.settings.value("tier", "bundled"))))
        self.worker.edit_done.connect(self._on_edit)
        self.worker.call_done.connect(self._on_call)
        self.worker.failed.connect(self._on_failed)
        self.worker.cancelled.connect(self._on_cancelled)
        self.worker.progress.connect(self._on_progress)
        for sig in (self.worker.edit_done, self.worker.call_done, self.worker.failed):   # after the handlers above
            sig.connect(lambda jid, *_: self.jobs.end(jid))
        self.worker.cancelled.connect(self.jobs.end)
        self.worker.start()

        self._build_ui(device_label)
        self._build_menus()
        self._restore()
        # debounced: every change restarts it, the recovery file is written once the user pauses
        self._autosave_timer = QTimer(self, interval=AUTOSAVE_DELAY_MS, singleShot=True, timeout=self.autosave_now)
        self.jobs.subscribe(self._refresh_state)
        self._refresh_state()

    # ---------------------------------------------------------------------------------- UI
    def _build_ui(self, device_label: str) -> None:
        self.identity = ImagePanel("Identity", self.undo_stack, (255, 64, 64))
        self.identity.tool("mdi6.folder-open-outline", "Open identity photo", lambda: self.open_identity_dialog())
        self._mask_tools(self.identity)
        self.identity.canvas.setToolTip("Paint on the identity to protect those parts: they are kept exactly "
                                        "as in the photo, whatever the references bring")
        self.identity.canvas.maskChanged.connect(self._mark_dirty)

        self.ref_box = QWidget()
        self.ref_layout = QVBoxLayout(self.ref_box)
        self.ref_layout.setContentsMargins(0, 0, 0, 0)
        add = QPushButton("Add reference...")
        ic = icon("mdi6.plus")
        if ic is not None:
            add.setIcon(ic)
        add.clicked.connect(lambda: self.add_reference_dialog())
        self.ref_layout.addWidget(add)
        self.ref_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.ref_box)

        left = QSplitter(Qt.Orientation.Vertical)
        left.addWidget(self.identity)
        left.addWidget(scroll)
        left.setStretchFactor(0, 1)
        left.setStretchFactor(1, 1)
        left.setSizes([400, 400])

        self.result_panel = ResultPanel()

        self.orbit_panel = OrbitPanel(self.worker, self.orbit_resolution, self.preview_resolution)
        self.orbit_panel.poseChanged.connect(self._pose_to_session)
        self.orbit_panel.frameShown.connect(self._orbit_frame_shown)
        # the orbit's widgets under their old names (menus, sessions and tests use them)
        op = self.orbit_panel
        self.orbit, self.orbit_mode, self.orbit_stale, self.yaw, self.pitch = op.view, op.mode, op.stale, op.yaw, op.pitch

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(self.result_panel)
        split.addWidget(self.orbit_panel)
        split.setSizes([380, 380, 640])
        self.splitter = split
        self.setCentralWidget(split)

        tb = QToolBar("Tools")
        tb.setObjectName("tools")
        self.addToolBar(tb)
        self.run_button = QPushButton("Run edit")
        ic = icon("mdi6.play")
        if ic is not None:
            self.run_button.setIcon(ic)
        self.run_button.clicked.connect(self.run_edit)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.worker.cancel)
        tb.addWidget(self.run_button)
        tb.addWidget(self.cancel_button)
        tb.addSeparator()
        tb.addWidget(QLabel(" Brush "))
        self.brush_size = QSpinBox(minimum=1, maximum=200, value=16)
        self.brush_size.setToolTip("Brush radius in crop pixels ([ and ])")
        self.brush_size.valueChanged.connect(self._brush_changed)
        tb.addWidget(self.brush_size)
        tb.addWidget(QLabel(" Hardness "))
        self.hardness = QDoubleSpinBox(minimum=0.0, maximum=1.0, value=0.8, singleStep=0.1)
        self.hardness.valueChanged.connect(self._brush_changed)
        tb.addWidget(self.hardness)
        self.erase = QCheckBox("Erase")
        self.erase.toggled.connect(self._brush_changed)
        tb.addWidget(self.erase)
        tb.addSeparator()
        tb.addWidget(QLabel(" Refiner "))
        self.refiner = QComboBox()
        self.refiner.addItems(["classical", "sdedit"])
        tb.addWidget(self.refiner)
        QShortcut(QKeySequence("["), self, activated=lambda: self.brush_size.setValue(max(1, int(self.brush_size.value() / 1.25))))
        QShortcut(QKeySequence("]"), self, activated=lambda: self.brush_size.setValue(int(self.brush_size.value() * 1.25) + 1))

        sb = self.statusBar()
        self.device_label = QLabel(device_label or "Device: (loads on first use)")
        self.timing_label = QLabel("")
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(200)
        self.progress.setRange(0, 1000)
        self.progress.hide()
        sb.addPermanentWidget(self.timing_label)
        sb.addPermanentWidget(self.progress)
        sb.addPermanentWidget(self.device_label)

    def _mask_tools(self, panel: ImagePanel) -> None:
        panel.tool("mdi6.eraser-variant", "Clear the mask", lambda: self.clear_mask(panel))
        panel.tool("mdi6.file-image-plus-outline", "Load a mask PNG", lambda: self.load_mask_dialog(panel))
        panel.tool("mdi6.content-save-outline", "Save the mask as PNG", lambda: self.save_mask_dialog(panel))

    def _build_menus(self) -> None:
        mb = self.menuBar()
        f = mb.addMenu("&File")
        self._act(f, "Open &Identity...", self.open_identity_dialog, QKeySequence.StandardKey.Open)
        self._act(f, "Add &Reference...", self.add_reference_dialog, "Ctrl+R")
        self.samples_menu = f.addMenu("Open &Sample")
        from triface_studio.resources import sample_images
        for p in sample_images():
            a = self.samples_menu.addAction(p.stem.replace("_", " ").title())
            a.triggered.connect(lambda _=False, p=p: self.open_sample(str(p)))
        self.samples_menu.setEnabled(bool(sample_images()))
        self.recent_menu = f.addMenu("Recent &Files")
        f.addSeparator()
        self._act(f, "Open Session...", self.open_session_dialog, "Ctrl+Shift+O")
        self._act(f, "&Save Session", self.save_session_dialog, QKeySequence.StandardKey.Save)
        self._act(f, "Save Session &As...", lambda: self.save_session_dialog(as_new=True), QKeySequence.StandardKey.SaveAs)
        f.addSeparator()
        self._act(f, "&Export...", self.export_dialog, "Ctrl+E")
        f.addSeparator()
        self._act(f, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        e = mb.addMenu("&Edit")
        undo = self.undo_stack.createUndoAction(self, "&Undo")
        undo.setShortcut(QKeySequence("Ctrl+Z"))
        redo = self.undo_stack.createRedoAction(self, "&Redo")
        redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        e.addAction(undo)
        e.addAction(redo)
        self._act(e, "Run Edit", self.run_edit, "Ctrl+Return")
        self._act(e, "Cancel", self.worker.cancel, "Esc")
        v = mb.addMenu("&View")
        self._act(v, "Reset Orbit", self.reset_view, "Ctrl+0")
        self._act(v, "Snap to Front", self.snap_front, "F")
        m = mb.addMenu("&Models")
        self.models_action = self._act(m, "Manage &Models...", self.open_models_dialog)
        try:
            from . import models_dialog  # noqa: F401
        except Exception:
            self.models_action.setEnabled(False)
            self.models_action.setText("Manage Models... (not available)")
        h = mb.addMenu("&Help")
        self._act(h, "&About", self.about)
        self._rebuild_recent()

    def _act(self, menu, text, slot, shortcut=None) -> QAction:
        a = QAction(text, self)
        if shortcut is not None:
            a.setShortcut(QKeySequence(shortcut))
        a.triggered.connect(lambda _=False: slot())
        menu.addAction(a)
        return a

    # ------------------------------------------------------------------------- settings
    def _restore(self) -> None:
        g = self.settings.value("window/geometry")
        if isinstance(g, QByteArray):
            self.restoreGeometry(g)
        else:
            self.resize(1400, 820)
        s = self.settings.value("window/state")
        if isinstance(s, QByteArray):
            self.restoreState(s)
        self.brush_size.setValue(int(self.settings.value("brush/size", 16)))
        self.hardness.setValue(float(self.settings.value("brush/hardness", 0.8)))
        self.refiner.setCurrentText(str(self.settings.value("refiner", "classical")))
        self._brush_changed()

    def _save_settings(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.setValue("brush/size", self.brush_size.value())
        self.settings.setValue("brush/hardness", self.hardness.value())
        self.settings.setValue("refiner", self.refiner.currentText())
        self.settings.sync()

    def recent_files(self) -> list[str]:
        v = self.settings.value("recent", [])
        if isinstance(v, str):
            v = [v]
        return [str(x) for x in (v or [])]

    def _add_recent(self, path: str) -> None:
        r = [p for p in self.recent_files() if p != path]
        self.settings.setValue("recent", [path] + r[: MAX_RECENT - 1])
        self._rebuild_recent()

    def _rebuild_recent(self) -> None:
        self.recent_menu.clear()
        for p in self.recent_files():
            a = self.recent_menu.addAction(Path(p).name)
            a.setToolTip(p)
            a.triggered.connect(lambda _=False, p=p: self.open_any(p))
        self.recent_menu.setEnabled(bool(self.recent_files()))

    # --------------------------------------------------------------------------- messages
    def show_error(self, message: str, title: str = "TriFace Studio") -> None:
        """Non-blocking message box (tests read ``last_error``)."""
        self.last_error = message
        self.statusBar().showMessage(message, 10_000)
        box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    def about(self) -> None:
        from triface_studio import __version__
        QMessageBox.about(self, "About TriFace Studio",
                          f"TriFace Studio {__version__}\nReference-based, 3D-aware local facial attribute editing.")

    def _ask_user(self, title: str, text: str, buttons: Button, default: Button) -> Button:
        box = QMessageBox(QMessageBox.Icon.Question, title, text, buttons, self)
        box.setDefaultButton(default)
        return Button(box.exec())

    def _ask_face(self, names: list[str]) -> int | None:
        item, ok = QInputDialog.getItem(self, "Several faces", "Which face?", names, 0, False)
        return names.index(item) if ok else None

    # ------------------------------------------------------------------------- files
    def open_any(self, path: str) -> None:
        if path.lower().endswith(".triface") or Path(path).is_dir():
            self.open_session(path)
        else:
            self.open_image(path)

    def open_image(self, path: str) -> None:
        """An identity when none is open, else a new reference."""
        if not self.identity.path:        # set as soon as an identity is being opened
            self.open_identity(path)
        else:
            self.add_reference(path)

    def open_sample(self, path: str) -> None:
        """File > Open Sample: the sample becomes the identity (replacing one that is open), never a
        reference; a result of the previous identity stays visible, marked out of date."""
        self.open_identity(path)

    def open_identity_dialog(self) -> None:
        p, _ = QFileDialog.getOpenFileName(self, "Open identity photo", "", IMAGE_FILTER)
        if p:
            self.open_identity(p)

    def add_reference_dialog(self) -> None:
        p, _ = QFileDialog.getOpenFileName(self, "Add reference photo", "", IMAGE_FILTER)
        if p:
            self.add_reference(p)

    def open_identity(self, path: str, mask: np.ndarray | None = None) -> int:
        self._identity_before = self.identity.path if self.identity.fa is not None else ""
        self.identity.pending_mask = mask
        self.identity.path = self.session.identity_path = path     # a result of another face is out of date now
        self._refresh_state()
        self._identity_job = self._analyze(self.identity, path)
        return self._identity_job

    def add_reference(self, path: str = "", attributes=(), mask_mode="add",
                      mask: np.ndarray | None = None) -> ReferencePanel:
        panel = ReferencePanel(len(self.references) + 1, self.undo_stack, attributes, mask_mode)
        self._mask_tools(panel)
        panel.removeRequested.connect(self.remove_reference)
        panel.predictedRequested.connect(self.update_predicted)
        panel.canvas.maskChanged.connect(self._mark_dirty)
        panel.picker.changed.connect(self._mark_dirty)
        self._apply_brush(panel.canvas)
        self.references.append(panel)
        self.ref_layout.insertWidget(self.ref_layout.count() - 2, panel)
        panel.pending_mask = mask
        if path:
            self._analyze(panel, path)
        self._mark_dirty()
        return panel

    def remove_reference(self, panel: ReferencePanel) -> None:
        if panel in self.references:
            self.references.remove(panel)
            panel.setParent(None)
            panel.deleteLater()
            self.undo_stack.clear()   # its strokes point at a mask that is gone
            for i, p in enumerate(self.references):
                p.title.setText(f"<b>Reference {i + 1}</b>")
            self._mark_dirty()

    def _analyze(self, panel: ImagePanel, path: str, image: np.ndarray | None = None, ask: bool = True) -> int:
        """Analyse (and for the identity encode) on the worker.  Several faces -> ``choose_face``;
        the chosen face is then analysed on a crop around it (``ask=False``: no second question),
        so that the edit, which analyses by image content, uses the same face."""
        role = "identity" if panel is self.identity else "reference"

        def job(pipe, progress, cancel, path=path, image=image):
            from triface_studio.core.images import load_image
            arr = image if image is not None else pipe.load(path, Path(path).name, role)[0]
            fa = pipe.analyze(arr, Path(path).name, role)
            asset, problem = None, ""
            if role == "identity":
                from triface_studio.pipeline.errors import EditError
                try:
                    asset = pipe.encode(fa)
                except EditError as e:     # e.g. no model tier yet: the photo still opens
                    problem = str(e)
            boxes = None
            if ask and int(getattr(fa, "num_faces", 1) or 1) > 1:
                try:
                    boxes = pipe.analyzer.detect(arr)
                except Exception:
                    boxes = None
            device = f"Device: {pipe.device} | tier: {pipe.tier_name}"
            return arr, fa, asset, device, problem, boxes

        self.statusBar().showMessage(f"Analysing {Path(path).name}...")
        jid = self.worker.submit(CallJob(job, "analyze"))
        self._calls[jid] = (lambda val, panel=panel, path=path: self._analysed(panel, path, val))
        return jid

    def _analysed(self, panel: ImagePanel, path: str, val) -> None:
        arr, fa, asset, device, problem, boxes = val
        if panel is not self.identity and panel not in self.references:
            return
        if boxes is not None and len(boxes) > 1:
            idx = self.choose_face([f"Face {i + 1} ({int(b[2] - b[0])} px wide)" for i, b in enumerate(boxes)])
            if idx is not None and idx != 0:
                self._analyze(panel, path, _crop_around(arr, boxes[idx]), ask=False)
                return
        panel.set_analysis(path, arr, fa)
        self._apply_brush(panel.canvas)
        self.device_label.setText(device)
        if path:
            self._add_recent(path)
        self.statusBar().showMessage(f"Opened {Path(path).name}" + (f" ({'; '.join(fa.notes)})" if getattr(fa, "notes", None) else ""), 5000)
        if problem:
            self.show_error(f"{Path(path).name} opened, but the 3D view is not available: {problem}")
        if panel is self.identity:
            self.session.identity_path = path
            if self.result is None and asset is not None:
                self.orbit_asset = asset
                self.request_full_render()
        elif isinstance(panel, ReferencePanel) and panel.show_pred.isChecked():
            self.update_predicted(panel)
        self._mark_dirty()

    # --------------------------------------------------------------------------- masks
    def _brush_changed(self, *_):
        for c in self._canvases():
            self._apply_brush(c)

    def _apply_brush(self, canvas) -> None:
        canvas.brush_radius = float(self.brush_size.value())
        canvas.hardness = float(self.hardness.value())
        canvas.erase = self.erase.isChecked()

    def _canvases(self):
        return [self.identity.canvas] + [p.canvas for p in self.references]

    def clear_mask(self, panel: ImagePanel) -> None:
        if panel.canvas.mask is not None:
            panel.canvas.replace_mask(np.zeros_like(panel.canvas.mask), "Clear mask")

    def load_mask_dialog(self, panel: ImagePanel) -> None:
        p, _ = QFileDialog.getOpenFileName(self, "Load mask", "", "PNG masks (*.png)")
        if p:
            self.load_mask(panel, p)

    def load_mask(self, panel: ImagePanel, path: str) -> None:
        if panel.canvas.mask is None:
            self.show_error("Open an image before loading a mask.")
            return
        try:
            m = load_mask_png(path, panel.canvas.mask.shape[0])
        except (OSError, ValueError) as e:
            self.show_error(f"Could not read the mask {Path(path).name}: {e}")
            return
        panel.canvas.replace_mask(m, "Load mask")

    def save_mask_dialog(self, panel: ImagePanel) -> None:
        if panel.canvas.mask is None:
            return
        p, _ = QFileDialog.getSaveFileName(self, "Save mask", "mask.png", "PNG (*.png)")
        if p:
            try:
                save_mask_png(panel.canvas.mask, p)
            except OSError as e:
                self.show_error(f"Could not save the mask: {e}")

    def update_predicted(self, panel: ReferencePanel) -> None:
        if not panel.show_pred.isChecked() or panel.fa is None:
            panel.canvas.set_predicted(None)
            return
        attrs, fa = tuple(panel.picker.selected()), panel.fa
        if not attrs:
            panel.canvas.set_predicted(None)
            return
        jid = self.worker.submit(CallJob(lambda pipe, p, c: pipe.predicted_mask(fa, attrs), "predicted"))
        self._calls[jid] = lambda m, panel=panel: panel in self.references and panel.canvas.set_predicted(m)

    # ---------------------------------------------------------------------------- edit
    def build_request(self):
        from triface_studio.pipeline import EditRequest, ReferenceSpec, RefineSettings
        if self.identity.image is None:
            raise ValueError("Open an identity photo first.")
        refs = []
        for i, p in enumerate(self.references):
            if p.image is None:
                continue
            attrs = tuple(p.picker.selected())
            if not attrs:
                raise ValueError(f"Reference {i + 1}: choose at least one attribute.")
            m = p.canvas.mask
            user = m.copy() if m is not None and m.any() else None
            refs.append(ReferenceSpec(p.image, attrs, Path(p.path).name, user, p.mode.currentText()))
        if not refs:
            raise ValueError("Add a reference photo and choose what to take from it.")
        protect = self.identity.canvas.mask
        protect = protect.copy() if protect is not None and protect.any() else None
        return EditRequest(self.identity.image, refs, Path(self.identity.path).name, identity_mask=protect,
                           refine=RefineSettings(refiner=self.refiner.currentText()),
                           seed=int(self.session.settings.get("seed", 0)),
                           render_resolution=int(self.edit_resolution))

    def run_edit(self) -> int:
        try:
            req = self.build_request()
        except ValueError as e:
            self.show_error(str(e))
            return 0
        job = EditJob(req)
        self._edit_id, self._edit_identity = job.id, self.session.identity_path
        self._edit_started = time.perf_counter()
        self.progress.setValue(0)
        self.jobs.start(job.id, "edit")
        self.worker.submit(job)
        self.statusBar().showMessage("Editing...")
        return self._edit_id

    def _refresh_state(self, *_) -> None:
        """Everything derived from the session and the job board: buttons, progress, title, banners."""
        busy_edit = self.jobs.busy("edit")
        self.run_button.setEnabled(not busy_edit)
        self.cancel_button.setEnabled(self.jobs.busy())
        self.progress.setVisible(self.jobs.busy())
        s = self.session
        name = Path(s.path).name if s.path else "untitled"
        self.setWindowTitle(f"TriFace Studio - {name}{'*' if s.dirty else ''}")
        stale = s.result_out_of_date
        if stale:
            text = (f"Out of date: this is the edit of {Path(s.result_identity).name or 'another photo'}; "
                    "run the edit again for the identity now open")
            for b in (self.result_panel.stale, self.orbit_stale):
                b.setText(text)
        self.result_panel.stale.setVisible(stale)
        self.orbit_stale.setVisible(stale)

    def _on_edit(self, jid: int, result) -> None:
        if jid != self._edit_id:
            return
        self.result = result
        self.session.result_identity = self._edit_identity
        self.timings["edit"] = time.perf_counter() - self._edit_started
        self.result_panel.set_result(result)
        self.orbit_asset = result.t_com
        notes = "; ".join(getattr(result, "notes", []) or [])
        self.statusBar().showMessage("Edit done" + (f" ({notes})" if notes else ""), 8000)
        self._update_timings()
        self._refresh_state()
        self.request_full_render()

    def _on_progress(self, jid: int, stage: str, f: float) -> None:
        if jid == self._edit_id or jid == self._export_id:
            self.progress.setValue(int(1000 * max(0.0, min(1.0, f))))
            self.statusBar().showMessage(f"{stage}...")
            if jid == self._export_id and self._export_dialog is not None:
                self._export_dialog.setValue(int(1000 * max(0.0, min(1.0, f))))

    _identity_job = 0
    _identity_before = ""

    def _on_failed(self, jid: int, kind: str, message: str) -> None:
        self._calls.pop(jid, None)
        if jid == self._identity_job:     # back to the identity that is still shown (or none)
            self.identity.path = self.session.identity_path = self._identity_before
            self._refresh_state()
        if jid == self._export_id:
            self._close_export_progress()
        if kind == "render" and jid != self.last_render_id:
            return
        self.show_error(message, "Could not " + {"analyze": "open the image", "edit": "run the edit",
                                                 "export": "export", "render": "render"}.get(kind, "finish"))

    def _on_cancelled(self, jid: int) -> None:
        self._calls.pop(jid, None)
        if jid == self._export_id:
            self._close_export_progress()
        self.statusBar().showMessage("Cancelled", 5000)

    def _on_call(self, jid: int, kind: str, value) -> None:
        cb = self._calls.pop(jid, None)
        if cb is not None:
            cb(value)

    # ---------------------------------------------------------------------------- orbit
    # The orbit view is qt/orbit_panel.py; the window hands it the asset and keeps the pose in the session.
    @property
    def orbit_asset(self):
        return self.orbit_panel.asset

    @orbit_asset.setter
    def orbit_asset(self, asset) -> None:
        self.orbit_panel.asset = asset

    @property
    def last_render(self):
        return self.orbit_panel.last_render

    @property
    def renders_received(self) -> list:
        return self.orbit_panel.renders_received

    @property
    def last_render_id(self) -> int:
        return self.orbit_panel.last_render_id

    @property
    def stale_dropped(self) -> int:
        return self.orbit_panel.stale_dropped

    def _pose(self) -> tuple[float, float]:
        return self.orbit_panel.pose()

    def _pose_to_session(self, yaw: float, pitch: float) -> None:
        self.session.settings["yaw"], self.session.settings["pitch"] = yaw, pitch

    def _orbit_frame_shown(self, kind: str, seconds: float) -> None:
        if kind == "full":
            self.timings["render"] = seconds
            self._update_timings()

    def _orbit_dragged(self, dyaw: float, dpitch: float, finished: bool) -> None:
        self.orbit_panel._view_dragged(dyaw, dpitch, finished)

    def request_full_render(self) -> int:
        return self.orbit_panel.request_full_render()

    def request_render(self, resolution: int) -> int:
        return self.orbit_panel.request_render(resolution)

    def reset_view(self) -> None:
        self.orbit_panel.reset_view()

    def snap_front(self) -> None:
        self.orbit_panel.snap_front()

    def _update_timings(self) -> None:
        self.timing_label.setText("  ".join(f"{k} {v:.2f} s" for k, v in self.timings.items()))

    # --------------------------------------------------------------------------- export
    def export_dialog(self) -> None:
        if self.orbit_asset is None:
            self.show_error("Open an identity (and run an edit) before exporting.")
            return
        if not self._stale_export_confirmed():
            return
        d = ExportDialog(self, str(self.settings.value("export/folder", str(Path.home() / "triface-export"))))
        if d.exec():
            opts = d.options()
            self.settings.setValue("export/folder", opts.out_dir)
            self.start_export(opts, confirmed=True)

    def _stale_export_confirmed(self) -> bool:
        s = self.session
        if not s.result_out_of_date:
            return True
        r = self.ask("Export an out-of-date result?",
                     f"The result is the edit of {Path(s.result_identity).name or 'another photo'}, not of the "
                     f"identity now open ({Path(s.identity_path).name or 'none'}). Export it anyway?",
                     Button.Yes | Button.No, Button.No)
        return r == Button.Yes

    def start_export(self, opts: ExportOptions, confirmed: bool = False) -> int:
        """Export on the worker; a result of another identity than the open one is written only
        when the user agrees (``confirmed``: already asked)."""
        if self.orbit_asset is None:
            self.show_error("Nothing to export yet.")
            return 0
        if not confirmed and not self._stale_export_confirmed():
            return 0
        asset, result = self.orbit_asset, self.result
        job = CallJob(lambda pipe, progress, cancel: run_export(pipe, asset, result, opts, progress, cancel), "export")
        self._export_id = job.id
        self.jobs.start(job.id, "export")
        self.worker.submit(job)
        dlg = QProgressDialog("Exporting...", "Cancel", 0, 1000, self)
        dlg.setWindowModality(Qt.WindowModality.WindowModal)
        dlg.setAutoClose(False)
        dlg.setAutoReset(False)
        dlg.canceled.connect(self.worker.cancel)
        dlg.show()
        self._export_dialog = dlg
        self.exported_files: list = []
        self._calls[self._export_id] = self._export_done
        return self._export_id

    def _export_done(self, files) -> None:
        self.exported_files = list(files)
        self._close_export_progress()
        self.statusBar().showMessage(f"Exported {len(files)} files", 8000)

    def _close_export_progress(self) -> None:
        if self._export_dialog is not None:
            d, self._export_dialog = self._export_dialog, None
            d.canceled.disconnect()
            d.close()
            d.deleteLater()

    # --------------------------------------------------------------------------- sessions
    def sync_session(self) -> Session:
        s = self.session
        s.identity_path = self.identity.path
        s.identity_mask = None if self.identity.canvas.mask is None else self.identity.canvas.mask.copy()
        s.references = [Reference(p.path, p.picker.selected(), None if p.canvas.mask is None else p.canvas.mask.copy(),
                                  p.mode.currentText()) for p in self.references]
        s.settings.update({"yaw": self._pose()[0], "pitch": self._pose()[1], "refiner": self.refiner.currentText()})
        return s

    def save_session(self, path: str) -> None:
        try:
            self.sync_session().save(path)
        except (OSError, SessionError) as e:
            self.show_error(f"Could not save the session: {e}")
            return
        self.autosave.clear()              # saved: the recovery file has served its purpose
        self._add_recent(str(path))
        self._refresh_state()

    def save_session_dialog(self, as_new: bool = False) -> None:
        p = self.session.path
        if as_new or not p:
            p, _ = QFileDialog.getSaveFileName(self, "Save session", "edit.triface", SESSION_FILTER)
        if p:
            self.save_session(p)

    def open_session_dialog(self) -> None:
        p, _ = QFileDialog.getOpenFileName(self, "Open session", "", SESSION_FILTER)
        if p:
            self.open_session(p)

    def open_session(self, path: str) -> None:
        try:
            s = Session.load(path)
        except SessionError as e:
            self.show_error(str(e))
            return
        self.load_session(s)
        self._add_recent(str(path))

    def load_session(self, s: Session) -> None:
        for p in list(self.references):
            self.remove_reference(p)
        self.undo_stack.clear()
        self.result = None
        self.result_panel.set_result(None)
        self.identity.fa = self.identity.image = None
        self.identity.canvas.set_crop(None)
        self.session = s
        self.refiner.setCurrentText(str(s.settings.get("refiner", "classical")))
        for sl, k in ((self.yaw, "yaw"), (self.pitch, "pitch")):
            sl.blockSignals(True)
            sl.setValue(float(s.settings.get(k, 0.0)))
            sl.blockSignals(False)
        if s.identity_path:
            self.open_identity(s.identity_path, s.identity_mask)
        for r in s.references:
            self.add_reference(r.path, r.attributes, r.mask_mode, r.mask)
        self.session.dirty = bool(not s.path)      # a recovered session is unsaved work
        self._refresh_state()

    def _mark_dirty(self, *_):
        self.session.dirty = True
        self._autosave_timer.start()       # (re)start: debounced
        self._refresh_state()

    def autosave_now(self) -> None:
        if self.session.dirty and (self.identity.path or self.references):
            try:
                self.autosave.save(self.sync_session())
            except (OSError, SessionError):
                pass

    def offer_recovery(self) -> None:
        if not self.autosave.pending():
            return
        r = QMessageBox.question(self, "Recover session",
                                 "TriFace Studio did not close cleanly last time. Recover the unsaved session?")
        if r == QMessageBox.StandardButton.Yes:
            try:
                self.load_session(self.autosave.recover())
            except SessionError as e:
                self.show_error(str(e))
        self.autosave.clear()

    def open_models_dialog(self) -> None:
        try:
            from .models_dialog import ModelsDialog
        except Exception as e:
            self.show_error(f"The models dialog is not available: {e}")
            return
        ModelsDialog(self).exec()

    # --------------------------------------------------------------------------- drag and drop
    def dragEnterEvent(self, ev):
        if ev.mimeData().hasUrls():
            ev.acceptProposedAction()

    def dropEvent(self, ev):
        for url in ev.mimeData().urls():
            if url.isLocalFile():
                self.open_any(url.toLocalFile())
        ev.acceptProposedAction()

    # --------------------------------------------------------------------------- shutdown
    def shutdown(self) -> None:
        """Stop and join the worker (idempotent)."""
        self._autosave_timer.stop()
        if self.worker.isRunning():
            self.worker.stop()

    def has_unsaved_work(self) -> bool:
        return self.session.dirty and bool(self.identity.path or self.references)

    def may_close(self) -> bool:
        """Ask before losing anything: a running edit/export (stop it?), unsaved work (save / discard
        / cancel).  Answers are collected first, so that Cancel at any question changes nothing.
        The recovery file is removed only on Save or Discard."""
        if not self.worker.isRunning():
            return True                    # already shut down
        if self.jobs.busy():
            what = self.jobs.describe()
            r = self.ask("Close TriFace Studio", f"{what[0].upper()}{what[1:]} is running. Stop it and close?",
                         Button.Yes | Button.Cancel, Button.Cancel)
            if r != Button.Yes:
                return False
        if self.has_unsaved_work():
            r = self.ask("Unsaved changes", "Save the changes to this session before closing?",
                         Button.Save | Button.Discard | Button.Cancel, Button.Save)
            if r == Button.Cancel:
                return False
            if r == Button.Save:
                self.save_session_dialog()
                if self.session.dirty:     # the file dialog was cancelled or the save failed
                    return False
            else:
                self.autosave.clear()
        return True

    def closeEvent(self, ev):
        if not self.may_close():
            ev.ignore()
            return
        self._save_settings()
        self._close_export_progress()
        self.shutdown()                    # cancels the running job and joins the worker
        super().closeEvent(ev)
