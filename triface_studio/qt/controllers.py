"""Small controllers between the document and the worker: running an edit, exporting, and the
session's files (save, open, autosave, recovery, the questions before closing).

Each reads and changes the window's :class:`~triface_studio.document.EditSetup` and submits its
jobs through the :class:`~triface_studio.qt.router.JobRouter`; the window only wires them to
menus and buttons.
"""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QFileDialog, QMessageBox, QProgressDialog

from triface_studio.document import Autosave, EditSetup, SetupError

from .export_dialog import ExportDialog, ExportOptions, run_export
from .worker import CallJob, EditJob

SESSION_FILTER = "TriFace sessions (*.triface);;Edit files (edit.json *.json)"
AUTOSAVE_DELAY_MS = 2000          # the recovery file follows a change after this quiet time
Button = QMessageBox.StandardButton


class EditController:
    """Run Edit: the request from the document, overall progress, the result into the document."""

    def __init__(self, win):
        self.win = win
        self.edit_id = 0
        self.identity = ""
        self._started = 0.0
        self._shown = 0.0

    def build_request(self):
        w = self.win
        if w.identity.image is None:
            raise SetupError("Open an identity photo first.")
        loaded = {id(p.ref): p.image for p in w.references}         # the photos as analysed (a chosen face)
        return w.setup.to_request(w.identity.image, [loaded.get(id(r)) for r in w.setup.references])

    def run(self) -> int:
        w = self.win
        try:
            req = self.build_request()
        except ValueError as e:
            w.show_error(str(e))
            return 0
        job = EditJob(req)
        self.edit_id, self.identity, self._started, self._shown = job.id, w.setup.identity, time.perf_counter(), 0.0
        w.progress.setValue(0)
        w.router.submit(job, done=self._done, failed=lambda kind, msg: w.show_error(msg, "Could not run the edit"),
                        cancelled=lambda: w.statusBar().showMessage("Cancelled", 5000), progress=self._progress,
                        long_kind="edit")
        w.statusBar().showMessage("Editing...")
        return self.edit_id

    def _progress(self, stage: str, fraction: float) -> None:
        from triface_studio.pipeline.edit import overall_progress

        f = overall_progress(stage, fraction)
        if f is not None:
            self._shown = max(self._shown, f)          # one bar for the whole edit, never going back
            self.win.progress.setValue(int(1000 * self._shown))
        self.win.statusBar().showMessage(f"{stage}...")

    def _done(self, result) -> None:
        w = self.win
        w.timings["edit"] = time.perf_counter() - self._started
        w.setup.set_result(result, self.identity)
        w.show_result(result)
        notes = "; ".join(getattr(result, "notes", []) or [])
        w.statusBar().showMessage("Edit done" + (f" ({notes})" if notes else ""), 8000)


class ExportController:
    """File > Export: asks first about a result of another identity; one progress dialog."""

    def __init__(self, win):
        self.win = win
        self.export_id = 0
        self.dialog: QProgressDialog | None = None
        self.exported_files: list = []

    def open_dialog(self) -> None:
        w = self.win
        if w.orbit_asset is None:
            w.show_error("Open an identity (and run an edit) before exporting.")
            return
        if not self.stale_confirmed():
            return
        d = ExportDialog(w, str(w.settings.value("export/folder", str(Path.home() / "triface-export"))))
        if d.exec():
            opts = d.options()
            w.settings.setValue("export/folder", opts.out_dir)
            self.start(opts, confirmed=True)

    def stale_confirmed(self) -> bool:
        s = self.win.setup
        if not s.result_out_of_date:
            return True
        r = self.win.ask("Export an out-of-date result?",
                         f"The result is the edit of {Path(s.result_identity).name or 'another photo'}, not of the "
                         f"identity now open ({Path(s.identity).name or 'none'}). Export it anyway?",
                         Button.Yes | Button.No, Button.No)
        return r == Button.Yes

    def start(self, opts: ExportOptions, confirmed: bool = False) -> int:
        """Export on the worker; a result of another identity than the open one is written only
        when the user agrees (``confirmed``: already asked)."""
        w = self.win
        if w.orbit_asset is None:
            w.show_error("Nothing to export yet.")
            return 0
        if not confirmed and not self.stale_confirmed():
            return 0
        asset, result = w.orbit_asset, w.setup.result
        job = CallJob(lambda pipe, progress, cancel: run_export(pipe, asset, result, opts, progress, cancel), "export")
        self.export_id = job.id
        self.exported_files = []
        dlg = QProgressDialog("Exporting...", "Cancel", 0, 1000, w)
        dlg.setWindowModality(Qt.WindowModality.WindowModal)
        dlg.setAutoClose(False)
        dlg.setAutoReset(False)
        dlg.canceled.connect(w.worker.cancel)
        dlg.show()
        self.dialog = dlg
        w.router.submit(job, done=self._done, failed=self._failed, cancelled=self._cancelled,
                        progress=self._progress, long_kind="export")
        return self.export_id

    def _progress(self, stage: str, fraction: float) -> None:
        v = int(1000 * max(0.0, min(1.0, fraction)))
        self.win.progress.setValue(v)
        self.win.statusBar().showMessage(f"{stage}...")
        if self.dialog is not None:
            self.dialog.setValue(v)

    def _done(self, files) -> None:
        self.exported_files = list(files)
        self.close_progress()
        self.win.statusBar().showMessage(f"Exported {len(files)} files", 8000)

    def _failed(self, kind: str, message: str) -> None:
        self.close_progress()
        self.win.show_error(message, "Could not export")

    def _cancelled(self) -> None:
        self.close_progress()
        self.win.statusBar().showMessage("Cancelled", 5000)

    def close_progress(self) -> None:
        if self.dialog is not None:
            d, self.dialog = self.dialog, None
            d.canceled.disconnect()
            d.close()
            d.deleteLater()


class SessionController:
    """Save, open (a ``.triface`` or an ``edit.json``), autosave after a quiet time, crash
    recovery, and the questions before closing.  The recovery file goes only on a save or an
    explicit Discard."""

    def __init__(self, win, autosave: Autosave):
        self.win = win
        self.autosave = autosave
        # debounced: every change restarts it, the recovery file is written once the user pauses
        self.timer = QTimer(win, interval=AUTOSAVE_DELAY_MS, singleShot=True, timeout=self.autosave_now)

    def changed(self, what: str) -> None:
        if self.win.setup.dirty and what not in ("saved", "view"):
            self.timer.start()                # (re)start; a new result too: it belongs to the session

    def save(self, path: str) -> bool:
        w = self.win
        try:
            w.setup.save(path)
        except (OSError, ValueError) as e:
            w.show_error(f"Could not save the session: {e}")
            return False
        self.autosave.clear()              # saved: the recovery file has served its purpose
        w.add_recent(str(path))
        return True

    def save_dialog(self, as_new: bool = False) -> None:
        p = self.win.setup.path
        if as_new or not p:
            p, _ = QFileDialog.getSaveFileName(self.win, "Save session", "edit.triface", "TriFace sessions (*.triface)")
        if p:
            self.save(p)

    def open_dialog(self) -> None:
        p, _ = QFileDialog.getOpenFileName(self.win, "Open session", "", SESSION_FILTER)
        if p:
            self.open(p)

    def open(self, path: str) -> bool:
        try:
            s = EditSetup.load(path)
        except SetupError as e:
            self.win.show_error(str(e))
            return False
        self.win.load_setup(s)
        self.win.add_recent(str(path))
        return True

    def autosave_now(self) -> None:
        s = self.win.setup
        if s.dirty and s.has_work:
            try:
                self.autosave.save(s)
            except (OSError, ValueError):
                pass

    def offer_recovery(self) -> None:
        if not self.autosave.pending():
            return
        r = self.win.ask("Recover session", "TriFace Studio did not close cleanly last time. Recover the unsaved "
                         "session?", Button.Yes | Button.No, Button.Yes)
        if r == Button.Yes:
            try:
                self.win.load_setup(self.autosave.recover())
            except SetupError as e:
                self.win.show_error(str(e))
        self.autosave.clear()

    def may_close(self) -> bool:
        """Ask before losing anything: a running edit/export (stop it?), unsaved work (save / discard
        / cancel).  Answers are collected first, so that Cancel at any question changes nothing."""
        w = self.win
        if not w.worker.isRunning():
            return True                    # already shut down
        if w.jobs.busy():
            what = w.jobs.describe()
            r = w.ask("Close TriFace Studio", f"{what[0].upper()}{what[1:]} is running. Stop it and close?",
                      Button.Yes | Button.Cancel, Button.Cancel)
            if r != Button.Yes:
                return False
        if w.setup.dirty and w.setup.has_work:
            r = w.ask("Unsaved changes", "Save the changes to this session before closing?",
                      Button.Save | Button.Discard | Button.Cancel, Button.Save)
            if r == Button.Cancel:
                return False
            if r == Button.Save:
                self.save_dialog()
                if w.setup.dirty:          # the file dialog was cancelled or the save failed
                    return False
            else:
                self.autosave.clear()
        return True
