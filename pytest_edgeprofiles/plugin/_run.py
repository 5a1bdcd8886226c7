"""One process's part of a test run, made when a test first asks for a profile or a browser.

Nothing happens before that: a run none of whose tests asks creates no folder, sweeps
nothing and starts no process. The first process that needs one (the only process, or any
xdist worker) makes the run folder, sweeping what dead runs left first; the first that needs
the base settles it for the whole run (``base``); each process finds the browser when a test
first needs one, and starts and stops its browsers (``prelaunch``, ``sessions``).
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .._chromium.installs import Browser, browser_version, find_browser, kind_of
from .._options import Settings, option
from .._profiles.manager import ProfileManager
from .._profiles.roots import UnsafeDirectoryError
from .._profiles.runs import RunFolder, sweep_leftovers
from .._profiles.sweep import prune_kept
from .._system.logs import log
from ..errors import MAX_PROFILES_RANGE, ProfileLimitError
from . import _summary
from ._base import BaseUnusable, RunBase

if TYPE_CHECKING:
    from .._browser.ahead import Prelauncher, Wish
    from .._browser.sessions import BrowserSession, Stopper

#: The profile key of a process without xdist workers, as pytest-xdist names it.
CONTROLLER_KEY = "master"


class RunLifecycle:
    """The per-process state of a run, made on first use, ended at ``pytest_unconfigure``.

    Thread-safe: a thread may warm it up (make the run folder and the first clone) while the
    test before the first that asks runs, and that test's fixture then waits for it rather
    than racing it.

    Attributes:
        settings: The resolved options and what the controller derived from them.
        is_controller: Whether this process is the run's controller (or its only process).
        worker_key: ``gw0``, ``gw1``, ... or ``master``: this process's profiles are keyed
            ``<worker_key>.<n>`` (see :meth:`new_key`), the next one prepared as ``worker_key``.
        session_profile_failed: A test using the session profile failed: it is kept.
        prelauncher: This process's browsers started ahead, made when a test first asks for
            a browser session (see :meth:`prelaunch_for`).
        starts: How this process's tests got their browsers (``_summary.STARTS``).
    """

    def __init__(
        self, config: pytest.Config, settings: Settings, *, is_controller: bool, worker_key: str
    ) -> None:
        self.config = config
        self.settings = settings
        self.is_controller = is_controller
        self.worker_key = worker_key
        self.session_profile_failed = False
        self._lock = threading.RLock()
        self._run: RunFolder | None = None
        self._base = RunBase(config, settings, self._tell)
        self._found = False
        self._browser: Browser | None = None
        self._manager: ProfileManager | None = None
        self._warm_up: threading.Thread | None = None
        self._serial = itertools.count(1)
        self.prelauncher: Prelauncher | None = None
        self.starts = Counter[str]()
        self._stopper: Stopper | None = None

    @property
    def run_folder(self) -> RunFolder:
        """The run folder, whether made yet or not (see :meth:`run`)."""
        return RunFolder(Path(self.settings.run_dir))

    def new_key(self) -> str:
        """A key for this process's next profile: one key per profile, never reused, so that
        a profile given back in the background never holds up the next one's key."""
        return f"{self.worker_key}.{next(self._serial)}"

    # -- made on first use ----------------------------------------------------------------

    def run(self) -> RunFolder:
        """The run folder, made (and dead runs' leftovers swept) if no process has yet."""
        with self._lock:
            if self._run is None:
                s = self.settings
                run, swept = RunFolder.open(Path(s.profile_root), s.run_id, s.controller_pid)
                if swept:
                    run.add_event("swept", count=swept)
                self._run = run
            return self._run

    def browser(self) -> Browser | None:
        """The browser, found (and asked its version) once per process, when first needed.

        Raises:
            ValueError: pytest-playwright's ``--browser-channel`` names no Chromium channel.
        """
        with self._lock:
            if not self._found:
                override = self.settings.browser
                self._browser = (
                    Browser(override, kind_of(override), browser_version(override))
                    if override
                    else find_browser(channel=self.playwright_channel())
                )
                self._found = True
                if self._browser is not None:
                    self._tell("browser", self._browser.describe())
                    self._base.check_versions(self._browser)
            return self._browser

    def playwright_channel(self) -> str | None:
        """pytest-playwright's ``--browser-channel`` when that plugin is active: the kind of
        browser to find, unless ``--edge-browser`` names one."""
        if not self.config.pluginmanager.hasplugin("playwright"):
            return None
        return self.config.getoption("browser_channel", None) or None

    def manager(self) -> ProfileManager:
        """This process's manager, made on first use (after the run's base is settled).

        Raises:
            BaseUnusable: The run has no usable base.
            OSError: The run folder could not be made.
        """
        with self._lock:
            if self._manager is None:
                s = self.settings
                run = self.run()
                source = self._base.clone_source(run, self.browser)
                self._base.check_versions(self._browser)
                self._manager = ProfileManager(
                    source,
                    max_profiles=s.max_profiles,
                    profile_size_limit_mb=s.profile_size_limit_mb,
                    root=s.profile_root,
                    registry_path=run.registry_path,
                    run_id=s.run_id,
                    download_root=s.download_root,
                )
            return self._manager

    def manager_or_fail(self) -> ProfileManager:
        """:meth:`manager`, failing the test that asked when the run cannot have one."""
        try:
            return self.manager()
        except BaseUnusable as exc:
            failure = str(exc)
        except UnsafeDirectoryError as exc:
            failure = f"edgeprofiles: {exc} (another user may have planted it)"
        except OSError as exc:  # what no check at start-up could foresee (a full disk)
            root, flag = self.settings.profile_root, option("profile_root").flag
            failure = f"edgeprofiles: cannot make the run folder under {root} ({flag}): {exc}"
        pytest.fail(failure, pytrace=False)  # outside the except: no chained traceback

    def warm_up(self) -> None:
        """The next test needs a profile: make the run folder, and with a configured base
        its snapshot and this process's first clone, in a thread, while this test runs.
        Failures are met again, and reported, by the fixture. A base made by the conftest
        hook waits for the fixture: the hook is the user's code, for pytest's own thread."""
        if self._warm_up is not None:
            return

        def work() -> None:
            try:
                if self.settings.base_profile is None:
                    self.run()
                else:
                    self.manager().prepare_profile(self.worker_key)
            except (OSError, BaseUnusable) as exc:
                log.warning("edgeprofiles: could not get ready ahead of the tests: %s", exc)

        self._warm_up = threading.Thread(target=work, name="edgeprofiles-warm-up", daemon=True)
        self._warm_up.start()

    def _tell(self, kind: str, text: str) -> None:
        """An event for the controller's summary; best effort, never a test's failure."""
        try:
            self.run().add_event(kind, text=text)
        except OSError as exc:  # UnsafeDirectoryError included: the fixture says it again
            log.warning("edgeprofiles: could not note %s %r: %s", kind, text, exc)

    # -- handing profiles out and taking them back ------------------------------------------

    def take_profile(self, manager: ProfileManager, key: str, prepared: bool = False) -> Path:
        """A profile a browser can start on: an invalid one is recreated once, never handed out
        (Chromium silently falls back to the user's real profile on an unusable dir).

        Args:
            manager: The ``edge_profile_manager`` fixture's (a conftest may override it).
            key: The profile key: a new one, or ``<worker>.session``.
            prepared: Take this process's prepared clone, if there is one.

        Raises:
            pytest.fail.Exception: No slot came free in time, or no valid profile was made.
        """
        for _ in range(2):
            full: ProfileLimitError | None = None
            try:
                path = self._create(manager, key, self.worker_key if prepared else key)
            except ProfileLimitError as exc:
                full = exc
            if full is not None:  # failed outside the except: no chained traceback
                pytest.fail(self._limit_message(full), pytrace=False)
            if manager.validate_profile(key):
                return Path(path)
            log.warning("profile %s of %s is not valid; recreating it", path, key)
            manager.cleanup_profile(key)
        pytest.fail(f"edgeprofiles: could not make a valid profile for {key}", pytrace=False)

    def _create(self, manager: ProfileManager, key: str, prepared_as: str) -> str:
        if self.prelauncher is not None or self._stopper is not None:
            try:
                return manager.create_profile(key, prepared_as=prepared_as)
            except ProfileLimitError:
                # This process's own browsers must not keep it waiting: those started
                # ahead go, and those still stopping after their test are waited for.
                if self.prelauncher is not None:
                    self.prelauncher.empty()
                if self._stopper is not None:
                    self._stopper.drain()
        wait = self.settings.profile_wait
        return manager.create_profile(key, timeout=wait, prepared_as=prepared_as)

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
        self,
        manager: ProfileManager,
        key: str,
        keep: bool,
        test: str,
        background: bool = False,
        browser: BrowserSession | None = None,
    ) -> None:
        """Done with the profile of ``key``: keep it, or remove it (``background``: a rename
        now, the deletion later). A kept profile or a failed removal becomes an event, which
        the summary reports. A ``browser`` still running on it is stopped first; with
        ``background``, so is the profile given back after it: its slot is held till then."""
        if browser is not None and background and not keep:
            self.stopper().stop(browser, then=lambda: manager.release_profile(key))
            return
        if browser is not None:
            browser.stop()
        if keep:
            path = manager.keep_profile(key)
            if path is not None:
                self.run().add_event("kept", path=path, test=test)
            return
        if background:
            manager.release_profile(key)
            return
        path = manager.get_profile_path(key)
        if not manager.cleanup_profile(key):
            self.run().add_event("cleanup_failed", path=path, test=test)

    def close_manager(self, manager: ProfileManager) -> None:
        """Remove what ``manager`` still holds, recording what failed in the background."""
        self.close_browsers()
        manager.cleanup_all_profiles()
        for path, error in manager.background_failures:
            self.run().add_event("cleanup_failed", path=path, error=error)

    # -- browsers: started ahead, stopped after their test ----------------------------------

    def prelaunch_for(self, manager: ProfileManager, browser: Browser, wish: Wish) -> Prelauncher:
        """This process's browsers started ahead, made on first use (on the tests' thread:
        made from two threads, there would be two)."""
        if self.prelauncher is None:
            from .._browser.ahead import Prelauncher

            self.prelauncher = Prelauncher(
                manager,
                browser,
                wish,
                new_key=self.new_key,
                prepared_as=self.worker_key,
                ahead=self.settings.prelaunch,
                stopper=self.stopper(),
                counts=self.starts,
            )
        return self.prelauncher

    def stopper(self) -> Stopper:
        """What stops this process's browsers in the background, made on first use."""
        if self._stopper is None:
            from .._browser.sessions import Stopper

            self._stopper = Stopper()
        return self._stopper

    def close_browsers(self) -> None:
        """Stop the browsers started ahead, wait for those stopping, and note for the summary
        how the tests' browsers were started and what could not be stopped; once."""
        pool, self.prelauncher = self.prelauncher, None
        stopper, self._stopper = self._stopper, None
        if pool is not None:
            pool.close()
        if stopper is None:
            return
        stopper.drain()
        events: list[tuple[str, dict[str, Any]]] = [
            ("starts", {k: self.starts[k] for k in _summary.STARTS})
        ]
        events += [("cleanup_failed", {"path": p, "error": e}) for p, e in stopper.failures]
        try:
            for kind, fields in events:
                self.run().add_event(kind, **fields)
        except OSError as exc:  # the run is ending: a warning, never an INTERNALERROR
            log.warning("edgeprofiles: could not note the browsers' starts: %s", exc)

    # -- the end of the run: the controller, and only for a run that made its folder -------

    def sweep_again(self) -> None:
        """What dead runs (and this run's dead workers) left, swept at the end too."""
        try:
            swept = len(sweep_leftovers(Path(self.settings.profile_root)).removed)
            if swept:
                self.run_folder.add_event("swept", count=swept)
        except OSError as exc:  # a planted or lost root at the end: the run is over anyway
            log.warning("edgeprofiles: could not sweep %s: %s", self.settings.profile_root, exc)

    def summary(self) -> tuple[list[str], bool]:
        """The lines of the terminal summary, and whether any is worth saying under ``-q``."""
        return _summary.summarize(self.run_folder, self.settings.max_profiles)

    def finish(self) -> None:
        """The end of this process's part: after the summary, which names kept profiles."""
        if self._warm_up is not None:
            self._warm_up.join()  # it writes into the run folder removed below
        self.close_browsers()  # before the manager: they run on its profiles
        if self._manager is not None:
            # A clone prepared for tests that never ran here (their fixture never set up).
            self._manager.cleanup_all_profiles()
        run = self.run_folder
        if not self.is_controller or not run.path.is_dir():
            return  # a run that used no profile made nothing, and prunes nothing
        try:
            # Older runs' kept profiles go now, this run's stay as the summary said.
            prune_kept(Path(self.settings.profile_root), self.settings.profile_retention_count)
            run.remove()
        except OSError as exc:
            log.warning("could not remove the run folder %s: %s", self.settings.run_dir, exc)
