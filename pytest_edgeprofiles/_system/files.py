"""Filesystem mechanics: copying a tree, its size, robust removal, atomic JSON."""

from __future__ import annotations

import contextlib
import errno
import json
import ntpath
import os
import shutil
import stat
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from . import platform, treecopy
from .waiting import Backoff

#: Errors that say "the destination cannot take more", never "the source is bad".
DESTINATION_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


def long_path(path: str | os.PathLike[str], windows: bool | None = None) -> str:
    r"""``path`` as Windows takes it past 260 characters (``\\?\C:\...``,
    ``\\?\UNC\server\share\...``); unchanged elsewhere.

    Profiles hold deep cache and extension paths, and Windows lifts its 260-character limit
    only where an administrator set ``LongPathsEnabled``. The prefix works everywhere but
    turns off the normalisation of ``/`` and ``..``, so the path is made absolute first.
    """
    text = os.fspath(path)
    if not (platform.WINDOWS if windows is None else windows) or text.startswith("\\\\?\\"):
        return text
    text = ntpath.abspath(text)
    if text.startswith("\\\\"):
        return "\\\\?\\UNC\\" + text[2:]
    return "\\\\?\\" + text


def make_dirs(path: Path) -> None:
    """Make ``path`` and its missing parents, each 0700 whatever the umask.

    ``Path.mkdir(parents=True)`` makes the parents with the umask's mode: under umask 0 they
    would be writable by everyone, and anyone could then swap what lies below them.
    """
    missing = []
    folder = path
    while not os.path.isdir(folder) and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            if not os.path.isdir(folder):  # a file in the way: mkdir's own error says so
                raise


def read_json(path: Path) -> Any:
    """Parse a JSON file; raises ``OSError`` or ``ValueError``."""
    with open(path, "rb") as fh:
        return json.loads(fh.read())


def write_json_atomic(path: Path, data: Any, mode: int = 0o600) -> None:
    """Write JSON so that readers see the old file or the new one, never half of one."""
    # Host and pid in the name: a sweep can tell a dead writer's leftover from a live one's.
    tmp = path.with_name(
        f".{path.name}.{platform.this_host()}.{os.getpid()}.{threading.get_ident()}.tmp"
    )
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, separators=(",", ":"))
        _replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _replace(src: str | Path, dst: Path, windows: bool | None = None) -> None:
    """``os.replace``, retried on Windows for about half a second while the destination is
    open elsewhere (a sweep reading a record): Windows refuses to replace an open file with
    "access denied" or a sharing violation, where POSIX replaces it under the reader."""
    backoff = Backoff(0.001, tries=9)  # a reader tells nobody when it closes the file
    while True:
        try:
            os.replace(src, dst)
            return
        except PermissionError:
            if not (platform.WINDOWS if windows is None else windows) or not backoff.pause():
                raise


def _never(parts: tuple[str, ...], is_dir: bool) -> bool:
    return False


def walk(
    top: Path, skip: Callable[[tuple[str, ...], bool], bool] = _never, tolerant: bool = False
) -> Iterator[tuple[os.DirEntry[str], tuple[str, ...]]]:
    """Each entry below ``top`` with its path relative to ``top`` as parts, folders first.

    Never follows a symlink. ``skip`` gets the parts and whether the entry is a folder; a
    skipped folder is not descended into. A folder that vanishes while we walk (a live
    browser's) is passed over; other errors are raised unless ``tolerant``. Entries' paths
    are in their ``long_path`` form.
    """
    if os.path.islink(top):
        return
    stack: list[tuple[str, tuple[str, ...]]] = [(long_path(top), ())]
    while stack:
        folder, parts = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except FileNotFoundError:
            if tolerant or parts:
                continue  # vanished; a path too long (ENAMETOOLONG) is no reason to pass over
            raise
        except OSError:
            if tolerant:
                continue
            raise
        for entry in entries:
            rel = (*parts, entry.name)
            is_dir = entry.is_dir(follow_symlinks=False)
            if skip(rel, is_dir):
                continue
            yield entry, rel
            if is_dir:
                stack.append((entry.path, rel))


def copy_tree(src: Path, dst: Path, skip: Callable[[tuple[str, ...], bool], bool] = _never) -> int:
    """Copy the contents of ``src`` into the existing folder ``dst``; return the bytes copied
    (the files' sizes).

    Symlinks are copied as links, never followed; sockets and other special files are left
    out; entries that vanish while we copy (a live base) are passed over; holes in sparse
    files stay holes. Where the OS allows, every entry is reached relative to its open
    folder, so paths past ``PATH_MAX`` copy like any other; any other error is raised.
    """
    if treecopy.SUPPORTED:
        return treecopy.copy_tree_at(src, dst, skip)
    return _copy_tree_by_path(src, dst, skip)


def _copy_tree_by_path(src: Path, dst: Path, skip: Callable[[tuple[str, ...], bool], bool]) -> int:
    """``copy_tree`` by full paths, where the OS has no ``dir_fd`` (Windows), each in its
    ``long_path`` form; a path still too long is an error, never a folder passed over."""
    total = 0
    into = long_path(dst)
    for entry, rel in walk(src, skip):
        target = os.path.join(into, *rel)
        try:
            if entry.is_symlink():
                os.symlink(os.readlink(entry.path), target)
            elif entry.is_dir(follow_symlinks=False):
                os.mkdir(target, 0o700)
            elif entry.is_file(follow_symlinks=False):
                total += _copy_file(entry, target)
        except FileNotFoundError:
            if os.path.lexists(entry.path):
                raise
    return total


def _copy_file(entry: os.DirEntry[str], target: str) -> int:
    st = entry.stat(follow_symlinks=False)
    shutil.copyfile(entry.path, target, follow_symlinks=False)
    os.chmod(target, stat.S_IMODE(st.st_mode) | stat.S_IRUSR | stat.S_IWUSR)
    return st.st_size


def tree_size(path: Path, skip: Callable[[tuple[str, ...], bool], bool] | None = None) -> int:
    """Bytes of the regular files under ``path``; symlinks are not followed.

    Without ``skip`` it is a tight loop of its own, one ``fstatat`` per file relative to its
    open folder as ``du`` does: sizes are asked for often, and a ``stat`` by full path (what
    ``DirEntry.stat`` makes on POSIX) resolves every parent folder again for each file.
    """
    if skip is not None or not _STAT_AT:
        # On Windows DirEntry.stat costs nothing: the folder listing carries the sizes.
        return sum(file_size(entry) for entry, _ in walk(path, skip or _never, tolerant=True))
    total = 0
    stack = [os.fspath(path)]
    while stack:
        folder = stack.pop()
        try:
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            total += _files_size_at(fd, folder, stack)
        except OSError:
            continue
        finally:
            os.close(fd)
    return total


_STAT_AT = os.stat in os.supports_dir_fd and os.scandir in os.supports_fd


def _files_size_at(fd: int, folder: str, subfolders: list[str]) -> int:
    """Bytes of the files directly in the open folder ``fd``; its subfolders go on the list."""
    total = 0
    with os.scandir(fd) as entries:
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    subfolders.append(os.path.join(folder, entry.name))
                elif entry.is_file(follow_symlinks=False):
                    total += os.stat(entry.name, dir_fd=fd, follow_symlinks=False).st_size
            except OSError:
                continue
    return total


def total_size(paths: list[Path]) -> int:
    """Bytes of those of ``paths`` that are regular files (links not followed)."""
    total = 0
    for path in paths:
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            total += st.st_size
    return total


def file_size(entry: os.DirEntry[str]) -> int:
    """Bytes of a regular file; 0 for folders, links and what vanished."""
    try:
        return (
            entry.stat(follow_symlinks=False).st_size if entry.is_file(follow_symlinks=False) else 0
        )
    except OSError:
        return 0


def remove_tree(path: Path, attempts: int = 6, first_delay: float = 0.05) -> None:
    """Remove ``path`` and everything below it, never following a symlink out of it.

    Read-only entries are made writable; entries removed by someone else are ignored; what is
    still busy (Windows sharing violations, a browser child writing a last file) is retried with
    growing delays, about 1.5 s in all. Raises the last ``OSError``, which names the entry
    that stayed, when the tree stays. Paths past 260 characters are removed on Windows too.
    """
    target = Path(long_path(path))
    # A backoff, not a wait for an event: a file lock's holder tells nobody when it lets go.
    backoff = Backoff(first_delay, tries=attempts)
    while True:
        try:
            if os.path.islink(target) or os.path.isfile(target):
                os.unlink(target)
            else:
                _rmtree(target)
            return
        except FileNotFoundError:
            return
        except OSError:
            if not backoff.pause():
                raise


GARBAGE_PREFIX = "garbage-"


def move_aside(path: Path) -> Path:
    """Rename ``path`` to ``garbage-<name>`` beside it, so that it can be deleted at leisure and
    a half-deleted folder is never mistaken for a live one (pytest does the same)."""
    garbage = path.with_name(GARBAGE_PREFIX + path.name)
    os.rename(path, garbage)
    return garbage


def clear_dir(path: Path) -> None:
    """Remove everything inside ``path`` but keep the folder itself.

    A ``path`` that is a symlink (a profile swapped for a link to a folder elsewhere) is
    refused: what it points to is not ours to empty.
    """
    if os.path.islink(path):
        raise OSError(errno.ELOOP, "refusing to empty a symlink", str(path))
    with os.scandir(path) as entries:
        names = [e.name for e in entries]
    for name in names:
        remove_tree(path / name)


def _rmtree(path: Path) -> None:
    def on_error(func: Callable[..., Any], name: str, exc: BaseException) -> None:
        if isinstance(exc, FileNotFoundError):
            return
        # Only removals are retried here: os.open/os.scandir/os.lstat take other arguments.
        # Their folder is readable once _make_writable ran; remove_tree's next attempt goes in.
        if (
            isinstance(exc, PermissionError)
            and _make_writable(name, path)
            and func in (os.unlink, os.remove, os.rmdir)
        ):
            with contextlib.suppress(FileNotFoundError):
                func(name)
            return
        raise exc

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=on_error)
    else:
        shutil.rmtree(path, onerror=lambda func, name, info: on_error(func, name, info[1]))


def _make_writable(name: str, top: Path) -> bool:
    """chmod u+rwx the entry and its parents up to ``top``; never through a symlink."""
    changed = False
    current = Path(name)
    while True:
        if not current.is_symlink():
            try:
                mode = stat.S_IMODE(current.lstat().st_mode)
                os.chmod(current, mode | stat.S_IRWXU)
                changed = True
            except OSError:
                pass
        if current == top or top not in current.parents:
            return changed
        current = current.parent
