"""The Models dialog: which models are installed or missing, what each one adds, its licence, and
buttons to import, verify or remove user models.

    dlg = ModelsDialog(parent)
    dlg.modelsChanged.connect(reload_tiers)      # emitted after an import or a removal
    dlg.exec()

``import_path(path, name=None, background=False)``, ``verify_selected()`` and
``remove_selected()`` do the work behind the buttons without opening file or confirmation
dialogs, so the app (and the tests) can call them directly.  The buttons run imports and
verification on a worker thread (conversion and hashing of GB-sized checkpoints take seconds);
closing the dialog waits for it.  Errors are shown in the dialog's message line, never as a
traceback.
"""

from __future__ import annotations

import html
import threading
from pathlib import Path

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QBrush, QColor, QDesktopServices, QGuiApplication
from PySide6.QtWidgets import (QAbstractItemView, QApplication, QDialog, QDialogButtonBox, QFileDialog, QHBoxLayout,
                               QHeaderView, QLabel, QMessageBox, QPushButton, QSplitter, QTableWidget,
                               QTableWidgetItem, QTextBrowser, QVBoxLayout, QWidget)

from triface_studio.models import registry

COLUMNS = ("Model", "Tier", "State", "Size", "Licence")
STATE_COLOURS = {"installed": "#43b37a", "missing": "#9aa0a6", "corrupt": "#e0574f"}


class ModelsDialog(QDialog):
    modelsChanged = Signal()
    jobFinished = Signal(bool)          # a background import/verify ended (True: success)
    _done = Signal(object)              # worker thread -> GUI thread

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Models")
        self.resize(900, 520)
        self._statuses: list[registry.ModelStatus] = []
        self._worker: threading.Thread | None = None
        self._pending = None
        self._done.connect(self._finish_job, Qt.ConnectionType.QueuedConnection)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        hh = self.table.horizontalHeader()
        hh.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        hh.setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._show_details)

        self.details = QTextBrowser()
        self.details.setOpenExternalLinks(True)

        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.table)
        split.addWidget(self.details)
        split.setSizes([300, 220])

        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.import_button = QPushButton("Import…")
        self.import_button.setToolTip("Add a checkpoint file (.pkl, .pt, .pth, .safetensors) for the selected model")
        self.import_folder_button = QPushButton("Import folder…")
        self.import_folder_button.setToolTip("Add a diffusers model folder (safetensors + JSON)")
        self.verify_button = QPushButton("Verify")
        self.verify_button.setToolTip("Check the sha256 of the selected model's files")
        self.remove_button = QPushButton("Remove")
        self.open_button = QPushButton("Open folder")
        self.import_button.clicked.connect(self._ask_import_file)
        self.import_folder_button.clicked.connect(self._ask_import_folder)
        self.verify_button.clicked.connect(lambda: self.verify_selected(background=True))
        self.remove_button.clicked.connect(self._ask_remove)
        self.open_button.clicked.connect(self._open_folder)

        buttons = QHBoxLayout()
        for b in (self.import_button, self.import_folder_button, self.verify_button, self.remove_button,
                  self.open_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        buttons.addWidget(close)

        folder = QLabel(f"Your models folder: <code>{html.escape(str(registry.user_models_dir()))}</code>")
        folder.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        lay = QVBoxLayout(self)
        lay.addWidget(folder)
        lay.addWidget(split, 1)
        lay.addWidget(self.message)
        lay.addLayout(buttons)
        self.refresh()

    # ----- state -----

    def refresh(self, select: str | None = None) -> None:
        """Re-read what is installed (presence and sizes only; hashing is Verify's job)."""
        keep = select or self.selected_name()
        self._statuses = registry.status_all()
        self.table.setRowCount(len(self._statuses))
        for row, st in enumerate(self._statuses):
            size = sum(c.size or 0 for c in st.files) if st.installed else st.spec.size
            cells = (st.spec.name, st.spec.tier, st.state, registry.format_size(size), st.spec.licence)
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, st.spec.name)
                if col == 2 and st.state in STATE_COLOURS:
                    item.setForeground(QBrush(QColor(STATE_COLOURS[st.state])))
                self.table.setItem(row, col, item)
        names = [s.spec.name for s in self._statuses]
        self.table.selectRow(names.index(keep) if keep in names else 0)
        self._show_details()

    def selected_name(self) -> str | None:
        items = self.table.selectedItems()
        return items[0].data(Qt.ItemDataRole.UserRole) if items else None

    def select(self, name: str) -> None:
        names = [s.spec.name for s in self._statuses]
        self.table.selectRow(names.index(name))

    def status(self, name: str) -> registry.ModelStatus:
        return next(s for s in self._statuses if s.spec.name == name)

    def _show_details(self) -> None:
        name = self.selected_name()
        if name is None:
            self.details.clear()
            return
        st = self.status(name)
        s = st.spec
        e = html.escape
        rows = [f"<h3>{e(s.name)} <small>({e(s.tier)}, {e(st.state)})</small></h3>",
                f"<p>{e(s.purpose)}</p>"]
        if not st.installed:
            rows.append(f"<p><b>Missing.</b> {e(registry.describe_missing(s.name))}</p>")
        rows.append(f"<p><b>Source:</b> {_linkify(s.source_url)}</p>")
        if s.formats:
            rows.append(f"<p><b>Import accepts:</b> {e(s.formats)}</p>")
        nc = " <b style='color:#e0574f'>Non-commercial use only.</b>" if s.noncommercial else ""
        rows.append(f"<p><b>Licence:</b> {e(s.licence)}.{nc}<br>{_linkify(s.licence_text)}</p>")
        files = []
        for c in st.files or [registry.FileCheck(f.name, Path(f.name), False) for f in s.files]:
            mark = "✔" if c.exists else "✘"
            files.append(f"<li>{mark} <code>{e(c.name)}</code> {registry.format_size(c.size) if c.exists else ''}"
                         f" {e(c.message) if c.ok is not None and c.message != 'missing' else ''}</li>")
        rows.append(f"<p><b>Files</b> in <code>{e(str(st.folder or ''))}</code>:</p><ul>{''.join(files)}</ul>")
        self.details.setHtml("".join(rows))
        user, idle = not s.bundled, self._worker is None
        self.remove_button.setEnabled(user and st.installed and idle)
        self.verify_button.setEnabled(st.installed and idle)
        self.open_button.setEnabled(st.folder is not None and st.folder.exists())

    def _say(self, text: str, error: bool = False) -> None:
        self.message.setStyleSheet("color: #e0574f;" if error else "")
        self.message.setText(text)

    # ----- actions (callable without dialogs) -----

    def import_path(self, path: str | Path, name: str | None = None, background: bool = False) -> bool | None:
        """Import a file or folder; ``name`` defaults to the selected neural model when the file
        name does not tell.  Returns True on success (the message line says what happened); with
        ``background`` the work (conversion, hashing) runs on a worker thread and this returns None
        at once: watch ``modelsChanged`` / ``jobFinished``."""
        path = Path(path)
        if name is None and registry.guess_model(path) is None:
            sel = self.selected_name()
            if sel is not None and not registry.get(sel).bundled:
                name = sel
        return self._run(f"Importing {path.name}…", lambda: registry.import_model(path, name=name),
                         lambda res: self._imported(res), f"Could not import {path.name}", background)

    def _imported(self, res: registry.ImportResult) -> bool:
        self.refresh(select=res.spec.name)
        note = f" ({'; '.join(res.notes)})" if res.notes else ""
        self._say(f"Imported {res.spec.name}: {', '.join(res.files)}{note}.")
        self.modelsChanged.emit()
        return True

    def verify_selected(self, background: bool = False) -> bool | None:
        name = self.selected_name()
        if name is None:
            return None
        return self._run(f"Verifying {name}…", lambda: registry.check(name, hashes=True),
                         lambda st: self._verified(name, st), f"Could not verify {name}", background)

    def _verified(self, name: str, st: registry.ModelStatus) -> bool:
        bad = [f"{c.name}: {c.message}" for c in st.files if c.ok is False]
        self.refresh(select=name)
        if bad:
            self._say(f"{name} failed verification: " + "; ".join(bad), error=True)
            return False
        self._say(f"{name}: all {len(st.files)} file(s) verified.")
        return True

    # ----- running work off the GUI thread -----

    @property
    def busy(self) -> bool:
        return self._worker is not None

    def _run(self, label: str, work, finish, fail: str, background: bool):
        if self._worker is not None:
            self._say("Still working on the previous request…", error=True)
            return None
        if not background:
            QGuiApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
            try:
                result = work()
            except (ValueError, OSError, KeyError) as e:
                self._say(f"{fail}: {_message(e)}", error=True)
                return False
            finally:
                QGuiApplication.restoreOverrideCursor()
            return finish(result)
        self._set_busy(True)
        self._say(label)
        self._pending = (finish, fail)

        def target():
            try:
                out = ("ok", work())
            except Exception as e:  # noqa: BLE001 -- reported in the dialog
                out = ("error", e)
            self._done.emit(out)

        self._worker = threading.Thread(target=target, name="models-dialog-worker", daemon=True)
        self._worker.start()
        return None

    def _finish_job(self, out) -> None:
        if self._worker is not None:
            self._worker.join()
            self._worker = None
        self._set_busy(False)
        finish, fail = self._pending
        kind, value = out
        if kind == "ok":
            ok = bool(finish(value))
        else:
            self._say(f"{fail}: {_message(value)}", error=True)
            ok = False
        self.jobFinished.emit(ok)

    def _set_busy(self, busy: bool) -> None:
        for b in (self.import_button, self.import_folder_button, self.verify_button, self.remove_button):
            b.setEnabled(not busy)
        if not busy:
            self._show_details()

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Block until a background job is done (its result is delivered on the next event loop turn)."""
        if self._worker is not None:
            self._worker.join(timeout)

    def done(self, r: int) -> None:      # closing the dialog: never leave the worker running
        self.wait_idle()
        QApplication.processEvents()
        super().done(r)

    def closeEvent(self, event) -> None:  # noqa: N802
        self.wait_idle()
        QApplication.processEvents()
        super().closeEvent(event)

    def remove_selected(self) -> bool:
        name = self.selected_name()
        if name is None:
            return False
        try:
            registry.remove(name)
        except (ValueError, OSError) as e:
            self._say(str(e), error=True)
            return False
        self.refresh(select=name)
        self._say(f"Removed {name}.")
        self.modelsChanged.emit()
        return True

    # ----- button handlers with dialogs -----

    def _ask_import_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import a checkpoint", "",
                                              "Checkpoints (*.pkl *.pt *.pth *.safetensors);;All files (*)")
        if path:
            self.import_path(path, background=True)

    def _ask_import_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Import a model folder")
        if path:
            self.import_path(path, background=True)

    def _ask_remove(self) -> None:
        name = self.selected_name()
        if name and QMessageBox.question(self, "Remove model", f"Delete {name} from your models folder?") \
                == QMessageBox.StandardButton.Yes:
            self.remove_selected()

    def _open_folder(self) -> None:
        name = self.selected_name()
        if name:
            st = self.status(name)
            if st.folder is not None:
                QDesktopServices.openUrl(QUrl.fromLocalFile(str(st.folder)))


def _message(e: BaseException) -> str:
    return str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)


def _linkify(text: str) -> str:
    out = []
    for word in text.split(" "):
        w = html.escape(word)
        if word.startswith("https://"):
            url = word.rstrip(").,;")
            w = f'<a href="{html.escape(url)}">{html.escape(url)}</a>{html.escape(word[len(url):])}'
        out.append(w)
    return " ".join(out)
