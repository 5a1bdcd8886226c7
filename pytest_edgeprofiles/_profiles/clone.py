"""What goes into a profile: the base checked, copied without caches and locks, prefs adjusted."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from pathlib import Path

from .._chromium import userdata
from .._chromium.userdata import DEFAULT_SKIP_RULES, SkipRules
from .._system import files
from .._system.logs import log
from .._system.platform import expand_user
from ..errors import ProfileCreationError

MB = 1024 * 1024


def check_base_profile(base_profile_path: str | os.PathLike[str]) -> Path:
    """The resolved base profile; an ``OSError`` when missing, not a folder or unreadable,
    ``ValueError`` for a profile folder (``Default``) rather than a user data dir."""
    base = expand_user(base_profile_path)
    if not base.exists():
        raise FileNotFoundError(errno.ENOENT, "base profile not found", str(base))
    if not base.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "base profile is not a directory", str(base))
    if not os.access(base, os.R_OK | os.X_OK):
        raise PermissionError(errno.EACCES, "base profile is not readable", str(base))
    if userdata.looks_like_profile_folder(base):
        raise ValueError(
            f"base profile {str(base)!r} is a profile folder (it has Preferences but no "
            f"'Local State'); pass its parent, the user data dir"
        )
    return base.resolve()


def snapshot(base: Path, target: Path) -> None:
    """Copy ``base`` into the empty ``target`` as a clone would, exit marked clean. SQLite files
    are copied again by online backup: a browser on the base may write them mid-copy."""
    files.copy_tree(base, target, DEFAULT_SKIP_RULES.skips)
    for entry, rel in files.walk(target, tolerant=True):
        if entry.is_file(follow_symlinks=False) and _is_sqlite(entry.path):
            _backup_database(base.joinpath(*rel), target.joinpath(*rel))
    userdata.mark_clean_exit(target)


_SQLITE_HEADER = b"SQLite format 3\x00"
_SQLITE_SIDECARS = ("-journal", "-wal", "-shm")


def _is_sqlite(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(len(_SQLITE_HEADER)) == _SQLITE_HEADER
    except OSError:
        return False


def _backup_database(source: Path, copy: Path) -> None:
    """Replace ``copy`` by a consistent backup of ``source``; else keep it, with a warning."""
    import sqlite3  # only a snapshot needs it: checking a base's path must stay light

    partial = copy.with_name(copy.name + ".backup")
    try:
        # With no journal beside it, no writer is mid-way and the file is whole: read it as
        # immutable (read-only SQLite makes -wal and -shm files in the user's profile), and
        # again, among its writers, if it changed or a journal came meanwhile.
        before = _unwritten(source)
        if before is not None:
            _backup(source, "mode=ro&immutable=1", partial)
        if before is None or _unwritten(source) != before:
            _backup(source, "mode=ro", partial)
        os.replace(partial, copy)
    except (sqlite3.Error, OSError) as exc:
        log.warning("copied %s as it is, maybe mid-write (%s)", source, exc)
        with contextlib.suppress(OSError):
            partial.unlink()
        return
    for suffix in _SQLITE_SIDECARS:  # the backup is whole: a stale journal would undo it
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{copy}{suffix}")


def _unwritten(db: Path) -> tuple[int, int, bytes] | None:
    """Size, modification time and change counter (which each commit without a WAL bumps) of
    ``db`` with no journal beside it; None with one."""
    if any(os.path.lexists(f"{db}{suffix}") for suffix in _SQLITE_SIDECARS):
        return None
    with open(db, "rb") as fh:
        st = os.fstat(fh.fileno())
        return st.st_size, st.st_mtime_ns, fh.read(28)[24:]


def _backup(source: Path, query: str, target: Path) -> None:
    """An online backup of ``source``, opened with the URI ``query``, into ``target``."""
    import sqlite3  # only a snapshot needs it: checking a base's path must stay light

    src = sqlite3.connect(f"{source.as_uri()}?{query}", uri=True, timeout=1.0)
    with contextlib.closing(src), contextlib.closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


class Cloner:
    """Fills new profiles from one base (or none), within a size limit."""

    def __init__(self, base: Path | None, limit_mb: int, skip_rules: SkipRules) -> None:
        self.base = base
        self.limit_mb = limit_mb
        self.skip_rules = skip_rules
        self._base_size: int | None = None

    def check_room(self, key: str, root: Path) -> None:
        """``ProfileCreationError`` if a clone would pass the limit, ENOSPC if ``root`` is full."""
        if self.base is None:
            return
        need = self._clone_size()
        if need > self.limit_mb * MB:
            raise ProfileCreationError(key, self.too_large(need))
        free = shutil.disk_usage(root).free
        if free < need:
            raise OSError(
                errno.ENOSPC,
                f"not enough free space under {root}: a clone of {self.base} "
                f"needs {need / MB:.1f} MB, {free / MB:.1f} MB are free",
            )

    def fill(self, key: str, profile: Path, downloads: Path | None) -> int:
        """Copy the base into the empty ``profile``, adjust prefs, return the size (or
        ``ProfileCreationError`` over the limit)."""
        if self.base is None:  # empty: no prefs to read, none to mark clean
            return _own_downloads(profile, downloads, empty=True)
        size = files.copy_tree(self.base, profile, self.skip_rules.skips)
        if size > self.limit_mb * MB:
            raise ProfileCreationError(key, self.too_large(size))
        return self.adjust_prefs(profile, downloads, size)

    def refill(self, key: str, profile: Path, downloads: Path | None) -> int | None:
        """Refill ``profile`` with a fresh clone; its size, or None when it failed (logged)."""
        if self.base is None:
            return None
        try:
            files.clear_dir(profile)
            return self.fill(key, profile, downloads)
        except OSError as exc:
            log.warning("could not copy %s into %s: %s", self.base, profile, exc)
        except ProfileCreationError as exc:
            log.warning("profile %s of %s: %s", profile, key, exc.reason)
        return None

    def too_large(self, size: int) -> str:
        return (
            f"a clone of {self.base} is {size / MB:.1f} MB, over the "
            f"profile_size_limit_mb of {self.limit_mb} MB"
        )

    def _clone_size(self) -> int:
        if self._base_size is None and self.base is not None:
            self._base_size = files.tree_size(self.base, self.skip_rules.skips)
        return self._base_size or 0

    @staticmethod
    def adjust_prefs(profile: Path, downloads: Path | None, copied: int) -> int:
        """Clean exit and own downloads; the size is what was copied plus what these changed."""
        touched = userdata.pref_files(profile)
        before = files.total_size(touched)
        userdata.mark_clean_exit(profile)
        _own_downloads(profile, downloads)
        return copied + files.total_size(touched) - before


def _own_downloads(profile: Path, downloads: Path | None, empty: bool = False) -> int:
    """Point the profile's download prefs at ``downloads``, else ``<profile>/Downloads`` (the
    base's own folder's name kept below it): parallel browsers must not share one. The folder
    is not made here: ``download_folder`` makes it when asked, the browser at its first
    download. ``empty``: no ``Preferences`` yet, none to read. The bytes it grew by."""
    top = downloads or profile / "Downloads"
    base_choice = None if empty else userdata.download_dir(profile)
    folder = top / Path(base_choice).name if base_choice else top
    try:
        return userdata.set_download_dir(profile, folder, empty=empty)
    except ValueError as exc:
        # A corrupt Preferences: the browser starts on defaults anyway, no reason to fail.
        log.warning("cannot set the download folder of %s: %s", profile, exc)
        return 0


def download_folder(profile: Path, downloads: Path | None) -> str | None:
    """The profile's download folder as its prefs name it, made if it is ours and missing;
    None if they name none (a corrupt ``Preferences``)."""
    folder = userdata.download_dir(profile)
    if folder is None:
        return None
    top = downloads or profile / "Downloads"
    path = Path(folder)
    if path == top or path.parent == top:  # not one the user pointed elsewhere
        try:
            if downloads is not None:
                files.make_dirs(downloads)
            else:  # no parents: a profile removed meanwhile is never recreated
                top.mkdir(mode=0o700, exist_ok=True)
            if path != top:
                path.mkdir(mode=0o700, exist_ok=True)
        except FileNotFoundError:
            pass  # the profile is gone: its path is still the answer
    return folder
