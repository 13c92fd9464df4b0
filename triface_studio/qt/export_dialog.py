"""Export dialog: PNG sequence (orbit path), GIF/MP4, single image, mesh."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox, QFileDialog,
                               QFormLayout, QHBoxLayout, QLineEdit, QPushButton, QSpinBox, QWidget)

from triface_studio.pipeline.requests import DEFAULT_PITCH_RANGE, DEFAULT_YAW_RANGE, LIMITS


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
    """The export job (runs on the worker thread).  Every file is written atomically."""
    from pathlib import Path

    from triface_studio.core.images import save_image
    from triface_studio.pipeline import exports

    out = Path(opts.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    poses = exports.orbit_path(opts.frames, opts.path, opts.yaw_range, opts.pitch_range)
    if opts.frames > 0 and (opts.rgb or opts.semantic or opts.video):
        files += exports.export_views(pipe, asset, out, poses, opts.resolution, rgb=opts.rgb or bool(opts.video),
                                      semantic=opts.semantic, transparent=opts.transparent,
                                      progress=lambda f: progress("views", 0.8 * f), cancel=cancel)
        if opts.video:
            from triface_studio.core.images import load_image
            frames = [load_image(p)[..., :3] for p in files if p.name.startswith("rgb_")]
            files.append(exports.export_video(frames, out / f"orbit.{opts.video}", fps=opts.fps))
    if cancel.is_set():
        from triface_studio.pipeline.errors import Cancelled
        raise Cancelled("the export was cancelled")
    if opts.single_image and result is not None:
        import os
        import tempfile
        fd, tmp = tempfile.mkstemp(prefix=".edited.", suffix=".png", dir=out)
        os.close(fd)
        save_image(tmp, result.composite_full)
        os.replace(tmp, out / "edited.png")
        files.append(out / "edited.png")
    if opts.mesh:
        progress("mesh", 0.9)
        files.append(exports.export_mesh(pipe, asset, out / "mesh.ply", resolution=opts.mesh_resolution))
    progress("done", 1.0)
    return files


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
        self.frames = QSpinBox(minimum=0, maximum=720, value=24)
        form.addRow("Frames", self.frames)
        self.path = QComboBox()
        self.path.addItems(["turntable", "yaw", "pitch"])
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
        self.video.addItems(["none", "gif", "mp4"])
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
