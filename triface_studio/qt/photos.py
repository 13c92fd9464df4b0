"""The photos and their masks: opening the identity and references (analysed on the worker, a
choice among several faces), reference panels bound to the document's references, the
identity's protect / bare-scalp brush, mask files and the predicted region."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtWidgets import QFileDialog

from triface_studio.document import ReferenceSetup, load_mask_png, save_mask_png
from triface_studio.pipeline.requests import ReferenceSpec

from .panels import ImagePanel, ReferencePanel
from .worker import CallJob


def _crop_around(image: np.ndarray, bbox, scale: float = 2.2) -> np.ndarray:
    """A square crop of ``image`` centred on a face box (to analyse a chosen face on its own)."""
    x0, y0, x1, y1 = [float(v) for v in bbox[:4]]
    cx, cy, s = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * scale / 2
    H, W = image.shape[:2]
    a, b = int(max(0, cx - s)), int(min(W, cx + s))
    c, d = int(max(0, cy - s)), int(min(H, cy + s))
    return np.ascontiguousarray(image[c:d, a:b])


class PhotoController:
    """Opens photos into the window's panels and binds the panels to its document."""

    def __init__(self, win):
        self.win = win

    def mask_tools(self, panel: ImagePanel) -> None:
        panel.tool("mdi6.eraser-variant", "Clear the mask", lambda: self.clear_mask(panel))
        panel.tool("mdi6.file-image-plus-outline", "Load a mask PNG", lambda: self.load_mask_dialog(panel))
        panel.tool("mdi6.content-save-outline", "Save the mask as PNG", lambda: self.save_mask_dialog(panel))

    def open_identity(self, path: str, mask: np.ndarray | None = None) -> int:
        """A new identity (its masks start empty, or ``mask`` protects); a result of the previous
        one stays, marked out of date."""
        s = self.win.setup
        before = (s.identity if self.win.identity.fa is not None else "", s.identity_mask, s.bare_mask,
                  s.identity_face_index)
        self.win.identity.pending_mask = mask
        self.win.identity.path = path
        s.update(identity=path, identity_mask=mask, bare_mask=None, identity_face_index=None)

        def failed(kind, message):              # back to the identity that is still shown (or none)
            self.win.identity.path = before[0]
            s.update(identity=before[0], identity_mask=before[1], bare_mask=before[2], identity_face_index=before[3])
            self.win.show_error(message, "Could not open the image")
        return self.analyze(self.win.identity, path, failed=failed)

    def add_reference(self, path: str = "", attributes=(), mask_mode=ReferenceSpec.mask_mode,
                      mask: np.ndarray | None = None) -> ReferencePanel:
        ref = ReferenceSetup(path, list(attributes), mask, mask_mode)
        panel = self.reference_panel(ref)
        self.win.setup.add_reference(ref)
        return panel

    def reference_panel(self, ref: ReferenceSetup) -> ReferencePanel:
        """A panel bound to ``ref``: its picker, mask mode and canvas write into the document."""
        panel = ReferencePanel(len(self.win.references) + 1, self.win.undo_stack, ref.attributes, ref.mask_mode)
        panel.ref = ref
        self.mask_tools(panel)
        panel.removeRequested.connect(self.remove_reference)
        panel.predictedRequested.connect(self.update_predicted)
        panel.canvas.maskChanged.connect(lambda: self.win.setup.masks_changed())
        panel.picker.changed.connect(lambda: self.win.setup.update_reference(ref, attributes=panel.picker.selected()))
        panel.mode.currentTextChanged.connect(lambda m: self.win.setup.update_reference(ref, mask_mode=m))
        self.apply_brush(panel.canvas)
        self.win.references.append(panel)
        self.win.ref_layout.insertWidget(self.win.ref_layout.count() - 2, panel)
        panel.pending_mask = ref.mask
        if ref.path:
            self.analyze(panel, ref.path)
        return panel

    def show_references(self) -> None:
        """Each reference panel shows what its reference holds (after a change made elsewhere,
        e.g. by a script); the window calls this on the document's "references" changes."""
        for panel in self.win.references:
            ref = panel.ref
            if panel.picker.selected() != ref.attributes:
                panel.picker.set_selected(ref.attributes)
            if panel.mode.currentText() != ref.mask_mode:
                panel.mode.setCurrentText(ref.mask_mode)

    def remove_reference(self, panel: ReferencePanel) -> None:
        if panel in self.win.references:
            self.win.references.remove(panel)
            panel.setParent(None)
            panel.deleteLater()
            self.win.undo_stack.clear()   # its strokes point at a mask that is gone
            for i, p in enumerate(self.win.references):
                p.title.setText(f"<b>Reference {i + 1}</b>")
            self.win.setup.remove_reference(panel.ref)

    def analyze(self, panel: ImagePanel, path: str, image: np.ndarray | None = None, ask: bool = True,
                 failed=None, face_index: int | None = None) -> int:
        """Analyse (and for the identity encode) on the worker.  Several faces -> ``choose_face``
        (``ask=False``: no question): the identity's chosen face is the setup's face index, which
        the edit (and ``triface edit --from``) analyses the same way; a reference's is analysed on a
        crop around it (the edit analyses references by image content)."""
        role = "identity" if panel is self.win.identity else "reference"

        def job(pipe, progress, cancel, path=path, image=image):
            arr = image if image is not None else pipe.load(path, Path(path).name, role)[0]
            fa = pipe.analyze(arr, Path(path).name, role, face_index=face_index)
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
            return arr, fa, asset, (pipe.device, pipe.tier_name), problem, boxes

        self.win.statusBar().showMessage(f"Analysing {Path(path).name}...")
        return self.win.router.submit(CallJob(job, "analyze"),
                                  done=lambda val, panel=panel, path=path: self._analysed(panel, path, val),
                                  failed=failed or (lambda kind, msg: self.win.show_error(msg, "Could not open the image")))

    def _analysed(self, panel: ImagePanel, path: str, val) -> None:
        arr, fa, asset, (device, tier), problem, boxes = val
        if panel is not self.win.identity and panel not in self.win.references:
            return
        if boxes is not None and len(boxes) > 1:
            idx = self.win.choose_face([f"Face {i + 1} ({int(b[2] - b[0])} px wide)" for i, b in enumerate(boxes)])
            if idx is not None and idx != 0 and panel is self.win.identity:
                self.win.setup.update(identity_face_index=idx)
                self.analyze(panel, path, arr, ask=False, face_index=idx)
                return
            if idx is not None and idx != 0:
                self.analyze(panel, path, _crop_around(arr, boxes[idx]), ask=False)
                return
        panel.set_analysis(path, arr, fa)
        self.apply_brush(panel.canvas)
        self.win.device_label.setText(f"Device: {device} | tier: {tier}")
        if self.win.setup.device != device:
            self.win.setup.device = device      # where the pipeline runs: no change of the user's work
        if path:
            self.win.add_recent(path)
        self.win.statusBar().showMessage(f"Opened {Path(path).name}" + (f" ({'; '.join(fa.notes)})" if getattr(fa, "notes", None) else ""), 5000)
        if problem:
            self.win.show_error(f"{Path(path).name} opened, but the 3D view is not available: {problem}")
        if panel is self.win.identity:
            self.bind_identity_masks()
            if self.win.result is None and asset is not None:
                self.win.orbit_asset = asset
                self.win.request_full_render()
        else:
            self.win.setup.update_reference(panel.ref, mask=panel.canvas.mask)
            if panel.show_pred.isChecked():
                self.update_predicted(panel)

    # --------------------------------------------------------------------------- masks
    def bind_identity_masks(self) -> None:
        """The identity's canvas paints the document's protect mask or its bare-scalp mask (the
        brush box on the identity panel says which); both are the document's arrays."""
        c, s = self.win.identity.canvas, self.win.setup
        if c.mask is None:
            return
        bare = self.win.identity_brush.currentIndex() == 1
        if s.identity_mask is None or s.identity_mask.shape != c.mask.shape:
            s.update(identity_mask=c.mask if not bare else np.zeros_like(c.mask))
        if s.bare_mask is None or s.bare_mask.shape != c.mask.shape:
            s.update(bare_mask=np.zeros_like(c.mask) if not bare else c.mask)
        c.mask = s.bare_mask if bare else s.identity_mask
        c.colour = (80, 200, 120) if bare else (255, 64, 64)
        c.refresh_overlay()

    def brush_changed(self, *_):
        for c in self.canvases():
            self.apply_brush(c)

    def apply_brush(self, canvas) -> None:
        canvas.brush_radius = float(self.win.brush_size.value())
        canvas.hardness = float(self.win.hardness.value())
        canvas.erase = self.win.erase.isChecked()

    def canvases(self):
        return [self.win.identity.canvas] + [p.canvas for p in self.win.references]

    def clear_mask(self, panel: ImagePanel) -> None:
        if panel.canvas.mask is not None:
            panel.canvas.replace_mask(np.zeros_like(panel.canvas.mask), "Clear mask")

    def load_mask_dialog(self, panel: ImagePanel) -> None:
        p, _ = QFileDialog.getOpenFileName(self.win, "Load mask", "", "PNG masks (*.png)")
        if p:
            self.load_mask(panel, p)

    def load_mask(self, panel: ImagePanel, path: str) -> None:
        if panel.canvas.mask is None:
            self.win.show_error("Open an image before loading a mask.")
            return
        try:
            m = load_mask_png(path, panel.canvas.mask.shape[0])
        except (OSError, ValueError) as e:
            self.win.show_error(f"Could not read the mask {Path(path).name}: {e}")
            return
        panel.canvas.replace_mask(m, "Load mask")

    def save_mask_dialog(self, panel: ImagePanel) -> None:
        if panel.canvas.mask is None:
            return
        p, _ = QFileDialog.getSaveFileName(self.win, "Save mask", "mask.png", "PNG (*.png)")
        if p:
            try:
                save_mask_png(panel.canvas.mask, p)
            except OSError as e:
                self.win.show_error(f"Could not save the mask: {e}")

    def update_predicted(self, panel: ReferencePanel) -> None:
        if not panel.show_pred.isChecked() or panel.fa is None:
            panel.canvas.set_predicted(None)
            return
        attrs, fa = tuple(panel.picker.selected()), panel.fa
        if not attrs:
            panel.canvas.set_predicted(None)
            return
        self.win.router.submit(CallJob(lambda pipe, p, c: pipe.predicted_mask(fa, attrs), "predicted"),
                           done=lambda m, panel=panel: panel in self.win.references and panel.canvas.set_predicted(m))
