"""Browsers started ahead: while a test runs, its process starts the next test's browser.

A browser started by its test costs that test 0.3-0.5 s before Selenium or Playwright can
attach; one started while the test before ran is ready when its test asks. Each runs on a
profile of its own, which holds a slot of the cap like any other, taken as a spare
(``create_profile(spare=True)``): at once or not at all, and never one that a waiting test of
another process could have. A browser started ahead that died while it waited is stopped and
its profile removed; the test starts its own. Knows nothing of pytest.
"""

from __future__ import annotations

import functools
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from .._chromium.installs import Browser
from .._profiles.manager import ProfileManager
from .._system.lanes import Lanes
from .._system.logs import log
from ..errors import ProfileLimitError
from . import sessions
from .sessions import BrowserSession, Stopper


class Wish(NamedTuple):
    """What a test asks of its browser: a window or not, and its flags beyond the run's."""

    headless: bool
    args: tuple[str, ...]


@dataclass(frozen=True)
class Warm:
    """A browser started ahead on the profile of ``key`` (its manager's key), ready to attach."""

    key: str
    session: BrowserSession

    @property
    def path(self) -> Path:
        return self.session.profile

    def ready(self) -> bool:
        """Still running, with a page to attach to (a killed or crashed browser has none)."""
        return self.session.process.poll() is None and sessions.has_page(self.session.port)


class Prelauncher:
    """The browsers one process starts ahead, all for one ``wish`` (the run's flags).

    Used from the tests' thread; browsers are started in a background lane, and those not
    used are stopped by ``stopper``. ``counts`` gets ``warm`` for each browser handed out and
    ``unused`` for each stopped unused.
    """

    def __init__(
        self,
        manager: ProfileManager,
        browser: Browser,
        wish: Wish,
        *,
        new_key: Callable[[], str],
        prepared_as: str,
        ahead: int,
        stopper: Stopper,
        counts: Counter[str],
    ) -> None:
        self.manager = manager
        self.browser = browser
        self.wish = wish
        self.ahead = ahead
        self.counts = counts
        self._new_key = new_key
        self._prepared_as = prepared_as
        self._stopper = stopper
        self._queue: deque[Future[Warm | None]] = deque()
        self._background = Lanes()
        self._closed = False

    @property
    def holding(self) -> bool:
        """Whether browsers started ahead (or starting) may hold slots."""
        return bool(self._queue)

    def fill(self, wish: Wish) -> None:
        """For a next test that asks for ``wish``: start browsers in the background until
        ``ahead`` are ready or starting, if it asks for the run's flags (a marker's flags get
        a browser of their own, started by its test)."""
        if self._closed or wish != self.wish:
            return
        while len(self._queue) < self.ahead:
            start = functools.partial(self._start, self._new_key())
            self._queue.append(self._background.submit("prelaunch", start))

    def take(self, wish: Wish, manager: ProfileManager) -> Warm | None:
        """A browser started ahead for ``wish`` on a profile of ``manager``, ready; waits for
        one still starting. None when there is none: the test starts its own. Those that
        died while they waited are stopped and their profiles removed on the way."""
        if wish != self.wish or manager is not self.manager:
            return None  # left for a later test: they hold slots only while there is room
        while self._queue:
            warm = self._pop()
            if warm is None:
                continue
            if warm.ready():
                self.counts["warm"] += 1
                return warm
            log.info("the browser started ahead on %s is gone; starting another", warm.path)
            self._discard(warm)
        return None

    def empty(self) -> None:
        """Stop every browser started ahead and give their slots back (a test of this process
        waits for one: its own browsers started ahead must not keep it waiting)."""
        while self._queue:
            warm = self._pop(cancel=True)
            if warm is not None:
                self._discard(warm)

    def close(self) -> None:
        """The end: stop everything started ahead; nothing is started after this."""
        self._closed = True
        self.empty()

    def _pop(self, cancel: bool = False) -> Warm | None:
        """The oldest browser started ahead, once its start is over (``cancel``: not begun);
        popped only then, so that an interrupted wait leaves it for ``close`` to stop."""
        future = self._queue[0]
        if cancel:
            future.cancel()
        try:
            warm = future.result()
        except CancelledError:
            warm = None
        self._queue.popleft()
        return warm

    def _discard(self, warm: Warm) -> None:
        self.counts["unused"] += 1
        self._stopper.stop(warm.session, then=lambda: self.manager.release_profile(warm.key))

    def _start(self, key: str) -> Warm | None:
        # In the background: failures are logged, and the next test starts its own browser.
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
            session = sessions.start_session(
                path, self.browser, headless=self.wish.headless, extra=self.wish.args
            )
        except BaseException as exc:
            self.manager.release_profile(key)
            if not isinstance(exc, Exception):
                raise
            log.warning("edgeprofiles: could not start a browser ahead: %s", exc)
            return None
        return Warm(key, session)

    def _spare_profile(self, key: str) -> str:
        try:
            return self.manager.create_profile(key, spare=True, prepared_as=self._prepared_as)
        except ProfileLimitError:
            # At a tight cap the slot may be the last test's, its browser still stopping.
            self._stopper.drain()
        return self.manager.create_profile(key, spare=True, prepared_as=self._prepared_as)
