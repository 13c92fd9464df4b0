"""Export dialog: PNG sequence (orbit path), GIF/MP4, single image, mesh."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox, QFileDialog,
                               QFormLayout, QHBoxLayout, QLineEdit, QPushButton, QSpinBox, QWidget)

from triface_studio.pipeline.requests import DEFAULT_PITCH_RANGE, DEFAULT_YAW_RANGE, LIMITS, ORBITS, VIDEOS


@dataclass(frozen=True)
class ExportOptions:
    out_dir: str
    frames: int = 24
    path: str = "turntable"           # turntable | yaw | pitch
    resolution: int = 256
    rgb: bool = True
    semantic: bool = True
    transparent: bool = False
    video: str = ""                   # "" | "gif" | "mp4"
    fps: int = 12                     # frame rate of the video: frames / fps seconds
    yaw_range: float = DEFAULT_YAW_RANGE   # the turntable / yaw sweep turns the head +- this many degrees
    pitch_range: float = DEFAULT_PITCH_RANGE   # and tilts it +- this many (turntable, pitch sweep)
    single_image: bool = True         # the edited photo (composite_full) as edited.png
    mesh: bool = False
    mesh_resolution: int = 96


def run_export(pipe, asset, result, opts: ExportOptions, progress, cancel) -> list:
    """The export job (runs on the worker thread): ``pipeline.exports.export_result``, the one
    export path, which writes everything at once or nothing."""
    from triface_studio.pipeline import exports

    views = opts.frames if (opts.rgb or opts.semantic or opts.video) else 0
    poses = exports.orbit_path(views, opts.path, opts.yaw_range, opts.pitch_range)
    return exports.export_result(pipe, asset, result, opts.out_dir, poses,
                                 opts.resolution, opts.rgb, opts.semantic, opts.transparent, opts.video or None,
                                 opts.fps, opts.single_image, opts.mesh, opts.mesh_resolution, progress, cancel)


class ExportDialog(QDialog):
    def __init__(self, parent: QWidget | None = None, out_dir: str = ""):
        super().__init__(parent)
        self.setWindowTitle("Export")
        form = QFormLayout(self)
        row = QHBoxLayout()
        self.folder = QLineEdit(out_dir)
        browse = QPushButton("Browse...")
        browse.clicked.connect(self._browse)
        row.addWidget(self.folder, 1)
        row.addWidget(browse)
        form.addRow("Folder", row)
        self.frames = QSpinBox(minimum=int(LIMITS["views"][0]), maximum=int(LIMITS["views"][1]), value=24)
        form.addRow("Frames", self.frames)
        self.path = QComboBox()
        self.path.addItems(ORBITS)
        form.addRow("Camera path", self.path)
        self.yaw_range = QDoubleSpinBox(minimum=LIMITS["yaw_range"][0], maximum=LIMITS["yaw_range"][1],
                                        value=DEFAULT_YAW_RANGE, singleStep=5.0, prefix="+-", suffix=" deg")
        self.yaw_range.setToolTip("The turntable and the yaw sweep turn the head this far to each side")
        form.addRow("Yaw range", self.yaw_range)
        self.pitch_range = QDoubleSpinBox(minimum=LIMITS["pitch_range"][0], maximum=LIMITS["pitch_range"][1],
                                          value=DEFAULT_PITCH_RANGE, singleStep=5.0, prefix="+-", suffix=" deg")
        self.pitch_range.setToolTip("The turntable and the pitch sweep tilt the head this far up and down")
        form.addRow("Pitch range", self.pitch_range)
        self.resolution = QSpinBox(minimum=32, maximum=1024, value=256, singleStep=32)
        form.addRow("Resolution", self.resolution)
        self.rgb = QCheckBox("RGB", checked=True)
        self.semantic = QCheckBox("Semantic maps", checked=True)
        self.transparent = QCheckBox("Transparent background")
        for w in (self.rgb, self.semantic, self.transparent):
            form.addRow("", w)
        self.video = QComboBox()
        self.video.addItems(["none", *VIDEOS])
        form.addRow("Video", self.video)
        self.fps = QSpinBox(minimum=1, maximum=60, value=12, suffix=" fps")
        self.fps.setToolTip("Frame rate of the GIF / MP4: the video lasts frames / fps seconds")
        form.addRow("Frame rate", self.fps)
        self.single = QCheckBox("Edited photo (edited.png)", checked=True)
        self.mesh = QCheckBox("Mesh (mesh.ply)")
        form.addRow("", self.single)
        form.addRow("", self.mesh)
        bb = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        bb.accepted.connect(self.accept)
        bb.rejected.connect(self.reject)
        form.addRow(bb)

    def _browse(self):
        d = QFileDialog.getExistingDirectory(self, "Export folder", self.folder.text())
        if d:
            self.folder.setText(d)

    def options(self) -> ExportOptions:
        v = self.video.currentText()
        return ExportOptions(self.folder.text(), self.frames.value(), self.path.currentText(),
                             self.resolution.value(), self.rgb.isChecked(), self.semantic.isChecked(),
                             self.transparent.isChecked(), "" if v == "none" else v, self.fps.value(),
                             float(self.yaw_range.value()), float(self.pitch_range.value()),
                             self.single.isChecked(), self.mesh.isChecked())
