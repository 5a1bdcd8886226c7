"""One background thread per manager, for the work a test should not wait for: preparing the
next clone and deleting the last profile."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

log = logging.getLogger("pytest_edgeprofiles")
T = TypeVar("T")


class Background:
    """A single worker thread, started on first use; ``drain`` waits for all it was given."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._pending: set[Future[object]] = set()
        #: Paths whose background removal failed, with the error: left to the sweep.
        self.failures: list[tuple[str, str]] = []

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="edgeprofiles")
            future = self._executor.submit(fn)
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
