"""Fixtures that hand a test a browser on its own profile, for Selenium or Playwright to attach.
Like the plugin, this module imports nothing heavy until a test asks."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ._config import SETTINGS, fail, run_of
from ._launch_fixtures import require
from ._lookahead import ARGS_NAME, failed, launch_flags

#: What writes what a test's browser shows into a folder (screenshot?, page source?, did the
#: test fail?): its problems, one line each. Registered by the fixture that made the client.
Capture = Callable[[Path, bool, bool, bool], list[str]]
_CAPTURES = pytest.StashKey[list[tuple[str, Capture]]]()  # (selenium or playwright, capture)
_NAMED = pytest.StashKey[set[Path]]()
#: The JUnit XML property naming a test's folder of what its browser showed.
ARTIFACTS_PROPERTY = "edgeprofiles_artifacts"

if TYPE_CHECKING:
    from .._browser.sessions import BrowserSession
    from .._chromium.installs import Browser
    from .._profiles.manager import ProfileManager


@pytest.fixture
def edge_browser_session(
    request: pytest.FixtureRequest,
    edge_profile: Path,
    edge_browser: Browser,
    edge_profile_manager: ProfileManager,
) -> Generator[BrowserSession, None, None]:
    """A browser on ``edge_profile``, ready to attach to, stopped after the test; its DevTools
    endpoint (``debugger_address``, ``cdp_url``) serves this test only."""
    from .._browser.sessions import BrowserStartError

    run, node = run_of(request.config), request.node
    owner = run.browsers
    run_flags = launch_flags(request.config)
    owner.plan_ahead(
        edge_profile_manager,
        edge_browser,
        run_flags,
        new_key=run.lending.new_key,
        clone_key=run.lending.worker_key,
    )
    session = owner.session_on(edge_profile)  # started ahead: it came with the profile
    if session is None:
        flags = launch_flags(node.config, node)
        try:
            session = owner.start(edge_browser, edge_profile, flags, run_flags)
        except ValueError as exc:
            fail(f"edgeprofiles: {ARGS_NAME} (marker or ini): {exc}")
        except BrowserStartError as exc:  # what it says is all there is: no traceback of ours
            fail(f"edgeprofiles: {exc}")
    yield session
    if edge_profile not in run.lent:
        # Not edge_profile's own (a conftest's override): stopped here, not with it.
        run.browsers.stop_on(edge_profile, then=lambda: None, background=False)


@pytest.fixture
def edge_driver(
    request: pytest.FixtureRequest, edge_browser: Browser, edge_profile: Path
) -> Generator[Any, None, None]:
    """A Selenium WebDriver attached to this test's browser, with the capabilities of
    ``edge_selenium_options``; quit after the test."""
    require("selenium")
    from selenium import webdriver

    from .._browser import launch

    run = run_of(request.config)
    ahead = run.browsers.session_on(edge_profile)  # a browser started ahead, maybe its driver
    service, started = ahead.take_driver() if ahead is not None else None, None
    if service is None:
        service = launch.selenium_service(edge_browser, edge_profile)
        # The driver starts while the browser does. Not on PATH: the WebDriver's constructor
        # finds one (Selenium Manager) when it starts it.
        started = run.lanes.submit("driver", service.start) if service.path else None
    try:
        session: BrowserSession = request.getfixturevalue("edge_browser_session")
        if started is not None:
            started.result()  # the driver is up, or its failure raised here
        # Yours, if you override the fixture (page load strategy, insecure certs, ...); its
        # browser flags are ignored by an attached session: the browser has its own.
        options = request.getfixturevalue("edge_selenium_options")
        options.debugger_address = session.debugger_address
        if "goog:loggingPrefs" not in options.to_capabilities():  # the console, on failure
            options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver_class = webdriver.Edge if edge_browser.is_edge else webdriver.Chrome
        driver: Any = driver_class(options=options, service=service)
    except BaseException:
        # Never in place of the error, nor of a Ctrl-C: that one also killed the driver, whose
        # stop then fails, and the run would go on.
        with contextlib.suppress(Exception):
            if started is not None:
                started.exception()  # interrupted meanwhile: the driver is up or gone first
            if getattr(service, "process", None) is not None:  # None when it never started
                service.stop()
        raise
    from .._browser import artifacts

    _watch(request, "selenium", lambda *how: artifacts.capture_driver(driver, *how))
    yield driver
    _quit(driver)


def _quit(driver: Any, most: float = 10.0) -> None:
    """End the session and the driver (an attached browser stays up). On a page whose script
    never yields, ``quit`` waits for Selenium's 120 s: after ``most`` s the driver is stopped."""
    from .._system.waiting import returned_within

    if not returned_within(most, driver.quit, "edgeprofiles-quit"):
        # Service.stop() would ask it politely, for a minute and more.
        driver.service.process.kill()
        driver.service.process.wait(5)


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
    request: pytest.FixtureRequest, edge_browser_session: BrowserSession, edge_playwright: Any
) -> Generator[Any, None, None]:
    """A Playwright ``BrowserContext`` on this test's own profile (its persistent context),
    with what pytest-playwright's ``browser_context_args`` give that it can take."""
    from .._browser import artifacts, launch

    config, node = request.config, request.node
    given = _context_args(request)  # what cannot apply fails the test before it attaches
    browser = edge_playwright.chromium.connect_over_cdp(edge_browser_session.cdp_url)
    context = browser.contexts[0]
    console = artifacts.ConsoleLog(context)
    _watch(request, "playwright", lambda *how: artifacts.capture_pages(context, console, *how))
    if given:
        launch.apply_context_args(context, given)
    tracing = _theirs(config, "tracing", "off") or config.stash[SETTINGS].tracing
    if tracing != "off":
        context.tracing.start(screenshots=True, snapshots=True, sources=True)
    yield context
    if tracing != "off":
        keep = tracing == "on" or failed(node)
        folder = _folder(node, "playwright")
        try:
            context.tracing.stop(path=str(folder / "trace.zip") if keep else None)
            if keep:
                _name(node, folder)
        except Exception as exc:  # the browser died: the test's own outcome stands
            run_of(config).shared.note("warning", text=f"no trace of {node.nodeid}: {exc}")
    browser.close()  # over CDP this only disconnects; edge_profile stops the browser


@pytest.fixture
def edge_page(edge_context: Any) -> Any:
    """A Playwright ``Page`` in ``edge_context``: the browser's first tab."""
    return edge_context.pages[0]


def _context_args(request: pytest.FixtureRequest) -> dict[str, Any]:
    """pytest-playwright's ``browser_context_args`` that an attached context takes; any other
    fails the test, named (``--video``'s, a line in the summary)."""
    if not request.config.pluginmanager.hasplugin("playwright"):
        return {}
    import warnings

    from .._browser import launch

    with warnings.catch_warnings():
        # pytest-playwright's own session fixture behind it (base_url, a method of a plugin
        # object) draws pytest 9's deprecation of such fixtures: ours asked, not the test.
        warnings.simplefilter("ignore", pytest.PytestDeprecationWarning)
        args = dict(request.getfixturevalue("browser_context_args"))
    if launch.VIDEO_ARGS & args.keys():
        note = "pytest-playwright's --video cannot record edge_context or edge_page: their"
        text = f"{note} context is the profile's, made before any client attached"
        run_of(request.config).shared.note("warning", text=text)
    given = {k: v for k, v in args.items() if v is not None and k not in launch.VIDEO_ARGS}
    cannot = sorted(given.keys() - launch.CONTEXT_ARGS)
    if cannot:
        fail(
            f"edgeprofiles: browser_context_args {', '.join(cannot)} cannot apply to "
            "edge_context or edge_page: their context is the profile's own, made before any "
            f"client attached (they take {', '.join(sorted(launch.CONTEXT_ARGS))})"
        )
    return given


def _watch(request: pytest.FixtureRequest, kind: str, capture: Capture) -> None:
    """``capture`` shows this test's browser while the fixture lives: not a rerun's, which
    has a browser of its own, and it keeps nothing alive past the test."""
    captures = request.node.stash.setdefault(_CAPTURES, [])
    captures.append((kind, capture))
    request.addfinalizer(lambda: captures.remove((kind, capture)))
    request.addfinalizer(lambda: request.node.stash.get(_NAMED, set()).clear())


def _theirs(config: pytest.Config, name: str, default: str) -> str | None:
    """pytest-playwright's ``--<name>``, when loaded and given: for Playwright's fixtures it
    replaces ours, as it would for its own ``page``."""
    if not config.pluginmanager.hasplugin("playwright"):
        return None
    value = config.getoption(name, None)
    return None if value in (None, default, [default]) else str(value)


def _folder(item: pytest.Item, kind: str) -> Path:
    from .._browser import artifacts

    output = Path(item.config.stash[SETTINGS].output)
    theirs = _theirs(item.config, "output", "test-results") if kind == "playwright" else None
    if theirs is not None:
        output = item.config.invocation_params.dir / theirs
    # pytest-rerunfailures runs a failed test again: each try keeps its own, as
    # pytest-playwright's do.
    retry = getattr(item, "execution_count", 1) - 1
    return artifacts.folder_for(output, item.nodeid + (f"-retry{retry}" if retry > 0 else ""))


def _name(item: pytest.Item, folder: Path) -> None:
    """Name ``folder`` once in the summary and the JUnit XML (the teardown report's)."""
    named = item.stash.setdefault(_NAMED, set())
    if folder not in named:
        named.add(folder)
        item.user_properties.append((ARTIFACTS_PROPERTY, str(folder)))
        run_of(item.config).shared.note("artifacts", path=str(folder), test=item.nodeid)


def show_what_the_browser_saw(item: pytest.Item, report: pytest.TestReport) -> None:
    """After a failed setup or call (or every call, with ``on``), while the browser lives:
    write what it shows, and name the folder in the report, the summary and the JUnit XML."""
    captures = item.stash.get(_CAPTURES, [])
    if not captures or report.when == "teardown" or (report.when == "setup" and report.passed):
        return
    from .._browser import artifacts

    settings = item.config.stash[SETTINGS]
    for kind, capture in captures:
        screenshot = settings.screenshot
        if kind == "playwright":
            screenshot = _theirs(item.config, "screenshot", "off") or screenshot
        shot = artifacts.wanted(screenshot, report.failed)
        source = artifacts.wanted(settings.page_source, report.failed)
        if not (shot or source):
            continue
        folder = _folder(item, kind)
        problems = capture(folder, shot, source, report.failed)
        if report.failed:
            said = "\n".join([str(folder), *(f"could not capture {line}" for line in problems)])
            report.sections.append(("edgeprofiles: what the browser showed", said))
            _name(item, folder)
            if item.config.pluginmanager.hasplugin("html"):
                _html_extras(report, folder)


def _html_extras(report: pytest.TestReport, folder: Path) -> None:
    """The screenshots in pytest-html's row of the test, with links to the pages' HTML."""
    import base64

    from pytest_html import extras  # type: ignore[import-untyped]

    shots = sorted(folder.glob("*screenshot.png"))
    more = [extras.png(base64.b64encode(p.read_bytes()).decode(), p.name) for p in shots]
    more += [extras.url(p.as_uri(), p.name) for p in sorted(folder.glob("*page.html"))]
    report.extras = [*getattr(report, "extras", []), *more]  # type: ignore[attr-defined]
