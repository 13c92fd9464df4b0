"""Which long jobs (edits, exports) are running: one owner for "a job is running" (no Qt).

The app registers a job when it submits it and ends it from the worker's terminal signals (done,
failed, cancelled), whatever the kind; the run button, the close prompt and the export guard all
read ``busy`` / ``running`` from here instead of keeping flags of their own.
"""

from __future__ import annotations

from typing import Callable

LONG_KINDS = ("edit", "export")


class JobBoard:
    def __init__(self):
        self._running: dict[int, str] = {}
        self._listeners: list[Callable[[], None]] = []

    def subscribe(self, fn: Callable[[], None]) -> None:
        """``fn()`` is called after every change."""
        self._listeners.append(fn)

    def start(self, job_id: int, kind: str) -> None:
        if kind not in LONG_KINDS:
            raise ValueError(f"job kind must be one of {LONG_KINDS}, not {kind!r}")
        self._running[int(job_id)] = kind
        self._changed()

    def end(self, job_id: int) -> bool:
        """Forget ``job_id``; True when it was a long job."""
        if self._running.pop(int(job_id), None) is None:
            return False
        self._changed()
        return True

    def running(self, kind: str | None = None) -> list[int]:
        return [j for j, k in self._running.items() if kind is None or k == kind]

    def busy(self, kind: str | None = None) -> bool:
        return bool(self.running(kind))

    def kinds(self) -> list[str]:
        return sorted(set(self._running.values()))

    def describe(self) -> str:
        """'an edit', 'an export', 'an edit and an export' (for the close prompt)."""
        return " and ".join({"edit": "an edit", "export": "an export"}[k] for k in self.kinds())

    def _changed(self) -> None:
        for fn in list(self._listeners):
            fn()
