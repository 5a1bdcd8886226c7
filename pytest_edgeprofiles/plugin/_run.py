"""One process's part of a run, made when a test first asks: until then no folder, no sweep,
no process. Ties together the run folder, the base, lending and browsers, and ends them."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .._chromium.installs import Browser, find_browser
from .._options import Settings, option
from .._profiles.manager import ProfileManager
from .._profiles.roots import UnsafeDirectoryError
from .._system.lanes import Lanes
from .._system.logs import log
from .._system.platform import usable_cores
from ._base import BaseUnusable, RunBase
from ._config import fail
from ._lending import Lending
from ._lookahead import FLAGS, NEXT_WANTS_PROFILE
from ._shared import SharedFolder

if TYPE_CHECKING:
    from .._browser.ahead import BrowsersAhead
    from .._browser.owner import BrowserOwner


class Run:
    """Per-process state of a run; locked: a lane may get it ready while the test before runs."""

    def __init__(self, config: pytest.Config, settings: Settings, worker_key: str) -> None:
        self.config = config
        self.settings = settings
        self.shared = SharedFolder(settings)
        self.base = RunBase(config, settings, self.shared.note)
        # A slot of ours still held by a browser stopping in the background must come free
        # before we take another, when no second one is to spare: else another worker finds
        # none and its test fails.
        tight = _no_slot_to_spare(settings, _workers(), per_worker=2)
        self.lending = Lending(
            settings, worker_key, self.shared, self._free_own_slots, free_first=tight
        )
        if config.pluginmanager.hasplugin("rerunfailures"):  # it tells of its reruns
            config.pluginmanager.register(self.lending, "edgeprofiles-lending")
        self._lock = threading.RLock()
        self._found = False
        self._browser: Browser | None = None
        self._manager: ProfileManager | None = None
        self._browsers: BrowserOwner | None = None
        self.lanes = Lanes("edgeprofiles-run")
        self._readying = False
        self.lent: dict[Path, str] = {}  # by edge_profile, taken back after its test

    def browser(self) -> Browser | None:
        """The browser, found once per process; ValueError for a non-Chromium playwright channel."""
        with self._lock:
            if not self._found:
                # The option's path as given, else a search (only then does a channel count).
                self._browser = find_browser(self.settings.browser, self.playwright_channel())
                self._found = True
                if self._browser is not None:
                    self.shared.note("browser", text=self._browser.describe())
                    self.base.check_versions(self._browser)
            return self._browser

    def playwright_channel(self) -> str | None:
        """pytest-playwright's ``--browser-channel``, if active: the kind of browser to find."""
        active = self.config.pluginmanager.hasplugin("playwright")
        return (self.config.getoption("browser_channel", None) or None) if active else None

    @property
    def browsers(self) -> BrowserOwner:
        with self._lock:
            if self._browsers is None:
                from .._browser.owner import BrowserOwner

                count, adaptive = self._count_ahead(_workers())
                self._browsers = BrowserOwner(count, adaptive)
            return self._browsers

    def _count_ahead(self, workers: int) -> tuple[int, bool]:
        """``prelaunch`` and whether it adapts to the tests' pace (``auto`` with no core to
        spare); none when a test may not wait for a slot (``--edge-profile-wait=0``) and the
        cap has none to spare beside every worker's own: a slot held for work done ahead must
        never fail such a test."""
        s, flag = self.settings, option("prelaunch").flag
        count = 1 if s.prelaunch is None else s.prelaunch
        adaptive = s.prelaunch is None and (cores := usable_cores()) <= workers
        if adaptive:
            self.shared.note(
                "note",
                text=f"browsers are started ahead only while tests outlast a browser start: "
                f"{workers} worker(s) on {cores} core(s) leave none to spare ({flag}=N to choose)",
            )
        if count == 0 or not _no_slot_to_spare(s, workers, per_worker=1 + count):
            return count, adaptive
        cap, wait = option("max_profiles").flag, option("profile_wait").flag
        self.shared.note(
            "note",
            text=f"no browser is started ahead: {workers} worker(s) at {cap}={s.max_profiles} "
            f"leave no slot to spare, and {wait}=0 lets no test wait for one",
        )
        return 0, False

    def started_ahead(self) -> BrowsersAhead | None:
        return None if self._browsers is None else self._browsers.ahead

    def manager(self) -> ProfileManager:
        """This process's manager, made once the base is settled (BaseUnusable, OSError)."""
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
        """:meth:`manager`, or the asking test fails."""
        try:
            return self.manager()
        except BaseUnusable as exc:
            fail(str(exc))
        except UnsafeDirectoryError as exc:
            fail(f"edgeprofiles: {exc} (another user may have planted it)")
        except OSError as exc:  # what no check at start-up could foresee (a full disk)
            root, flag = self.settings.profile_root, option("profile_root").flag
            fail(f"edgeprofiles: cannot make the run folder under {root} ({flag}): {exc}")

    def get_ready_ahead(self) -> None:
        """In a lane: the run folder, a configured base's clone (not a hook's: it is user code)."""
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

    def hand_out(self, item: pytest.Item, manager: ProfileManager, who: str) -> tuple[str, Path]:
        """``edge_profile``'s: a browser's started ahead for ``item`` if any; else a new one."""
        flags = item.stash.get(FLAGS, None)
        ahead = None
        if flags is not None and self._browsers is not None:
            driver = "edge_driver" in getattr(item, "fixturenames", ())
            ahead = self._browsers.hand_out_ahead(flags, manager, driver)
        if ahead is not None:
            key, path = ahead.key, ahead.path
        else:
            key = self.lending.new_key()
            path = self.lending.hand_out(manager, key, who, clone_ahead=True)
        if manager.base_profile_path and item.stash.get(NEXT_WANTS_PROFILE, False):
            # The next test's clone, made while this one runs (an empty one is made in 0.5 ms).
            manager.prepare_profile(self.lending.worker_key)
        self.lent[path] = key
        return key, path

    def take_back(
        self,
        manager: ProfileManager,
        profile: Path,
        key: str,
        keep: bool,
        test: str,
        another_next: bool = False,
    ) -> None:
        """Whatever runs on the profile stops first (in the background unless kept).
        ``another_next``: the next test asks for a profile; if this one is taken back now (no
        browser to stop), its slot is freed with that profile's claim, one registry write."""
        self.lent.pop(profile, None)
        background = key != self.session_key
        if self._browsers is not None and self._browsers.never_started(profile):
            keep = False  # its browser never ran: nothing on it to look at
        caller = threading.get_ident()

        def back() -> None:
            # In the stop lane (a browser to stop first) it comes after the next claim.
            later = another_next and threading.get_ident() == caller
            self.lending.take_back(manager, key, keep, test, background, later)

        self.browsers.stop_on(profile, then=back, background=background and not keep)

    def free_released_slots(self) -> None:
        """Slots left for a claim that did not come (a test skipped at setup, a browser
        started ahead handed out instead) are freed now, not a test later."""
        if self._manager is not None:
            self._manager.free_released_slots()

    @property
    def session_key(self) -> str:
        return f"{self.lending.worker_key}.session"

    def _free_own_slots(self) -> None:
        if self._browsers is not None:
            self._browsers.make_room()

    def close_browsers(self) -> None:
        """Stop this process's browsers and note their starts; once."""
        browsers, self._browsers = self._browsers, None
        if browsers is None:
            return
        self.shared.note("starts", **browsers.close())
        for path, error in browsers.failures:
            self.shared.note("cleanup_failed", path=path, error=error)

    def finish(self) -> None:
        """After the summary, which names kept profiles."""
        self.lanes.close()  # getting ready writes into the run folder removed below
        self.close_browsers()  # before the manager: they run on its profiles
        if self._manager is not None:
            self._manager.cleanup_all_profiles()  # and clones for tests that never ran here
        if not hasattr(self.config, "workerinput"):  # the controller
            self.shared.remove()


def _workers() -> int:
    """The run's xdist workers (1 without xdist)."""
    return int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))


def _no_slot_to_spare(settings: Settings, workers: int, per_worker: int) -> bool:
    """Whether no test may wait for a slot (``--edge-profile-wait=0``) and the cap holds fewer
    than ``per_worker`` slots for each worker: one held beyond a worker's own would fail
    another worker's test at once."""
    return settings.profile_wait == 0 and settings.max_profiles < workers * per_worker
