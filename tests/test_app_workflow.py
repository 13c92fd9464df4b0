"""The traps of issue 16 in the app, as a user meets them (offscreen, pytest-qt, the stand-in pipeline).

Closing asks before losing work or stopping a job; a result of another identity is marked out of
date and not exported without asking; Open Sample replaces the identity; new references start
with nothing ticked and a ticked attribute stands out; autosave follows a change within seconds.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PySide6")

from PySide6.QtCore import QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication, QMessageBox  # noqa: E402

from triface_studio.document import EditSetup, JobBoard  # noqa: E402
from triface_studio.qt.export_dialog import ExportOptions  # noqa: E402
from triface_studio.qt.main_window import MainWindow, app_settings  # noqa: E402

from test_app_main import SAMPLES, TIMEOUT, open_pair, relief_pipeline, run_edit  # noqa: E402

B = QMessageBox.StandardButton


class Answers:
    """Stands in for the user at the window's questions: answers in order, records what was asked."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.asked: list[tuple[str, str]] = []

    def __call__(self, title, text, buttons, default):
        self.asked.append((title, text))
        assert self.answers, f"unexpected question: {title}: {text}"
        a = self.answers.pop(0)
        assert buttons & a, f"{a} is not among the offered buttons of {title!r}"
        return a


@pytest.fixture
def win(qtbot):
    # closed here, not by qtbot (whose teardown comes first and would meet the test's own answers)
    w = MainWindow(relief_pipeline, app_settings(), orbit_resolution=48, preview_resolution=24, edit_resolution=96)
    w.show()
    yield w
    w.ask = lambda *a: B.Discard if a[2] & B.Discard else B.Yes
    w.close()
    assert not w.worker.isRunning()


def stroke(canvas):
    canvas.brush_radius = 10
    canvas.begin_stroke(120, 120)
    canvas.extend_stroke(180, 140)
    canvas.end_stroke()


# -- 1. closing -----------------------------------------------------------------------------
def test_close_with_unsaved_work_asks_and_keeps_the_recovery_file(qtbot, win, tmp_path):
    open_pair(qtbot, win)
    stroke(win.identity.canvas)
    assert win.setup.dirty and win.windowTitle().endswith("*")
    win.autosave_now()
    assert win.autosave.pending()
    # Cancel: the window stays, the work and the recovery file too
    win.ask = Answers(B.Cancel)
    assert not win.close()
    assert win.isVisible() and win.worker.isRunning() and win.autosave.pending()
    assert win.ask.asked[0][0] == "Unsaved changes"
    # Save (the session has a file): saved, recovery gone, closed
    path = tmp_path / "work.triface"
    win.save_session(str(path))
    assert not win.autosave.pending() and not win.windowTitle().endswith("*")
    stroke(win.references[0].canvas)
    win.autosave_now()
    win.ask = Answers(B.Save)
    assert win.close()
    assert not win.worker.isRunning() and not win.autosave.pending()
    assert EditSetup.load(path).references[0].mask.any()          # the last stroke reached the file


def test_close_discard_removes_the_recovery_file_and_a_clean_close_keeps_it(qtbot, tmp_path):
    w = MainWindow(relief_pipeline, app_settings())
    qtbot.addWidget(w)
    open_pair(qtbot, w)
    w.autosave_now()
    assert w.autosave.pending()
    w.ask = Answers(B.Discard)
    assert w.close() and not w.autosave.pending()
    # a recovery file left by an earlier crash survives a window that had nothing unsaved
    w2 = MainWindow(relief_pipeline, app_settings())
    qtbot.addWidget(w2)
    w2.autosave.save(EditSetup(identity=SAMPLES["astronaut"]))
    w2.ask = Answers()                  # no question: nothing to lose
    assert w2.close() and w2.autosave.pending()


def test_close_asks_with_a_real_message_box(qtbot, win):
    """The default question is a real QMessageBox; clicking its Cancel keeps the window open."""
    open_pair(qtbot, win)
    seen = []

    def click_cancel():
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, click_cancel)
            return
        seen.append(box.text())
        box.button(B.Cancel).click()

    QTimer.singleShot(20, click_cancel)
    assert not win.close()
    assert seen and "Save the changes" in seen[0] and win.isVisible()


def test_close_during_an_edit_asks_then_cancels_and_joins(qtbot, win):
    open_pair(qtbot, win)
    closed = []
    win.ask = Answers(B.Cancel, B.Yes, B.Discard)

    def on_progress(jid, stage, f):
        if jid == win.edits.edit_id and not closed:
            closed.append(win.close())         # first report: "Cancel" -> the edit goes on
    win.worker.progress.connect(on_progress)
    run_edit(qtbot, win)
    assert closed == [False] and win.result is not None and win.isVisible()
    assert "An edit is running" in win.ask.asked[0][1]
    assert not win.jobs.busy()
    # second edit: "Yes" stops it; the worker is joined before close returns
    closed.clear()
    win.result = None
    win.worker.progress.disconnect(on_progress)
    win.worker.progress.connect(lambda jid, s, f: jid == win.edits.edit_id and not closed and closed.append(win.close()))
    win.run_edit()
    qtbot.waitUntil(lambda: bool(closed), timeout=TIMEOUT)
    assert closed == [True] and not win.worker.isRunning() and win.result is None
    assert [a[0] for a in win.ask.asked] == ["Close TriFace Studio", "Close TriFace Studio", "Unsaved changes"]


def test_close_during_an_export_asks_then_stops_it(qtbot, win, tmp_path):
    open_pair(qtbot, win)
    run_edit(qtbot, win)
    win.save_session(str(tmp_path / "s.triface"))
    out = tmp_path / "export"
    win.ask = Answers(B.Yes)
    closed = []
    win.worker.progress.connect(lambda jid, s, f: jid == win.exports.export_id and not closed and closed.append(win.close()))
    jid = win.start_export(ExportOptions(str(out), frames=24, resolution=32))
    assert win.jobs.running("export") == [jid]
    qtbot.waitUntil(lambda: bool(closed), timeout=TIMEOUT)
    assert closed == [True] and "An export is running" in win.ask.asked[0][1]
    assert not win.worker.isRunning()
    assert not (out / "views").exists()         # stopped before the views were written


# -- 2. out-of-date result --------------------------------------------------------------------
def test_a_result_of_the_previous_identity_is_marked_and_export_asks(qtbot, win, tmp_path):
    open_pair(qtbot, win)
    run_edit(qtbot, win)
    assert not win.setup.result_out_of_date
    assert not win.result_panel.stale.isVisible() and not win.orbit_stale.isVisible()
    with qtbot.waitSignal(win.worker.call_done, timeout=TIMEOUT):
        win.open_identity(SAMPLES["grace_hopper"])
    qtbot.waitUntil(lambda: win.identity.path == SAMPLES["grace_hopper"] and win.identity.fa is not None,
                    timeout=TIMEOUT)
    assert win.setup.result_out_of_date
    assert win.result_panel.stale.isVisible() and win.orbit_stale.isVisible()
    assert "astronaut" in win.result_panel.stale.text()
    # Export: "No" writes nothing, "Yes" writes the old edit
    out = tmp_path / "export"
    win.ask = Answers(B.No)
    assert win.start_export(ExportOptions(str(out), frames=2, resolution=32)) == 0
    assert not out.exists() and "grace_hopper" in win.ask.asked[0][1]
    # the menu entry asks before its options dialog opens (answer "No": no dialog at all)
    win.ask = Answers(B.No)
    act = next(a for a in win.menuBar().actions()[0].menu().actions() if a.text() == "&Export...")
    act.trigger()
    assert len(win.ask.asked) == 1 and QApplication.activeModalWidget() is None
    win.ask = Answers(B.Yes)
    with qtbot.waitSignal(win.worker.call_done, timeout=TIMEOUT, check_params_cb=lambda i, k, v: k == "export"):
        assert win.start_export(ExportOptions(str(out), frames=2, resolution=32)) > 0
    assert (out / "edited.png").is_file()
    # a new edit of the open identity is up to date again
    win.references[0].picker.set_selected(["hair"])
    run_edit(qtbot, win)
    qtbot.waitUntil(lambda: not win.result_panel.stale.isVisible(), timeout=TIMEOUT)
    assert not win.setup.result_out_of_date and not win.orbit_stale.isVisible()


def test_a_failed_identity_leaves_the_result_up_to_date(qtbot, win):
    open_pair(qtbot, win)
    run_edit(qtbot, win)
    with qtbot.waitSignal(win.worker.failed, timeout=TIMEOUT):
        win.open_identity(__file__)               # not an image
    assert win.identity.path == SAMPLES["astronaut"] and not win.setup.result_out_of_date
    assert not win.result_panel.stale.isVisible()


# -- 3. samples, new references, ticked attributes --------------------------------------------
def test_open_sample_replaces_the_identity(qtbot, win):
    open_pair(qtbot, win)
    act = next(a for a in win.samples_menu.actions() if "Grace" in a.text())
    with qtbot.waitSignal(win.worker.call_done, timeout=TIMEOUT):
        act.trigger()
    qtbot.waitUntil(lambda: win.identity.path == SAMPLES["grace_hopper"] and win.identity.fa is not None,
                    timeout=TIMEOUT)
    assert len(win.references) == 1                # not added as another reference
    from pathlib import Path
    assert win.build_request().identity_name == Path(SAMPLES["grace_hopper"]).name
    assert win.identity.name.text() == Path(SAMPLES["grace_hopper"]).name


def test_a_new_reference_takes_nothing_until_ticked(qtbot, win):
    with qtbot.waitSignal(win.worker.call_done, timeout=TIMEOUT):
        win.open_identity(SAMPLES["astronaut"])
    ref = win.add_reference(SAMPLES["grace_hopper"])
    qtbot.waitUntil(lambda: ref.fa is not None, timeout=TIMEOUT)
    assert ref.picker.selected() == []
    with pytest.raises(ValueError, match="choose at least one attribute"):
        win.build_request()
    assert win.setup.references[0].attributes == []


def test_reference_panels_show_their_reference(qtbot, win):
    ref = open_pair(qtbot, win)
    r = win.setup.references[0]
    win.setup.update_reference(r, attributes=["nose", "lips"], mask_mode="subtract")     # not through the panel
    assert ref.picker.selected() == ["nose", "lips"] and ref.mode.currentText() == "subtract"
    ref.picker.buttons["nose"].setChecked(False)
    assert r.attributes == ["lips"] and win.build_request().references[0].attributes == ("lips",)


def test_a_ticked_attribute_stands_out(qtbot, win):
    from triface_studio.qt.theme import apply_dark
    apply_dark(QApplication.instance())
    ref = win.add_reference()
    b = ref.picker.buttons["hair"]
    qtbot.wait(20)

    def mean_rgb():
        img = b.grab().toImage()
        a = np.array([[img.pixelColor(x, y).getRgb()[:3] for x in range(0, img.width(), 2)]
                      for y in range(0, img.height(), 2)], np.float32)
        return a.reshape(-1, 3).mean(0)
    off = mean_rgb()
    b.setChecked(True)
    on = mean_rgb()
    assert ref.picker.selected() == ["hair"]
    # unticked is grey (channels alike), ticked is clearly blue and differs a lot from unticked
    assert abs(off[2] - off[0]) < 12
    assert on[2] - on[0] > 60 and np.abs(on - off).sum() > 100


# -- 4. video timing, autosave ---------------------------------------------------------------------
def test_exported_gif_plays_at_the_dialogs_frame_rate(qtbot, win, tmp_path):
    from PIL import Image

    from triface_studio.qt.export_dialog import ExportDialog
    d = ExportDialog(win, str(tmp_path / "export"))
    d.frames.setValue(6)
    d.resolution.setValue(32)
    d.video.setCurrentText("gif")
    assert d.fps.value() == 12                      # the default
    d.fps.setValue(8)
    opts = d.options()
    d.deleteLater()
    assert opts.fps == 8 and opts.video == "gif"
    open_pair(qtbot, win)
    run_edit(qtbot, win)
    with qtbot.waitSignal(win.worker.call_done, timeout=TIMEOUT, check_params_cb=lambda i, k, v: k == "export"):
        win.start_export(opts)
    with Image.open(tmp_path / "export" / "orbit.gif") as im:
        assert im.n_frames == 6
        delays = []
        for i in range(im.n_frames):
            im.seek(i)
            delays.append(im.info["duration"])
    assert all(abs(x - 125) <= 10 for x in delays)       # 1/8 s (GIF stores centiseconds)


# -- autosave --------------------------------------------------------------------------------
def test_autosave_follows_a_change_within_seconds(qtbot, win):
    open_pair(qtbot, win)
    win.autosave.clear()
    stroke(win.identity.canvas)
    assert not win.autosave.pending()                # debounced, not on every event
    qtbot.waitUntil(win.autosave.pending, timeout=5000)
    rec = win.autosave.recover()
    assert rec.identity_mask is not None and rec.identity_mask.any()


# -- the job board on its own --------------------------------------------------------------------
def test_job_board():
    seen = []
    jobs = JobBoard()
    jobs.subscribe(lambda: seen.append(jobs.kinds()))
    jobs.start(3, "edit")
    jobs.start(4, "export")
    assert jobs.busy() and jobs.busy("edit") and jobs.describe() == "an edit and an export"
    assert jobs.end(3) and not jobs.end(3) and jobs.running() == [4]
    assert seen == [["edit"], ["edit", "export"], ["export"]]
    with pytest.raises(ValueError, match="job kind"):
        jobs.start(5, "render")


# -- 6. thread safety ---------------------------------------------------------------------------------
def test_displayed_arrays_are_copies_and_slots_run_on_the_gui_thread(qtbot, win):
    """What the worker hands over (renders, results, crops) is shown from a copy, so later changes
    of those arrays (on any thread) never reach pyqtgraph's buffer; every handler runs on the GUI thread."""
    import threading

    on_gui = []
    for sig in (win.worker.call_done, win.worker.edit_done, win.worker.render_done, win.worker.progress):
        sig.connect(lambda *a: on_gui.append(threading.current_thread() is threading.main_thread()))
    open_pair(qtbot, win)
    run_edit(qtbot, win)
    qtbot.waitUntil(lambda: win.last_render is not None, timeout=TIMEOUT)
    assert on_gui and all(on_gui)
    checks = [(win.orbit.image, win.last_render[0]), (win.result_panel.view.image, win.result.composite),
              (win.identity.canvas.image, win.identity.fa.crop)]
    win.orbit_mode.setCurrentText("RGB")
    for item, source in checks:
        shown = item.image
        assert not np.shares_memory(shown, np.asarray(source))
        src = np.asarray(source)
        if src.flags.writeable:                          # (a result's arrays are read-only already)
            before = shown.copy()
            src[...] = 7                                 # the source changes after the hand-over
            np.testing.assert_array_equal(item.image, before)


# -- 7. the document's settings reach the request; tier, models and progress at runtime ---------
def test_gui_sdedit_with_a_tiny_score_model(qtbot, win, tiny_score_model):
    open_pair(qtbot, win)
    win.setup_bar.refiner.setCurrentText("sdedit")
    with qtbot.waitSignal(win.worker.failed, timeout=TIMEOUT):       # no score model yet: a message
        win.run_edit()
    assert "score model" in win.last_error and win.result is None
    score = tiny_score_model
    win.setup_bar.set_score_model(str(score))
    win.setup.update(refine={"steps": 3, "t0": 0.4})
    assert win.setup_bar.score_button.text() == f"Score: {score.name}" and win.setup.refine.refiner == "sdedit"
    run_edit(qtbot, win)
    sde = win.result
    assert sde.request.refine.refiner == "sdedit" and sde.request.refine.score_model == str(score)
    win.setup_bar.refiner.setCurrentText("classical")
    win.result = None
    run_edit(qtbot, win)
    inside = sde.sde_mask > 0.5
    assert inside.sum() > 1000
    # the score model repainted M^sde: it differs from the classical refiner's there, not outside
    assert np.abs(sde.refined[inside] - win.result.refined[inside]).mean() > 0.01
    outside = sde.sde_mask == 0
    np.testing.assert_allclose(sde.refined[outside], win.result.refined[outside], atol=1e-5)


def test_the_background_setting_reaches_the_request(qtbot, win):
    open_pair(qtbot, win)
    assert win.build_request().background == "identity"
    win.setup_bar.background.setCurrentText("transparent")
    assert win.setup.background == "transparent" and win.build_request().background == "transparent"
    win.setup_bar.seed.setValue(11)
    assert win.build_request().seed == 11
    run_edit(qtbot, win)
    assert win.result.request.background == "transparent" and win.result.alpha is not None
    assert (win.result.alpha < 0.5).any() and (win.result.alpha > 0.5).any()
    # a value set on the document shows in the widget
    win.setup.update(background="reference")
    assert win.setup_bar.background.currentText() == "reference"


def test_the_tier_can_be_changed_at_runtime(qtbot):
    from test_app_main import relief_pipeline
    made = []

    def tier_factory(tier, device):
        def make():
            made.append(tier)
            return relief_pipeline()
        return make
    w = MainWindow(relief_pipeline, app_settings(), orbit_resolution=48, preview_resolution=24, edit_resolution=96,
                   tier_factory=tier_factory)
    qtbot.addWidget(w)
    try:
        with qtbot.waitSignal(w.worker.call_done, timeout=TIMEOUT):
            w.open_identity(SAMPLES["astronaut"])
        assert made == [] and w.setup.tier == "bundled"
        first = w.worker.pipe
        w.setup_bar.tier.setCurrentText("neural")
        assert w.setup.tier == "neural"
        ref = w.add_reference(SAMPLES["grace_hopper"], ("hair",))
        qtbot.waitUntil(lambda: ref.fa is not None, timeout=TIMEOUT)
        assert w.build_request().tier == "neural" and made == ["neural"] and w.worker.pipe is not first         # no restart needed
        assert app_settings().value("tier") == "neural"                  # and the next launch starts there
    finally:
        w.ask = lambda *a: B.Discard if a[2] & B.Discard else B.Yes
        w.close()


def test_a_model_imported_in_the_models_dialog_is_used_without_a_restart(qtbot, win, monkeypatch, tmp_path):
    import torch
    from safetensors.torch import save_file

    from triface_studio.models import registry
    from triface_studio.qt.models_dialog import ModelsDialog
    open_pair(qtbot, win)
    first = win.worker.pipe
    src = tmp_path / "weights.safetensors"
    save_file({"w": torch.ones(2)}, str(src))

    def exec_(dlg):                          # the user imports a model, then closes the dialog
        dlg.select("inception-fid")
        assert dlg.import_path(src)
        return 0
    monkeypatch.setattr(ModelsDialog, "exec", exec_)
    win.open_models_dialog()
    assert registry.find_model("inception-fid") is not None
    run_edit(qtbot, win)
    assert win.worker.pipe is not first and win.result is not None


def test_the_progress_bar_covers_the_whole_edit(qtbot, win):
    open_pair(qtbot, win)
    seen = []
    win.worker.progress.connect(lambda jid, stage, f: seen.append((stage, win.progress.value())))
    run_edit(qtbot, win)
    stages = [s for s, _ in seen]
    values = [v for _, v in seen]
    assert len(set(stages)) >= 8                        # every stage reported ...
    assert values == sorted(values) and values[-1] == 1000 and values[len(values) // 2] < 900   # ... on one bar


def test_the_bare_scalp_brush_paints_the_bare_mask(qtbot, win):
    open_pair(qtbot, win)
    win.identity_brush.setCurrentText("Bare scalp")
    stroke(win.identity.canvas)
    req = win.build_request()
    assert req.bare_mask is not None and req.identity_mask is None
    win.identity_brush.setCurrentText("Protect")
    win.identity.canvas.brush_radius = 6
    win.identity.canvas.begin_stroke(300, 300)
    win.identity.canvas.end_stroke()
    req = win.build_request()
    assert req.identity_mask is not None and req.identity_mask[300, 300] > 0.9 and req.identity_mask[120, 120] == 0
    assert req.bare_mask[120, 120] > 0.9 and req.bare_mask[300, 300] == 0
    win.undo_stack.undo()                   # each stroke undoes on the mask it painted
    win.undo_stack.undo()
    req = win.build_request()
    assert req.identity_mask is None and req.bare_mask is None


def test_the_app_opens_an_edit_json(qtbot, win, tmp_path):
    import json

    from triface_studio.document import empty_mask, save_mask_png
    m = empty_mask()
    m[:100] = 1
    save_mask_png(m, tmp_path / "top.png")
    (tmp_path / "edit.json").write_text(json.dumps({"format": "triface-edit", "exports": {}, "request": {
        "identity": SAMPLES["astronaut"], "background": "transparent", "seed": 4,
        "references": [{"image": SAMPLES["grace_hopper"], "attributes": ["hair"], "mask": "top.png",
                        "mask_mode": "replace"}]}}))
    win.open_any(str(tmp_path / "edit.json"))
    qtbot.waitUntil(lambda: win.identity.fa is not None and win.references and win.references[0].fa is not None,
                    timeout=TIMEOUT)
    assert win.setup_bar.background.currentText() == "transparent" and win.setup_bar.seed.value() == 4
    ref = win.references[0]
    assert ref.picker.selected() == ["hair"] and ref.mode.currentText() == "replace"
    req = win.build_request()
    np.testing.assert_array_equal(req.references[0].user_mask, m)
    assert not win.setup.dirty and not win.windowTitle().endswith("*")      # opened, not changed
    ref.picker.buttons["eyes"].setChecked(True)
    assert win.setup.dirty and win.build_request().references[0].attributes == ("hair", "eyes")


def test_a_session_keeps_its_result(qtbot, win, tmp_path):
    open_pair(qtbot, win)
    run_edit(qtbot, win)
    path = tmp_path / "with-result.triface"
    win.save_session(str(path))
    w2 = MainWindow(relief_pipeline, app_settings(), orbit_resolution=48, preview_resolution=24, edit_resolution=96)
    qtbot.addWidget(w2)
    try:
        w2.open_session(str(path))
        assert w2.result is not None and not w2.setup.result_out_of_date and not w2.setup.dirty
        np.testing.assert_array_equal(w2.result_panel.current_image(), win.result.composite)
        assert w2.orbit_asset is w2.result.t_com
        out = tmp_path / "export"
        with qtbot.waitSignal(w2.worker.call_done, timeout=TIMEOUT, check_params_cb=lambda i, k, v: k == "export"):
            assert w2.start_export(ExportOptions(str(out), frames=2, resolution=32)) > 0
        from triface_studio.core.images import load_image
        np.testing.assert_array_equal(load_image(out / "edited.png"), win.result.composite_full)
    finally:
        w2.close()


def test_a_bad_session_or_edit_json_is_a_message_and_the_open_work_stays(qtbot, win, tmp_path):
    import json
    import pickle
    import zipfile
    ref = open_pair(qtbot, win)
    stroke(ref.canvas)
    bad = tmp_path / "broken.triface"
    with zipfile.ZipFile(bad, "w") as z:                   # a pickle where the tri-plane should be
        z.writestr("session.json", json.dumps({"format": "triface-session", "version": 2,
                                               "request": {"identity": SAMPLES["astronaut"]},
                                               "result": {"files": {"t_com": "result/t.safetensors"}}}))
        z.writestr("result/t.safetensors", pickle.dumps(object))
    odd = tmp_path / "edit.json"
    odd.write_text(json.dumps({"format": "triface-edit", "request": {"identity": "a.png", "seed": -4}}))
    for path, words in ((bad, ("broken.triface", "incomplete")), (odd, ("edit.json", "seed"))):
        assert not win.open_session(str(path))
        assert all(w in win.last_error for w in words), win.last_error
        assert "Traceback" not in win.last_error
        assert win.setup.identity == SAMPLES["astronaut"] and win.references == [ref] and ref.canvas.mask.any()
        assert win.setup.dirty and win.setup.references[0].mask is ref.canvas.mask


def test_recovery_after_a_crash_brings_the_work_back_unsaved(qtbot, win):
    ref = open_pair(qtbot, win)
    stroke(ref.canvas)
    win.setup_bar.background.setCurrentText("reference")
    win.autosave_now()
    assert win.autosave.pending()
    w2 = MainWindow(relief_pipeline, app_settings(), orbit_resolution=48, preview_resolution=24, edit_resolution=96)
    qtbot.addWidget(w2)
    try:
        w2.ask = Answers(B.Yes)
        w2.offer_recovery()
        assert w2.ask.asked[0][0] == "Recover session" and not w2.autosave.pending()    # offered once
        qtbot.waitUntil(lambda: w2.references and w2.references[0].fa is not None, timeout=TIMEOUT)
        assert w2.setup.dirty and w2.windowTitle().endswith("*") and w2.setup.background == "reference"
        np.testing.assert_allclose(w2.references[0].canvas.mask, ref.canvas.mask, atol=1 / 255)
    finally:
        w2.ask = lambda *a: B.Discard if a[2] & B.Discard else B.Yes
        w2.close()
