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
GARBAGE_PREFIX = "garbage-"
_STAT_AT = os.stat in os.supports_dir_fd and os.scandir in os.supports_fd


def long_path(path: str | os.PathLike[str], windows: bool | None = None) -> str:
    r"""``path`` with Windows' ``\\?\`` prefix, for profiles' paths past 260 characters (unless
    ``LongPathsEnabled``); made absolute, as the prefix turns off ``..`` handling."""
    text = os.fspath(path)
    if not (platform.WINDOWS if windows is None else windows) or text.startswith("\\\\?\\"):
        return text
    text = ntpath.abspath(text)
    return "\\\\?\\UNC\\" + text[2:] if text.startswith("\\\\") else "\\\\?\\" + text


def make_dirs(path: Path) -> None:
    """Make ``path`` and its missing parents 0700: ``mkdir(parents=True)`` would use the umask,
    and under umask 0 anyone could swap what lies below."""
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


def entries(folder: Path) -> list[os.DirEntry[str]]:
    """The entries of ``folder``; none when it cannot be listed (missing, not ours to read)."""
    try:
        with os.scandir(folder) as it:
            return list(it)
    except OSError:
        return []


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    """A file's bytes by plain ``read`` calls: a buffered ``open`` adds an ``isatty`` and two
    seeks to each, and the registry, owner records and ``Preferences`` are read and written on
    every test."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def write_bytes(path: str | os.PathLike[str], data: bytes, mode: int = 0o600) -> None:
    """Create or truncate ``path`` and write ``data``, by plain ``write`` calls as above."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), mode)
    try:
        while data:
            data = data[os.write(fd, data) :]
    finally:
        os.close(fd)


def read_json(path: Path) -> Any:
    """Parse a JSON file; raises ``OSError`` or ``ValueError``."""
    return json.loads(read_bytes(path))


def write_json_atomic(path: Path, data: Any, mode: int = 0o600) -> None:
    """Write JSON so that readers see the old file or the new one, never half of one."""
    # Host and pid in the name tell a sweep a dead writer's leftover from a live one's.
    tmp = path.with_name(
        f".{path.name}.{platform.this_host()}.{os.getpid()}.{threading.get_ident()}.tmp"
    )
    text = json.dumps(data, separators=(",", ":")).encode()  # dump(fh) writes it in pieces
    try:
        write_bytes(tmp, text, mode)
        # Windows refuses to replace a file a reader (a sweep) has open: retry for ~0.5 s.
        backoff = Backoff(0.001, tries=9)
        while True:
            try:
                os.replace(tmp, path)
                break
            except PermissionError:
                if not platform.WINDOWS or not backoff.pause():
                    raise
    except BaseException:
        with contextlib.suppress(OSError):  # never made, or not ours to remove: theirs is news
            os.unlink(tmp)
        raise


def _never(parts: tuple[str, ...], is_dir: bool) -> bool:
    return False


def walk(
    top: Path, skip: Callable[[tuple[str, ...], bool], bool] = _never, tolerant: bool = False
) -> Iterator[tuple[os.DirEntry[str], tuple[str, ...]]]:
    """Entries below ``top`` with their relative parts, links not followed; errors if not
    ``tolerant``, but a folder that vanishes (a live browser's) is passed over."""
    if os.path.islink(top):
        return
    stack: list[tuple[str, tuple[str, ...]]] = [(long_path(top), ())]
    while stack:
        folder, parts = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as exc:
            # Vanished: passed over; a path too long (ENAMETOOLONG) is no reason to pass over.
            if tolerant or (parts and isinstance(exc, FileNotFoundError)):
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
    """Copy ``src``'s contents into ``dst`` (links as links, no special files); the bytes."""
    if treecopy.SUPPORTED:
        return treecopy.copy_tree_at(src, dst, skip)
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
                st = entry.stat(follow_symlinks=False)
                shutil.copyfile(entry.path, target, follow_symlinks=False)
                os.chmod(target, stat.S_IMODE(st.st_mode) | stat.S_IRUSR | stat.S_IWUSR)
                total += st.st_size
        except FileNotFoundError:
            if os.path.lexists(entry.path):
                raise
    return total


def tree_size(
    path: Path, skip: Callable[[tuple[str, ...], bool], bool] | None = None, *, by_fd: bool = True
) -> int:
    """Bytes of the regular files under ``path``, links not followed; by ``fstatat`` relative to
    open folders as ``du`` does, since a ``stat`` by full path resolves every parent again."""
    if skip is not None or not (by_fd and _STAT_AT):
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
            here = 0  # counted only once the whole folder was listed
            with os.scandir(fd) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(os.path.join(folder, entry.name))
                        elif entry.is_file(follow_symlinks=False):
                            here += os.stat(entry.name, dir_fd=fd, follow_symlinks=False).st_size
                    except OSError:
                        continue
            total += here
        except OSError:
            continue
        finally:
            os.close(fd)
    return total


def total_size(paths: list[Path]) -> int:
    """Bytes of those of ``paths`` that are regular files (links not followed)."""
    total = 0
    for path in paths:
        with contextlib.suppress(OSError):
            st = os.lstat(path)
            total += st.st_size if stat.S_ISREG(st.st_mode) else 0
    return total


def file_size(entry: os.DirEntry[str]) -> int:
    """Bytes of a regular file; 0 for folders, links and what vanished."""
    try:
        is_file = entry.is_file(follow_symlinks=False)
        return entry.stat(follow_symlinks=False).st_size if is_file else 0
    except OSError:
        return 0


def remove_tree(path: Path, attempts: int = 6, first_delay: float = 0.05) -> None:
    """Remove ``path`` and all below it, read-only too, never following a link out of it; busy
    entries (Windows sharing violations, a browser child's last file) are retried for ~1.5 s."""
    target = Path(long_path(path))
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


def move_aside(path: Path) -> Path:
    """Rename ``path`` to ``garbage-<name>``: a half-deleted folder never looks live."""
    garbage = path.with_name(GARBAGE_PREFIX + path.name)
    os.rename(path, garbage)
    return garbage


def clear_dir(path: Path) -> None:
    """Remove everything inside ``path``; a symlink is refused: its target is not ours."""
    if os.path.islink(path):
        raise OSError(errno.ELOOP, "refusing to empty a symlink", str(path))
    for name in os.listdir(path):
        remove_tree(path / name)


def _rmtree(path: Path) -> None:
    def on_error(func: Callable[..., Any], name: str, exc: BaseException) -> None:
        if isinstance(exc, FileNotFoundError):
            return
        # Only removals are retried here (others take other arguments): remove_tree retries.
        removal = func in (os.unlink, os.remove, os.rmdir)
        if isinstance(exc, PermissionError) and _make_writable(name, path) and removal:
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
            with contextlib.suppress(OSError):
                os.chmod(current, stat.S_IMODE(current.lstat().st_mode) | stat.S_IRWXU)
                changed = True
        if current == top or top not in current.parents:
            return changed
        current = current.parent
