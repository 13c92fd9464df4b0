"""Make the README's figures with the bundled models, from the two public-domain sample portraits:

    python docs/make_figures.py            # -> docs/images/contact_sheet.jpg, docs/images/main_window.png

The contact sheet has one row per edit: identity, reference, result (I^com), and the edited head
(T^com) from three angles.  Only the shipped samples are used, so the figures can be committed;
`triface eval ... --out OUT` writes a contact sheet of CelebA-HQ pairs into OUT instead, which stays
on your machine (that data set's licence is non-commercial research only).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "images"

#: (identity, reference, attributes): the eight edits of the sheet
EDITS = [
    ("astronaut", "grace_hopper", ("eyeglasses",)),
    ("astronaut", "grace_hopper", ("eyebrows", "eyes")),
    ("astronaut", "grace_hopper", ("nose",)),
    ("astronaut", "grace_hopper", ("lips",)),
    ("grace_hopper", "astronaut", ("hair",)),
    ("grace_hopper", "astronaut", ("lips",)),
    ("grace_hopper", "astronaut", ("eyebrows",)),
    ("grace_hopper", "astronaut", ("nose", "eyes")),
]
VIEWS = ((-30.0, 0.0), (0.0, 10.0), (30.0, -5.0))


def contact_sheet() -> Path:
    from triface_studio.core.images import load_image
    from triface_studio.pipeline import EditPipeline, EditRequest, ReferenceSpec
    from triface_studio.pipeline.exports import contact_sheet as tile
    from triface_studio.resources import resource_path

    samples = {"astronaut": resource_path("samples", "astronaut.png"),
               "grace_hopper": resource_path("samples", "grace_hopper.jpg")}
    pipe = EditPipeline("bundled")
    rows = []
    for ident, ref, attrs in EDITS:
        t0 = time.perf_counter()
        res = pipe.run(EditRequest(identity=load_image(samples[ident]), identity_name=ident,
                                   references=[ReferenceSpec(load_image(samples[ref]), attrs, name=ref)]))
        views = [pipe.render_view(res.t_com, yaw, pitch, 256, semantic=False)[0] for yaw, pitch in VIEWS]
        rows.append([res.identity.crop, res.references[0].crop, res.composite, *views])
        print(f"{ident} <- {ref} {'+'.join(attrs)}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "contact_sheet.jpg"
    Image.fromarray(tile(rows, cell=160)).save(path, quality=88)
    return path


def screenshot() -> Path:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication, QMessageBox

    from triface_studio.qt.main_window import MainWindow
    from triface_studio.qt.theme import apply_dark
    from triface_studio.qt.main_window import default_pipeline_factory
    from triface_studio.resources import resource_path

    app = QApplication.instance() or QApplication([])
    apply_dark(app)
    settings = QSettings(str(OUT / ".figures.ini"), QSettings.IniFormat)
    win = MainWindow(default_pipeline_factory("bundled", "cpu"), settings)
    win.resize(1440, 860)
    win.show()

    def wait(cond, timeout=120.0):
        t = time.time()
        while not cond():
            app.processEvents()
            time.sleep(0.01)
            if time.time() - t > timeout:
                raise TimeoutError("the app did not finish in time")

    try:
        win.open_identity(str(resource_path("samples", "astronaut.png")))
        wait(lambda: win.identity.fa is not None)
        ref = win.add_reference(str(resource_path("samples", "grace_hopper.jpg")), ("eyeglasses",))
        wait(lambda: ref.fa is not None)
        win.run_edit()
        wait(lambda: win.result is not None)
        win.yaw.setValue(20.0)
        n = len(win.renders_received)
        wait(lambda: len(win.renders_received) > n and win.renders_received[-1][1] == 20.0)
        for _ in range(20):
            app.processEvents()
            time.sleep(0.02)
        path = OUT / "main_window.png"
        win.grab().save(str(path))
    finally:
        # the figure's session is not anyone's work: closing discards it instead of asking
        B = QMessageBox.StandardButton
        win.ask = lambda title, text, buttons, default: B.Discard if buttons & B.Discard else B.Yes
        win.close()
        app.processEvents()
        (OUT / ".figures.ini").unlink(missing_ok=True)
    return path


if __name__ == "__main__":
    print(contact_sheet())
    print(screenshot())
