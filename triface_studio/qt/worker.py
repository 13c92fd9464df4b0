"""One long-lived worker thread that owns the EditPipeline.

Jobs are immutable request objects with ids.  Render requests are newest-wins: a queued render is
dropped when a newer one arrives, and the UI ignores results whose id is not the latest it asked
for.  Edits and exports report progress and can be cancelled (threading.Event).
"""

from __future__ import annotations

import itertools
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from PySide6.QtCore import QThread, Signal

_ids = itertools.count(1)


def next_id() -> int:
    return next(_ids)


@dataclass(frozen=True)
class RenderJob:
    asset: Any
    yaw: float
    pitch: float
    resolution: int
    semantic: bool = True
    #: a preview while the user drags: the pipeline's fast path (``preview_view``) when it has one
    preview: bool = False
    id: int = field(default_factory=next_id)


@dataclass(frozen=True)
class EditJob:
    request: Any
    id: int = field(default_factory=next_id)


@dataclass(frozen=True)
class CallJob:
    """Any other work on the pipeline (analysis, predicted masks, exports): fn(pipe, progress, cancel)."""
    fn: Callable
    kind: str = "call"
    id: int = field(default_factory=next_id)


class PipelineWorker(QThread):
    progress = Signal(int, str, float)           # job id, stage, fraction
    edit_done = Signal(int, object)              # job id, EditResult
    render_done = Signal(int, object, float)     # job id, (rgb, labels), seconds
    call_done = Signal(int, str, object)         # job id, kind, value
    failed = Signal(int, str, str)               # job id, kind, message
    cancelled = Signal(int)

    def __init__(self, pipeline_factory: Callable[[], Any], parent=None):
        super().__init__(parent)
        self.setObjectName("triface-pipeline-worker")
        self._factory = pipeline_factory
        self.pipe = None
        self._cond = threading.Condition()
        self._queue: deque = deque()
        self._stop = False
        self._cancel = threading.Event()
        self._reload: tuple | None = None          # (factory,) to make the next job's pipeline with
        self.current_id = 0

    # -- called from the UI thread ----------------------------------------------------------
    def submit(self, job) -> int:
        with self._cond:
            if isinstance(job, RenderJob):  # newest wins
                self._queue = deque(j for j in self._queue if not isinstance(j, RenderJob))
            self._queue.append(job)
            self._cond.notify()
        return job.id

    def cancel(self) -> None:
        """Cancel the running edit/export and drop queued ones."""
        with self._cond:
            dropped = [j.id for j in self._queue if not isinstance(j, RenderJob)]
            self._queue = deque(j for j in self._queue if isinstance(j, RenderJob))
        self._cancel.set()
        for jid in dropped:       # the UI hears about queued jobs that will never run
            self.cancelled.emit(jid)

    def stop(self) -> None:
        """Ask the thread to end after its current job, cancel that job, and wait for it."""
        with self._cond:
            self._stop = True
            self._queue.clear()
            self._cond.notify()
        self._cancel.set()
        self.wait()

    def set_factory(self, factory: Callable[[], Any] | None = None) -> None:
        """Make a fresh pipeline (from ``factory``, or the same factory when None) for the next
        job; the running job finishes on the old one."""
        with self._cond:
            self._reload = (factory or self._factory,)

    def pending(self) -> int:
        with self._cond:
            return len(self._queue)

    # -- the thread --------------------------------------------------------------------------
    def run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                job = self._queue.popleft()
                self._cancel.clear()
                self.current_id = job.id
                if self._reload is not None:
                    (self._factory,), self._reload, self.pipe = self._reload, None, None
            self._do(job)

    def _pipe(self):
        if self.pipe is None:
            self.pipe = self._factory()
        return self.pipe

    def _do(self, job) -> None:
        from triface_studio.pipeline.errors import Cancelled, EditError

        kind = "render" if isinstance(job, RenderJob) else "edit" if isinstance(job, EditJob) else job.kind
        try:
            pipe = self._pipe()
            if isinstance(job, RenderJob):
                t = time.perf_counter()
                if job.preview and hasattr(pipe, "preview_view"):
                    out = pipe.preview_view(job.asset, job.yaw, job.pitch, job.resolution, semantic=job.semantic)
                else:
                    out = pipe.render_view(job.asset, job.yaw, job.pitch, job.resolution, semantic=job.semantic)
                self.render_done.emit(job.id, out, time.perf_counter() - t)
            elif isinstance(job, EditJob):
                res = pipe.run(job.request, progress=lambda s, f: self.progress.emit(job.id, s, float(f)),
                               cancel=self._cancel)
                self.edit_done.emit(job.id, res)
            else:
                val = job.fn(pipe, lambda s, f: self.progress.emit(job.id, s, float(f)), self._cancel)
                self.call_done.emit(job.id, job.kind, val)
        except Cancelled:
            self.cancelled.emit(job.id)
        except (EditError, ValueError, OSError) as e:
            self.failed.emit(job.id, kind, str(e))
        except Exception as e:  # never crash the app: report it
            traceback.print_exc()
            self.failed.emit(job.id, kind, f"{type(e).__name__}: {e}")
