"""An inter-process lock on a file, taken and given back once or twice a test.

filelock opens, checks and closes its file on every acquire, in a few hundred lines of Python:
about 0.1 ms a cycle, a fifth of a profile's whole cost. On POSIX this keeps the file open and
waits in ``flock`` itself (woken when the lock is free, not polling); elsewhere it is filelock.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import Any

from . import platform


class FileMutex:
    """Holds the lock on ``path`` (made 0600 if missing), ``with`` it or between ``acquire``
    and ``release``, against every process that names it. Not for threads of one process:
    serialise those with a ``threading.Lock``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._pid = 0  # the process that opened _fd: a forked child shares its lock
        self._other: Any = None
        if platform.WINDOWS:
            from filelock import FileLock

            self._other = FileLock(path, mode=0o600)

    def acquire(self) -> None:
        if self._other is not None:
            self._other.acquire(poll_interval=0.001)  # filelock's 50 ms default is a test's cost
            return
        import fcntl

        while True:
            if self._fd is None or self._pid != os.getpid():
                self._close()  # a forked child's copy: closing it leaves the parent's lock be
                flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
                self._fd, self._pid = os.open(self.path, flags, 0o600), os.getpid()
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            if self._still_the_file():
                return
            self._close()  # removed or replaced while we waited: others lock the new one

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd, self._pid = None, 0

    def __del__(self) -> None:
        if self._pid == os.getpid():
            self._close()

    def _still_the_file(self) -> bool:
        assert self._fd is not None
        try:
            named = os.stat(self.path)
        except FileNotFoundError:
            return False
        held = os.fstat(self._fd)
        return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)

    def release(self) -> None:
        if self._other is not None:
            self._other.release()
            return
        import fcntl

        assert self._fd is not None
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def __enter__(self) -> FileMutex:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
