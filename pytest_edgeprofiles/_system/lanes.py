"""Background threads for the work a test should not wait for, one lane per kind of work so
that one never queues behind another: a manager's lanes prepare the next clone and delete the
last profile; others start the next test's browser and stop the last one's."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class Background:
    """One worker thread per lane, started on first use; ``drain`` waits for all it was given."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executors: dict[str, ThreadPoolExecutor] = {}
        self._pending: set[Future[object]] = set()

    def submit(self, lane: str, fn: Callable[[], T]) -> Future[T]:
        with self._lock:
            executor = self._executors.get(lane)
            if executor is None:
                executor = ThreadPoolExecutor(1, thread_name_prefix=f"edgeprofiles-{lane}")
                self._executors[lane] = executor
            future = executor.submit(fn)
            self._pending.add(future)  # type: ignore[arg-type]
        future.add_done_callback(self._done)
        return future

    def _done(self, future: Future[T]) -> None:
        with self._lock:
            self._pending.discard(future)

    def drain(self) -> None:
        """Wait until everything submitted so far has run."""
        while True:
            with self._lock:
                pending = list(self._pending)
            if not pending:
                return
            for future in pending:
                future.exception()  # waits; errors are the submitter's to report
