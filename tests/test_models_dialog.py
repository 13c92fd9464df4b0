"""The Models dialog (offscreen): installed/missing rows, licence and 'what it adds' text, import,
verify and remove through the same calls the buttons make."""

from __future__ import annotations

import numpy as np
import torch
from safetensors.torch import save_file

from triface_studio.models import registry
from triface_studio.qt.models_dialog import COLUMNS, ModelsDialog


def _row(dlg, name):
    names = [dlg.table.item(r, 0).text() for r in range(dlg.table.rowCount())]
    return names.index(name)


def test_lists_every_model_with_state_and_licence(qtbot):
    dlg = ModelsDialog()
    qtbot.addWidget(dlg)
    assert dlg.table.rowCount() == len(registry.REGISTRY) and dlg.table.columnCount() == len(COLUMNS)
    r = _row(dlg, "eg3d-ffhq512-128")
    assert dlg.table.item(r, 2).text() == "missing"
    assert "NVIDIA" in dlg.table.item(r, 4).text()
    dlg.select("eg3d-ffhq512-128")
    text = dlg.details.toPlainText()
    assert "neural tier's generator" in text and "Non-commercial use only" in text and "Import" in text
    assert not dlg.remove_button.isEnabled() and not dlg.verify_button.isEnabled()
    dlg.select("face-detector")
    assert "Apache" in dlg.details.toPlainText() and not dlg.remove_button.isEnabled()


def test_import_verify_remove_round_trip(qtbot, tmp_path):
    dlg = ModelsDialog()
    qtbot.addWidget(dlg)
    src = tmp_path / "my-weights.safetensors"          # a name the registry cannot guess
    save_file({"w": torch.ones(3, 3)}, str(src))
    dlg.select("inception-fid")                          # ... so the selected model is used
    with qtbot.waitSignal(dlg.modelsChanged, timeout=2000):
        assert dlg.import_path(src)
    r = _row(dlg, "inception-fid")
    assert dlg.table.item(r, 2).text() == "installed"
    assert dlg.selected_name() == "inception-fid" and "Imported inception-fid" in dlg.message.text()
    assert dlg.verify_selected() is True and "verified" in dlg.message.text()

    folder = registry.find_model("inception-fid")
    (folder / src.name).write_bytes(b"garbage")
    assert dlg.verify_selected() is False and "failed verification" in dlg.message.text()
    assert dlg.table.item(_row(dlg, "inception-fid"), 2).text() == "installed"   # size-only refresh

    with qtbot.waitSignal(dlg.modelsChanged, timeout=2000):
        assert dlg.remove_selected()
    assert dlg.table.item(_row(dlg, "inception-fid"), 2).text() == "missing"
    assert registry.find_model("inception-fid") is None


def test_bad_import_is_a_message_not_a_crash(qtbot, tmp_path):
    dlg = ModelsDialog()
    qtbot.addWidget(dlg)
    bad = tmp_path / "79999_iter.safetensors"
    bad.write_bytes(b"\x00" * 32)
    dlg.select("face-parser")
    with qtbot.assertNotEmitted(dlg.modelsChanged):
        assert not dlg.import_path(bad)
    assert "Could not import" in dlg.message.text() and "safetensors" in dlg.message.text()
    assert dlg.table.item(_row(dlg, "bisenet-79999"), 2).text() == "missing"


def test_dialog_renders(qtbot):
    dlg = ModelsDialog()
    qtbot.addWidget(dlg)
    dlg.show()
    qtbot.waitExposed(dlg)
    img = dlg.grab().toImage()
    assert img.width() >= 600 and img.height() >= 300
    ptr = img.constBits()
    arr = np.frombuffer(ptr, np.uint8, count=img.sizeInBytes()).reshape(img.height(), -1)
    assert arr.std() > 5          # not a blank window


def test_background_import_and_verify(qtbot, tmp_path):
    dlg = ModelsDialog()
    qtbot.addWidget(dlg)
    src = tmp_path / "79999_iter.safetensors"
    save_file({"w": torch.zeros(8, 8)}, str(src))
    with qtbot.waitSignal(dlg.jobFinished, timeout=10_000) as blocker:
        assert dlg.import_path(src, background=True) is None
        assert dlg.busy and not dlg.import_button.isEnabled()
        assert dlg.import_path(src, background=True) is None       # refused while busy
        assert "Still working" in dlg.message.text()
    assert blocker.args == [True] and not dlg.busy and dlg.import_button.isEnabled()
    assert dlg.table.item(_row(dlg, "bisenet-79999"), 2).text() == "installed"
    dlg.select("bisenet-79999")
    with qtbot.waitSignal(dlg.jobFinished, timeout=10_000) as blocker:
        dlg.verify_selected(background=True)
    assert blocker.args == [True] and "verified" in dlg.message.text()

    bad = tmp_path / "ffhq512-128.pkl"
    bad.write_bytes(b"not a pickle")
    with qtbot.waitSignal(dlg.jobFinished, timeout=10_000) as blocker:
        dlg.import_path(bad, background=True)
    assert blocker.args == [False] and "Could not import ffhq512-128.pkl" in dlg.message.text()
    dlg.close()                                                     # joins nothing left running
