"""pytest fixtures that hand a test a browser on its own profile: Selenium or Playwright.

Each browser is started by us (``sessions``) and the client attaches to it; the browser is
stopped after the test, before its profile is retired. While a test runs, the next test's
browser is started ahead (``prelaunch``) when that test asks for one with the run's flags.
Loaded by ``plugin`` as a plugin of its own; like it, this module imports nothing heavy until
a test asks.
"""

from __future__ import annotations

import functools
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ..plugin import (
    _LIFECYCLE,
    _SETTINGS,
    BROWSER_ON_PROFILE,
    BROWSER_WISH,
    PROFILE_KEY,
    _lifecycle,
)
from ._launch_fixtures import require

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from .._browser.ahead import Wish
    from .._browser.sessions import BrowserSession
    from .._chromium.installs import Browser
    from .._profiles.manager import ProfileManager

#: Marker and ini value: flags added to the browser's command line.
ARGS_NAME = "edge_browser_args"
#: The fixtures that start a browser (edge_driver asks for the session when it runs).
SESSION_FIXTURES = frozenset({"edge_browser_session", "edge_driver", "edge_context", "edge_page"})
#: Per test: what the next test on this worker asks of its browser, if it asks for one.
_NEXT_WISH: pytest.StashKey[Wish | None] = pytest.StashKey()
_ARGS_HELP = "flags added to every browser the edge fixtures start, one a line"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(ARGS_NAME, _ARGS_HELP, type="linelist", default=[])


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f'{ARGS_NAME}("--flag", ...): start this test\'s browser (edge_driver, edge_context, '
        "edge_page) with these flags too",
    )


def browser_extra_args(node: pytest.Item, config: pytest.Config) -> list[str]:
    """The flags a test's browser gets beyond the run's: the ini's, then its markers' (the
    closest last: for a repeated switch the browser takes the last)."""
    args = _ini_args(config)
    for marker in reversed(list(node.iter_markers(ARGS_NAME))):
        args.extend(str(a) for a in marker.args)
    return args


def _wish(item: pytest.Item | None, config: pytest.Config) -> Wish | None:
    if item is None or not SESSION_FIXTURES.intersection(getattr(item, "fixturenames", ())):
        return None
    from .._browser.ahead import Wish

    return Wish(not _headed(config), tuple(browser_extra_args(item, config)))


def _ini_args(config: pytest.Config) -> list[str]:
    return [str(a) for a in config.getini(ARGS_NAME)]


def _run_wish(config: pytest.Config) -> Wish:
    """What the browsers started ahead are started for: the run's flags, no marker's."""
    from .._browser.ahead import Wish

    return Wish(not _headed(config), tuple(_ini_args(config)))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    wish = _wish(item, item.config)
    if wish is not None:
        item.stash[BROWSER_WISH] = wish
    lifecycle = item.config.stash.get(_LIFECYCLE, None)
    pool = lifecycle.prelauncher if lifecycle is not None else None
    if pool is not None and pool.holding and wish != pool.wish:
        # Started for a test that did not take it (skipped, or failed before): it would
        # hold a slot until this process's next browser test.
        pool.empty()
    skipped = nextitem is not None and nextitem.get_closest_marker("skip") is not None
    item.stash[_NEXT_WISH] = None if skipped else _wish(nextitem, item.config)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    # This test has its browser: the next test's starts now, beside it.
    wish = item.stash.get(_NEXT_WISH, None)
    lifecycle = item.config.stash.get(_LIFECYCLE, None)
    pool = lifecycle.prelauncher if lifecycle is not None else None
    if wish is not None and pool is not None:
        pool.fill(wish)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    # Before an xdist worker reports its end: the summary counts its browsers' starts.
    lifecycle = session.config.stash.get(_LIFECYCLE, None)
    if lifecycle is not None:
        lifecycle.close_browsers()


def _headed(config: pytest.Config) -> bool:
    # pytest-playwright's --headed asks to see the browsers: ours too.
    theirs = config.pluginmanager.hasplugin("playwright") and bool(config.getoption("headed"))
    return config.stash[_SETTINGS].headed or theirs


@pytest.fixture
def edge_browser_session(
    request: pytest.FixtureRequest,
    edge_profile: Path,
    edge_browser: Browser,
    edge_profile_manager: ProfileManager,
) -> Generator[BrowserSession, None, None]:
    """A browser on ``edge_profile``, started ahead or now, ready to attach to; stopped
    after the test (by ``edge_profile``, in the background, then its profile given back).
    Its DevTools endpoint (``debugger_address``, ``cdp_url``) serves this test only.
    """
    lifecycle = _lifecycle(request.config)
    lifecycle.prelaunch_for(edge_profile_manager, edge_browser, _run_wish(request.config))
    node = request.node
    session = node.stash.get(BROWSER_ON_PROFILE, None)  # started ahead, came with the profile
    stop_here = False
    if session is None or session.profile != edge_profile:
        lifecycle.starts["cold"] += 1
        session = _start(node, edge_profile, edge_browser)
        # On edge_profile's own profile (not an override's), it is stopped with the profile,
        # in the background.
        stop_here = PROFILE_KEY not in node.stash or BROWSER_ON_PROFILE in node.stash
        if not stop_here:
            node.stash[BROWSER_ON_PROFILE] = session
    yield session
    if stop_here:
        session.stop()


def _start(node: pytest.Item, profile: Path, browser: Browser) -> BrowserSession:
    from .._browser import sessions

    extra = browser_extra_args(node, node.config)
    try:
        return sessions.start_session(
            profile, browser, headless=not _headed(node.config), extra=extra
        )
    except ValueError as exc:
        failure = f"edgeprofiles: {ARGS_NAME} (marker or ini): {exc}"
    pytest.fail(failure, pytrace=False)  # outside the except: no chained traceback


@pytest.fixture
def edge_driver(
    request: pytest.FixtureRequest, edge_browser: Browser, edge_profile: Path
) -> Generator[Any, None, None]:
    """A Selenium WebDriver attached to this test's browser, on its own profile, with the
    session capabilities of ``edge_selenium_options``.

    The driver is quit after the test; the browser is stopped by ``edge_profile``.
    """
    require("selenium")
    from selenium import webdriver

    from .._browser import launch

    service = launch.selenium_service(edge_browser, edge_profile)
    # The driver starts while the browser does: ~0.1 s, mostly Selenium waiting for its port.
    # Not on PATH: the WebDriver's constructor finds one (Selenium Manager) when it starts it.
    started = _driver_starts().submit(service.start) if service.path else None
    try:
        try:
            session: BrowserSession = request.getfixturevalue("edge_browser_session")
        finally:
            if started is not None:
                started.result()  # the driver is up, or its failure raised here
        # Yours, if you override the fixture (page load strategy, insecure certs, ...); its
        # browser flags are ignored by an attached session: the browser has its own.
        options = request.getfixturevalue("edge_selenium_options")
        options.debugger_address = session.debugger_address
        if edge_browser.is_edge:
            driver: Any = webdriver.Edge(options=options, service=service)
        else:
            driver = webdriver.Chrome(options=options, service=service)
    except BaseException:
        if started is not None:
            from concurrent.futures import wait

            wait([started])  # interrupted meanwhile: the driver is up or gone first
        if getattr(service, "process", None) is not None:  # None when it never started
            service.stop()
        raise
    yield driver
    driver.quit()  # ends the session and the driver; an attached browser stays up


@functools.cache
def _driver_starts() -> ThreadPoolExecutor:
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(2, thread_name_prefix="edgeprofiles-driver-start")


@pytest.fixture(scope="session")
def edge_playwright(request: pytest.FixtureRequest) -> Generator[Any, None, None]:
    """This worker's Playwright: pytest-playwright's when that plugin is active (a second one
    would fail: "using Playwright Sync API inside the asyncio loop"), else one of our own."""
    if request.config.pluginmanager.hasplugin("playwright"):
        yield request.getfixturevalue("playwright")
        return
    require("playwright")
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    yield playwright
    playwright.stop()


@pytest.fixture
def edge_context(
    edge_browser_session: BrowserSession, edge_playwright: Any
) -> Generator[Any, None, None]:
    """A Playwright ``BrowserContext`` on this test's own profile (its persistent context)."""
    browser = edge_playwright.chromium.connect_over_cdp(edge_browser_session.cdp_url)
    yield browser.contexts[0]
    browser.close()  # over CDP this only disconnects; edge_profile stops the browser


@pytest.fixture
def edge_page(edge_context: Any) -> Any:
    """A Playwright ``Page`` in ``edge_context``: the browser's first tab."""
    return edge_context.pages[0]
