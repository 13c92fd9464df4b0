"""PySide6 6.12.0 drops a reference to True on every emit from Python; the qt package's guard
keeps long sessions (tens of thousands of emits) from aborting the interpreter."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_many_emits_do_not_abort_the_interpreter():
    code = textwrap.dedent("""
        import os, sys
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        from PySide6.QtCore import QObject, Signal
        from PySide6.QtWidgets import QApplication
        app = QApplication([])
        start = sys.getrefcount(True)
        import triface_studio.qt                      # the guard
        class O(QObject):
            s = Signal(float, float, bool)
        o = O()
        o.s.connect(lambda *a: None)
        for _ in range(3 * start):                    # far more emits than True had references
            o.s.emit(1.0, 2.0, True)
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok"
