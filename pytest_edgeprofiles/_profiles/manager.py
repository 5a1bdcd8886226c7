"""ProfileManager: temporary Edge/Chromium user data dirs, one per worker, capped and cleaned up.

A facade, as the contract gives it: ``making`` makes a profile (record, slot, folder),
``clone`` fills it, ``ledger`` knows what was handed out and how it comes back, ``removal``
takes it off the disk. Knows nothing of pytest; the plugin wires it in.
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
from .._system.platform import expand_user
from ..errors import (
    MAX_PROFILES_RANGE,
    ProfileCreationError,
    ProfileLimitError,
    WorkerIdTypeError,
)
from . import roots
from .clone import MB, Cloner, check_base_profile, download_folder
from .ledger import Ledger
from .making import NewProfile, ProfileMaker
from .registry import Registry

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


def check_int(name: str, value: object, low: int, high: int | None = None) -> int:
    """``value`` if it is an int from ``low`` to ``high``; else ``TypeError``/``ValueError``
    naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}: {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


def _remove_all_in(pid: int, ledger: Ledger) -> None:
    # A child forked by a test inherits the finalizer: the profiles are its parent's.
    if os.getpid() == pid:
        ledger.remove_all()


def _free_slots_in(pid: int, ledger: Ledger) -> None:
    if os.getpid() == pid:
        ledger.free_released_slots()


def _resolved(path: str | os.PathLike[str] | None) -> Path | None:
    return None if path is None else expand_user(path).resolve()


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
        fallback_root: str | os.PathLike[str] | None = None,
    ) -> None:
        """Initialize profile manager for temporary browser profiles, as the contract says;
        ``cleanup_on_exit=False`` marks profiles kept (no sweep removes them).

        Extensions: ``root`` (default ``<system temp>/edgeprofiles-of-<user>``),
        ``registry_path`` (a JSON file: managers naming it share one cap), ``skip_rules``,
        ``run_id`` (a label in owner records), ``download_root`` (downloads go to
        ``<download_root>/<profile name>``, else ``<profile>/Downloads``), ``fallback_root``
        (where profiles go when ``root`` cannot take one).

        Raises:
            ValueError: If max_profiles < 1 or > 16
            FileNotFoundError: If base_profile_path specified but doesn't exist
            PermissionError: If base_profile_path not readable
        """
        self.max_profiles = check_int("max_profiles", max_profiles, *MAX_PROFILES_RANGE)
        self.profile_size_limit_mb = check_int("profile_size_limit_mb", profile_size_limit_mb, 1)
        self.base_profile_path = (
            None if base_profile_path is None else check_base_profile(base_profile_path)
        )
        self.cleanup_on_exit = bool(cleanup_on_exit)
        self.skip_rules = skip_rules
        self.run_id = run_id
        self.root = _resolved(root) or roots.default_root()
        self.registry_path = None if registry_path is None else Path(registry_path).resolve()
        self.download_root = _resolved(download_root)
        self._ledger = Ledger(Registry(self.registry_path, [self.root]))
        self._maker = ProfileMaker(
            root=self.root,
            registry=self._ledger.registry,
            max_profiles=self.max_profiles,
            cloner=Cloner(self.base_profile_path, self.profile_size_limit_mb, skip_rules),
            lanes=self._ledger.lanes,
            keep=not self.cleanup_on_exit,
            run_id=run_id,
            download_root=self.download_root,
            fallback_root=_resolved(fallback_root) or roots.fallback_root(self.root),
        )
        self._pid = os.getpid()
        if self.cleanup_on_exit:
            weakref.finalize(self, _remove_all_in, self._pid, self._ledger)
        else:  # what it keeps stays, but no slot it gave up
            weakref.finalize(self, _free_slots_in, self._pid, self._ledger)

    # -- handing profiles out ---------------------------------------------------------------

    def create_profile(
        self,
        worker_id: str,
        *,
        timeout: float = 0.0,
        spare: bool = False,
        prepared_as: str | None = None,
    ) -> str:
        """Create temporary browser profile for worker; its absolute path.

        Extensions: ``timeout`` (seconds to wait for a slot at the cap); ``spare`` (claim a
        slot only if one is free that nobody waits for, never waiting: for work done ahead);
        ``prepared_as`` (take the clone ``prepare_profile(prepared_as)`` made ahead).

        Raises:
            ValueError: If worker_id already has profile or is invalid
            OSError: If profile creation fails (disk space, permissions)
            ProfileLimitError: If max_profiles limit exceeded
            ProfileCreationError: If the profile exceeds profile_size_limit_mb, or the
                manager was made in another process (this one is a forked child)
        """
        check_worker_id(worker_id)
        self._refuse_forked_child(worker_id)
        with self._ledger.making(worker_id):
            made = self._take_ahead(prepared_as or worker_id, timeout, spare)
            made = made or self._maker.make(worker_id, timeout, spare=spare)
            self._ledger.hand_out(worker_id, made)
            return made.record.path

    def prepare_profile(self, worker_id: str) -> None:
        """Start making the worker's next profile ahead, in a lane (extension): the next
        ``create_profile(worker_id)`` then costs a slot and a record write, not a copy. It
        holds no slot until then; the manager or the sweep removes it if unused."""
        check_worker_id(worker_id)
        self._refuse_forked_child(worker_id)
        self._ledger.make_ahead(worker_id, lambda: self._maker.make(worker_id, 0.0, prepared=True))

    def _refuse_forked_child(self, worker_id: str) -> None:
        # A child inherits the registry's file lock (unusable there) and none of the
        # clean-up: what it made would outlive it.
        if os.getpid() != self._pid:
            raise ProfileCreationError(
                worker_id,
                f"this ProfileManager belongs to process {self._pid}; a forked child "
                f"(pid {os.getpid()}) must make a ProfileManager of its own",
            )

    def _take_ahead(self, worker_id: str, timeout: float, spare: bool) -> NewProfile | None:
        """The worker's clone made ahead with a slot claimed for it; None if it has none."""
        future = self._ledger.take_ahead(worker_id)
        if future is None:
            return None
        try:
            made = future.result()
            record = made.record.activated()
        except Exception as exc:
            log.info("could not make a profile ahead for %s (%s); making one now", worker_id, exc)
            return None
        except BaseException:  # interrupted while waiting: the clone stays ours to remove
            self._ledger.put_back_ahead(worker_id, future)
            raise
        try:
            self._maker.claim_slot(record, timeout, spare)  # writes the activated record
        except ProfileLimitError:
            self._ledger.put_back_ahead(worker_id, future)  # still good for the next try
            raise
        except BaseException:
            self._maker.undo(record)
            raise
        return NewProfile(record, made.size)

    def copy_base_profile(self, worker_id: str) -> bool:
        """Copy base profile template to worker's profile directory: its contents become a
        fresh clone, at the same path. False for an unknown worker, without a base profile,
        or when the copy failed (logged)."""
        record = self._ledger.get(worker_id)
        if record is None:
            return False
        downloads = Path(record.downloads) if record.downloads else None
        size = self._maker.cloner.refill(worker_id, Path(record.path), downloads)
        if size is None:  # what is left of the profile is anybody's guess: walk it next time
            self._ledger.forget_size(record.path)
        else:
            self._ledger.note_size(record.path, size)
        return size is not None

    # -- taking profiles back -----------------------------------------------------------------

    def cleanup_profile(self, worker_id: str, *, strict: bool = False) -> bool:
        """Remove temporary profile for specified worker; True if removed (or never there).

        A browser still running on it is stopped first. When the folder cannot be removed,
        its slot is freed anyway, the folder left to the sweep, a warning logged and False
        returned (``strict``, an extension: ``ProfileCleanupError`` instead).
        """
        return self._ledger.remove(worker_id, strict=strict)

    def release_profile(self, worker_id: str, *, free_slot_later: bool = False) -> None:
        """``cleanup_profile`` without the wait (extension): a browser still running on it is
        stopped, the folder renamed ``garbage-<name>`` and its slot freed at once, and a lane
        deletes it; what cannot be deleted is listed in ``background_failures``.

        ``free_slot_later``: the slot is freed with this manager's next change to the
        registry (the claim of another profile about to be made), saving it a write; a
        claimant of another process at the cap reclaims it meanwhile, and
        ``free_released_slots`` or ``cleanup_all_profiles`` frees it at the latest.
        """
        self._ledger.move_aside(worker_id, free_slot_later)

    def free_released_slots(self) -> None:
        """Free now the slots ``release_profile(free_slot_later=True)`` left (extension)."""
        self._ledger.free_released_slots()

    def keep_profile(self, worker_id: str) -> str | None:
        """Leave a profile on disk, marked kept (no sweep removes it), and free its slot;
        its path, or None for an unknown worker (extension)."""
        return self._ledger.keep(worker_id)

    def cleanup_all_profiles(self) -> int:
        """Remove all temporary profiles managed by this instance; how many were removed."""
        return self._ledger.remove_all()

    def drain(self) -> None:
        """Wait for the work in lanes (making ahead, deleting) given so far."""
        self._ledger.lanes.drain()

    @property
    def background_failures(self) -> list[tuple[str, str]]:
        """Folders a deletion in a lane could not delete, with the error."""
        return list(self._ledger.failures)

    # -- queries ------------------------------------------------------------------------------

    def get_profile_path(self, worker_id: str) -> str | None:
        """Get profile path for specified worker, None if it has none or it is gone."""
        record = self._ledger.get(worker_id)
        return record.path if record is not None and os.path.isdir(record.path) else None

    def get_download_dir(self, worker_id: str) -> str | None:
        """The download folder of the worker's profile, made if missing (else the browser makes
        it at its first download); None if it has no profile."""
        record = self._ledger.get(worker_id)
        if record is None:
            return None
        downloads = Path(record.downloads) if record.downloads else None
        return download_folder(Path(record.path), downloads)

    def validate_profile(self, worker_id: str) -> bool:
        """Validate profile exists and is accessible for browser use: a folder we may read,
        write and enter, its JSON files parse, and no live lock (a dead process's is stale)."""
        record = self._ledger.get(worker_id)
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
        """Calculate disk usage of worker's profile directory, now: the bytes of its regular
        files, symlinks not followed, 0 without a profile (a walk: ~5 ms per 1000 files)."""
        record = self._ledger.get(worker_id)
        return 0 if record is None else self._ledger.measure(record.path)

    def list_profiles(self) -> dict[str, dict[str, Any]]:
        """Get all currently managed profiles with metadata: ``path``, ``size_mb``,
        ``created_at``, ``last_accessed`` and ``is_valid``, by worker id. A size may be up to
        ``LISTED_SIZE_MAX_AGE`` s old (an older one costs a walk; ``get_profile_size`` walks)."""
        listing: dict[str, dict[str, Any]] = {}
        for worker_id, record in self._ledger.handed_out().items():
            try:
                st = os.stat(record.path)
                accessed = max(st.st_atime, st.st_mtime)
            except OSError:
                accessed = record.created_at
            size = self._ledger.recent_size(record.path, LISTED_SIZE_MAX_AGE)
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
