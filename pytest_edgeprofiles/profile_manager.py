"""ProfileManager: temporary Edge/Chromium user data dirs, one per worker, capped and cleaned up.

This module knows nothing of pytest; the plugin wires it in.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import getpass
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
import weakref
from concurrent.futures import Future
from datetime import datetime
from pathlib import Path
from typing import Any

from . import chromium, files, processes, sweep
from .background import Background
from .chromium import DEFAULT_SKIP_RULES, SkipRules
from .records import ProfileRecord, new_record, owned_paths, record_path, write_record
from .registry import Registry, RegistryFull

log = logging.getLogger("pytest_edgeprofiles")

MAX_PROFILES_RANGE = (1, 16)
#: How long a computed size is trusted: a browser writes behind our back.
SIZE_TTL = 2.0
_WORKER_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")
_MB = 1024 * 1024


class ProfileCreationError(Exception):
    """Raised when profile creation fails"""

    def __init__(self, worker_id: str, reason: str):
        self.worker_id = worker_id
        self.reason = reason
        super().__init__(f"Profile creation failed for {worker_id}: {reason}")


class ProfileLimitError(Exception):
    """Raised when max profiles limit exceeded

    ``holders`` (an extension of the contract) lists the records of the profiles holding the
    slots, so a caller can say who they are.
    """

    def __init__(self, current_count: int, max_allowed: int):
        self.current_count = current_count
        self.max_allowed = max_allowed
        self.holders: list[ProfileRecord] = []
        super().__init__(f"Profile limit exceeded: {current_count}/{max_allowed}")


class ProfileCleanupError(Exception):
    """Raised when profile cleanup fails"""

    def __init__(self, worker_id: str, reason: str):
        self.worker_id = worker_id
        self.reason = reason
        super().__init__(f"Profile cleanup failed for {worker_id}: {reason}")


def default_root() -> Path:
    """``<system temp>/edgeprofiles-of-<user>``, like pytest's ``pytest-of-<user>``."""
    try:
        user = re.sub(r"[^A-Za-z0-9_.-]", "_", getpass.getuser()) or "unknown"
    except (ImportError, KeyError, OSError):
        user = "unknown"
    return Path(tempfile.gettempdir()).resolve() / f"edgeprofiles-of-{user}"


def fallback_root(root: Path) -> Path:
    """Where profiles go when ``root`` fails: the default root, or for it the user's cache."""
    if root != default_root():
        return default_root()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(cache).resolve() / "edgeprofiles"


class WorkerIdTypeError(TypeError, ValueError):
    """A worker id that is not a string: a ``TypeError``, and the ``ValueError`` the contract
    names for an invalid id, so that either ``except`` catches it."""


def private_roots() -> set[Path]:
    """The well-known per-user roots another local user could plant in advance."""
    return {default_root(), fallback_root(default_root())}


def prepare_root(root: Path, private: set[Path]) -> None:
    """Make ``root`` if missing (0700); one of the ``private`` roots (see ``private_roots``) is
    refused when planted (a symlink or another user's), as pytest checks ``pytest-of-<user>``."""
    if root in private:
        root.parent.mkdir(parents=True, exist_ok=True)
        files.make_private_dir(root)
    else:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)  # private when we make it


def check_worker_id(worker_id: object) -> str:
    """Return ``worker_id`` if it is a valid id, else raise ``TypeError``/``ValueError``."""
    if not isinstance(worker_id, str):
        raise WorkerIdTypeError(
            f"worker_id must be a str, got {type(worker_id).__name__}: {worker_id!r}"
        )
    if not _WORKER_ID.fullmatch(worker_id):
        raise ValueError(
            f"invalid worker_id {worker_id!r}: use 1 to 64 of A-Z a-z 0-9 . _ -, "
            "not starting with '.' or '-'"
        )
    return worker_id


def _check_int(name: str, value: object, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}: {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


def check_base_profile(base_profile_path: str | os.PathLike[str]) -> Path:
    """The resolved base profile, or the error a manager would raise for it."""
    base = Path(base_profile_path).expanduser()
    if not base.exists():
        raise FileNotFoundError(errno.ENOENT, "base profile not found", str(base))
    if not base.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "base profile is not a directory", str(base))
    if not os.access(base, os.R_OK | os.X_OK):
        raise PermissionError(errno.EACCES, "base profile is not readable", str(base))
    if chromium.looks_like_profile_folder(base):
        raise ValueError(
            f"base profile {str(base)!r} is a profile folder (it has Preferences but no "
            f"'Local State'); pass its parent, the user data dir"
        )
    return base.resolve()


def clone_size(base: Path, skip_rules: SkipRules = DEFAULT_SKIP_RULES) -> int:
    """Bytes a clone of ``base`` takes: its files, less the caches and lock state it skips."""
    return files.tree_size(base, skip_rules.skips)


class _Tracker:
    """What a manager has made; kept apart from the manager so a finalizer can clean up."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.lock = threading.RLock()
        self.profiles: dict[str, ProfileRecord] = {}
        self.pending: set[str] = set()
        self.prepared: dict[str, Future[ProfileRecord]] = {}
        self.sizes: dict[str, tuple[int, float]] = {}
        self.background = Background()

    def forget(self, worker_id: str, record: ProfileRecord) -> None:
        """Stop tracking ``record``; a newer profile of the same worker stays tracked."""
        with self.lock:
            if self.profiles.get(worker_id) is record:
                del self.profiles[worker_id]
            self.sizes.pop(record.path, None)

    def remove(self, worker_id: str, strict: bool = False) -> bool:
        if not isinstance(worker_id, str):
            return True  # never a profile of ours
        with self.lock:
            record = self.profiles.get(worker_id)
        if record is None:
            return True
        try:
            remove_or_leave_to_sweep(record)
        except OSError as exc:
            log.warning(
                "could not remove profile %s of %s (left to the sweep): %s",
                record.path,
                worker_id,
                exc,
            )
            self.release(worker_id, record)
            if strict:
                raise ProfileCleanupError(worker_id, str(exc)) from exc
            return False
        self.release(worker_id, record)
        return True

    def release(self, worker_id: str, record: ProfileRecord) -> None:
        self.forget(worker_id, record)
        try:
            self.registry.release(record.path)
        except OSError as exc:
            log.warning("could not release the slot of %s: %s", record.path, exc)

    def remove_all(self) -> int:
        self.discard_prepared()
        with self.lock:
            worker_ids = list(self.profiles)
        removed = sum(self.remove(w) for w in worker_ids)
        self.background.drain()
        if worker_ids:
            log.info("removed %d of %d profiles", removed, len(worker_ids))
        return removed

    def discard_prepared(self) -> None:
        with self.lock:
            futures = list(self.prepared.values())
            self.prepared.clear()
        for future in futures:
            try:
                record = future.result()
            except Exception:  # its failure was undone where it happened
                continue
            try:
                remove_or_leave_to_sweep(record)
            except OSError as exc:
                log.warning("could not remove the prepared profile %s: %s", record.path, exc)


def remove_or_leave_to_sweep(record: ProfileRecord) -> None:
    """Remove a profile as a sweep does: stop a browser still on it, then remove its folder,
    its download folder and its record, in that order.

    On the first failure the rest stays, and the record is marked released so that any
    sweep finishes the job: a folder is never left without a record that leads to it.
    """
    try:
        sweep.remove_leftover(Path(record.path), record)
    except OSError:
        with contextlib.suppress(OSError):
            write_record(record.released_to_sweep())
        raise


def _remove_dead(record: ProfileRecord) -> None:
    try:
        sweep.remove_reclaimed(record)
    except OSError as exc:
        log.warning("could not remove %s of a dead owner (left to the sweep): %s", record.path, exc)


def _remove_all_in(pid: int, tracker: _Tracker) -> None:
    # A child forked by a test inherits the finalizer: the profiles are its parent's.
    if os.getpid() == pid:
        tracker.remove_all()


class ProfileManager:
    """Temporary browser profiles (user data dirs), one per worker id.

    Profiles are folders ``<worker_id>-<hex>`` (mode 0700) under ``root``, each with an owner
    record ``<folder>.owner`` beside it. ``max_profiles`` caps the profiles alive at once across
    every manager that names the same ``registry_path``. Thread-safe.
    """

    def __init__(
        self,
        base_profile_path: str | None = None,
        cleanup_on_exit: bool = True,
        max_profiles: int = 8,
        profile_size_limit_mb: int = 500,
        *,
        root: str | os.PathLike[str] | None = None,
        registry_path: str | os.PathLike[str] | None = None,
        skip_rules: SkipRules = DEFAULT_SKIP_RULES,
        run_id: str | None = None,
        download_root: str | os.PathLike[str] | None = None,
    ) -> None:
        """Initialize profile manager for temporary browser profiles.

        Args:
            base_profile_path: Template user data dir to copy (optional)
            cleanup_on_exit: Remove profiles at interpreter exit and on garbage collection;
                when False, profiles are marked kept and no sweep removes them
            max_profiles: Maximum concurrent profiles allowed (1 to 16)
            profile_size_limit_mb: Maximum profile size in MB
            root: Folder for profiles (default ``<system temp>/edgeprofiles-of-<user>``)
            registry_path: JSON file shared by managers that share one cap (None: private)
            skip_rules: What a clone of the base leaves out
            run_id: A label written into owner records (the plugin's test run)
            download_root: Where each profile's own download folder goes, as
                ``<download_root>/<profile name>``; by default ``<profile>/Downloads``

        Raises:
            ValueError: If max_profiles < 1 or > 16
            FileNotFoundError: If base_profile_path specified but doesn't exist
            PermissionError: If base_profile_path not readable
        """
        self.max_profiles = _check_int("max_profiles", max_profiles, *MAX_PROFILES_RANGE)
        self.profile_size_limit_mb = _check_int("profile_size_limit_mb", profile_size_limit_mb, 1)
        self.base_profile_path = (
            None if base_profile_path is None else check_base_profile(base_profile_path)
        )
        self.cleanup_on_exit = bool(cleanup_on_exit)
        self.skip_rules = skip_rules
        self.run_id = run_id
        self.root = default_root() if root is None else Path(root).expanduser().resolve()
        self.fallback_root = fallback_root(self.root)
        self._private_roots = private_roots()  # asked once: not on every create
        self.registry_path = None if registry_path is None else Path(registry_path).resolve()
        self.download_root = (
            None if download_root is None else Path(download_root).expanduser().resolve()
        )
        self._base_size: int | None = None
        self._tracker = _Tracker(Registry(self.registry_path, [self.root]))
        if self.cleanup_on_exit:
            weakref.finalize(self, _remove_all_in, os.getpid(), self._tracker)

    # -- creation -----------------------------------------------------------------------

    def create_profile(self, worker_id: str, *, timeout: float = 0.0) -> str:
        """Create temporary browser profile for worker.

        Args:
            worker_id: Unique identifier for the worker
            timeout: Seconds to wait for a free slot when the cap is reached (extension)

        Returns:
            str: Absolute path to created profile directory

        Raises:
            ValueError: If worker_id already has profile or is invalid
            OSError: If profile creation fails (disk space, permissions)
            ProfileLimitError: If max_profiles limit exceeded
            ProfileCreationError: If the profile exceeds profile_size_limit_mb
        """
        check_worker_id(worker_id)
        tracker = self._tracker
        with tracker.lock:
            if worker_id in tracker.profiles or worker_id in tracker.pending:
                held = tracker.profiles.get(worker_id)
                where = f" at {held.path}" if held else ""
                raise ValueError(f"worker {worker_id!r} already has a profile{where}")
            tracker.pending.add(worker_id)
        try:
            record = self._take_prepared(worker_id, timeout)
            if record is None:
                record = self._create_with_fallback(worker_id, timeout)
            with tracker.lock:
                tracker.profiles[worker_id] = record
            return record.path
        finally:
            with tracker.lock:
                tracker.pending.discard(worker_id)

    def prepare_profile(self, worker_id: str) -> None:
        """Start making the worker's next profile in the background (extension).

        The next ``create_profile(worker_id)`` takes it, which then costs a slot and a record
        write instead of a copy. A prepared profile holds no slot (no browser can be using it)
        and is removed with the manager's other profiles, or by the sweep if its owner dies.
        """
        check_worker_id(worker_id)
        with self._tracker.lock:
            if worker_id not in self._tracker.prepared:
                self._tracker.prepared[worker_id] = self._tracker.background.submit(
                    "prepare", lambda: self._create_with_fallback(worker_id, 0.0, prepared=True)
                )

    def _take_prepared(self, worker_id: str, timeout: float) -> ProfileRecord | None:
        tracker = self._tracker
        with tracker.lock:
            future = tracker.prepared.pop(worker_id, None)
        if future is None:
            return None
        try:
            record = future.result().activated()
        except Exception as exc:
            log.info("could not prepare a profile for %s (%s); making one now", worker_id, exc)
            return None
        except BaseException:  # interrupted while waiting: the clone stays ours to remove
            with tracker.lock:
                tracker.prepared.setdefault(worker_id, future)
            raise
        try:
            self._take_slot(record, timeout)  # writes the activated record
        except ProfileLimitError:
            with tracker.lock:
                tracker.prepared[worker_id] = future  # still good for the next try
            raise
        except _RootError as exc:
            self._undo(record)
            raise exc.cause from None
        except BaseException:
            self._undo(record)
            raise
        return record

    def _create_with_fallback(
        self, worker_id: str, timeout: float, prepared: bool = False
    ) -> ProfileRecord:
        try:
            return self._create_in(self.root, worker_id, timeout, prepared)
        except _RootError as exc:
            other = self.fallback_root
            log.warning(
                "cannot create a profile under %s (%s); trying %s", self.root, exc.cause, other
            )
            self._tracker.registry.add_rebuild_root(other)
            try:
                return self._create_in(other, worker_id, timeout, prepared)
            except _RootError as again:
                raise again.cause from exc.cause

    def _create_in(
        self, root: Path, worker_id: str, timeout: float, prepared: bool
    ) -> ProfileRecord:
        try:
            prepare_root(root, self._private_roots)
        except files.UnsafeDirectoryError:
            raise
        except OSError as exc:
            raise _RootError(exc) from exc
        name = f"{worker_id}-{uuid.uuid4().hex[:12]}"
        record = new_record(
            worker_id=worker_id,
            path=str(root / name),
            registry=None if self.registry_path is None else str(self.registry_path),
            keep=not self.cleanup_on_exit,
            run=self.run_id,
            downloads=None if self.download_root is None else str(self.download_root / name),
            prepared=prepared,
        )
        if not prepared:
            try:
                self._take_slot(record, timeout)
            except (ProfileLimitError, _RootError):
                raise  # no record was written
            except BaseException:
                # The record was written but the registry could not be: no slot, no record.
                with contextlib.suppress(OSError):
                    record_path(record.path).unlink()
                raise
        try:
            self._populate(record)
        except BaseException:
            self._undo(record)
            raise
        return record

    def _take_slot(self, record: ProfileRecord, timeout: float) -> None:
        """Take a slot and write ``record`` while the registry is locked: a registry rebuilt
        from owner records (after it was deleted or damaged) must not miss a slot just taken.
        An error writing the record is a ``_RootError``."""

        def write() -> None:
            try:
                write_record(record)
            except OSError as exc:
                raise _RootError(exc) from exc

        try:
            dead = self._tracker.registry.acquire(record, self.max_profiles, timeout, on_take=write)
        except RegistryFull as full:
            self._remove_reclaimed(full.reaped)
            error = ProfileLimitError(len(full.holders), self.max_profiles)
            error.holders = full.holders
            raise error from None
        self._remove_reclaimed(dead)

    def _remove_reclaimed(self, records: list[ProfileRecord]) -> None:
        for leftover in records:
            # A killed owner's browser may still run: it would be one over the cap.
            self._tracker.background.submit("delete", functools.partial(_remove_dead, leftover))

    def _populate(self, record: ProfileRecord) -> None:
        path = Path(record.path)
        try:
            if record.prepared:  # else written with its slot
                write_record(record)
            path.mkdir(mode=0o700)
            if self.base_profile_path is not None:
                self._check_room(record.worker_id, path.parent)
        except OSError as exc:
            raise _RootError(exc) from exc
        size = 0
        if self.base_profile_path is not None:
            try:
                size = files.copy_tree(self.base_profile_path, path, self.skip_rules.skips)
            except OSError as exc:
                if exc.errno in files.DESTINATION_ERRNOS:
                    raise _RootError(exc) from exc
                raise
            if size > self.profile_size_limit_mb * _MB:
                raise ProfileCreationError(record.worker_id, self._too_large(size))
        self._adjust_prefs(record, size)

    def _adjust_prefs(self, record: ProfileRecord, copied: int) -> None:
        """Clean exit type and a download folder of its own, then the profile's size, known
        without a walk: what was copied, give or take what these writes changed."""
        path = Path(record.path)
        touched = chromium.pref_files(path)
        before = files.total_size(touched)
        chromium.mark_clean_exit(path)
        self._own_downloads(record)
        size = copied + files.total_size(touched) - before
        self._tracker.sizes[record.path] = (size, time.monotonic())

    def _own_downloads(self, record: ProfileRecord) -> None:
        """Give the profile a download folder of its own: parallel browsers must not save
        into one folder. A base's own download folder name is kept below it."""
        path = Path(record.path)
        top = Path(record.downloads) if record.downloads else path / "Downloads"
        # Parents only outside the profile: a profile removed meanwhile is never recreated.
        top.mkdir(mode=0o700, parents=bool(record.downloads), exist_ok=True)
        folder = top
        base_choice = chromium.download_dir(path)
        if base_choice:
            folder = top / Path(base_choice).name
            folder.mkdir(mode=0o700, exist_ok=True)
        try:
            chromium.set_download_dir(path, folder)
        except ValueError as exc:
            # A corrupt Preferences (of the base): the browser starts on defaults anyway, and
            # validate_profile reports the profile invalid. Not a reason to fail creation.
            log.warning("cannot set the download folder of %s: %s", path, exc)

    def get_download_dir(self, worker_id: str) -> str | None:
        """The download folder of the worker's profile, None if it has no profile."""
        record = self._record(worker_id)
        return None if record is None else chromium.download_dir(Path(record.path))

    def _check_room(self, worker_id: str, root: Path) -> None:
        need = self._clone_size()
        if need > self.profile_size_limit_mb * _MB:
            raise ProfileCreationError(worker_id, self._too_large(need))
        free = shutil.disk_usage(root).free
        if free < need:
            raise OSError(
                errno.ENOSPC,
                f"not enough free space under {root}: a clone of {self.base_profile_path} "
                f"needs {need / _MB:.1f} MB, {free / _MB:.1f} MB are free",
            )

    def _too_large(self, size: int) -> str:
        return (
            f"a clone of {self.base_profile_path} is {size / _MB:.1f} MB, over the "
            f"profile_size_limit_mb of {self.profile_size_limit_mb} MB"
        )

    def _clone_size(self) -> int:
        """Bytes a clone of the base takes, measured once: the base is a template."""
        if self._base_size is None and self.base_profile_path is not None:
            self._base_size = clone_size(self.base_profile_path, self.skip_rules)
        return self._base_size or 0

    def _undo(self, record: ProfileRecord) -> None:
        try:
            remove_or_leave_to_sweep(record)
        except OSError as exc:
            log.warning("could not remove the partial profile %s: %s", record.path, exc)
        self._tracker.registry.release(record.path)

    def copy_base_profile(self, worker_id: str) -> bool:
        """Copy base profile template to worker's profile directory.

        On a profile that already holds data, the profile is refreshed: its contents are
        replaced by a fresh clone of the base, at the same path.

        Returns:
            bool: True if base profile was copied successfully; False for an unknown worker,
            without a base profile, or when the copy failed (logged)
        """
        with self._tracker.lock:
            record = self._tracker.profiles.get(worker_id) if isinstance(worker_id, str) else None
        if record is None or self.base_profile_path is None:
            return False
        path = Path(record.path)
        try:
            files.clear_dir(path)
            size = files.copy_tree(self.base_profile_path, path, self.skip_rules.skips)
            self._adjust_prefs(record, size)
        except OSError as exc:
            log.warning("could not copy %s into %s: %s", self.base_profile_path, path, exc)
            return False
        if size > self.profile_size_limit_mb * _MB:
            log.warning("profile %s of %s: %s", path, worker_id, self._too_large(size))
            return False
        return True

    # -- cleanup ------------------------------------------------------------------------

    def cleanup_profile(self, worker_id: str, *, strict: bool = False) -> bool:
        """Remove temporary profile for specified worker.

        A browser still running on the profile is stopped first. When the folder cannot be
        removed, the slot is released anyway, the folder is left to the sweep, a warning is
        logged and False returned (``strict=True`` raises ``ProfileCleanupError`` instead).

        Returns:
            bool: True if profile was removed successfully (or never existed)
        """
        return self._tracker.remove(worker_id, strict=strict)

    def release_profile(self, worker_id: str) -> None:
        """Remove the worker's profile in the background (extension): ``cleanup_profile``
        without the wait.

        A browser still running on it is stopped first; then the folder is renamed to
        ``garbage-<name>`` and its slot released at once, and the manager's background thread
        deletes it. ``drain()`` waits for that; what cannot be deleted is logged, listed in
        ``background_failures`` and left to the sweep, which removes ``garbage-*`` folders.
        """
        # Tracked until its slot is given back: interrupted before, cleanup_all still has it.
        record = self._record(worker_id)
        if record is None:
            return
        path = Path(record.path)
        leftovers = owned_paths(path, record)
        try:
            processes.release_browser(path)
            leftovers[0] = files.move_aside(path)
        except FileNotFoundError:
            leftovers.pop(0)
        except OSError as exc:
            log.info("could not move %s aside (%s); removing it in place", path, exc)
        record_file = leftovers.pop()
        if any(not p.name.startswith(files.GARBAGE_PREFIX) for p in leftovers):
            # Something the sweep would not find by its garbage- name (the profile itself, or
            # its download folder elsewhere): the record, released, stays until it is gone.
            with contextlib.suppress(OSError):
                write_record(record.released_to_sweep())
            leftovers.append(record_file)
        else:
            try:
                files.remove_tree(record_file)
            except OSError as exc:
                log.warning("could not remove the owner record %s: %s", record_file, exc)
        self._tracker.release(worker_id, record)
        self._tracker.background.submit("delete", lambda: self._delete(leftovers))

    def _delete(self, paths: list[Path]) -> None:
        for path in paths:
            try:
                files.remove_tree(path)
            except OSError as exc:
                log.warning("could not remove %s (left to the sweep): %s", path, exc)
                self._tracker.background.failures.append((str(path), str(exc)))
                return  # the rest, the record last, stays for the sweep

    def drain(self) -> None:
        """Wait for the background work (preparing and deleting profiles) given so far."""
        self._tracker.background.drain()

    @property
    def background_failures(self) -> list[tuple[str, str]]:
        """Folders a background removal could not delete, with the error."""
        return list(self._tracker.background.failures)

    def cleanup_all_profiles(self) -> int:
        """Remove all temporary profiles managed by this instance.

        Returns:
            int: Number of profiles successfully removed
        """
        return self._tracker.remove_all()

    def keep_profile(self, worker_id: str) -> str | None:
        """Stop managing a profile but leave it on disk, marked kept (no sweep removes it).

        Its slot is released. Returns the profile's path, or None for an unknown worker.
        """
        record = self._record(worker_id)
        if record is None:
            return None
        # A browser the test left running would go on writing into the evidence, unbounded.
        processes.release_browser(Path(record.path))
        write_record(record.kept())  # if this fails, the profile stays managed and counted
        self._tracker.release(worker_id, record)
        return record.path

    # -- queries ------------------------------------------------------------------------

    def _record(self, worker_id: str) -> ProfileRecord | None:
        if not isinstance(worker_id, str):
            return None
        with self._tracker.lock:
            return self._tracker.profiles.get(worker_id)

    def get_profile_path(self, worker_id: str) -> str | None:
        """Get profile path for specified worker, None if it has none or it is gone."""
        record = self._record(worker_id)
        return record.path if record is not None and os.path.isdir(record.path) else None

    def validate_profile(self, worker_id: str) -> bool:
        """Validate profile exists and is accessible for browser use.

        True when a browser could start on the profile now: a folder we can read, write and
        traverse, ``Local State`` and ``Default/Preferences`` parse as JSON where present, and
        no live lock (a ``SingletonLock`` of another host, or of a live process of this host
        running on this profile). A stale lock of a dead process does not count.
        """
        record = self._record(worker_id)
        if record is None:
            return False
        path = Path(record.path)
        if path.is_symlink() or not path.is_dir():
            return False
        if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
            return False
        return chromium.json_files_ok(path) and not _locked_by_live_browser(path)

    def get_profile_size(self, worker_id: str) -> int:
        """Bytes of the regular files in the worker's profile, 0 if it has none.

        The figure is cached for a couple of seconds and dropped whenever this library writes
        to the profile; a browser writing to it meanwhile is seen when the cache expires.
        """
        record = self._record(worker_id)
        if record is None:
            return 0
        cached = self._tracker.sizes.get(record.path)
        now = time.monotonic()
        if cached is not None and now - cached[1] < SIZE_TTL:
            return cached[0]
        size = files.tree_size(Path(record.path))
        self._tracker.sizes[record.path] = (size, now)
        return size

    def list_profiles(self) -> dict[str, dict[str, Any]]:
        """Get all currently managed profiles with metadata.

        Returns:
            Mapping of worker_id to ``path``, ``size_mb``, ``created_at``, ``last_accessed``
            (datetimes) and ``is_valid``.
        """
        with self._tracker.lock:
            records = dict(self._tracker.profiles)
        listing: dict[str, dict[str, Any]] = {}
        for worker_id, record in records.items():
            try:
                st = os.stat(record.path)
                accessed = max(st.st_atime, st.st_mtime)
            except OSError:
                accessed = record.created_at
            listing[worker_id] = {
                "path": record.path,
                "size_mb": self.get_profile_size(worker_id) / _MB,
                "created_at": datetime.fromtimestamp(record.created_at),
                "last_accessed": datetime.fromtimestamp(accessed),
                "is_valid": self.validate_profile(worker_id),
            }
        return listing

    def __repr__(self) -> str:
        return (
            f"ProfileManager(root={str(self.root)!r}, max_profiles={self.max_profiles}, "
            f"base_profile_path={self.base_profile_path and str(self.base_profile_path)!r})"
        )


class _RootError(Exception):
    """An ``OSError`` of the profile root (not of the base): worth one try elsewhere."""

    def __init__(self, cause: OSError) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _locked_by_live_browser(path: Path) -> bool:
    return processes.lock_state(path)[0] in ("live", "foreign-host", "invalid")
