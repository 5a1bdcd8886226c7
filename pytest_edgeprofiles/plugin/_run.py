"""One process's part of a test run, made when a test first asks for a profile or a browser.

Nothing happens before that: a run none of whose tests asks creates no folder, sweeps
nothing and starts no process. The first process that needs one (the only process, or any
xdist worker) makes the run folder, sweeping what dead runs left first (``_shared``); the
first that needs the base settles it for the whole run (``_base``); each process finds the
browser when a test first needs one, lends its profiles (``_lending``) and owns its browsers
(``_browser.owner``), and this module ties them together and ends them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .._chromium.installs import Browser, browser_version, find_browser, kind_of
from .._options import Settings, option
from .._profiles.manager import ProfileManager
from .._profiles.roots import UnsafeDirectoryError
from .._system.lanes import Lanes
from .._system.logs import log
from ._base import BaseUnusable, RunBase
from ._lending import Lending
from ._lookahead import FLAGS, NEXT_WANTS_PROFILE
from ._shared import SharedFolder
from ._summary import summarize

if TYPE_CHECKING:
    from .._browser.ahead import BrowsersAhead
    from .._browser.owner import BrowserOwner


class Run:
    """The per-process state of a run, made on first use, ended at ``pytest_unconfigure``.

    Thread-safe where it must be: a lane may get it ready (the run folder and the first
    clone) while the test before the first that asks runs, and that test's fixture then
    waits for it rather than racing it.
    """

    def __init__(self, config: pytest.Config, settings: Settings, worker_key: str) -> None:
        self.config = config
        self.settings = settings
        self.is_controller = not hasattr(config, "workerinput")
        self.shared = SharedFolder(settings)
        self.base = RunBase(config, settings, self.shared.tell)
        self.lending = Lending(settings, worker_key, self.shared, self._free_own_slots)
        self._lock = threading.RLock()
        self._found = False
        self._browser: Browser | None = None
        self._manager: ProfileManager | None = None
        self._browsers: BrowserOwner | None = None
        #: Work of the run's own off the tests' thread: getting ready, a driver's start.
        self.lanes = Lanes("edgeprofiles-run")
        self._readying = False
        self._lent: dict[Path, str] = {}

    # -- made on first use ------------------------------------------------------------------

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
                    self.shared.tell("browser", self._browser.describe())
                    self.base.check_versions(self._browser)
            return self._browser

    def playwright_channel(self) -> str | None:
        """pytest-playwright's ``--browser-channel`` when that plugin is active: the kind of
        browser to find, unless ``--edge-browser`` names one."""
        if not self.config.pluginmanager.hasplugin("playwright"):
            return None
        return self.config.getoption("browser_channel", None) or None

    @property
    def browsers(self) -> BrowserOwner:
        """The owner of this process's browsers, made when a test first needs it."""
        with self._lock:
            if self._browsers is None:
                from .._browser.owner import BrowserOwner

                self._browsers = BrowserOwner(self.settings.prelaunch)
            return self._browsers

    def started_ahead(self) -> BrowsersAhead | None:
        """The browsers this process starts ahead, once a browser test made that possible."""
        return None if self._browsers is None else self._browsers.ahead

    def manager(self) -> ProfileManager:
        """This process's manager, made on first use (after the run's base is settled).

        Raises:
            BaseUnusable: The run has no usable base.
            OSError: The run folder could not be made.
        """
        with self._lock:
            if self._manager is None:
                s = self.settings
                run = self.shared.get()
                source = self.base.clone_source(run, self.browser)
                self.base.check_versions(self._browser)
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

    def get_ready_ahead(self) -> None:
        """The next test needs a profile: make the run folder, and with a configured base
        its snapshot and this process's first clone, in a lane, while this test runs.
        Failures are met again, and reported, by the fixture. A base made by the conftest
        hook waits for the fixture: the hook is the user's code, for pytest's own thread."""
        if self._readying:
            return
        self._readying = True

        def work() -> None:
            try:
                if self.settings.base_profile is None:
                    self.shared.get()
                else:
                    self.manager().prepare_profile(self.lending.worker_key)
            except (OSError, BaseUnusable) as exc:
                log.warning("edgeprofiles: could not get ready ahead of the tests: %s", exc)

        self.lanes.submit("ready", work)

    # -- a test's profile: handed out, taken back ------------------------------------------

    def hand_out(self, item: pytest.Item, manager: ProfileManager, who: str) -> Path:
        """``edge_profile``'s profile for ``item``: the profile of a browser started ahead
        for it, when there is one; else one of its own."""
        flags = item.stash.get(FLAGS, None)
        ahead = None
        if flags is not None and self._browsers is not None:
            ahead = self._browsers.hand_out_ahead(flags, manager)
        if ahead is not None:
            key, path = ahead.key, ahead.path
        else:
            key = self.lending.new_key()
            path = self.lending.hand_out(manager, key, who, clone_ahead=True)
        if manager.base_profile_path and item.stash.get(NEXT_WANTS_PROFILE, False):
            # The clone for the next test (or its browser started ahead) is made while this
            # one runs. (An empty profile costs half a millisecond: less than handing it over.)
            manager.prepare_profile(self.lending.worker_key)
        self._lent[path] = key
        return path

    def lent_key(self, profile: Path) -> str:
        """The manager's key of a profile :meth:`hand_out` handed out."""
        return self._lent[profile]

    def takes_back_after_test(self, profile: Path) -> bool:
        """Whether ``profile`` is a test's own, which the run takes back right after it."""
        return profile in self._lent

    def take_back(
        self, manager: ProfileManager, profile: Path, key: str, keep: bool, test: str
    ) -> None:
        """Give a profile back: whatever runs on it stops first (in the background, with
        its removal after it, unless it is kept)."""
        self._lent.pop(profile, None)
        background = key != self.session_key
        self.stop_browsers_on(
            profile,
            then=lambda: self.lending.take_back(manager, key, keep, test, background),
            background=background and not keep,
        )

    def stop_browsers_on(self, profile: Path, then: Callable[[], object], background: bool) -> None:
        """Ask the browser owner to stop what runs on ``profile``, then ``then``: also a
        browser a test started itself, when no test of this process asked for one."""
        self.browsers.stop_on(profile, then, background)

    @property
    def session_key(self) -> str:
        return f"{self.lending.worker_key}.session"

    def _free_own_slots(self) -> None:
        if self._browsers is not None:
            self._browsers.make_room()

    # -- the end ----------------------------------------------------------------------------

    def close_browsers(self) -> None:
        """Stop every browser of this process and note how they were started; once."""
        browsers, self._browsers = self._browsers, None
        if browsers is None:
            return
        starts = browsers.close()
        self.shared.note("starts", **starts)
        for path, error in browsers.failures:
            self.shared.note("cleanup_failed", path=path, error=error)

    def summary(self) -> tuple[list[str], bool]:
        """The lines of the terminal summary, and whether any is worth saying under ``-q``."""
        return summarize(self.shared.folder, self.settings.max_profiles)

    def finish(self) -> None:
        """The end of this process's part: after the summary, which names kept profiles."""
        self.lanes.close()  # getting ready writes into the run folder removed below
        self.close_browsers()  # before the manager: they run on its profiles
        if self._manager is not None:
            # A clone made ahead for tests that never ran here (their fixture never set up).
            self._manager.cleanup_all_profiles()
        if self.is_controller:
            self.shared.remove()
