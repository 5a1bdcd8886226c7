"""Facts of the machine we run on, asked in one place: the OS, this host, this user."""

from __future__ import annotations

import os
import socket
import sys

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
