"""The one owner of a process's browsers, from start (by their test, or ahead) to stop.

``stop_on(profile)``, asked before a profile is taken back, also stops a browser the test
started itself: found among this process's descendants, even one too young for a lock file.
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._chromium import processes
from .._system.lanes import Lanes
from .._system.logs import log

if TYPE_CHECKING:  # imported with the first browser: every profile's return asks the owner
    from .._chromium.installs import Browser
    from .._profiles.manager import ProfileManager
    from .ahead import AheadBrowser, BrowsersAhead, LaunchFlags
    from .sessions import BrowserSession

#: How a test's browser was started: ahead of its test, by its test; or started ahead unused.
STARTS = ("ahead", "by_test", "unused")


@dataclass
class Pace:
    """How long this process's browsers take to start and its browser tests to run (moving
    averages). With no core to spare, a browser started during a test shorter than a start
    competes with it for the CPU, and the run is no faster: ``adaptive`` starts ahead only
    while tests outlast starts."""

    adaptive: bool
    start: float | None = None
    test: float | None = None

    def started(self, seconds: float) -> None:
        self.start = seconds if self.start is None else (self.start + seconds) / 2

    def tested(self, seconds: float) -> None:
        self.test = seconds if self.test is None else (self.test + seconds) / 2

    def start_session(self, profile: Path, browser: Browser, flags: LaunchFlags) -> BrowserSession:
        """``sessions.start_session`` with ``flags``, its time counted."""
        from . import sessions

        began = time.monotonic()
        session = sessions.start_session(
            profile, browser, headless=flags.headless, extra=flags.args
        )
        self.started(time.monotonic() - began)
        return session

    def pays(self) -> bool:
        """Whether starting ahead pays: not yet known, a core to spare, or tests outlast starts."""
        if not self.adaptive or self.start is None or self.test is None:
            return True
        return self.test > self.start


class BrowserOwner:
    """Every browser one process starts; used from the tests' thread. ``failures`` holds
    ``(profile, error)`` of each stop, or what followed it, that failed."""

    def __init__(self, count_ahead: int, adaptive: bool = False) -> None:
        self.count_ahead = count_ahead
        #: Starts and browser tests timed: whether starting ahead pays (see ``Pace``).
        self.pace = Pace(adaptive)
        self.ahead: BrowsersAhead | None = None
        self.failures: list[tuple[str, str]] = []
        self._starts = Counter[str]()
        # Two sets of lanes: a start ahead may wait for the stops, never for itself.
        self._starting = Lanes("edgeprofiles-browsers")
        self._stopping = Lanes("edgeprofiles-browsers")
        self._on: dict[Path, BrowserSession] = {}
        #: Why no browser with the run's flags can start, once one could not.
        self.broken: str | None = None
        self._never_started: set[Path] = set()

    def start(
        self, browser: Browser, profile: Path, flags: LaunchFlags, run_flags: LaunchFlags
    ) -> BrowserSession:
        """Start ``browser`` on ``profile`` now (see ``sessions.start_session``). Once a browser
        with the ``run_flags`` could not run at all, every start fails at once with its error."""
        from . import sessions

        if self.broken is not None:
            self._never_started.add(profile)
            raise sessions.BrowserStartError(self.broken, exited=True)
        try:
            session = self.pace.start_session(profile, browser, flags)
        except sessions.BrowserStartError as exc:
            self._never_started.add(profile)
            if exc.exited and flags == run_flags:  # no test's own flags to blame: the browser
                self.broken = f"{exc}\n(every test of this process that needs a browser fails so)"
                if self.ahead is not None:
                    self.ahead.close()
            raise
        self._starts["by_test"] += 1
        self._on[profile] = session
        return session

    def never_started(self, profile: Path) -> bool:
        """Whether the browser of a test on ``profile`` failed to start: nothing to keep."""
        return profile in self._never_started

    def session_on(self, profile: Path) -> BrowserSession | None:
        """The browser we started on ``profile`` and have not stopped, if any."""
        return self._on.get(profile)

    def plan_ahead(
        self,
        manager: ProfileManager,
        browser: Browser,
        flags: LaunchFlags,
        new_key: Callable[[], str],
        clone_key: str,
    ) -> None:
        """From now on, start browsers ahead for tests that ask for the run's ``flags``."""
        if self.ahead is None:
            from .ahead import BrowsersAhead

            self.ahead = BrowsersAhead(
                manager,
                browser,
                flags,
                new_key=new_key,
                clone_key=clone_key,
                count=self.count_ahead,
                lanes=self._starting,
                stop_later=self._stop_later,
                drain_stops=self._stopping.drain,
                pace=self.pace,
            )

    def hand_out_ahead(
        self, flags: LaunchFlags, manager: ProfileManager, driver: bool
    ) -> AheadBrowser | None:
        """A browser started ahead for ``flags``, ready, with its profile; None if none.
        ``driver``: whether the test attaches Selenium; if not, a driver started with the
        browser (for the test it guessed) stops now: its port answers any local user."""
        ahead = self.ahead.pop(flags, manager) if self.ahead else None
        if ahead is not None:
            self._starts["ahead"] += 1
            self._on[ahead.path] = ahead.session
            if not driver and (service := ahead.session.take_driver()) is not None:
                # A lane of its own: behind a browser's stop it could wait seconds.
                self._stopping.submit("driver", functools.partial(_stop_driver, service))
        return ahead

    def stop_on(self, profile: Path, then: Callable[[], object], background: bool) -> None:
        """Stop whatever runs on ``profile`` (``background``: in the stop lane), then call
        ``then``, also when a stop failed."""
        session = self._on.pop(profile, None)
        self._never_started.discard(profile)
        strays = processes.descendants_using(str(profile))
        if session is None and not strays:
            then()  # the common case of a test without a browser: nothing to wait for
            return
        job = functools.partial(self._stop, profile, session, strays, then)
        if background:
            self._stopping.submit("stop", job)
        else:
            job()

    def make_room(self) -> None:
        """Free every slot this process holds for browsers: stop those started ahead,
        wait for those stopping."""
        if self.ahead is not None:
            self.ahead.empty()
        self._stopping.drain()

    def close(self) -> dict[str, int]:
        """The end: stop everything, end the lanes; how the browsers were started (``STARTS``)."""
        if self.ahead is not None:
            self.ahead.close()
            self._starts["unused"] = self.ahead.unused
        for profile in list(self._on):
            self.stop_on(profile, then=lambda: None, background=True)
        self._starting.close()
        self._stopping.close()
        return {kind: self._starts[kind] for kind in STARTS}

    def _stop_later(self, session: BrowserSession, then: Callable[[], object]) -> None:
        job = functools.partial(self._stop, session.profile, session, [], then)
        self._stopping.submit("stop", job)

    def _stop(
        self,
        profile: Path,
        session: BrowserSession | None,
        strays: list[Any],
        then: Callable[[], object],
    ) -> None:
        steps: list[Callable[[], object]] = [] if session is None else [session.stop]
        # Then those the test (or a driver of its own) started itself, maybe just now.
        steps.append(
            lambda: processes.stop_browsers(strays + processes.descendants_using(str(profile)))
        )
        for step in (*steps, then):
            try:
                step()
            except Exception as exc:  # for the summary; the sweep takes what is left
                log.warning("could not stop the browser on %s: %s", profile, exc)
                self.failures.append((str(profile), str(exc)))


def _stop_driver(service: Any) -> None:
    try:
        service.stop()
    except Exception as exc:  # a driver that is gone is stopped
        log.info("could not stop a driver started ahead: %s", exc)
