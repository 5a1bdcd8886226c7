"""Facts of the machine we run on, asked in one place: the OS, this host, this user."""

from __future__ import annotations

import os
import socket
import sys

WINDOWS = sys.platform == "win32"
MACOS = sys.platform == "darwin"
LINUX = sys.platform.startswith("linux")


def this_host() -> str:
    """The host name, as Chromium writes it into ``SingletonLock`` and we into records."""
    return socket.gethostname()


def is_mine(st: os.stat_result) -> bool:
    """Whether the entry (an ``lstat``) belongs to the current user. Always true where the
    OS has no uids (Windows): there the folder's ACL, not its owner, protects it."""
    return not hasattr(os, "getuid") or st.st_uid == os.getuid()
