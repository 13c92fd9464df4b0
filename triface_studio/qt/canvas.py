"""Image views built on pyqtgraph: a paintable crop canvas (brush + mask overlay) and the orbit
viewport (click-drag changes yaw/pitch)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QUndoCommand

from triface_studio.document import MaskEdit, empty_mask, paint_stroke

pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)


def _rgb(img: np.ndarray) -> np.ndarray:
    """A C-contiguous copy owned by the display: pyqtgraph keeps the array it is given (a view,
    not a copy), and the caller's arrays (a crop, a result, a render) are also read on the worker
    thread, so the view never shares memory with them."""
    a = np.asarray(img)
    if a.ndim == 2:
        return np.repeat(a[..., None], 3, -1)          # a new array already
    return np.array(a, order="C", copy=True)


class _ImageView(pg.GraphicsLayoutWidget):
    """A locked, aspect-correct ViewBox showing one image (row-major, y down)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setBackground("#1e1f22")
        self.ci.layout.setContentsMargins(0, 0, 0, 0)
        # wheel zooms, drag outside a paintable image pans; the view range is set only when the
        # image size changes (never auto-ranged per frame)
        self.vb = self.addViewBox(lockAspect=True, invertY=True, enableMouse=True)
        self.vb.setMenuEnabled(False)
        self._shape = None
        self.image = pg.ImageItem(axisOrder="row-major")
        self.vb.addItem(self.image)
        self.setMinimumSize(160, 160)

    def set_image(self, img: np.ndarray | None) -> None:
        if img is None:
            self.image.clear()
            self._shape = None
            return
        self.image.setImage(_rgb(img), autoLevels=False, levels=(0, 255))
        h, w = img.shape[:2]
        if self._shape != (h, w):
            self._shape = (h, w)
            self.reset_zoom()

    def reset_zoom(self) -> None:
        if self._shape is not None:
            h, w = self._shape
            self.vb.setRange(xRange=(0, w), yRange=(0, h), padding=0.0)

    def mouseDoubleClickEvent(self, ev):  # double-click: fit the image again
        self.reset_zoom()
        super().mouseDoubleClickEvent(ev)


class _BrushItem(pg.ImageItem):
    """Overlay item that turns left-drags into brush strokes on its canvas."""

    def __init__(self, canvas):
        super().__init__(axisOrder="row-major")
        self.canvas = canvas

    def mouseDragEvent(self, ev):
        if ev.button() != Qt.MouseButton.LeftButton or not self.canvas.brush_enabled or self.canvas.mask is None:
            ev.ignore()
            return
        ev.accept()
        p = ev.pos()
        if ev.isStart():
            self.canvas.begin_stroke(p.x(), p.y(), erase=bool(ev.modifiers() & Qt.KeyboardModifier.AltModifier))
        else:
            self.canvas.extend_stroke(p.x(), p.y())
        if ev.isFinish():
            self.canvas.end_stroke()

    def mouseClickEvent(self, ev):
        if ev.button() == Qt.MouseButton.LeftButton and self.canvas.brush_enabled and self.canvas.mask is not None:
            ev.accept()
            self.canvas.begin_stroke(ev.pos().x(), ev.pos().y())
            self.canvas.end_stroke()
        else:
            ev.ignore()


class StrokeCommand(QUndoCommand):
    """One brush stroke (a bounding-box diff); the first redo is a no-op (already painted)."""

    def __init__(self, canvas, edit: MaskEdit, text="Brush stroke"):
        super().__init__(text)
        # the mask painted, not the canvas's current one: the identity's canvas switches between
        # its protect and bare-scalp masks, and a stroke undoes on the mask it was made on
        self.canvas, self.mask, self.edit, self._first = canvas, canvas.mask, edit, True

    def redo(self):
        if self._first:
            self._first = False
            return
        self.edit.redo(self.mask)
        self.canvas.mask_changed_by_undo()

    def undo(self):
        self.edit.undo(self.mask)
        self.canvas.mask_changed_by_undo()


class MaskCanvas(_ImageView):
    """A crop with a translucent, paintable mask overlay.  One undo step per stroke."""

    maskChanged = Signal()

    def __init__(self, undo_stack, colour=(255, 64, 64), parent=None):
        super().__init__(parent)
        self.undo_stack = undo_stack
        self.colour = colour
        self.overlay = _BrushItem(self)
        self.overlay.setZValue(10)
        self.vb.addItem(self.overlay)
        self.predicted = pg.ImageItem(axisOrder="row-major")
        self.predicted.setZValue(5)
        self.vb.addItem(self.predicted)
        self.mask: np.ndarray | None = None
        self.brush_radius = 16.0
        self.hardness = 0.8
        self.erase = False
        self.brush_enabled = True
        self._points: list = []
        self._stroke_erase = False
        self._before: np.ndarray | None = None

    def set_crop(self, crop: np.ndarray | None, mask: np.ndarray | None = None) -> None:
        self.set_image(crop)
        if crop is None:
            self.mask = None
        else:
            self.mask = mask if mask is not None else empty_mask(crop.shape[0])
        self.refresh_overlay()

    def set_predicted(self, pred: np.ndarray | None) -> None:
        if pred is None:
            self.predicted.clear()
            return
        rgba = np.zeros(pred.shape + (4,), np.uint8)
        rgba[..., :3] = (64, 200, 255)
        rgba[..., 3] = np.clip(pred * 90, 0, 255).astype(np.uint8)
        self.predicted.setImage(rgba, autoLevels=False, levels=(0, 255))

    def refresh_overlay(self) -> None:
        if self.mask is None:
            self.overlay.clear()
            return
        rgba = np.zeros(self.mask.shape + (4,), np.uint8)
        rgba[..., :3] = self.colour
        rgba[..., 3] = np.clip(self.mask * 140, 0, 255).astype(np.uint8)
        self.overlay.setImage(rgba, autoLevels=False, levels=(0, 255))

    # -- strokes (also called directly by tests) ------------------------------------------
    def begin_stroke(self, x: float, y: float, erase: bool | None = None) -> None:
        self._points = [(x, y)]
        self._stroke_erase = self.erase if erase is None or not erase else True
        self._before = self.mask.copy()
        paint_stroke(self.mask, self._points, self.brush_radius, self.hardness, self._stroke_erase)
        self.refresh_overlay()

    def extend_stroke(self, x: float, y: float) -> None:
        if not self._points:
            return
        last = self._points[-1]
        self._points.append((x, y))
        paint_stroke(self.mask, [last, (x, y)], self.brush_radius, self.hardness, self._stroke_erase)
        self.refresh_overlay()

    def end_stroke(self) -> None:
        if not self._points or self._before is None:
            return
        diff = np.argwhere(self._before != self.mask)
        before, self._before, self._points = self._before, None, []
        if diff.size == 0:
            return
        y0, x0 = diff.min(0)
        y1, x1 = diff.max(0) + 1
        edit = MaskEdit((int(y0), int(y1), int(x0), int(x1)), before[y0:y1, x0:x1].copy(),
                        self.mask[y0:y1, x0:x1].copy())
        self.undo_stack.push(StrokeCommand(self, edit, "Erase stroke" if self._stroke_erase else "Brush stroke"))
        self.maskChanged.emit()

    def replace_mask(self, new: np.ndarray, text: str) -> None:
        """A whole-mask change (clear, load) as one undo step."""
        if self.mask is None:
            return
        before = self.mask.copy()
        self.mask[...] = new
        h, w = self.mask.shape
        self.undo_stack.push(StrokeCommand(self, MaskEdit((0, h, 0, w), before, self.mask.copy()), text))
        self.refresh_overlay()
        self.maskChanged.emit()

    def mask_changed_by_undo(self) -> None:
        self.refresh_overlay()
        self.maskChanged.emit()


class OrbitView(_ImageView):
    """The orbit viewport: drag horizontally to change yaw, vertically to change pitch."""

    dragged = Signal(float, float, bool)     # d_yaw, d_pitch, finished

    def __init__(self, parent=None):
        super().__init__(parent)
        self._last = None
        self.vb.mouseDragEvent = self._drag

    def _drag(self, ev, axis=None):
        if ev.button() != Qt.MouseButton.LeftButton:
            ev.ignore()
            return
        ev.accept()
        p = ev.screenPos()
        if ev.isStart() or self._last is None:
            self._last = p
        dx, dy = p.x() - self._last.x(), p.y() - self._last.y()
        self._last = p
        self.dragged.emit(dx * 0.3, -dy * 0.3, bool(ev.isFinish()))
        if ev.isFinish():
            self._last = None
