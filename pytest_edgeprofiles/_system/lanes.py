"""Lanes: one daemon thread each, so one kind of background work never queues behind another
and Ctrl-C never hangs at exit; every owner of lanes calls ``close`` at its end."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")
_Job = tuple[Callable[[], Any], "Future[Any]"] | None


class Lanes:
    """Named lanes of one thread each; ``drain`` waits for all they were given."""

    def __init__(self, prefix: str = "edgeprofiles") -> None:
        self._prefix = prefix
        self._lock = threading.Lock()
        self._queues: dict[str, queue.SimpleQueue[_Job]] = {}
        self._threads: list[threading.Thread] = []
        self._pending: set[Future[Any]] = set()

    def submit(self, lane: str, fn: Callable[[], T]) -> Future[T]:
        """Run ``fn`` in ``lane``, after what the lane was given before."""
        future: Future[T] = Future()
        with self._lock:
            jobs = self._queues.get(lane)
            if jobs is None:
                jobs = self._queues[lane] = queue.SimpleQueue()
                thread = threading.Thread(
                    target=_serve, args=(jobs,), name=f"{self._prefix}-{lane}", daemon=True
                )
                thread.start()
                self._threads.append(thread)
            # Given to the lane before it is pending: a Ctrl-C between the two never leaves
            # ``drain`` waiting for a job no lane has.
            jobs.put((fn, future))
            self._pending.add(future)
        future.add_done_callback(self._done)
        return future

    def _done(self, future: Future[Any]) -> None:
        with self._lock:
            self._pending.discard(future)

    def drain(self) -> None:
        """Wait until everything submitted so far has run (errors are the submitter's)."""
        if threading.current_thread() in self._threads:
            raise RuntimeError("a lane cannot wait for its own lanes: it would wait for itself")
        while True:
            with self._lock:
                pending = list(self._pending)
            if not pending:
                return
            for future in pending:
                future.exception()

    def close(self) -> None:
        """Wait for what was given, then end the threads; a later ``submit`` starts anew."""
        self.drain()
        with self._lock:
            jobs, self._queues = list(self._queues.values()), {}
            threads, self._threads = self._threads, []
        for lane in jobs:
            lane.put(None)
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join()


def _serve(jobs: queue.SimpleQueue[_Job]) -> None:
    while (job := jobs.get()) is not None:
        _run(*job)
        del job  # an idle lane holds nothing alive (a manager's finalizer must be able to run)


def _run(fn: Callable[[], Any], future: Future[Any]) -> None:
    if not future.set_running_or_notify_cancel():
        return  # cancelled before it began
    try:
        result = fn()
    except BaseException as exc:  # the submitter's to report, as an executor would
        future.set_exception(exc)
    else:
        future.set_result(result)
