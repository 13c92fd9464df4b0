"""The job router: job id -> the handlers of that job (done, failed, cancelled, progress).

The worker's signals are connected here once; whoever submits a job names what should happen
with its outcome, instead of the window comparing ids in one handler per signal.  Long jobs
(edits, exports) are registered on the document's :class:`~triface_studio.document.JobBoard` when
submitted and ended after their handler ran, whatever the outcome.  Renders are the orbit view's
own (newest wins) and are not routed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from triface_studio.document import JobBoard


@dataclass
class Route:
    done: Callable | None = None                    # done(value)
    failed: Callable | None = None                  # failed(kind, message)
    cancelled: Callable | None = None               # cancelled()
    progress: Callable | None = None                # progress(stage, fraction)


class JobRouter:
    def __init__(self, worker, jobs: JobBoard, unrouted_failure: Callable[[int, str, str], None] | None = None):
        self.worker, self.jobs = worker, jobs
        self._routes: dict[int, Route] = {}
        self._unrouted_failure = unrouted_failure
        worker.edit_done.connect(lambda jid, value: self._finish(jid, "done", value))
        worker.call_done.connect(lambda jid, kind, value: self._finish(jid, "done", value))
        worker.failed.connect(self._failed)
        worker.cancelled.connect(lambda jid: self._finish(jid, "cancelled"))
        worker.progress.connect(self._progress)

    def submit(self, job, done=None, failed=None, cancelled=None, progress=None, long_kind: str | None = None) -> int:
        """Queue ``job`` on the worker; ``long_kind`` ("edit", "export") puts it on the job board."""
        self._routes[job.id] = Route(done, failed, cancelled, progress)
        if long_kind:
            self.jobs.start(job.id, long_kind)
        return self.worker.submit(job)

    def routed(self, job_id: int) -> bool:
        return job_id in self._routes

    def _finish(self, jid: int, outcome: str, *args) -> None:
        route = self._routes.pop(jid, None)
        try:
            fn = getattr(route, outcome) if route is not None else None
            if fn is not None:
                fn(*args)
        finally:
            self.jobs.end(jid)

    def _failed(self, jid: int, kind: str, message: str) -> None:
        if jid not in self._routes:
            if self._unrouted_failure is not None:
                self._unrouted_failure(jid, kind, message)
            return
        self._finish(jid, "failed", kind, message)

    def _progress(self, jid: int, stage: str, fraction: float) -> None:
        route = self._routes.get(jid)
        if route is not None and route.progress is not None:
            route.progress(stage, fraction)
