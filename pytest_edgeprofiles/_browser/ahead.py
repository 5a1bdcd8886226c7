"""Browsers started ahead: while a test runs, its process starts the next test's (0.3-0.5 s
saved), on a profile whose slot is a spare, never one a waiting test of another process needs."""

from __future__ import annotations

import contextlib
import functools
from collections import deque
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from .._chromium.installs import Browser
from .._profiles.manager import ProfileManager
from .._system.lanes import Lanes
from .._system.logs import log
from ..errors import ProfileLimitError
from .owner import Pace
from .sessions import BrowserSession


class LaunchFlags(NamedTuple):
    """How a test's browser is launched: a window or not, and its flags beyond the run's."""

    headless: bool
    args: tuple[str, ...]


@dataclass(frozen=True)
class AheadBrowser:
    """A browser started ahead on the profile of ``key`` (its manager's key), ready to attach."""

    key: str
    session: BrowserSession

    @property
    def path(self) -> Path:
        return self.session.profile

    def ready(self) -> bool:
        """Still running, with a page to attach to (a killed or crashed browser has none).
        A slow answer is a busy machine, where a new browser would start slower still: only
        one that says nothing for ``_HUNG`` s is left for a start of the test's own."""
        return self.session.process.poll() is None and self.session.has_page(_HUNG)


#: Seconds a running browser started ahead may take to answer before it counts as hung.
_HUNG = 10.0

#: Stops a browser in the background, then calls its second argument (the profile's return).
StopLater = Callable[[BrowserSession, Callable[[], object]], None]


@dataclass(eq=False)
class BrowsersAhead:
    """The browsers one process starts ahead (in the ``ahead`` lane), all with the run's
    ``flags``; used from the tests' thread. ``drain_stops`` waits for pending stops."""

    manager: ProfileManager
    browser: Browser
    flags: LaunchFlags
    new_key: Callable[[], str]
    clone_key: str
    count: int
    lanes: Lanes
    stop_later: StopLater
    drain_stops: Callable[[], None]
    pace: Pace
    unused: int = field(default=0, init=False)
    _queue: deque[Future[AheadBrowser | None]] = field(default_factory=deque, init=False)
    _closed: bool = field(default=False, init=False)

    @property
    def holding(self) -> bool:
        """Whether browsers started ahead (or starting) may hold slots."""
        return bool(self._queue)

    def fill(self, flags: LaunchFlags, driver: bool = False) -> None:
        """Start browsers until ``count`` are ready or starting, if ``flags`` (the next test's)
        are the run's: a marker's get a browser of their own. ``driver``: the next test
        attaches Selenium, whose driver starts too (15-140 ms of its setup, measured)."""
        if self._closed or flags != self.flags or not self.pace.pays():
            return
        while len(self._queue) < self.count:
            start = functools.partial(self._start, self.new_key(), driver)
            self._queue.append(self.lanes.submit("ahead", start))

    def pop(self, flags: LaunchFlags, manager: ProfileManager) -> AheadBrowser | None:
        """A ready browser started ahead for ``flags`` on a profile of ``manager`` (waiting for
        one still starting; dead ones discarded), or None: the test starts its own."""
        if flags != self.flags or manager is not self.manager:
            return None  # left for a later test: they hold slots only while there is room
        while self._queue:
            ahead = self._oldest()
            if ahead is None:
                continue
            if ahead.ready():
                return ahead
            log.info("the browser started ahead on %s is gone; starting another", ahead.path)
            self._discard(ahead)
        return None

    def empty(self) -> None:
        """Stop every browser started ahead and give their slots back (a test of this process
        waits for a slot)."""
        while self._queue:
            ahead = self._oldest(cancel=True)
            if ahead is not None:
                self._discard(ahead)

    def close(self) -> None:
        """The end: stop everything started ahead; nothing is started after this."""
        self._closed = True
        self.empty()

    def _oldest(self, cancel: bool = False) -> AheadBrowser | None:
        # Popped once its start is over (``cancel``: not begun), so that an interrupted wait
        # leaves it for ``close`` to stop.
        future = self._queue[0]
        if cancel:
            future.cancel()
        try:
            ahead = future.result()
        except CancelledError:
            ahead = None
        self._queue.popleft()
        return ahead

    def _discard(self, ahead: AheadBrowser) -> None:
        self.unused += 1
        self.stop_later(ahead.session, lambda: self.manager.release_profile(ahead.key))

    def _start(self, key: str, driver: bool) -> AheadBrowser | None:
        # In a lane: failures are logged, and the next test starts its own browser.
        try:
            path = self._spare_profile(key)
        except ProfileLimitError:
            return None  # no spare slot now
        except Exception as exc:
            log.warning("edgeprofiles: could not make a profile to start a browser ahead: %s", exc)
            return None
        try:
            if not self.manager.validate_profile(key):
                raise OSError(f"the profile {path} is not valid")
            session = self.pace.start_session(Path(path), self.browser, self.flags)
        except BaseException as exc:
            self.manager.release_profile(key)
            if not isinstance(exc, Exception):
                raise
            log.warning("edgeprofiles: could not start a browser ahead: %s", exc)
            return None
        if driver:
            session.driver = _started_driver(self.browser, Path(path))
        return AheadBrowser(key, session)

    def _spare_profile(self, key: str) -> str:
        try:
            return self.manager.create_profile(key, spare=True, prepared_as=self.clone_key)
        except ProfileLimitError:
            # At a tight cap the slot may be the last test's, its browser still stopping.
            self.drain_stops()
        return self.manager.create_profile(key, spare=True, prepared_as=self.clone_key)


def _started_driver(browser: Browser, profile: Path) -> Any:
    """A Selenium service for ``browser`` on ``profile``, started; None if it could not be
    (the test then starts its own, and meets the error itself)."""
    from . import launch

    service: Any = None
    try:
        service = launch.selenium_service(browser, profile)
        if not service.path:  # not on PATH: Selenium Manager's, which the test's own finds
            return None
        service.start()
    except Exception as exc:
        log.info("could not start a driver ahead: %s", exc)
        if getattr(service, "process", None) is not None:  # launched, then not ready
            with contextlib.suppress(Exception):
                service.stop()
        return None
    return service
