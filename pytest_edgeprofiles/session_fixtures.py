"""pytest fixtures that hand a test a browser on its own profile: Selenium or Playwright.

Each browser is started by us (``sessions``) and the client attaches to it; the browser is
stopped after the test, before its profile is retired. Loaded by ``plugin`` as a plugin of its
own; like it, this module imports nothing heavy until a test asks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .plugin import _SETTINGS, _require

if TYPE_CHECKING:
    from .browsers import Browser
    from .sessions import BrowserSession

#: Marker and ini value: flags added to the browser's command line.
ARGS_NAME = "edge_browser_args"
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
    args = [str(a) for a in config.getini(ARGS_NAME)]
    for marker in reversed(list(node.iter_markers(ARGS_NAME))):
        args.extend(str(a) for a in marker.args)
    return args


def _headed(config: pytest.Config) -> bool:
    # pytest-playwright's --headed asks to see the browsers: ours too.
    theirs = config.pluginmanager.hasplugin("playwright") and bool(config.getoption("headed"))
    return config.stash[_SETTINGS].headed or theirs


@pytest.fixture
def edge_browser_session(
    request: pytest.FixtureRequest, edge_profile: Path, edge_browser: Browser
) -> Generator[BrowserSession, None, None]:
    """A browser started on ``edge_profile`` and ready to attach to; stopped after the test.

    Its DevTools endpoint (``debugger_address``, ``cdp_url``) serves this test only.
    """
    from . import sessions

    try:
        session = sessions.start_session(
            edge_profile,
            edge_browser,
            headless=not _headed(request.config),
            extra=browser_extra_args(request.node, request.config),
        )
    except ValueError as exc:
        failure = f"edgeprofiles: {ARGS_NAME} (marker or ini): {exc}"
    else:
        yield session
        session.stop()
        return
    pytest.fail(failure, pytrace=False)  # outside the except: no chained traceback


@pytest.fixture
def edge_driver(
    request: pytest.FixtureRequest, edge_browser: Browser, edge_profile: Path
) -> Generator[Any, None, None]:
    """A Selenium WebDriver attached to this test's browser, on its own profile.

    The driver is quit after the test; the browser is stopped by ``edge_browser_session``.
    """
    _require("selenium")
    from selenium import webdriver

    from . import launch

    service = launch.selenium_service(edge_browser, edge_profile)
    # The driver starts while the browser does: ~0.1 s, mostly Selenium waiting for its port.
    # Not on PATH: the WebDriver's constructor finds one (Selenium Manager) when it starts it.
    started = _in_background(service.start) if service.path else (lambda: None)
    try:
        try:
            session: BrowserSession = request.getfixturevalue("edge_browser_session")
        finally:
            started()  # joined first: whatever failed, the driver is up or gone when we stop it
        options = launch.selenium_attach_options(edge_browser, session.debugger_address)
        if edge_browser.is_edge:
            driver: Any = webdriver.Edge(options=options, service=service)
        else:
            driver = webdriver.Chrome(options=options, service=service)
    except BaseException:
        if getattr(service, "process", None) is not None:  # None when it never started
            service.stop()
        raise
    yield driver
    driver.quit()  # ends the session and the driver; an attached browser stays up


def _in_background(work: Callable[[], object]) -> Callable[[], None]:
    """Run ``work`` in a thread; the returned function waits for it and raises its error."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, name="edgeprofiles-driver-start", daemon=True)
    thread.start()

    def wait() -> None:
        thread.join()
        if errors:
            raise errors[0]

    return wait


@pytest.fixture(scope="session")
def edge_playwright(request: pytest.FixtureRequest) -> Generator[Any, None, None]:
    """This worker's Playwright: pytest-playwright's when that plugin is active (a second one
    would fail: "using Playwright Sync API inside the asyncio loop"), else one of our own."""
    if request.config.pluginmanager.hasplugin("playwright"):
        yield request.getfixturevalue("playwright")
        return
    _require("playwright")
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
    browser.close()  # over CDP this only disconnects; edge_browser_session stops the browser


@pytest.fixture
def edge_page(edge_context: Any) -> Any:
    """A Playwright ``Page`` in ``edge_context``: the browser's first tab."""
    return edge_context.pages[0]
