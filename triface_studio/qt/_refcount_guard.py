"""A guard against a reference-count bug of PySide6 6.12.0 (seen on this project's machines).

Every ``Signal.emit()`` made from Python drops one reference to ``True`` that it never took
(measured: ``sys.getrefcount(True)`` falls by exactly one per emit, whatever the signal's
arguments; superqt's labelled slider emits two per value).  The app emits several signals
per rendered frame, so after some ten thousand emits (minutes of dragging the orbit view at
30 frames per second) the count reaches zero and CPython aborts with "Fatal Python error:
bool_dealloc" (exit code 134), mid-session or when the interpreter exits.

``True`` and ``False`` are never freed anyway, so on CPython before 3.12 their counts are
raised once by 2**40 (more emits than a session can make); 3.12 made them immortal and needs
nothing.  Harmless where PySide6 has no such bug.
"""

from __future__ import annotations

import ctypes
import platform
import sys

_GUARD = 1 << (40 if ctypes.sizeof(ctypes.c_ssize_t) >= 8 else 28)     # far below the count's own limit
_done = False


def guard_bool_refcounts() -> bool:
    """Raise the reference counts of True and False once; returns whether it did."""
    global _done
    if _done or sys.version_info >= (3, 12) or platform.python_implementation() != "CPython":
        return False
    if hasattr(sys, "getobjects"):      # a Py_TRACE_REFS build: ob_refcnt is not the first field
        return False
    for obj in (True, False):
        ctypes.c_ssize_t.from_address(id(obj)).value += _GUARD      # ob_refcnt is PyObject's first field
    _done = True
    return True
