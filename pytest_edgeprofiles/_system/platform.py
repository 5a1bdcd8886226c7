"""Facts of the machine we run on, asked in one place: the OS, this host, this user."""

from __future__ import annotations

import errno
import os
import socket
import sys
from pathlib import Path

WINDOWS = sys.platform == "win32"
MACOS = sys.platform == "darwin"


def this_host() -> str:
    """The host name, as Chromium writes it into ``SingletonLock`` and we into records."""
    return socket.gethostname()


def usable_cores() -> int:
    """The cores this process may run on (a container's or ``taskset``'s share, where known)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def is_mine(st: os.stat_result) -> bool:
    """Whether the ``lstat``-ed entry is ours; always on Windows, where ACLs protect folders."""
    return not hasattr(os, "getuid") or st.st_uid == os.getuid()


def expand_user(path: str | os.PathLike[str]) -> Path:
    """``path`` with a leading ``~`` or ``~user`` expanded. pathlib raises ``RuntimeError`` for
    a user with no home (``~nosuchuser``): a bad value, so ``FileNotFoundError`` naming it."""
    try:
        return Path(path).expanduser()
    except RuntimeError:
        home = Path(path).parts[0]
        raise FileNotFoundError(errno.ENOENT, f"no home directory for {home}", str(path)) from None
