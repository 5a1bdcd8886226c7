"""Where profiles live: the per-user default root, its fallback, and whether a folder is ours.

A well-known per-user root is refused when a symlink or another user's (as pytest checks
``pytest-of-<user>``); a root the user named is the user's business.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from pathlib import Path

from .._system.platform import is_mine

#: The folder of a root that holds the run folders (``<root>/.runs/<run id>``).
RUNS = ".runs"


class UnsafeDirectoryError(PermissionError):
    """A folder we were about to trust is a symlink or belongs to someone else."""


def default_root() -> Path:
    """``<system temp>/edgeprofiles-of-<user>``, like pytest's ``pytest-of-<user>``."""
    try:
        user = re.sub(r"[^A-Za-z0-9_.-]", "_", _user()) or "unknown"
    except (ImportError, KeyError, OSError):
        user = "unknown"
    return Path(tempfile.gettempdir()).resolve() / f"edgeprofiles-of-{user}"


def _user() -> str:
    """What ``getpass.getuser()`` answers, without importing ``getpass`` (and ``termios``
    with it, ~0.4 ms of every run's start: the header names the root)."""
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        if user := os.environ.get(name):
            return user
    import pwd  # built in; Windows has none, and sets USERNAME

    return pwd.getpwuid(os.getuid()).pw_name


def fallback_root(root: Path) -> Path:
    """Where profiles go when ``root`` fails: the default root, or for it the user's cache."""
    default = default_root()
    return default if root != default else _cache_root()


def _cache_root() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(cache).resolve() / "edgeprofiles"


def private_roots() -> set[Path]:
    """The well-known per-user roots another local user could plant in advance."""
    return {default_root(), _cache_root()}


def prepare_root(root: Path, private: set[Path] | None = None) -> None:
    """Make ``root`` (0700); one of the ``private`` roots (default ``private_roots()``) is
    refused when planted."""
    from .._system import files  # not at import: every run's start-up reads this module

    if root in (private_roots() if private is None else private):
        files.make_dirs(root.parent)
        make_private_dir(root)
    else:
        files.make_dirs(root)  # private when we make it


def refuse_planted_root(root: Path) -> None:
    """``UnsafeDirectoryError`` when ``root`` is one of the per-user roots and planted."""
    if root in private_roots():
        refuse_foreign(root)


def make_private_dir(path: Path) -> None:
    """Create ``path`` (0700) if missing and refuse it unless it is ours, as pytest does."""
    try:
        path.mkdir(mode=0o700, exist_ok=True)
    except FileExistsError:
        if not path.is_symlink():  # a dangling link: refused below like any other link
            raise
    st = refuse_foreign(path)
    if st is not None and st.st_mode & 0o077:
        os.chmod(path, stat.S_IMODE(st.st_mode) & 0o700)


def refuse_foreign(path: Path) -> os.stat_result | None:
    """``UnsafeDirectoryError`` for a symlink or another user's; else ``lstat`` or None."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeDirectoryError(f"refusing {path}: it is a symlink")
    if not is_mine(st):
        raise UnsafeDirectoryError(
            f"refusing {path}: it is owned by uid {st.st_uid}, not {os.getuid()}"
        )
    return st
