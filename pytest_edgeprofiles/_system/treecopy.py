"""Copying a tree relative to open folders (``dir_fd``), for ``files.copy_tree``: paths past
``PATH_MAX`` copy like any other, a link swapped in is never followed, sparse files stay so."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path

Skip = Callable[[tuple[str, ...], bool], bool]
#: An open source folder, its open copy, its path in parts and its entries left to copy.
Frame = tuple[int, int, tuple[str, ...], list[os.DirEntry[str]]]

#: Whether this OS opens, makes and lists relative to open folders (not Windows).
SUPPORTED = (
    bool(getattr(os, "O_DIRECTORY", 0))
    and {os.open, os.mkdir, os.symlink, os.readlink, os.stat} <= os.supports_dir_fd
    and os.scandir in os.supports_fd
)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW
# O_NONBLOCK: a file swapped for a FIFO since its folder was listed must not hang the copy.
_FILE_FLAGS = os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0)
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW
#: What opening an entry listed a moment ago gives when it is no longer what it was.
_CHANGED = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EMLINK})
_CHUNK = 1 << 20


def copy_tree_at(src: Path, dst: Path, skip: Skip) -> int:
    """``files.copy_tree`` by open folders, where ``SUPPORTED``; depth first, so that only the
    folders on the way down are open, never one descriptor per folder of the tree."""
    src_top = os.open(src, _DIR_FLAGS)
    try:
        dst_top = os.open(dst, _DIR_FLAGS)
    except BaseException:
        os.close(src_top)
        raise
    roots = (os.fspath(src), os.fspath(dst))
    total = 0
    stack: list[Frame] = [(src_top, dst_top, (), _listing(src_top, dst_top, Paths(roots, ())))]
    try:
        while stack:
            src_fd, dst_fd, parts, pending = stack[-1]
            if not pending:
                stack.pop()
                _close(src_fd, dst_fd)
                continue
            entry = pending.pop()
            rel = (*parts, entry.name)
            is_dir = entry.is_dir(follow_symlinks=False)
            if skip(rel, is_dir):
                continue
            paths = Paths(roots, rel)
            if not is_dir:
                total += _copy_entry(entry, src_fd, dst_fd, paths)
                continue
            pair = _enter(entry.name, src_fd, dst_fd, paths)
            if pair is not None:
                stack.append((*pair, rel, _listing(*pair, paths)))
    finally:
        for src_fd, dst_fd, _, _ in stack:
            _close(src_fd, dst_fd)
    return total


def _close(*fds: int) -> None:
    for fd in fds:
        os.close(fd)


class Paths:
    """An entry's whole path in the source (side 0) and in the copy (1), for error messages
    only: joined when one is raised, not for each of thousands of files."""

    __slots__ = ("rel", "roots")

    def __init__(self, roots: tuple[str, str], rel: tuple[str, ...]) -> None:
        self.roots = roots
        self.rel = rel

    def __getitem__(self, side: int) -> str:
        return os.path.join(self.roots[side], *self.rel)


class _naming:  # lower case, as contextlib.suppress: it reads as a function
    """Errors of a call relative to an open folder, naming the entry's whole path on
    ``side``. A class, not a ``contextmanager``: a file's copy enters six, and a generator's
    costs ~10 us a file."""

    __slots__ = ("paths", "side")

    def __init__(self, paths: Paths, side: int) -> None:
        self.paths = paths
        self.side = side

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, OSError) and exc.errno is not None:
            path = self.paths[self.side]
            raise OSError(exc.errno, exc.strerror, path) from exc  # the errno's subclass


def _listing(src_fd: int, dst_fd: int, paths: Paths) -> list[os.DirEntry[str]]:
    """The entries of the open folder ``src_fd``; both folders are closed if that fails."""
    try:
        with _naming(paths, 0), os.scandir(src_fd) as entries:
            return list(entries)
    except BaseException:
        _close(src_fd, dst_fd)
        raise


def _enter(name: str, src_fd: int, dst_fd: int, paths: Paths) -> tuple[int, int] | None:
    """Open ``name`` and its new copy; None when it is no longer a folder (a live base)."""
    try:
        sub_src = os.open(name, _DIR_FLAGS, dir_fd=src_fd)
    except OSError as exc:
        if exc.errno in _CHANGED:
            return None
        with _naming(paths, 0):
            raise
    try:
        with _naming(paths, 1):
            os.mkdir(name, 0o700, dir_fd=dst_fd)
            return sub_src, os.open(name, _DIR_FLAGS, dir_fd=dst_fd)
    except BaseException:
        os.close(sub_src)
        raise


def _copy_entry(entry: os.DirEntry[str], src_fd: int, dst_fd: int, paths: Paths) -> int:
    name = entry.name
    try:
        if entry.is_symlink():
            with _naming(paths, 0):
                target = os.readlink(name, dir_fd=src_fd)
            with _naming(paths, 1):
                os.symlink(target, name, dir_fd=dst_fd)
        elif entry.is_file(follow_symlinks=False):
            return _copy_file(name, src_fd, dst_fd, paths)
    except FileNotFoundError:
        try:
            os.stat(name, dir_fd=src_fd, follow_symlinks=False)
        except FileNotFoundError:
            return 0  # the source went while we copied it
        raise  # the source is there: its copy's folder went
    return 0


def _copy_file(name: str, src_fd: int, dst_fd: int, paths: Paths) -> int:
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=src_fd)
    except OSError as exc:
        if exc.errno in _CHANGED - {errno.ENOENT}:
            return 0  # swapped for a link since the listing: never followed
        with _naming(paths, 0):
            raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return 0
        with _naming(paths, 1):
            out = os.open(name, _NEW_FILE_FLAGS, 0o600, dir_fd=dst_fd)
        try:
            _copy_data(fd, out, st, paths)
            with _naming(paths, 1):
                os.fchmod(out, stat.S_IMODE(st.st_mode) | stat.S_IRUSR | stat.S_IWUSR)
        finally:
            os.close(out)
    finally:
        os.close(fd)
    return st.st_size


def _copy_data(src: int, dst: int, st: os.stat_result, paths: Paths) -> None:
    """Copy ``src`` into the empty ``dst``; of a sparse file (fewer blocks than bytes) only its
    data where the OS can tell (SEEK_DATA), so that a clone costs what the base costs."""
    end = None
    if st.st_blocks * 512 < st.st_size and hasattr(os, "SEEK_DATA"):
        end = _copy_extents(src, dst, paths)
    if end is None:
        end = _copy_range(src, dst, 0, None, paths)
    with _naming(paths, 1):
        size = os.fstat(src).st_size
        if size > end:
            os.ftruncate(dst, size)  # a hole at the end


def _copy_extents(src: int, dst: int, paths: Paths) -> int | None:
    """Copy each data extent of ``src`` to ``dst``; the end, or None if holes are unknown."""
    end = 0
    while True:
        try:
            start = os.lseek(src, end, os.SEEK_DATA)
            stop = os.lseek(src, start, os.SEEK_HOLE)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # no data past ``end``
                return end
            if end == 0 and exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):
                return None
            with _naming(paths, 0):
                raise
        reached = _copy_range(src, dst, start, stop, paths)
        if reached <= start:  # the file shrank while we copied it (a live base)
            return end
        end = reached


def _copy_range(src: int, dst: int, start: int, stop: int | None, paths: Paths) -> int:
    """Copy ``src[start:stop]`` (None: to its end) to the same offset of ``dst``; the end."""
    pos = start
    while stop is None or pos < stop:
        with _naming(paths, 0):
            chunk = os.pread(src, _CHUNK if stop is None else min(_CHUNK, stop - pos), pos)
        if not chunk:
            break
        with _naming(paths, 1):
            written = 0
            while written < len(chunk):
                written += os.pwrite(dst, chunk[written:], pos + written)
        pos += len(chunk)
    return pos
