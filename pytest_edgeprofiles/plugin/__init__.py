"""pytest glue: the hooks and fixtures around ProfileManager.

The plugin loads into every pytest run of an environment, so it pays only when used: at
start-up it validates the options and plans the run (its id and folder's name, handed to
xdist workers), creating nothing and starting no process. The first test that asks for a
profile or a browser, in whichever process, sets the run up (see ``lifecycle``). Options live
in ``options``; this module imports nothing heavy until a test asks.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Generator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .._options import OPTIONS, OptionError, Settings, resolve_all
from .._profiles.roots import (
    RUNS,
    UnsafeDirectoryError,
    default_root,
    refuse_foreign,
    refuse_planted_root,
)

if TYPE_CHECKING:
    from .._browser.ahead import Wish
    from .._browser.sessions import BrowserSession
    from .._profiles.manager import ProfileManager
    from ._run import RunLifecycle

#: Fixtures to launch a browser yourself, and fixtures that start one: plugins of their own.
pytest_plugins = [
    "pytest_edgeprofiles.plugin._launch_fixtures",
    "pytest_edgeprofiles.plugin._browser_fixtures",
]

_WORKERINPUT_KEY = "edgeprofiles"

_SETTINGS = pytest.StashKey[Settings]()
_LIFECYCLE = pytest.StashKey["RunLifecycle"]()
#: Where profiles and their downloads go: never collected as tests.
_PRIVATE = pytest.StashKey[frozenset[Path]]()
#: Per test on ``edge_profile``: whether each phase (setup, call) failed, for its retention.
_PHASE_FAILED = pytest.StashKey[dict[str, bool]]()
#: Per test: whether the next test on this worker wants a profile too.
_NEXT_WANTS_PROFILE = pytest.StashKey[bool]()
#: Per test that asks for a browser session: what it asks of its browser (set by
#: ``session_fixtures``).
BROWSER_WISH: pytest.StashKey[Wish] = pytest.StashKey()
#: Per test on ``edge_profile``: the key of its profile in the manager, and the browser
#: session running on it (started ahead and handed out with it, or started by the session
#: fixture), which ``edge_profile`` stops when it retires the profile.
PROFILE_KEY = pytest.StashKey[str]()
BROWSER_ON_PROFILE: pytest.StashKey[BrowserSession] = pytest.StashKey()

#: The fixtures that set the run up when a test asks for one of them.
EDGE_FIXTURES = frozenset(
    {
        "edge_profile",
        "edge_session_profile",
        "edge_profile_manager",
        "edge_browser",
        "edge_launch_args",
        "edge_selenium_options",
        "edge_driver",
        "edge_browser_session",
        "edge_context",
        "edge_page",
        "edge_playwright",
        "edge_download_dir",
        "edge_playwright_kwargs",
    }
)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import _hookspecs

    pluginmanager.add_hookspecs(_hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("edgeprofiles", "temporary Edge profiles (pytest-edgeprofiles)")
    for opt in OPTIONS:
        if opt.flag is not None:
            env = f" [env {opt.env}]" if opt.env else ""
            kind: dict[str, Any] = (
                {"action": "store_const", "const": opt.const} if opt.const else {}
            )
            group.addoption(opt.flag, dest=opt.ini, default=None, help=opt.help + env, **kind)
        # Typed, so that pytest 9's native TOML ([tool.pytest]) may say 4, 1.5 or true.
        parser.addini(opt.ini, opt.help, type=opt.ini_type, default=None)  # type: ignore[arg-type]


class _XdistHooks:
    """Registered only when xdist is present: hands the run's settings to each worker."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @pytest.hookimpl
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[_WORKERINPUT_KEY] = asdict(self.settings)


# -- configure: options checked, the run planned, nothing made --------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if config.option.help or config.option.version:
        return
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and _WORKERINPUT_KEY in workerinput:
        settings = Settings(**workerinput[_WORKERINPUT_KEY])
    else:
        settings = _plan_run(config)
        if config.pluginmanager.hasplugin("xdist"):
            config.pluginmanager.register(_XdistHooks(settings), "edgeprofiles-xdist")
    config.stash[_SETTINGS] = settings
    private = {Path(settings.profile_root)}
    if settings.download_root:
        private.add(Path(settings.download_root))
    config.stash[_PRIVATE] = frozenset(private)


def _plan_run(config: pytest.Config) -> Settings:
    """The options resolved and the run named; a planted root refused (a look, no more)."""
    values = _option_values(config)
    root = Path(values["profile_root"]) if values["profile_root"] else default_root()
    try:
        refuse_planted_root(root)
        refuse_foreign(root / RUNS)  # in a shared root, another user could make it first
    except UnsafeDirectoryError as exc:
        raise pytest.UsageError(f"edgeprofiles: {exc} (another user may have planted it)") from None
    run_id = uuid.uuid4().hex[:12]
    derived = {
        "profile_root": str(root),
        "headed": bool(values["headed"]),
        "require_browser": bool(values["require_browser"]),
        "run_id": run_id,
        "run_dir": str(root / RUNS / run_id),
        "controller_pid": os.getpid(),
    }
    return Settings(**{**values, **derived})


def _option_values(config: pytest.Config) -> dict[str, Any]:
    try:
        return resolve_all(
            cli=lambda opt: config.getoption(opt.ini) if opt.flag else None,
            ini=lambda opt: _ini_text(config, opt.ini),
            inipath=config.inipath,
        )
    except OptionError as exc:
        raise pytest.UsageError(str(exc)) from None


def _ini_text(config: pytest.Config, name: str) -> str | None:
    """An ini value as text for the option's own parser (which names option and source in
    its errors): an ini file gives text, pytest 9's native TOML an int, float or bool."""
    try:
        value = config.getini(name)
    except (pytest.UsageError, ValueError) as exc:  # a TOML value of the wrong type
        raise pytest.UsageError(f"{name}: invalid value in {config.inipath}: {exc}") from None
    if isinstance(value, bool):
        return "true" if value else "false"
    return None if value is None else str(value)


# -- the session ------------------------------------------------------------------------------


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    settings = config.stash.get(_SETTINGS, None)
    if settings is None:
        return None
    browser = settings.browser or "Edge, else Chrome, else Chromium, found when a test needs one"
    base = settings.base_profile or (
        "from the pytest_edgeprofiles_base_profile hook, when a test needs one"
        if config.hook.pytest_edgeprofiles_base_profile.get_hookimpls()
        else "none"
    )
    lines = [
        f"edgeprofiles: max {settings.max_profiles} profiles, root {settings.profile_root}, "
        f"base profile {base}, retention {settings.profile_retention}",
        f"edgeprofiles: browser {browser}",
    ]
    from .._chromium.userdata import (
        SOCKET_PATH_MAX,
        SOCKET_TMPDIR_VAR,
        socket_path_too_long,
        socket_tmpdir,
    )

    tmpdir = socket_tmpdir(os.environ)
    if tmpdir is not None and socket_path_too_long(tmpdir):
        lines.append(
            f"edgeprofiles: warning: {SOCKET_TMPDIR_VAR} {tmpdir} is too deep for a browser's "
            f"socket (over {SOCKET_PATH_MAX} bytes); the launch helpers give browsers a short one"
        )
    return lines


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    # A profile root inside the test folder: profiles are never tests (a clone of a base
    # holding a .py file would be collected differently by each worker).
    if collection_path in config.stash.get(_PRIVATE, frozenset()):
        return True
    return None


def _lifecycle(config: pytest.Config) -> RunLifecycle:
    """This process's part of the run, made when a test first asks (or, for the controller,
    when a worker's test did: to report and remove what it made)."""
    lifecycle = config.stash.get(_LIFECYCLE, None)
    if lifecycle is None:
        from ._run import CONTROLLER_KEY, RunLifecycle

        workerinput = getattr(config, "workerinput", None)
        lifecycle = RunLifecycle(
            config,
            config.stash[_SETTINGS],
            is_controller=workerinput is None,
            worker_key=workerinput["workerid"] if workerinput else CONTROLLER_KEY,
        )
        config.stash[_LIFECYCLE] = lifecycle
    return lifecycle


def _used(config: pytest.Config) -> RunLifecycle | None:
    """The controller's lifecycle, when the run made its folder (in this process or in a
    worker): only then is there something to report, sweep and remove."""
    settings = config.stash.get(_SETTINGS, None)
    if settings is None or hasattr(config, "workerinput") or not os.path.isdir(settings.run_dir):
        return None
    return _lifecycle(config)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    # This process's tests run (never with --collect-only, --fixtures or --markers). When the
    # next one will ask for a profile or a browser, the run is readied while this one runs.
    wanted = EDGE_FIXTURES.intersection(getattr(nextitem, "fixturenames", ()))
    item.stash[_NEXT_WANTS_PROFILE] = "edge_profile" in wanted
    if wanted and nextitem is not None and nextitem.get_closest_marker("skip") is None:
        settings = item.config.stash.get(_SETTINGS, None)
        if settings is not None and not os.path.isdir(settings.run_dir):
            _lifecycle(item.config).warm_up()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    uses = getattr(item, "fixturenames", ())
    if "edge_profile" in uses:  # its retention policy reads whether each phase failed
        item.stash.setdefault(_PHASE_FAILED, {})[report.when] = report.failed
    if report.failed and "edge_session_profile" in uses:
        lifecycle = item.config.stash.get(_LIFECYCLE, None)
        if lifecycle is not None:
            lifecycle.session_profile_failed = True
    return report


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    lifecycle = _used(session.config)
    if lifecycle is not None:
        lifecycle.sweep_again()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    lifecycle = _used(config)
    if lifecycle is None:
        return
    lines, notable = lifecycle.summary()
    if config.get_verbosity() < 0 and not notable:
        return  # -q: nothing worth a line
    terminalreporter.write_sep("=", "edgeprofiles")
    for line in lines:
        terminalreporter.write_line(line)


def pytest_unconfigure(config: pytest.Config) -> None:
    lifecycle = config.stash.get(_LIFECYCLE, None) or _used(config)
    if lifecycle is not None:
        lifecycle.finish()


# -- fixtures ---------------------------------------------------------------------------------


def _failed(item: pytest.Item) -> bool:
    # A test without a call report erred in setup: counted as failed, as pytest-playwright does.
    failed = item.stash.get(_PHASE_FAILED, {})
    if "call" not in failed:
        return failed.get("setup", True)
    return failed["call"]


@pytest.fixture(scope="session")
def edge_profile_manager(pytestconfig: pytest.Config) -> Generator[ProfileManager, None, None]:
    """This worker's ProfileManager, configured from the edgeprofiles options."""
    lifecycle = _lifecycle(pytestconfig)
    manager = lifecycle.manager_or_fail()
    yield manager
    lifecycle.close_manager(manager)


@pytest.fixture
def edge_profile(
    request: pytest.FixtureRequest, edge_profile_manager: ProfileManager
) -> Generator[Path, None, None]:
    """A fresh profile (user data dir) for this test, as an absolute path.

    A test that asks for a browser too gets the profile of a browser started ahead for it,
    when there is one (see ``prelaunch``).
    """
    lifecycle = _lifecycle(request.config)
    node = request.node
    pool, wish = lifecycle.prelauncher, node.stash.get(BROWSER_WISH, None)
    warm = pool.take(wish, edge_profile_manager) if pool and wish else None
    if warm is not None:
        key, path = warm.key, warm.path
        node.stash[BROWSER_ON_PROFILE] = warm.session
    else:
        key = lifecycle.new_key()
        path = lifecycle.take_profile(edge_profile_manager, key, prepared=True)
    if edge_profile_manager.base_profile_path and node.stash.get(_NEXT_WANTS_PROFILE, False):
        # The copy for the next test (or the browser started ahead for it) is made while this
        # one runs. (An empty profile costs half a millisecond: less than handing it over.)
        edge_profile_manager.prepare_profile(lifecycle.worker_key)
    node.stash[PROFILE_KEY] = key
    yield path
    browser = node.stash.get(BROWSER_ON_PROFILE, None)
    keep = lifecycle.keeps(failed=_failed(node))
    # Stopped and removed in the background: the next test need not wait for either.
    lifecycle.retire_profile(
        edge_profile_manager, key, keep, node.nodeid, background=True, browser=browser
    )


@pytest.fixture(scope="session")
def edge_session_profile(
    request: pytest.FixtureRequest, edge_profile_manager: ProfileManager
) -> Generator[Path, None, None]:
    """One profile for all tests of this worker that ask for it; holds a slot all along."""
    lifecycle = _lifecycle(request.config)
    key = f"{lifecycle.worker_key}.session"
    path = lifecycle.take_profile(edge_profile_manager, key)
    yield path
    keep = lifecycle.keeps(failed=lifecycle.session_profile_failed)
    lifecycle.retire_profile(edge_profile_manager, key, keep, f"session of {lifecycle.worker_key}")


@pytest.fixture
def edge_download_dir(
    request: pytest.FixtureRequest, edge_profile: Path, edge_profile_manager: ProfileManager
) -> Path:
    """The download folder of ``edge_profile``: its own, never shared with another test."""
    key = request.node.stash.get(PROFILE_KEY, _lifecycle(request.config).worker_key)
    folder = edge_profile_manager.get_download_dir(key)
    assert folder is not None, "every profile gets a download folder"
    return Path(folder)
