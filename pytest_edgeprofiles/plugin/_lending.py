"""This process's profiles for its tests: their keys, handing each out, and taking it back as
the retention policy says. Knows nothing of browsers: what runs on a profile is stopped
before it comes back here.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from .._options import Settings, option
from .._profiles.manager import ProfileManager
from .._system.logs import log
from ..errors import MAX_PROFILES_RANGE, ProfileLimitError
from ._shared import SharedFolder


class Lending:
    """Keys, hand-outs and take-backs of one process.

    Attributes:
        worker_key: ``gw0``, ``gw1``, ... or ``master``: this process's profiles are keyed
            ``<worker_key>.<n>`` (see :meth:`new_key`), its clone made ahead ``worker_key``.
        session_profile_failed: A test using the session profile failed: it is kept.
    """

    def __init__(
        self,
        settings: Settings,
        worker_key: str,
        shared: SharedFolder,
        free_own_slots: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.worker_key = worker_key
        self.session_profile_failed = False
        self._shared = shared
        self._free_own_slots = free_own_slots
        self._serial = itertools.count(1)

    def new_key(self) -> str:
        """A key for this process's next profile: one key per profile, never reused, so that
        a profile given back in the background never holds up the next one's key."""
        return f"{self.worker_key}.{next(self._serial)}"

    def hand_out(
        self, manager: ProfileManager, key: str, who: str, clone_ahead: bool = False
    ) -> Path:
        """A profile a browser can start on: an invalid one is made again once, never handed
        out (Chromium silently falls back to the user's real profile on an unusable dir).

        Args:
            manager: The ``edge_profile_manager`` fixture's (a conftest may override it).
            key: The profile key: a new one, or ``<worker>.session``.
            who: The test's profile fixtures, for a message.
            clone_ahead: Take this process's clone made ahead, if there is one.

        Raises:
            pytest.fail.Exception: No slot came free in time, or no valid profile was made.
        """
        for _ in range(2):
            full: str | None = None
            try:
                path = self._create(manager, key, self.worker_key if clone_ahead else key)
            except ProfileLimitError as exc:
                full = self._limit_message(exc, who)
            if full is not None:  # failed outside the except: no chained traceback
                pytest.fail(full, pytrace=False)
            if manager.validate_profile(key):
                return Path(path)
            log.warning("profile %s of %s is not valid; making it again", path, key)
            manager.cleanup_profile(key)
        pytest.fail(f"edgeprofiles: could not make a valid profile for {key}", pytrace=False)

    def _create(self, manager: ProfileManager, key: str, clone_key: str) -> str:
        try:
            return manager.create_profile(key, prepared_as=clone_key)
        except ProfileLimitError:
            # This process's own work must not keep it waiting: browsers started ahead go,
            # and those still stopping after their test are waited for.
            self._free_own_slots()
        try:
            return manager.create_profile(key, prepared_as=clone_key)
        except ProfileLimitError as exc:
            if exc.holders and all(h.pid == os.getpid() for h in exc.holders):
                raise  # held for this very test: none can come free while it waits
        wait = self.settings.profile_wait
        return manager.create_profile(key, timeout=wait, prepared_as=clone_key)

    def _limit_message(self, exc: ProfileLimitError, who: str) -> str:
        cap, wait = option("max_profiles"), option("profile_wait")
        raise_it = (
            f"Raise the cap with {cap.flag}, {cap.env} or ini {cap.ini} "
            f"(at most {MAX_PROFILES_RANGE[1]})"
        )
        if exc.holders and all(h.pid == os.getpid() for h in exc.holders):
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
        """Whether the retention policy keeps a profile whose tests ``failed`` (or not)."""
        retention = self.settings.profile_retention
        return retention == "all" or (retention == "failed" and failed)

    def take_back(
        self, manager: ProfileManager, key: str, keep: bool, test: str, background: bool
    ) -> None:
        """Done with the profile of ``key``: keep it, or remove it (``background``: a rename
        now, the deletion later). A kept profile or a failed removal becomes an event, which
        the summary reports."""
        if keep:
            path = manager.keep_profile(key)
            if path is not None:
                self._shared.note("kept", path=path, test=test)
        elif background:
            manager.release_profile(key)
        else:
            path = manager.get_profile_path(key)
            if not manager.cleanup_profile(key):
                self._shared.note("cleanup_failed", path=path, test=test)

    def close_manager(self, manager: ProfileManager) -> None:
        """Remove what ``manager`` still holds, noting what failed in the background."""
        manager.cleanup_all_profiles()
        for path, error in manager.background_failures:
            self._shared.note("cleanup_failed", path=path, error=error)
