"""pytest glue: the hooks and fixtures around ProfileManager.

The controller (or the only process, without xdist) validates the options, sweeps what dead
runs left, makes the run folder with its registry, and hands all of it to the workers. Workers
own the profiles; the controller never holds a slot. Options live in ``options``, the state of
a run in ``lifecycle``; this module wires them into pytest.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Generator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from . import launch
from .chromium import Browser, compare_versions, find_browser, last_version
from .clone import check_base_profile, clone_size
from .lifecycle import CONTROLLER_KEY, RunLifecycle
from .options import (
    OPTIONS,
    REQUIRE_BROWSER_ENV,
    OptionError,
    Settings,
    option,
    resolve_all,
)
from .processes import lock_state
from .profile_manager import ProfileManager
from .roots import UnsafeDirectoryError, default_root
from .runs import RunFolder, sweep_leftovers

_MB = 1024 * 1024
_WORKERINPUT_KEY = "edgeprofiles"

_LIFECYCLE = pytest.StashKey[RunLifecycle]()
#: Per test: its reports by phase (setup, call, teardown), read by the retention policy.
_PHASE_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()
#: Per test: whether the next test on this worker wants a profile too.
_NEXT_WANTS_PROFILE = pytest.StashKey[bool]()


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hooks

    pluginmanager.add_hookspecs(hooks)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("edgeprofiles", "temporary Edge profiles (pytest-edgeprofiles)")
    for opt in OPTIONS:
        if opt.flag is not None:
            env = f" [env {opt.env}]" if opt.env else ""
            kind: dict[str, Any] = (
                {"action": "store_const", "const": opt.const} if opt.const else {}
            )
            group.addoption(opt.flag, dest=opt.ini, default=None, help=opt.help + env, **kind)
        parser.addini(opt.ini, opt.help, default="")


class _XdistHooks:
    """Registered only when xdist is present: hands the run's settings to each worker."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @pytest.hookimpl
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[_WORKERINPUT_KEY] = asdict(self.settings)


# -- configure: the controller's steps, each undone with the run folder ----------------------


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if config.option.help or config.option.version:
        return
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and _WORKERINPUT_KEY in workerinput:
        settings = Settings(**workerinput[_WORKERINPUT_KEY])
        config.stash[_LIFECYCLE] = RunLifecycle.of_worker(settings, workerinput["workerid"])
        return
    lifecycle = _start_run(config)
    if not _collect_only(config):  # nothing will want a clone
        lifecycle.start_snapshot()
    config.stash[_LIFECYCLE] = lifecycle
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistHooks(lifecycle.settings), "edgeprofiles-xdist")
    newer = _base_newer_than_browser(lifecycle.settings)
    if newer:
        config.issue_config_time_warning(pytest.PytestConfigWarning(newer), stacklevel=2)


def _start_run(config: pytest.Config) -> RunLifecycle:
    """The options resolved, leftovers swept and the run folder made: whatever fails after
    the folder exists removes it (the one rollback path)."""
    values = _option_values(config)
    root = Path(values["profile_root"]) if values["profile_root"] else default_root()
    run_id = uuid.uuid4().hex[:12]
    swept, run = _open_run_folder(root, run_id)
    try:
        settings = _settings(config, values, root, run_id, run)
    except BaseException:
        run.remove()
        raise
    return RunLifecycle(settings, run, is_controller=True, worker_key=CONTROLLER_KEY, swept=swept)


def _option_values(config: pytest.Config) -> dict[str, Any]:
    try:
        return resolve_all(
            cli=lambda opt: config.getoption(opt.ini) if opt.flag else None,
            ini=lambda opt: str(config.getini(opt.ini)),
            inipath=config.inipath,
        )
    except OptionError as exc:
        raise pytest.UsageError(str(exc)) from None


def _open_run_folder(root: Path, run_id: str) -> tuple[int, RunFolder]:
    """The leftovers of dead runs swept (how many), then this run's folder made."""
    try:
        swept = sweep_leftovers(root) if root.is_dir() else None
        run = RunFolder.create(root, run_id)
    except UnsafeDirectoryError as exc:
        raise pytest.UsageError(f"edgeprofiles: {exc} (another user may have planted it)") from None
    except OSError as exc:  # what the option's own check could not foresee (a full disk)
        name = option("profile_root").name
        reason = exc.strerror or str(exc)
        if exc.filename and Path(exc.filename) != root:
            reason += f" ({exc.filename})"
        raise pytest.UsageError(
            f"{name}: cannot make the run folder under {root}: {reason}"
        ) from None
    return (len(swept.removed) if swept else 0), run


def _settings(
    config: pytest.Config, values: dict[str, Any], root: Path, run_id: str, run: RunFolder
) -> Settings:
    """The options with what is derived from them: the browser found, the base (made by the
    conftest hook when none is configured, its clone size checked) and the run's names."""
    browser = find_browser(values["browser"])
    base = values["base_profile"]
    if base is None:
        base = _made_base(config, browser, run)
    if base is not None and not _collect_only(config):
        _check_clone_size(Path(base), values["profile_size_limit_mb"])
        _warn_if_live(config, Path(base))
    derived = {
        "base_profile": base,
        "profile_root": str(root),
        "headed": bool(values["headed"]),
        "run_id": run_id,
        "run_dir": str(run.path),
        "clone_source": None if base is None else str(run.clone_source),
        "found_browser": None if browser is None else asdict(browser),
    }
    return Settings(**{**values, **derived})


def _made_base(config: pytest.Config, browser: Browser | None, run: RunFolder) -> str | None:
    folder = run.path / "base"
    folder.mkdir()
    made = config.hook.pytest_edgeprofiles_base_profile(
        config=config, browser=browser, folder=folder
    )
    if made is None:
        return None
    try:
        return str(check_base_profile(made))
    except (OSError, ValueError) as exc:
        raise pytest.UsageError(
            f"pytest_edgeprofiles_base_profile returned {str(made)!r}, not a usable base: {exc}"
        ) from None


def _check_clone_size(base: Path, limit_mb: int) -> None:
    """A base too large for the limit fails every test the same way: say so once, up front,
    naming the base the user gave (the manager only sees the run's snapshot of it)."""
    size = clone_size(base)
    if size > limit_mb * _MB:
        limit = option("profile_size_limit_mb")
        raise pytest.UsageError(
            f"{limit.flag}: a clone of the base profile {base} takes {size / _MB:.1f} MB "
            f"(caches left out), over the limit of {limit_mb} MB; raise the limit "
            f"({limit.flag}, {limit.env} or {limit.ini}) or trim the base"
        )


def _warn_if_live(config: pytest.Config, base: Path) -> None:
    """Users point the base at their real profile: say so when its browser still runs."""
    state, owner = lock_state(base)
    if state == "live" and owner is not None:
        config.issue_config_time_warning(
            pytest.PytestConfigWarning(
                f"edgeprofiles: a browser (pid {owner.pid}) is running on the base profile "
                f"{base}; its files may change while the run copies them (databases are "
                f"copied through SQLite's backup); close it for a faithful copy"
            ),
            stacklevel=2,
        )


def _base_newer_than_browser(settings: Settings) -> str | None:
    browser = settings.rebuild_found_browser()
    if settings.base_profile is None or browser is None:
        return None
    base_version = last_version(Path(settings.base_profile))
    if compare_versions(base_version, browser.version) != "newer":
        return None
    return (
        f"edgeprofiles: the base profile {settings.base_profile} was last opened by version "
        f"{base_version}, newer than {browser.describe()}; the browser may refuse its databases "
        f"('Your profile can not be used because it is from a newer version')"
    )


def _collect_only(config: pytest.Config) -> bool:
    return bool(config.getoption("collectonly"))


# -- the session ------------------------------------------------------------------------------


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    lifecycle = config.stash.get(_LIFECYCLE, None)
    return None if lifecycle is None else lifecycle.header_lines()


def pytest_sessionstart(session: pytest.Session) -> None:
    lifecycle = session.config.stash.get(_LIFECYCLE, None)
    if lifecycle is not None and _runs_tests(session.config):
        lifecycle.prepare_first_profile()


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    # A profile root inside the test folder: profiles are never tests (a clone of a base
    # holding a .py file would be collected differently by each worker).
    lifecycle = config.stash.get(_LIFECYCLE, None)
    if lifecycle is not None and collection_path in lifecycle.private_folders:
        return True
    return None


def _runs_tests(config: pytest.Config) -> bool:
    """Whether this process runs tests: an xdist worker, or a run without workers."""
    if hasattr(config, "workerinput"):
        return True
    return not _collect_only(config) and not getattr(config.option, "numprocesses", 0)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    # Then the next test's profile is prepared in advance, while this one runs.
    item.stash[_NEXT_WANTS_PROFILE] = nextitem is not None and "edge_profile" in getattr(
        nextitem, "fixturenames", ()
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    item.stash.setdefault(_PHASE_REPORTS, {})[report.when] = report
    if report.failed and "edge_session_profile" in getattr(item, "fixturenames", ()):
        lifecycle = item.config.stash.get(_LIFECYCLE, None)
        if lifecycle is not None:
            lifecycle.session_profile_failed = True
    return report


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    lifecycle = session.config.stash.get(_LIFECYCLE, None)
    if lifecycle is not None and lifecycle.is_controller:
        lifecycle.sweep_again()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    lifecycle = config.stash.get(_LIFECYCLE, None)
    if lifecycle is not None and lifecycle.is_controller:
        for line in lifecycle.summary_lines():
            terminalreporter.write_line(line)


def pytest_unconfigure(config: pytest.Config) -> None:
    lifecycle = config.stash.get(_LIFECYCLE, None)
    if lifecycle is not None:
        lifecycle.finish()


# -- fixtures ---------------------------------------------------------------------------------


def _lifecycle_of(config: pytest.Config) -> RunLifecycle:
    return config.stash[_LIFECYCLE]


def _failed(item: pytest.Item) -> bool:
    # A test without a call report erred in setup: counted as failed, as pytest-playwright does.
    reports = item.stash.get(_PHASE_REPORTS, {})
    setup, call = reports.get("setup"), reports.get("call")
    if call is None:
        return setup is None or setup.failed
    return call.failed


@pytest.fixture(scope="session")
def edge_profile_manager(pytestconfig: pytest.Config) -> Generator[ProfileManager, None, None]:
    """This worker's ProfileManager, configured from the edgeprofiles options."""
    lifecycle = _lifecycle_of(pytestconfig)
    manager = lifecycle.manager_or_fail()
    yield manager
    lifecycle.close_manager(manager)


@pytest.fixture
def edge_profile(
    request: pytest.FixtureRequest, edge_profile_manager: ProfileManager
) -> Generator[Path, None, None]:
    """A fresh profile (user data dir) for this test, as an absolute path."""
    lifecycle = _lifecycle_of(request.config)
    key = lifecycle.worker_key
    path = lifecycle.take_profile(edge_profile_manager, key)
    if lifecycle.settings.clone_source and request.node.stash.get(_NEXT_WANTS_PROFILE, False):
        # The copy for the next test runs while this one does, off its critical path. (An
        # empty profile costs half a millisecond: less than handing it to a thread.)
        edge_profile_manager.prepare_profile(key)
    yield path
    keep = lifecycle.keeps(failed=_failed(request.node))
    # Removed in the background (a rename now): the next test need not wait for it.
    lifecycle.retire_profile(edge_profile_manager, key, keep, request.node.nodeid, background=True)


@pytest.fixture(scope="session")
def edge_session_profile(
    request: pytest.FixtureRequest, edge_profile_manager: ProfileManager
) -> Generator[Path, None, None]:
    """One profile for all tests of this worker that ask for it; holds a slot all along."""
    lifecycle = _lifecycle_of(request.config)
    key = f"{lifecycle.worker_key}.session"
    path = lifecycle.take_profile(edge_profile_manager, key)
    yield path
    keep = lifecycle.keeps(failed=lifecycle.session_profile_failed)
    lifecycle.retire_profile(edge_profile_manager, key, keep, f"session of {lifecycle.worker_key}")


# -- launching a browser on the test's profile --------------------------------------------


@pytest.fixture(scope="session")
def edge_browser(pytestconfig: pytest.Config) -> Browser:
    """The browser profiles are launched with: Edge, else Chrome, else Chromium.

    Without one the test is skipped, or fails when EDGEPROFILES_REQUIRE_BROWSER=1 (for CI).
    """
    browser = _lifecycle_of(pytestconfig).settings.rebuild_found_browser()
    if browser is None:
        flag = option("browser").flag
        message = f"edgeprofiles: no Edge, Chrome or Chromium found; name one with {flag}"
        if os.environ.get(REQUIRE_BROWSER_ENV) == "1":
            pytest.fail(f"{message} ({REQUIRE_BROWSER_ENV}=1)", pytrace=False)
        pytest.skip(message)
    return browser


@pytest.fixture
def edge_launch_args(
    pytestconfig: pytest.Config, edge_profile: Path, edge_browser: Browser
) -> list[str]:
    """Command-line flags that start ``edge_browser`` on ``edge_profile``."""
    headless = not _lifecycle_of(pytestconfig).settings.headed
    return launch.browser_args(
        edge_profile, edge_browser, headless=headless, extra=launch.QUIET_FLAGS
    )


@pytest.fixture
def edge_selenium_options(
    pytestconfig: pytest.Config, edge_profile: Path, edge_browser: Browser
) -> Any:
    """Selenium options for ``edge_browser`` on ``edge_profile`` (needs the selenium extra)."""
    _require("selenium")
    headless = not _lifecycle_of(pytestconfig).settings.headed
    return launch.selenium_options(
        edge_profile, edge_browser, headless=headless, extra=launch.QUIET_FLAGS
    )


@pytest.fixture
def edge_driver(
    edge_selenium_options: Any, edge_browser: Browser, edge_profile: Path
) -> Generator[Any, None, None]:
    """A Selenium WebDriver on this test's profile, quit after the test."""
    from selenium import webdriver

    service = launch.selenium_service(edge_browser, edge_profile)
    if edge_browser.is_edge:
        driver: Any = webdriver.Edge(options=edge_selenium_options, service=service)
    else:
        driver = webdriver.Chrome(options=edge_selenium_options, service=service)
    yield driver
    driver.quit()


@pytest.fixture
def edge_download_dir(
    pytestconfig: pytest.Config, edge_profile: Path, edge_profile_manager: ProfileManager
) -> Path:
    """The download folder of ``edge_profile``: its own, never shared with another test."""
    folder = edge_profile_manager.get_download_dir(_lifecycle_of(pytestconfig).worker_key)
    assert folder is not None, "every profile gets a download folder"
    return Path(folder)


@pytest.fixture
def edge_playwright_kwargs(
    pytestconfig: pytest.Config,
    edge_profile: Path,
    edge_browser: Browser,
    edge_download_dir: Path,
) -> dict[str, Any]:
    """Keyword arguments for Playwright's ``launch_persistent_context`` on ``edge_profile``."""
    return launch.playwright_kwargs(
        edge_profile,
        edge_browser,
        headless=not _lifecycle_of(pytestconfig).settings.headed,
        downloads=edge_download_dir,
        extra=launch.QUIET_FLAGS,
    )


def _require(module: str) -> None:
    try:
        __import__(module)
    except ImportError:
        pytest.fail(
            f"edgeprofiles: this fixture needs {module}: pip install {module} "
            f"(or install pytest-edgeprofiles with its [{module}] extra)",
            pytrace=False,
        )
