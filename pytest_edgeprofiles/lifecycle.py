"""One process's part of a test run, as the plugin's hooks and fixtures drive it.

:class:`RunLifecycle` holds the run's settings and folder, the manager (made on first use),
the thread copying the base, what the run swept and the lines of the summary. The controller
(or the only process) owns the run folder; workers own the profiles.
"""

from __future__ import annotations

import functools
import tempfile
import threading
from datetime import datetime
from pathlib import Path

import pytest

from .chromium import SOCKET_PATH_MAX, socket_path_too_long
from .logs import log
from .options import Settings, option
from .profile_manager import MAX_PROFILES_RANGE, ProfileLimitError, ProfileManager
from .registry import Registry
from .runs import RunFolder, sweep_leftovers
from .sweep import prune_kept

#: The profile key of a process without xdist workers, as pytest-xdist names it.
CONTROLLER_KEY = "master"


class RunLifecycle:
    """The per-process state of a run, from ``pytest_configure`` to ``pytest_unconfigure``.

    Attributes:
        settings: The resolved options and what the controller derived from them.
        run: The run folder: registry, events, the snapshot of the base.
        is_controller: Whether this process made the run folder (and removes it).
        worker_key: ``gw0``, ``gw1``, ... or ``master``: the key of this process's profiles.
        swept: Leftovers of dead runs removed, at the start and at the end of the run.
        session_profile_failed: A test using the session profile failed: it is kept.
        snapshot: The thread copying the base into the run folder, if one was started.
    """

    def __init__(
        self,
        settings: Settings,
        run: RunFolder,
        *,
        is_controller: bool,
        worker_key: str,
        swept: int = 0,
    ) -> None:
        self.settings = settings
        self.run = run
        self.is_controller = is_controller
        self.worker_key = worker_key
        self.swept = swept
        self.session_profile_failed = False
        self.snapshot: threading.Thread | None = None
        self._manager: ProfileManager | None = None

    @classmethod
    def of_worker(cls, settings: Settings, worker_key: str) -> RunLifecycle:
        """A worker's part of the run its controller set up."""
        run = RunFolder(Path(settings.run_dir))
        return cls(settings, run, is_controller=False, worker_key=worker_key)

    def manager(self) -> ProfileManager:
        """This process's manager, made on first use (after the run's base snapshot).

        Raises:
            OSError: The base could not be copied into the run folder.
        """
        if self._manager is None:
            s = self.settings
            source = None
            if s.base_profile is not None:
                source = str(self.run.make_clone_source(Path(s.base_profile)))
            self._manager = ProfileManager(
                source,
                max_profiles=s.max_profiles,
                profile_size_limit_mb=s.profile_size_limit_mb,
                root=s.profile_root,
                registry_path=self.run.registry_path,
                run_id=s.run_id,
                download_root=s.download_root,
            )
        return self._manager

    def manager_or_fail(self) -> ProfileManager:
        """:meth:`manager`, failing the test that asked when the base cannot be copied.

        Raises:
            pytest.fail.Exception: The base could not be copied into the run folder.
        """
        try:
            return self.manager()
        except OSError as exc:
            base = self.settings.base_profile
            pytest.fail(f"edgeprofiles: cannot copy the base profile {base}: {exc}", pytrace=False)

    def start_snapshot(self) -> None:
        """Copy the base into the run folder while the workers start, not before."""
        base = self.settings.base_profile
        if base is None:
            return

        def snapshot() -> None:
            try:
                self.run.make_clone_source(Path(base))
            except OSError as exc:  # the first worker to need it tries again and reports it
                log.warning("could not copy the base profile %s: %s", base, exc)

        self.snapshot = threading.Thread(target=snapshot, name="edgeprofiles-snapshot", daemon=True)
        self.snapshot.start()

    def prepare_first_profile(self) -> None:
        """With a base, copy the first clone while the tests are collected, not in the first
        test's setup; a failure is only logged, the fixture meets it again and fails the test."""
        if not self.settings.clone_source:
            return
        try:
            self.manager().prepare_profile(self.worker_key)
        except OSError as exc:
            log.warning("could not prepare the first profile: %s", exc)

    def take_profile(self, manager: ProfileManager, key: str) -> Path:
        """A profile a browser can start on: an invalid one is recreated once, never handed out
        (Chromium silently falls back to the user's real profile on an unusable dir).

        Args:
            manager: The ``edge_profile_manager`` fixture's (a conftest may override it).
            key: The profile key: the worker's, or ``<worker>.session``.

        Raises:
            pytest.fail.Exception: No slot came free in time, or no valid profile was made.
        """
        for _ in range(2):
            try:
                path = manager.create_profile(key, timeout=self.settings.profile_wait)
            except ProfileLimitError as exc:
                pytest.fail(self._limit_message(exc), pytrace=False)
            if manager.validate_profile(key):
                return Path(path)
            log.warning("profile %s of %s is not valid; recreating it", path, key)
            manager.cleanup_profile(key)
        pytest.fail(f"edgeprofiles: could not make a valid profile for {key}", pytrace=False)

    def _limit_message(self, exc: ProfileLimitError) -> str:
        holders = ", ".join(
            f"{h.worker_id} (pid {h.pid}, since {datetime.fromtimestamp(h.created_at):%H:%M:%S})"
            for h in exc.holders
        )
        cap, wait = option("max_profiles"), option("profile_wait")
        return (
            f"edgeprofiles: no free profile slot after waiting {self.settings.profile_wait:g} s: "
            f"{exc}; held by {holders or 'nobody known'}. Raise the cap with {cap.flag}, "
            f"{cap.env} or ini {cap.ini} (at most {MAX_PROFILES_RANGE[1]}), "
            f"or wait longer with {wait.flag}."
        )

    def keeps(self, failed: bool) -> bool:
        """Whether the retention policy keeps a profile whose tests ``failed`` (or not)."""
        retention = self.settings.profile_retention
        return retention == "all" or (retention == "failed" and failed)

    def retire_profile(
        self, manager: ProfileManager, key: str, keep: bool, test: str, background: bool = False
    ) -> None:
        """Done with the profile of ``key``: keep it, or remove it (``background``: a rename
        now, the deletion later). A kept profile or a failed removal becomes an event, which
        the summary reports."""
        if keep:
            path = manager.keep_profile(key)
            if path is not None:
                self.run.add_event("kept", path=path, test=test)
            return
        if background:
            manager.release_profile(key)
            return
        path = manager.get_profile_path(key)
        if not manager.cleanup_profile(key):
            self.run.add_event("cleanup_failed", path=path, test=test)

    def close_manager(self, manager: ProfileManager) -> None:
        """Remove what ``manager`` still holds, recording what failed in the background."""
        manager.cleanup_all_profiles()
        for path, error in manager.background_failures:
            self.run.add_event("cleanup_failed", path=path, error=error)

    def sweep_again(self) -> None:
        """At the end of the run: what dead runs (and this run's dead workers) left."""
        self.swept += len(sweep_leftovers(Path(self.settings.profile_root)).removed)

    @functools.cached_property
    def private_folders(self) -> set[Path]:
        """Where this run keeps profiles and their downloads: never collected as tests."""
        folders = {Path(self.settings.profile_root)}
        if self.settings.download_root:
            folders.add(Path(self.settings.download_root))
        return folders

    def header_lines(self) -> list[str]:
        """What the report header says of the run's settings and the browser."""
        s = self.settings
        browser = s.rebuild_found_browser()
        lines = [
            f"edgeprofiles: max {s.max_profiles} profiles, root {s.profile_root}, "
            f"base profile {s.base_profile or 'none'}, retention {s.profile_retention}",
            f"edgeprofiles: browser {browser.describe()}"
            if browser
            else f"edgeprofiles: no Edge, Chrome or Chromium found (set {option('browser').flag})",
        ]
        tmpdir = tempfile.gettempdir()
        if socket_path_too_long(tmpdir):
            lines.append(
                f"edgeprofiles: warning: TMPDIR {tmpdir} is too deep for a browser's socket "
                f"(over {SOCKET_PATH_MAX} bytes); the launch helpers give browsers a short TMPDIR"
            )
        return lines

    def summary_lines(self) -> list[str]:
        """What the terminal summary says of the run: nothing when it made no profile."""
        registry = self.run.registry_path
        stats = Registry(registry).stats() if registry.exists() else {}
        events = self.run.events()
        created = stats.get("created", 0)
        if not created and not self.swept and not events:
            return []
        lines = [
            f"edgeprofiles: {created} profiles created, at most {stats.get('peak', 0)} alive at "
            f"once (cap {self.settings.max_profiles}), {self.swept} leftovers swept"
        ]
        for event in events:
            if event["kind"] == "kept":
                lines.append(f"edgeprofiles: kept {event['path']} ({event['test']})")
            elif event["kind"] == "cleanup_failed":
                why = event.get("test") or event.get("error")
                lines.append(f"edgeprofiles: could not remove {event['path']} ({why})")
        return lines

    def finish(self) -> None:
        """The end of this process's part: after the summary, which names kept profiles."""
        if self.snapshot is not None:
            self.snapshot.join()  # it writes into the run folder removed below
        if self._manager is not None:
            # A clone prepared for tests that never ran here (their fixture never set up).
            self._manager.cleanup_all_profiles()
        if not self.is_controller:
            return
        # Older runs' kept profiles go now, this run's stay as the summary said.
        prune_kept(Path(self.settings.profile_root), self.settings.profile_retention_count)
        try:
            self.run.remove()
        except OSError as exc:
            log.warning("could not remove the run folder %s: %s", self.run.path, exc)
