"""This process's profiles for its tests: keys, hand out, take back as the retention policy says.
Knows nothing of browsers: what runs on a profile is stopped before it comes back here."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from .._options import Settings, option
from .._profiles import removal
from .._profiles.manager import ProfileManager
from .._profiles.records import read_record, record_path
from .._system.logs import log
from ..errors import MAX_PROFILES_RANGE, ProfileLimitError
from ._config import fail
from ._shared import SharedFolder


class Lending:
    """One process's keys (``<worker_key>.<n>``; its clone made ahead: ``worker_key``) and loans."""

    def __init__(
        self,
        settings: Settings,
        worker_key: str,
        shared: SharedFolder,
        free: Callable[[], None],
        free_first: bool = False,
    ) -> None:
        self.settings = settings
        self.worker_key = worker_key
        self.session_profile_failed = False
        self._shared = shared
        self._free_own_slots = free  # our slots held for browsers: those ahead, those stopping
        self._free_first = free_first  # before every claim, not only when the cap is reached
        self._serial = itertools.count(1)
        self._kept: dict[str, list[str]] = {}  # by test: kept until its last try's outcome

    def new_key(self) -> str:
        """Never reused: a profile taken back in the background never holds up the next."""
        return f"{self.worker_key}.{next(self._serial)}"

    def hand_out(
        self, manager: ProfileManager, key: str, who: str, clone_ahead: bool = False
    ) -> Path:
        """A valid profile or a failed test (on a bad dir Chromium takes the user's real one)."""
        for _ in range(2):
            try:
                path = self._create(manager, key, self.worker_key if clone_ahead else key)
            except ProfileLimitError as exc:
                fail(self._limit_message(exc, who))
            # An empty profile holds only what was just written into it: nothing to find
            # wrong. A clone holds the base's files, which may not parse, or its lock.
            if manager.base_profile_path is None or manager.validate_profile(key):
                return Path(path)
            log.warning("profile %s of %s is not valid; making it again", path, key)
            manager.cleanup_profile(key)
        fail(f"edgeprofiles: could not make a valid profile for {key}")

    def _create(self, manager: ProfileManager, key: str, clone_key: str) -> str:
        if self._free_first:
            self._free_own_slots()
        try:
            return manager.create_profile(key, prepared_as=clone_key)
        except ProfileLimitError:
            # Not kept waiting by our own: browsers started ahead go, stopping ones are awaited.
            self._free_own_slots()
        try:
            return manager.create_profile(key, prepared_as=clone_key)
        except ProfileLimitError as exc:
            if _all_mine(exc):
                raise  # held for this very test: none can come free while it waits
        wait = self.settings.profile_wait
        return manager.create_profile(key, timeout=wait, prepared_as=clone_key)

    def _limit_message(self, exc: ProfileLimitError, who: str) -> str:
        cap, wait = option("max_profiles"), option("profile_wait")
        raise_it = (
            f"Raise the cap with {cap.flag}, {cap.env} or ini {cap.ini} "
            f"(at most {MAX_PROFILES_RANGE[1]})"
        )
        if _all_mine(exc):
            return (
                f"edgeprofiles: this test needs more profiles ({who}) than {cap.flag} "
                f"{self.settings.max_profiles} allows: this process holds every slot for this "
                f"test, so none can come free while it waits. {raise_it}."
            )
        holders = ", ".join(
            f"{h.worker_id} (pid {h.pid}, since {datetime.fromtimestamp(h.created_at):%H:%M:%S})"
            for h in exc.holders
        )
        return (
            f"edgeprofiles: no free profile slot after waiting {self.settings.profile_wait:g} s: "
            f"{exc}; held by {holders or 'nobody known'}. {raise_it}, or wait longer with "
            f"{wait.flag}."
        )

    def keeps(self, failed: bool) -> bool:
        retention = self.settings.profile_retention
        return retention == "all" or (retention == "failed" and failed)

    def take_back(
        self,
        manager: ProfileManager,
        key: str,
        keep: bool,
        test: str,
        background: bool,
        another_next: bool = False,
    ) -> None:
        """Keep or remove (``background``: renamed now, deleted later; ``another_next``: a
        profile is asked for next, whose claim frees the slot); the summary is told."""
        if keep:
            path = manager.keep_profile(key)
            if path is not None:
                self._kept.setdefault(test, []).append(path)
                self._shared.note("kept", path=path, test=test)
        elif background:
            manager.release_profile(key, free_slot_later=another_next)
        else:
            path = manager.get_profile_path(key)
            if not manager.cleanup_profile(key):
                self._shared.note("cleanup_failed", path=path, test=test)

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """A failed try that pytest-rerunfailures runs again keeps nothing: the outcome of the
        last try decides, and the summary marks the rerun."""
        outcome: str = report.outcome  # "rerun" is the plugin's own
        if outcome != "rerun":
            return
        for path in self._kept.pop(report.nodeid, []):
            try:
                record = read_record(record_path(path))
                if record is not None:
                    removal.remove_profile(record)
            except OSError as exc:
                self._shared.note("cleanup_failed", path=path, error=str(exc))
            self._shared.note("rerun", path=path, test=report.nodeid)

    def close_manager(self, manager: ProfileManager) -> None:
        manager.cleanup_all_profiles()
        for path, error in manager.background_failures:
            self._shared.note("cleanup_failed", path=path, error=error)


def _all_mine(full: ProfileLimitError) -> bool:
    """Whether this process holds every slot: then none can come free while it waits."""
    return bool(full.holders) and all(h.owner() == "this process" for h in full.holders)
