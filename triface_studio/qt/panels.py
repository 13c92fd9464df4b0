"""Identity, reference and result panels."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFrame, QGridLayout, QGroupBox, QHBoxLayout, QLabel,
                               QToolButton, QVBoxLayout, QWidget)

from triface_studio.core.semantics import ATTRIBUTES
from triface_studio.core.semantics import colorize
from triface_studio.pipeline.requests import MASK_MODES, ReferenceSpec

from .canvas import MaskCanvas, _ImageView

try:
    import qtawesome as qta
except Exception:  # pragma: no cover - qtawesome is a dependency, but icons are optional
    qta = None

ATTRIBUTE_GROUPS = {
    "Hair and head": ("hair", "hat"),
    "Face": ("eyes", "eyebrows", "nose", "lips", "ears"),
    "Accessories": ("eyeglasses", "earrings", "necklace"),
    "Body": ("neck", "cloth"),
}


def icon(name: str, color: str = "#d8d8d8"):
    if qta is None:
        return None
    try:
        return qta.icon(name, color=color)
    except Exception:
        return None


# a ticked attribute must stand out from an unticked one on the dark theme (not grey on grey)
CHECKED_ACCENT = "#2f80ed"
PICKER_STYLE = (f"QToolButton {{ padding: 2px 4px; border: 1px solid #4a4d52; border-radius: 3px; }}"
                f"QToolButton:checked {{ background-color: {CHECKED_ACCENT}; color: #ffffff; "
                f"border: 1px solid #8cb8f5; font-weight: bold; }}")


def stale_banner() -> QLabel:
    """An amber strip shown over a panel whose content was made from another identity."""
    b = QLabel()
    b.setWordWrap(True)
    b.setStyleSheet("background-color: #8a5a00; color: #ffffff; padding: 4px; border-radius: 3px;")
    b.hide()
    return b


def grouped_attributes() -> dict[str, list[str]]:
    """ATTRIBUTES grouped for the picker; anything not in a group lands in "Other"."""
    out = {g: [a for a in names if a in ATTRIBUTES] for g, names in ATTRIBUTE_GROUPS.items()}
    placed = {a for names in out.values() for a in names}
    rest = [a for a in ATTRIBUTES if a not in placed]
    if rest:
        out["Other"] = rest
    return {g: v for g, v in out.items() if v}


class AttributePicker(QWidget):
    changed = Signal()

    def __init__(self, selected=(), parent=None):
        super().__init__(parent)
        self.setStyleSheet(PICKER_STYLE)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.buttons: dict[str, QToolButton] = {}
        for group, names in grouped_attributes().items():
            box = QGroupBox(group)
            grid = QGridLayout(box)
            grid.setContentsMargins(4, 4, 4, 4)
            for i, n in enumerate(names):
                a = ATTRIBUTES[n]
                b = QToolButton()
                b.setText(a.label)
                b.setCheckable(True)
                b.setToolTip(f"Take the {a.label.lower()} from this reference")
                ic = icon(a.icon)
                if ic is not None:
                    b.setIcon(ic)
                b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
                b.setChecked(n in selected)
                b.toggled.connect(self.changed)
                grid.addWidget(b, i // 3, i % 3)
                self.buttons[n] = b
            lay.addWidget(box)

    def selected(self) -> list[str]:
        return [n for n, b in self.buttons.items() if b.isChecked()]

    def set_selected(self, names) -> None:
        for n, b in self.buttons.items():
            b.blockSignals(True)
            b.setChecked(n in names)
            b.blockSignals(False)
        self.changed.emit()


class ImagePanel(QFrame):
    """A titled crop canvas with mask tools."""

    def __init__(self, title: str, undo_stack, colour, parent=None):
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.lay = QVBoxLayout(self)
        head = QHBoxLayout()
        self.title = QLabel(f"<b>{title}</b>")
        self.name = QLabel("drop or open an image")
        self.name.setStyleSheet("color: #9a9a9a")
        head.addWidget(self.title)
        head.addWidget(self.name, 1)
        self.head = head
        self.lay.addLayout(head)
        self.canvas = MaskCanvas(undo_stack, colour)
        self.lay.addWidget(self.canvas, 1)
        self.path = ""
        self.image: np.ndarray | None = None      # the original photo
        self.fa = None                            # its FaceAnalysis
        self.pending_mask: np.ndarray | None = None

    def tool(self, icon_name: str, tip: str, slot) -> QToolButton:
        b = QToolButton()
        ic = icon(icon_name)
        if ic is not None:
            b.setIcon(ic)
        else:
            b.setText(tip.split()[0])
        b.setToolTip(tip)
        b.clicked.connect(slot)
        self.head.addWidget(b)
        return b

    def set_analysis(self, path: str, image: np.ndarray, fa) -> None:
        self.path, self.image, self.fa = path, image, fa
        from pathlib import Path
        self.name.setText(Path(path).name if path else getattr(fa, "name", ""))
        mask, self.pending_mask = self.pending_mask, None
        self.canvas.set_crop(np.asarray(fa.crop), mask)


class ReferencePanel(ImagePanel):
    removeRequested = Signal(object)
    predictedRequested = Signal(object)

    def __init__(self, index: int, undo_stack, attributes=(), mask_mode=ReferenceSpec.mask_mode, parent=None):
        super().__init__(f"Reference {index}", undo_stack, (255, 170, 40), parent)
        self.picker = AttributePicker(attributes)
        self.lay.addWidget(self.picker)
        row = QHBoxLayout()
        row.addWidget(QLabel("Mask"))
        self.mode = QComboBox()
        self.mode.addItems(sorted(MASK_MODES, key=lambda m: m != ReferenceSpec.mask_mode))   # the default first
        self.mode.setCurrentText(mask_mode)
        self.mode.setToolTip("How the painted mask combines with the predicted region")
        row.addWidget(self.mode)
        self.show_pred = QCheckBox("Show predicted")
        self.show_pred.toggled.connect(lambda on: self.predictedRequested.emit(self))
        self.picker.changed.connect(lambda: self.show_pred.isChecked() and self.predictedRequested.emit(self))
        row.addWidget(self.show_pred)
        row.addStretch(1)
        self.lay.addLayout(row)
        self.tool("mdi6.close", "Remove this reference", lambda: self.removeRequested.emit(self))


class ResultPanel(QFrame):
    VIEWS = ("Edited", "Coarse", "Semantic map", "Masks")

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        lay = QVBoxLayout(self)
        head = QHBoxLayout()
        head.addWidget(QLabel("<b>Result</b>"))
        self.which = QComboBox()
        self.which.addItems(self.VIEWS)
        self.which.currentIndexChanged.connect(self.refresh)
        head.addStretch(1)
        head.addWidget(self.which)
        lay.addLayout(head)
        self.stale = stale_banner()
        lay.addWidget(self.stale)
        # (an opened edit.json or session without a result shows why the panel is empty)
        self.empty = QLabel("No result yet. Run edit to make one.")
        self.empty.setWordWrap(True)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setStyleSheet("color: #9aa0a6; padding: 12px;")
        lay.addWidget(self.empty)
        self.view = _ImageView()
        lay.addWidget(self.view, 1)
        self.result = None

    def set_result(self, result) -> None:
        self.result = result
        self.empty.setVisible(result is None)
        self.refresh()

    def current_image(self) -> np.ndarray | None:
        r = self.result
        if r is None:
            return None
        w = self.which.currentText()
        if w == "Edited":
            return np.asarray(r.composite)
        if w == "Coarse":
            c = np.asarray(r.coarse)
            return (np.clip(c, 0, 1) * 255 + 0.5).astype(np.uint8) if c.dtype != np.uint8 else c
        if w == "Semantic map":
            return colorize(np.asarray(r.s_blend))
        base = np.asarray(r.composite).astype(np.float32) * 0.35
        sde = np.asarray(r.sde_mask, np.float32)
        gap = np.asarray(r.gap_mask, np.float32)
        base[..., 0] += 165 * sde
        base[..., 1] += 165 * gap
        return np.clip(base, 0, 255).astype(np.uint8)

    def refresh(self, *_):
        self.view.set_image(self.current_image())
