"""pytest glue: options, fixtures and hooks around ProfileManager.

The controller (or the only process, without xdist) validates the options, sweeps what dead
runs left, makes the run folder with its registry, and hands all of it to the workers. Workers
own the profiles; the controller never holds a slot.
"""

from __future__ import annotations

import os
import tempfile
import threading
import uuid
from collections.abc import Callable, Generator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from . import launch
from .chromium import (
    SOCKET_PATH_MAX,
    Browser,
    compare_versions,
    find_browser,
    last_version,
    socket_path_too_long,
)
from .clone import check_base_profile, clone_size
from .logs import log
from .profile_manager import MAX_PROFILES_RANGE, ProfileLimitError, ProfileManager
from .registry import Registry
from .roots import UnsafeDirectoryError, default_root
from .runs import RunFolder, sweep_leftovers
from .sweep import prune_kept

_MB = 1024 * 1024

RETENTION_POLICIES = ("all", "failed", "none")
_WORKERINPUT_KEY = "edgeprofiles"


@dataclass(frozen=True)
class Settings:
    """The resolved options of a run, as handed from the controller to its workers."""

    base_profile: str | None
    #: The run's sanitised copy of the base, which every clone is made from.
    clone_source: str | None
    max_profiles: int
    size_limit_mb: int
    retention: str
    retention_count: int
    wait: float
    root: str
    run_id: str
    run_dir: str
    download_root: str | None = None
    headed: bool = False
    browser: dict[str, Any] | None = None

    def find_browser(self) -> Browser | None:
        return None if self.browser is None else Browser(**self.browser)


# -- options: declared once, validated in one place ---------------------------------------


def _int_in(low: int, high: int | None) -> Callable[[str], int]:
    expected = f"a whole number from {low} to {high}" if high else f"a whole number >= {low}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"expected {expected}") from None
        if value < low or (high is not None and value > high):
            raise ValueError(f"expected {expected}")
        return value

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise ValueError("expected a number of seconds >= 0")
    return value


def _policy(text: str) -> str:
    if text not in RETENTION_POLICIES:
        raise ValueError(f"expected one of {', '.join(RETENTION_POLICIES)}")
    return text


def _existing_base(text: str) -> str:
    return str(check_base_profile(text))


def _folder(text: str) -> str:
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError("is not a directory")
    return str(path.resolve())


def _browser(text: str) -> str:
    browser = find_browser(text)
    if browser is None:
        raise ValueError("no such browser (neither a file nor a command on PATH)")
    return browser.path


def _flag(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
        raise ValueError("expected 1/0, true/false, yes/no or on/off")
    return lowered in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class _Option:
    key: str
    flag: str | None
    env: str | None
    help: str
    default: str | None
    parse: Callable[[str], Any]
    is_path: bool = False
    #: A command-line flag that takes no value stores this.
    const: str | None = None

    @property
    def ini(self) -> str:
        return f"edge_{self.key}"


OPTIONS = (
    _Option(
        "base_profile",
        "--edge-base-profile",
        "EDGEPROFILES_BASE_PROFILE",
        "template user data dir that every profile is cloned from (default: none, empty profiles)",
        None,
        _existing_base,
        is_path=True,
    ),
    _Option(
        "max_profiles",
        "--edge-max-profiles",
        "EDGEPROFILES_MAX_PROFILES",
        "profiles alive at once across all xdist workers, 1 to 16 (default: 8)",
        "8",
        _int_in(*MAX_PROFILES_RANGE),
    ),
    _Option(
        "profile_size_limit_mb",
        "--edge-profile-size-limit",
        "EDGEPROFILES_SIZE_LIMIT_MB",
        "size limit of one profile in MB (default: 500)",
        "500",
        _int_in(1, None),
    ),
    _Option(
        "profile_retention",
        "--edge-profile-retention",
        "EDGEPROFILES_RETENTION",
        "which profiles survive their test: all, failed or none (default: failed)",
        "failed",
        _policy,
    ),
    _Option(
        "profile_wait",
        "--edge-profile-wait",
        "EDGEPROFILES_WAIT",
        "seconds a test waits for a free profile slot, 0 for not at all (default: 300)",
        "300",
        _seconds,
    ),
    _Option(
        "profile_root",
        "--edge-profile-root",
        "EDGEPROFILES_ROOT",
        "folder for profiles (default: <system temp>/edgeprofiles-of-<user>)",
        None,
        _folder,
        is_path=True,
    ),
    _Option(
        "download_root",
        "--edge-download-root",
        "EDGEPROFILES_DOWNLOAD_ROOT",
        "folder for each profile's own download folder (default: <profile>/Downloads)",
        None,
        _folder,
        is_path=True,
    ),
    _Option(
        "browser",
        "--edge-browser",
        "EDGEPROFILES_BROWSER",
        "browser to launch, a path or a command (default: Edge, else Chrome, else Chromium)",
        None,
        _browser,
    ),
    _Option(
        "headed",
        "--edge-headed",
        "EDGEPROFILES_HEADED",
        "launch browsers with a window; the launch fixtures are headless by default",
        None,
        _flag,
        const="1",
    ),
    _Option(
        "profile_retention_count",
        None,
        None,
        "kept profiles of how many runs stay on disk, as for tmp_path (default: 3)",
        "3",
        _int_in(0, None),
    ),
)


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


def _resolve(config: pytest.Config, opt: _Option) -> Any:
    """CLI, then environment, then ini file, then default; each named in its error."""
    sources: list[tuple[str | None, str, Path | None]] = [
        (
            config.getoption(opt.ini) if opt.flag else None,
            f"on the command line ({opt.flag})",
            None,
        ),
        (os.environ.get(opt.env) if opt.env else None, f"in the environment ({opt.env})", None),
        (
            str(config.getini(opt.ini)) or None,
            f"in {config.inipath} ({opt.ini})",
            config.inipath.parent if config.inipath else None,
        ),
    ]
    for position, (value, where, base) in enumerate(sources):
        # An empty variable or ini line means "not set"; an empty --flag= is a mistake.
        if value is None or (value == "" and position > 0):
            continue
        text = str(base / Path(value).expanduser()) if opt.is_path and base else value
        try:
            if not text:
                raise ValueError("the value is empty")
            return opt.parse(text)
        except (ValueError, OSError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            shown = repr(value) if text == value else f"{value!r} ({text})"
            raise pytest.UsageError(
                f"{opt.flag or opt.ini}: invalid value {shown} {where}: {reason}"
            ) from None
    return None if opt.default is None else opt.parse(opt.default)


# -- run state ----------------------------------------------------------------------------


@dataclass
class _State:
    settings: Settings
    run: RunFolder
    is_controller: bool
    worker_id: str
    swept: int = 0
    session_profile_failed: bool = False
    manager: ProfileManager | None = None
    snapshot: threading.Thread | None = None

    def the_manager(self) -> ProfileManager:
        """This process's manager, made on first use (after the run's base snapshot)."""
        if self.manager is None:
            s = self.settings
            if s.base_profile is not None:
                self.run.make_clone_source(Path(s.base_profile))
            self.manager = ProfileManager(
                s.clone_source,
                max_profiles=s.max_profiles,
                profile_size_limit_mb=s.size_limit_mb,
                root=s.root,
                registry_path=self.run.registry_path,
                run_id=s.run_id,
                download_root=s.download_root,
            )
        return self.manager


_STATE = pytest.StashKey[_State]()
_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()
_NEXT = pytest.StashKey[bool]()


class _XdistHooks:
    """Registered only when xdist is present: hands the run's settings to each worker."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @pytest.hookimpl
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[_WORKERINPUT_KEY] = asdict(self.settings)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if config.option.help or config.option.version:
        return
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and _WORKERINPUT_KEY in workerinput:
        settings = Settings(**workerinput[_WORKERINPUT_KEY])
        config.stash[_STATE] = _State(
            settings, RunFolder(Path(settings.run_dir)), False, workerinput["workerid"]
        )
        return
    values = {opt.key: _resolve(config, opt) for opt in OPTIONS}
    root = Path(values["profile_root"]) if values["profile_root"] else default_root()
    run_id = uuid.uuid4().hex[:12]
    try:
        swept = sweep_leftovers(root) if root.is_dir() else None
        run = RunFolder.create(root, run_id)
    except UnsafeDirectoryError as exc:
        raise pytest.UsageError(f"edgeprofiles: {exc} (another user may have planted it)") from None
    browser = find_browser(values["browser"])
    if values["base_profile"] is None:
        try:
            values["base_profile"] = _made_base(config, browser, run)
        except BaseException:
            run.remove()
            raise
    base = values["base_profile"]
    if base is not None and not config.getoption("collectonly"):
        try:
            _check_clone_size(Path(base), values["profile_size_limit_mb"])
        except pytest.UsageError:
            run.remove()
            raise
    settings = Settings(
        clone_source=None if base is None else str(run.clone_source),
        download_root=values["download_root"],
        headed=bool(values["headed"]),
        browser=None if browser is None else asdict(browser),
        base_profile=values["base_profile"],
        max_profiles=values["max_profiles"],
        size_limit_mb=values["profile_size_limit_mb"],
        retention=values["profile_retention"],
        retention_count=values["profile_retention_count"],
        wait=values["profile_wait"],
        root=str(root),
        run_id=run_id,
        run_dir=str(run.path),
    )
    state = _State(settings, run, True, "master", swept=len(swept.removed) if swept else 0)
    if not config.getoption("collectonly"):  # nothing will want a clone
        state.snapshot = _start_snapshot(base, run)
    config.stash[_STATE] = state
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistHooks(settings), "edgeprofiles-xdist")
    newer = _base_newer_than_browser(settings)
    if newer:
        config.issue_config_time_warning(pytest.PytestConfigWarning(newer), stacklevel=2)


def _start_snapshot(base: str | None, run: RunFolder) -> threading.Thread | None:
    """Copy the base into the run folder while the workers start, not before."""
    if base is None:
        return None

    def snapshot() -> None:
        try:
            run.make_clone_source(Path(base))
        except OSError as exc:  # the first worker to need it tries again and reports it
            log.warning("could not copy the base profile %s: %s", base, exc)

    thread = threading.Thread(target=snapshot, name="edgeprofiles-snapshot", daemon=True)
    thread.start()
    return thread


def _check_clone_size(base: Path, limit_mb: int) -> None:
    """A base too large for the limit fails every test the same way: say so once, up front,
    naming the base the user gave (the manager only sees the run's snapshot of it)."""
    size = clone_size(base)
    if size > limit_mb * _MB:
        option = next(o for o in OPTIONS if o.key == "profile_size_limit_mb")
        raise pytest.UsageError(
            f"{option.flag}: a clone of the base profile {base} takes {size / _MB:.1f} MB "
            f"(caches left out), over the limit of {limit_mb} MB; raise the limit "
            f"({option.flag}, {option.env} or {option.ini}) or trim the base"
        )


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


def _base_newer_than_browser(settings: Settings) -> str | None:
    browser = settings.find_browser()
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


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    state = config.stash.get(_STATE, None)
    if state is None:
        return None
    s = state.settings
    browser = s.find_browser()
    lines = [
        f"edgeprofiles: max {s.max_profiles} profiles, root {s.root}, "
        f"base profile {s.base_profile or 'none'}, retention {s.retention}",
        f"edgeprofiles: browser {browser.describe()}"
        if browser
        else "edgeprofiles: no Edge, Chrome or Chromium found (set --edge-browser)",
    ]
    tmpdir = tempfile.gettempdir()
    if socket_path_too_long(tmpdir):
        lines.append(
            f"edgeprofiles: warning: TMPDIR {tmpdir} is too deep for a browser's socket "
            f"(over {SOCKET_PATH_MAX} bytes); the launch helpers give browsers a short TMPDIR"
        )
    return lines


def pytest_sessionstart(session: pytest.Session) -> None:
    # With a base profile configured, profiles will be wanted: the first clone is copied
    # while the tests are collected, not in the first test's setup.
    state = session.config.stash.get(_STATE, None)
    if state is not None and state.settings.clone_source and _runs_tests(session.config):
        try:
            state.the_manager().prepare_profile(state.worker_id)
        except OSError as exc:  # the fixture meets it again and fails the test with it
            log.warning("could not prepare the first profile: %s", exc)


def _runs_tests(config: pytest.Config) -> bool:
    """Whether this process runs tests: an xdist worker, or a run without workers."""
    if hasattr(config, "workerinput"):
        return True
    return not config.getoption("collectonly") and not getattr(config.option, "numprocesses", 0)


def _wants_profile(item: pytest.Item | None) -> bool:
    return item is not None and "edge_profile" in getattr(item, "fixturenames", ())


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    # Whether the next test on this worker wants a profile: then it is prepared in advance.
    item.stash[_NEXT] = _wants_profile(nextitem)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    if report.failed and "edge_session_profile" in getattr(item, "fixturenames", ()):
        state = item.config.stash.get(_STATE, None)
        if state is not None:
            state.session_profile_failed = True
    return report


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    state = session.config.stash.get(_STATE, None)
    if state is None or not state.is_controller:
        return
    state.swept += len(sweep_leftovers(Path(state.settings.root)).removed)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is None or not state.is_controller:
        return
    for line in _summary_lines(state):
        terminalreporter.write_line(line)


def _summary_lines(state: _State) -> list[str]:
    stats = Registry(state.run.registry_path).stats() if state.run.registry_path.exists() else {}
    events = state.run.events()
    created = stats.get("created", 0)
    if not created and not state.swept and not events:
        return []
    lines = [
        f"edgeprofiles: {created} profiles created, at most {stats.get('peak', 0)} alive at "
        f"once (cap {state.settings.max_profiles}), {state.swept} leftovers swept"
    ]
    for event in events:
        if event["kind"] == "kept":
            lines.append(f"edgeprofiles: kept {event['path']} ({event['test']})")
        elif event["kind"] == "cleanup_failed":
            why = event.get("test") or event.get("error")
            lines.append(f"edgeprofiles: could not remove {event['path']} ({why})")
    return lines


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is not None and state.snapshot is not None:
        state.snapshot.join()  # it writes into the run folder removed below
    if state is not None and state.manager is not None:
        # A clone prepared for tests that never ran here (their fixture never set up).
        state.manager.cleanup_all_profiles()
    if state is not None and state.is_controller:
        # After the summary, which names this run's kept profiles: older runs' go now.
        prune_kept(Path(state.settings.root), state.settings.retention_count)
        try:
            state.run.remove()
        except OSError as exc:
            log.warning("could not remove the run folder %s: %s", state.run.path, exc)


# -- fixtures -----------------------------------------------------------------------------


def _state(config: pytest.Config) -> _State:
    return config.stash[_STATE]


@pytest.fixture(scope="session")
def edge_profile_manager(pytestconfig: pytest.Config) -> Generator[ProfileManager, None, None]:
    """This worker's ProfileManager, configured from the edgeprofiles options."""
    state = _state(pytestconfig)
    try:
        manager = state.the_manager()
    except OSError as exc:
        base = state.settings.base_profile
        pytest.fail(f"edgeprofiles: cannot copy the base profile {base}: {exc}", pytrace=False)
    yield manager
    manager.cleanup_all_profiles()
    for path, error in manager.background_failures:
        state.run.add_event("cleanup_failed", path=path, error=error)


def _acquire(manager: ProfileManager, key: str, state: _State) -> Path:
    """A profile a browser can start on: an invalid one is recreated once, never handed out
    (Chromium silently falls back to the user's real profile on an unusable dir)."""
    for _ in range(2):
        try:
            path = manager.create_profile(key, timeout=state.settings.wait)
        except ProfileLimitError as exc:
            pytest.fail(_limit_message(exc, state.settings), pytrace=False)
        if manager.validate_profile(key):
            return Path(path)
        log.warning("profile %s of %s is not valid; recreating it", path, key)
        manager.cleanup_profile(key)
    pytest.fail(f"edgeprofiles: could not make a valid profile for {key}", pytrace=False)


def _limit_message(exc: ProfileLimitError, settings: Settings) -> str:
    holders = ", ".join(
        f"{h.worker_id} (pid {h.pid}, since {datetime.fromtimestamp(h.created_at):%H:%M:%S})"
        for h in exc.holders
    )
    return (
        f"edgeprofiles: no free profile slot after waiting {settings.wait:g} s: {exc}; held by "
        f"{holders or 'nobody known'}. Raise the cap with --edge-max-profiles, "
        f"EDGEPROFILES_MAX_PROFILES or ini edge_max_profiles (at most {MAX_PROFILES_RANGE[1]}), "
        f"or wait longer with --edge-profile-wait."
    )


def _release(
    manager: ProfileManager,
    key: str,
    keep: bool,
    test: str,
    state: _State,
    background: bool = False,
) -> None:
    if keep:
        path = manager.keep_profile(key)
        if path is not None:
            state.run.add_event("kept", path=path, test=test)
        return
    if background:
        manager.release_profile(key)  # a rename now, the deletion in the background
        return
    path = manager.get_profile_path(key)
    if not manager.cleanup_profile(key):
        state.run.add_event("cleanup_failed", path=path, test=test)


def _failed(item: pytest.Item) -> bool:
    # A test without a call report erred in setup: counted as failed, as pytest-playwright does.
    reports = item.stash.get(_REPORTS, {})
    setup, call = reports.get("setup"), reports.get("call")
    if call is None:
        return setup is None or setup.failed
    return call.failed


@pytest.fixture
def edge_profile(
    request: pytest.FixtureRequest, edge_profile_manager: ProfileManager
) -> Generator[Path, None, None]:
    """A fresh profile (user data dir) for this test, as an absolute path."""
    state = _state(request.config)
    key = state.worker_id
    path = _acquire(edge_profile_manager, key, state)
    if state.settings.clone_source and request.node.stash.get(_NEXT, False):
        # The copy for the next test runs while this one does, off its critical path. (An
        # empty profile costs half a millisecond: less than handing it to a thread.)
        edge_profile_manager.prepare_profile(key)
    yield path
    retention = state.settings.retention
    keep = retention == "all" or (retention == "failed" and _failed(request.node))
    _release(edge_profile_manager, key, keep, request.node.nodeid, state, background=True)


@pytest.fixture(scope="session")
def edge_session_profile(
    request: pytest.FixtureRequest, edge_profile_manager: ProfileManager
) -> Generator[Path, None, None]:
    """One profile for all tests of this worker that ask for it; holds a slot all along."""
    state = _state(request.config)
    key = f"{state.worker_id}.session"
    path = _acquire(edge_profile_manager, key, state)
    yield path
    retention = state.settings.retention
    keep = retention == "all" or (retention == "failed" and state.session_profile_failed)
    _release(edge_profile_manager, key, keep, f"session of {state.worker_id}", state)


# -- launching a browser on the test's profile --------------------------------------------


@pytest.fixture(scope="session")
def edge_browser(pytestconfig: pytest.Config) -> Browser:
    """The browser profiles are launched with: Edge, else Chrome, else Chromium.

    Without one the test is skipped, or fails when EDGEPROFILES_REQUIRE_BROWSER=1 (for CI).
    """
    browser = _state(pytestconfig).settings.find_browser()
    if browser is None:
        message = "edgeprofiles: no Edge, Chrome or Chromium found; name one with --edge-browser"
        if os.environ.get("EDGEPROFILES_REQUIRE_BROWSER") == "1":
            pytest.fail(message + " (EDGEPROFILES_REQUIRE_BROWSER=1)", pytrace=False)
        pytest.skip(message)
    return browser


@pytest.fixture
def edge_launch_args(
    pytestconfig: pytest.Config, edge_profile: Path, edge_browser: Browser
) -> list[str]:
    """Command-line flags that start ``edge_browser`` on ``edge_profile``."""
    headless = not _state(pytestconfig).settings.headed
    return launch.browser_args(
        edge_profile, edge_browser, headless=headless, extra=launch.QUIET_FLAGS
    )


@pytest.fixture
def edge_selenium_options(
    pytestconfig: pytest.Config, edge_profile: Path, edge_browser: Browser
) -> Any:
    """Selenium options for ``edge_browser`` on ``edge_profile`` (needs the selenium extra)."""
    _require("selenium")
    headless = not _state(pytestconfig).settings.headed
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
    folder = edge_profile_manager.get_download_dir(_state(pytestconfig).worker_id)
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
        headless=not _state(pytestconfig).settings.headed,
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
