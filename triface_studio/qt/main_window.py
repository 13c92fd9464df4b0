"""The main window: wiring between the document (:class:`~triface_studio.document.EditSetup`), the
panels bound to it, the controllers (edit, export, session files) and the job router; the orbit
viewport."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
from PySide6.QtCore import QByteArray, QSettings, Qt
from PySide6.QtGui import QAction, QKeySequence, QShortcut, QUndoStack
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QInputDialog,
                               QLabel, QMainWindow, QMessageBox, QProgressBar, QPushButton, QScrollArea, QSpinBox,
                               QSplitter, QToolBar, QVBoxLayout, QWidget)

from triface_studio.document import Autosave, EditSetup, JobBoard
from triface_studio.pipeline.requests import TIERS, EditRequest, ReferenceSpec

from .controllers import EditController, ExportController, SessionController
from .export_dialog import ExportOptions
from .orbit_panel import OrbitPanel
from .panels import ImagePanel, ReferencePanel, ResultPanel, icon
from .photos import PhotoController
from .router import JobRouter
from .setup_bar import SetupBar
from .worker import PipelineWorker

IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.webp *.bmp *.tif *.tiff)"
MAX_RECENT = 10
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


class MainWindow(QMainWindow):
    """``pipeline_factory()`` makes the worker's pipeline; ``tier_factory(tier, device)`` makes the
    factory for another tier (the Tier box, and after the Models dialog imported a model); by
    default both are :func:`default_pipeline_factory`."""

    def __init__(self, pipeline_factory: Callable | None = None, settings: QSettings | None = None,
                 orbit_resolution: int = 512, preview_resolution: int = 512, device_label: str = "",
                 edit_resolution: int = 256, tier_factory: Callable | None = None, device: str | None = None):
        super().__init__()
        self.setWindowTitle("TriFace Studio")
        self.setAcceptDrops(True)
        self.settings = settings or app_settings()
        self.orbit_resolution, self.preview_resolution = orbit_resolution, preview_resolution
        self.edit_resolution = edit_resolution      # the edit's render of T^blend (EditRequest)
        self.undo_stack = QUndoStack(self)
        tier = str(self.settings.value("tier", "bundled"))
        self.tier_factory = tier_factory or (None if pipeline_factory else default_pipeline_factory)
        self._device = device
        self.setup = self._new_setup(tier)
        self.last_error = ""
        self.timings: dict[str, float] = {}
        self.choose_face: Callable[[list[str]], int | None] = self._ask_face
        # every yes/no/cancel question goes through here (tests answer it): (title, text, buttons, default) -> button
        self.ask: Callable[[str, str, Button, Button], Button] = self._ask_user
        self.jobs = JobBoard()          # the running edits and exports: the one source of "a job is running"
        self.references: list[ReferencePanel] = []

        self.worker = PipelineWorker(pipeline_factory or default_pipeline_factory(tier, device))
        self._pipeline_tier = self.setup.tier         # the tier the worker's factory makes
        self.router = JobRouter(self.worker, self.jobs, self._unrouted_failure)
        self.worker.start()
        self.edits = EditController(self)
        self.exports = ExportController(self)
        self.sessions = SessionController(self, Autosave(config_dir() / "recovery"))
        self.photos = PhotoController(self)

        self._build_ui(device_label)
        self._build_menus()
        self._restore()
        self.jobs.subscribe(self._refresh_state)
        self._bind(self.setup)

    # -- the document --------------------------------------------------------------------
    def _new_setup(self, tier: str) -> EditSetup:
        return EditSetup(tier=tier if tier in TIERS else EditRequest.tier,
                         render_resolution=int(self.edit_resolution))

    def _bind(self, setup: EditSetup) -> None:
        """Make ``setup`` the window's document: every widget shows it and writes into it."""
        self.setup = setup
        setup.subscribe(self._setup_changed)
        self.setup_bar.bind(setup)
        if setup.tier != self._pipeline_tier:
            self.reload_pipeline()
        self._refresh_state()

    def _setup_changed(self, what: str) -> None:
        self.sessions.changed(what)
        if what == "references":
            self.photos.show_references()
        if what == "settings" and self.setup.tier != self._pipeline_tier:
            self.reload_pipeline()
        self._refresh_state()

    def reload_pipeline(self) -> None:
        """A fresh pipeline for the setup's tier on the next job (after the running one): a tier
        chosen in the Tier box, or models imported in the Models dialog, are used without a restart."""
        self._pipeline_tier = self.setup.tier
        self.worker.set_factory(None if self.tier_factory is None else self.tier_factory(self.setup.tier, self._device))
        self.settings.setValue("tier", self.setup.tier)
        self.device_label.setText(f"Device: (loads on next use) | tier: {self.setup.tier}")

    @property
    def result(self):
        return self.setup.result

    @result.setter
    def result(self, value) -> None:
        self.setup.set_result(value)

    # ---------------------------------------------------------------------------------- UI
    def _build_ui(self, device_label: str) -> None:
        self.identity = ImagePanel("Identity", self.undo_stack, (255, 64, 64))
        self.identity.tool("mdi6.folder-open-outline", "Open identity photo", lambda: self.open_identity_dialog())
        self.photos.mask_tools(self.identity)
        self.identity.canvas.setToolTip("Paint on the identity to protect those parts: they are kept exactly "
                                        "as in the photo, whatever the references bring")
        self.identity.canvas.maskChanged.connect(lambda: self.setup.masks_changed())
        self.identity_brush = QComboBox()
        self.identity_brush.addItems(["Protect", "Bare scalp"])
        self.identity_brush.setToolTip("What the brush paints on the identity: parts to protect (kept as in the "
                                       "photo) or where old hair the new hair does not cover becomes bare skin")
        self.identity_brush.currentIndexChanged.connect(lambda *_: self.photos.bind_identity_masks())
        self.identity.head.addWidget(self.identity_brush)

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
        self.brush_size.valueChanged.connect(lambda *_: self.photos.brush_changed())
        tb.addWidget(self.brush_size)
        tb.addWidget(QLabel(" Hardness "))
        self.hardness = QDoubleSpinBox(minimum=0.0, maximum=1.0, value=0.8, singleStep=0.1)
        self.hardness.valueChanged.connect(lambda *_: self.photos.brush_changed())
        tb.addWidget(self.hardness)
        self.erase = QCheckBox("Erase")
        self.erase.toggled.connect(lambda *_: self.photos.brush_changed())
        tb.addWidget(self.erase)
        tb.addSeparator()
        settings_bar = QToolBar("Edit settings")
        settings_bar.setObjectName("edit-settings")
        self.addToolBar(settings_bar)
        self.setup_bar = SetupBar(settings_bar, self.show_error)
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
        self._act(f, "Open Session...", self.sessions.open_dialog, "Ctrl+Shift+O")
        self._act(f, "&Save Session", self.sessions.save_dialog, QKeySequence.StandardKey.Save)
        self._act(f, "Save Session &As...", lambda: self.sessions.save_dialog(as_new=True),
                  QKeySequence.StandardKey.SaveAs)
        f.addSeparator()
        self._act(f, "&Export...", self.exports.open_dialog, "Ctrl+E")
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
        self.photos.brush_changed()

    def _save_settings(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.setValue("brush/size", self.brush_size.value())
        self.settings.setValue("brush/hardness", self.hardness.value())
        self.settings.sync()

    def recent_files(self) -> list[str]:
        v = self.settings.value("recent", [])
        if isinstance(v, str):
            v = [v]
        return [str(x) for x in (v or [])]

    def add_recent(self, path: str) -> None:
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

    def _unrouted_failure(self, jid: int, kind: str, message: str) -> None:
        if kind == "render" and jid != self.last_render_id:
            return
        self.show_error(message, "Could not " + {"render": "render"}.get(kind, "finish"))

    # ------------------------------------------------------------------------- files
    def open_any(self, path: str) -> None:
        """A session (``.triface``, a session folder) or an ``edit.json``, else a photo."""
        p = Path(path)
        if p.suffix.lower() in (".triface", ".json") or p.is_dir():
            self.sessions.open(path)
        else:
            self.open_image(path)

    def open_image(self, path: str) -> None:
        """An identity when none is open, else a new reference."""
        if not self.setup.identity:        # set as soon as an identity is being opened
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
        return self.photos.open_identity(path, mask)

    def add_reference(self, path: str = "", attributes=(), mask_mode=ReferenceSpec.mask_mode,
                      mask=None) -> ReferencePanel:
        return self.photos.add_reference(path, attributes, mask_mode, mask)

    def remove_reference(self, panel: ReferencePanel) -> None:
        self.photos.remove_reference(panel)

    def clear_mask(self, panel: ImagePanel) -> None:
        self.photos.clear_mask(panel)

    def load_mask(self, panel: ImagePanel, path: str) -> None:
        self.photos.load_mask(panel, path)

    # ---------------------------------------------------------------------------- edit
    def build_request(self):
        return self.edits.build_request()

    def run_edit(self) -> int:
        return self.edits.run()

    def show_result(self, result) -> None:
        """The result panel and the orbit show ``result`` (None: the identity's own head)."""
        self.result_panel.set_result(result)
        if result is not None:
            self.orbit_asset = result.t_com
            self._update_timings()
            self.request_full_render()

    def _refresh_state(self, *_) -> None:
        """Everything derived from the document and the job board: buttons, progress, title, banners."""
        busy_edit = self.jobs.busy("edit")
        self.run_button.setEnabled(not busy_edit)
        self.cancel_button.setEnabled(self.jobs.busy())
        self.progress.setVisible(self.jobs.busy())
        s = self.setup
        name = Path(s.path).name if s.path else "untitled"
        self.setWindowTitle(f"TriFace Studio - {name}{'*' if s.dirty and s.has_work else ''}")
        stale = s.result_out_of_date
        if stale:
            text = (f"Out of date: this is the edit of {Path(s.result_identity).name or 'another photo'}; "
                    "run the edit again for the identity now open")
            for b in (self.result_panel.stale, self.orbit_stale):
                b.setText(text)
        self.result_panel.stale.setVisible(stale)
        self.orbit_stale.setVisible(stale)

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

    def _pose_to_session(self, yaw: float, pitch: float) -> None:
        self.setup.set_view(yaw, pitch)

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
        self.exports.open_dialog()

    def start_export(self, opts: ExportOptions, confirmed: bool = False) -> int:
        return self.exports.start(opts, confirmed)

    # --------------------------------------------------------------------------- sessions
    def save_session(self, path: str) -> bool:
        return self.sessions.save(path)

    def open_session(self, path: str) -> bool:
        return self.sessions.open(path)

    def autosave_now(self) -> None:
        self.sessions.autosave_now()

    @property
    def autosave(self) -> Autosave:
        return self.sessions.autosave

    def offer_recovery(self) -> None:
        self.sessions.offer_recovery()

    def load_setup(self, s: EditSetup) -> None:
        """Show ``s`` (an opened session, an edit.json or a recovered setup): panels for its
        photos and masks, its settings and view, and its result."""
        for p in list(self.references):
            self.references.remove(p)
            p.setParent(None)
            p.deleteLater()
        self.undo_stack.clear()
        self.identity.fa = self.identity.image = None
        self.identity.path = ""
        self.identity.canvas.set_crop(None)
        self.orbit_asset = None
        self._bind(s)
        for sl, v in ((self.yaw, s.yaw), (self.pitch, s.pitch)):
            sl.blockSignals(True)
            sl.setValue(float(v))
            sl.blockSignals(False)
        self.show_result(s.result)
        if s.identity:
            self.identity.path = s.identity
            self.identity.pending_mask = s.bare_mask if self.identity_brush.currentIndex() == 1 else s.identity_mask
            self.photos.analyze(self.identity, s.identity, ask=s.identity_face_index is None,
                                face_index=s.identity_face_index,
                                failed=lambda kind, msg: self.show_error(msg, "Could not open the identity"))
        for r in s.references:
            self.photos.reference_panel(r)
        self._refresh_state()

    def open_models_dialog(self) -> None:
        try:
            from .models_dialog import ModelsDialog
        except Exception as e:
            self.show_error(f"The models dialog is not available: {e}")
            return
        dlg = ModelsDialog(self)
        dlg.modelsChanged.connect(self.reload_pipeline)      # an imported model is used without a restart
        dlg.exec()

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
        self.sessions.timer.stop()
        if self.worker.isRunning():
            self.worker.stop()

    def may_close(self) -> bool:
        return self.sessions.may_close()

    def closeEvent(self, ev):
        if not self.may_close():
            ev.ignore()
            return
        self._save_settings()
        self.exports.close_progress()
        self.shutdown()                    # cancels the running job and joins the worker
        super().closeEvent(ev)
