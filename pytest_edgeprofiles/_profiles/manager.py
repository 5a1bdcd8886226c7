"""ProfileManager: temporary Edge/Chromium user data dirs, one per worker, capped and cleaned up.

A facade: ``making`` makes a profile (record, slot, folder), ``clone`` fills it, ``handouts``
tracks what was handed out and how it comes back, ``removal`` takes it off the disk. This
module knows nothing of pytest; the plugin wires it in.
"""

from __future__ import annotations

import os
import re
import weakref
from datetime import datetime
from pathlib import Path
from typing import Any

from .._chromium import processes, userdata
from .._chromium.userdata import DEFAULT_SKIP_RULES, SkipRules
from .._system.logs import log
from ..errors import (
    MAX_PROFILES_RANGE,
    ProfileCleanupError,
    ProfileCreationError,
    ProfileLimitError,
    WorkerIdTypeError,
)
from .clone import MB, Cloner, check_base_profile
from .ledger import Handouts
from .making import Made, ProfileMaker
from .registry import Registry
from .roots import default_root

# The contract's exceptions are importable from here, where it puts the manager.
__all__ = [
    "LISTED_SIZE_MAX_AGE",
    "MAX_PROFILES_RANGE",
    "ProfileCleanupError",
    "ProfileCreationError",
    "ProfileLimitError",
    "ProfileManager",
    "WorkerIdTypeError",
    "check_worker_id",
]

#: How old a size ``list_profiles`` reports may be, in seconds: one walk of a large profile
#: costs about 50 ms, so a listing of 16 could not stay under the contract's 100 ms otherwise.
LISTED_SIZE_MAX_AGE = 5.0
_WORKER_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")


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


def _remove_all_in(pid: int, handouts: Handouts) -> None:
    # A child forked by a test inherits the finalizer: the profiles are its parent's.
    if os.getpid() == pid:
        handouts.remove_all()


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
        self.registry_path = None if registry_path is None else Path(registry_path).resolve()
        self.download_root = (
            None if download_root is None else Path(download_root).expanduser().resolve()
        )
        self._handouts = Handouts(Registry(self.registry_path, [self.root]))
        self._maker = ProfileMaker(
            root=self.root,
            registry=self._handouts.registry,
            max_profiles=self.max_profiles,
            cloner=Cloner(self.base_profile_path, self.profile_size_limit_mb, skip_rules),
            background=self._handouts.background,
            keep=not self.cleanup_on_exit,
            run_id=run_id,
            download_root=self.download_root,
        )
        self._pid = os.getpid()
        if self.cleanup_on_exit:
            weakref.finalize(self, _remove_all_in, self._pid, self._handouts)

    @property
    def fallback_root(self) -> Path:
        """Where profiles go when ``root`` cannot take one (see ``roots.fallback_root``)."""
        return self._maker.fallback_root

    @fallback_root.setter
    def fallback_root(self, folder: Path) -> None:
        self._maker.fallback_root = folder

    # -- handing profiles out ---------------------------------------------------------------

    def create_profile(
        self,
        worker_id: str,
        *,
        timeout: float = 0.0,
        spare: bool = False,
        prepared_as: str | None = None,
    ) -> str:
        """Create temporary browser profile for worker.

        Args:
            worker_id: Unique identifier for the worker
            timeout: Seconds to wait for a free slot when the cap is reached (extension)
            spare: A profile wanted ahead of need (extension): it takes a slot only if one
                is free that no other ``create_profile`` is waiting for, and never waits
            prepared_as: Take the profile ``prepare_profile(prepared_as)`` made, if any
                (extension; default ``worker_id``): a worker whose profiles each have a key
                of their own prepares under one key for the next of them

        Returns:
            str: Absolute path to created profile directory

        Raises:
            ValueError: If worker_id already has profile or is invalid
            OSError: If profile creation fails (disk space, permissions)
            ProfileLimitError: If max_profiles limit exceeded
            ProfileCreationError: If the profile exceeds profile_size_limit_mb, or the
                manager was made in another process (this one is a forked child)
        """
        check_worker_id(worker_id)
        self._refuse_forked_child(worker_id)
        handouts = self._handouts
        with handouts.lock:
            if worker_id in handouts.profiles or worker_id in handouts.pending:
                held = handouts.profiles.get(worker_id)
                where = f" at {held.path}" if held else ""
                raise ValueError(f"worker {worker_id!r} already has a profile{where}")
            handouts.pending.add(worker_id)
        try:
            prepared = self._take_prepared(prepared_as or worker_id, timeout, spare)
            made = prepared or self._maker.make(worker_id, timeout, spare=spare)
            with handouts.lock:
                handouts.profiles[worker_id] = made.record
                # Nothing wrote into it since the copy counted its bytes (no browser had it).
                handouts.note_size(made.record.path, made.size)
            return made.record.path
        finally:
            with handouts.lock:
                handouts.pending.discard(worker_id)

    def prepare_profile(self, worker_id: str) -> None:
        """Start making the worker's next profile in the background (extension).

        The next ``create_profile(worker_id)`` takes it, which then costs a slot and a record
        write instead of a copy. A prepared profile holds no slot (no browser can be using it)
        and is removed with the manager's other profiles, or by the sweep if its owner dies.
        """
        check_worker_id(worker_id)
        self._refuse_forked_child(worker_id)
        handouts = self._handouts
        with handouts.lock:
            if worker_id not in handouts.prepared:
                handouts.prepared[worker_id] = handouts.background.submit(
                    "prepare", lambda: self._maker.make(worker_id, 0.0, prepared=True)
                )

    def _refuse_forked_child(self, worker_id: str) -> None:
        # A child inherits the registry's file lock (unusable there) and none of the
        # clean-up: what it made would outlive it.
        if os.getpid() != self._pid:
            raise ProfileCreationError(
                worker_id,
                f"this ProfileManager belongs to process {self._pid}; a forked child "
                f"(pid {os.getpid()}) must make a ProfileManager of its own",
            )

    def _take_prepared(self, worker_id: str, timeout: float, spare: bool) -> Made | None:
        """The worker's prepared profile with a slot taken for it, or None if it has none."""
        handouts = self._handouts
        with handouts.lock:
            future = handouts.prepared.pop(worker_id, None)
        if future is None:
            return None
        try:
            made = future.result()
            record = made.record.activated()
        except Exception as exc:
            log.info("could not prepare a profile for %s (%s); making one now", worker_id, exc)
            return None
        except BaseException:  # interrupted while waiting: the clone stays ours to remove
            with handouts.lock:
                handouts.prepared.setdefault(worker_id, future)
            raise
        try:
            self._maker.take_slot(record, timeout, spare)  # writes the activated record
        except ProfileLimitError:
            with handouts.lock:
                handouts.prepared[worker_id] = future  # still good for the next try
            raise
        except BaseException:
            self._maker.undo(record)
            raise
        return Made(record, made.size)

    def copy_base_profile(self, worker_id: str) -> bool:
        """Copy base profile template to worker's profile directory.

        On a profile that already holds data, the profile is refreshed: its contents are
        replaced by a fresh clone of the base, at the same path.

        Returns:
            bool: True if base profile was copied successfully; False for an unknown worker,
            without a base profile, or when the copy failed (logged)
        """
        record = self._handouts.get(worker_id)
        if record is None:
            return False
        downloads = Path(record.downloads) if record.downloads else None
        size = self._maker.cloner.refill(worker_id, Path(record.path), downloads)
        if size is None:  # what is left of the profile is anybody's guess: walk it next time
            with self._handouts.lock:
                self._handouts.sizes.pop(record.path, None)
        else:
            self._handouts.note_size(record.path, size)
        return size is not None

    # -- taking profiles back -----------------------------------------------------------------

    def cleanup_profile(self, worker_id: str, *, strict: bool = False) -> bool:
        """Remove temporary profile for specified worker.

        A browser still running on the profile is stopped first. When the folder cannot be
        removed, the slot is given back anyway, the folder is left to the sweep, a warning is
        logged and False returned.

        Args:
            worker_id: Worker identifier whose profile to remove
            strict: Raise ``ProfileCleanupError`` instead of returning False (extension)

        Returns:
            bool: True if profile was removed successfully (or never existed)
        """
        return self._handouts.remove(worker_id, strict=strict)

    def release_profile(self, worker_id: str) -> None:
        """Remove the worker's profile in the background (extension): ``cleanup_profile``
        without the wait.

        A browser still running on it is stopped first; then the folder is renamed to
        ``garbage-<name>`` and its slot given back at once, and the manager's background
        thread deletes it. ``drain()`` waits for that; what cannot be deleted is logged,
        listed in ``background_failures`` and left to the sweep.
        """
        self._handouts.move_aside(worker_id)

    def keep_profile(self, worker_id: str) -> str | None:
        """Stop managing a profile but leave it on disk, marked kept (no sweep removes it).

        Its slot is given back. Returns the profile's path, or None for an unknown worker.
        """
        return self._handouts.keep(worker_id)

    def cleanup_all_profiles(self) -> int:
        """Remove all temporary profiles managed by this instance.

        Returns:
            int: Number of profiles successfully removed
        """
        return self._handouts.remove_all()

    def drain(self) -> None:
        """Wait for the background work (preparing and deleting profiles) given so far."""
        self._handouts.background.drain()

    @property
    def background_failures(self) -> list[tuple[str, str]]:
        """Folders a background removal could not delete, with the error."""
        return list(self._handouts.failures)

    # -- queries ------------------------------------------------------------------------------

    def get_profile_path(self, worker_id: str) -> str | None:
        """Get profile path for specified worker, None if it has none or it is gone."""
        record = self._handouts.get(worker_id)
        return record.path if record is not None and os.path.isdir(record.path) else None

    def get_download_dir(self, worker_id: str) -> str | None:
        """The download folder of the worker's profile, None if it has no profile."""
        record = self._handouts.get(worker_id)
        return None if record is None else userdata.download_dir(Path(record.path))

    def validate_profile(self, worker_id: str) -> bool:
        """Validate profile exists and is accessible for browser use.

        True when a browser could start on the profile now: a folder we can read, write and
        traverse, ``Local State`` and ``Default/Preferences`` parse as JSON where present, and
        no live lock (a ``SingletonLock`` of another host, or of a live process of this host
        running on this profile). A stale lock of a dead process does not count.
        """
        record = self._handouts.get(worker_id)
        if record is None:
            return False
        path = Path(record.path)
        if path.is_symlink() or not path.is_dir():
            return False
        if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
            return False
        locked = processes.lock_state(path)[0] in ("live", "foreign-host", "invalid")
        return userdata.json_files_ok(path) and not locked

    def get_profile_size(self, worker_id: str) -> int:
        """Calculate disk usage of worker's profile directory.

        Measured now, every time: the bytes of the regular files in the profile, symlinks
        not followed, 0 if the worker has no profile. May be slow for large profiles (a walk:
        about 5 ms per 1000 files), use sparingly.
        """
        record = self._handouts.get(worker_id)
        return 0 if record is None else self._handouts.measure(record.path)

    def list_profiles(self) -> dict[str, dict[str, Any]]:
        """Get all currently managed profiles with metadata.

        A listed size may be up to ``LISTED_SIZE_MAX_AGE`` (5) seconds old: one measured in
        that time (by ``get_profile_size``, an earlier listing, or known from the copy that
        made the profile) is reused; an older one is measured now, which costs a walk of that
        profile. Ask ``get_profile_size`` for the size on disk now.

        Returns:
            Mapping of worker_id to ``path``, ``size_mb``, ``created_at``, ``last_accessed``
            (datetimes) and ``is_valid``.
        """
        with self._handouts.lock:
            records = dict(self._handouts.profiles)
        listing: dict[str, dict[str, Any]] = {}
        for worker_id, record in records.items():
            try:
                st = os.stat(record.path)
                accessed = max(st.st_atime, st.st_mtime)
            except OSError:
                accessed = record.created_at
            size = self._handouts.recent_size(record.path, LISTED_SIZE_MAX_AGE)
            listing[worker_id] = {
                "path": record.path,
                "size_mb": size / MB,
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
