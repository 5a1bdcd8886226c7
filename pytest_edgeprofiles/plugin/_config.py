"""Options, the run planned and this process's ``Run``, in ``config.stash``; nothing heavy."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

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
    from ._run import Run

_WORKERINPUT_KEY = "edgeprofiles"
SETTINGS = pytest.StashKey[Settings]()
_RUN = pytest.StashKey["Run"]()


def run_of(config: pytest.Config) -> Run:
    """This process's ``Run``, made on first ask (the controller's too, to end a worker's)."""
    run = config.stash.get(_RUN, None)
    if run is None:
        from ._run import Run

        workerinput = getattr(config, "workerinput", None)
        key = workerinput["workerid"] if workerinput else "master"  # as xdist names it
        run = config.stash[_RUN] = Run(config, config.stash[SETTINGS], key)
        from ._test_hooks import watch

        watch(config)  # made by a fixture asked on the fly: the look-ahead, from the next test
    return run


def started_run(config: pytest.Config) -> Run | None:
    return config.stash.get(_RUN, None)


def used_run(config: pytest.Config) -> Run | None:
    """The controller's ``Run`` once the run folder exists: only then is there work to end."""
    settings = config.stash.get(SETTINGS, None)
    if settings is None or hasattr(config, "workerinput") or not Path(settings.run_dir).is_dir():
        return None
    return run_of(config)


def fail(message: str) -> NoReturn:
    """Fail the test with ``message`` alone: no traceback, nor the one it was raised within."""
    raise pytest.fail.Exception(message, pytrace=False) from None


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("edgeprofiles", "temporary Edge profiles (pytest-edgeprofiles)")
    for opt in OPTIONS:
        if opt.flag is not None:
            env = f" [env {opt.env}]" if opt.env else ""
            kw: dict[str, Any] = {"action": "store_const", "const": opt.const} if opt.const else {}
            group.addoption(opt.flag, dest=opt.ini, default=None, help=opt.help + env, **kw)
        parser.addini(opt.ini, opt.help, type=_ini_type(opt.ini_type), default=None)


#: What pytest 9.2 reads an ini value of each kind as: the kind, or text for our parser to judge.
_UNIONS: dict[str, Any] = {"int": int | str, "float": float | str, "bool": bool | str}


def _ini_type(kind: str) -> Any:
    """Typed, so that pytest 9's native TOML ([tool.pytest]) may say 4, 1.5 or true; yet ini
    text that is no such value comes to our parser, whose error a flag's would be. Before
    pytest 9 every ini value is text; 9.0 and 9.1 have no unions and judge it themselves."""
    if pytest.version_tuple < (9,):
        return "string"
    return _UNIONS.get(kind, kind) if pytest.version_tuple >= (9, 2) else kind


class _XdistHooks:
    """Registered with xdist only: hands the run's settings to each worker."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @pytest.hookimpl
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[_WORKERINPUT_KEY] = self.settings._asdict()


class _IniHints:
    """Adds to pytest's "Unknown config option: edge_..." the option meant, if one is close."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl
    def pytest_warning_recorded(self, warning_message: Any, when: str) -> None:
        prefix = "Unknown config option: edge_"
        text = str(warning_message.message)
        if when != "config" or not text.startswith(prefix):
            return
        import difflib

        key = text.split(": ", 1)[1].strip()
        meant = difflib.get_close_matches(key, [opt.ini for opt in OPTIONS], n=1)
        if meant:
            hint = f"edgeprofiles: unknown ini option {key}; did you mean {meant[0]}?"
            self.config.issue_config_time_warning(pytest.PytestConfigWarning(hint), 2)


def configure(config: pytest.Config) -> Settings:
    """The controller's settings, in a worker; else planned here."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and _WORKERINPUT_KEY in workerinput:
        settings = Settings(**workerinput[_WORKERINPUT_KEY])
    else:
        settings = _plan_run(config)
        config.pluginmanager.register(_IniHints(config), "edgeprofiles-ini-hints")
        if config.pluginmanager.hasplugin("xdist"):
            config.pluginmanager.register(_XdistHooks(settings), "edgeprofiles-xdist")
    config.stash[SETTINGS] = settings
    return settings


def _plan_run(config: pytest.Config) -> Settings:
    """The options resolved, the run named and a planted root refused (a look, no more)."""
    try:
        values = resolve_all(
            cli=lambda opt: config.getoption(opt.ini) if opt.flag else None,
            ini=lambda opt: _ini_text(config, opt.ini),
            inipath=config.inipath,
        )
    except OptionError as exc:
        raise pytest.UsageError(str(exc)) from None
    root = Path(values["profile_root"]) if values["profile_root"] else default_root()
    try:
        refuse_planted_root(root)
        refuse_foreign(root / RUNS)  # in a shared root, another user could make it first
    except UnsafeDirectoryError as exc:
        raise pytest.UsageError(f"edgeprofiles: {exc} (another user may have planted it)") from None
    run_id = uuid.uuid4().hex[:12]
    return Settings(
        **{**values, "profile_root": str(root), "output": values["output"] or _output(config)},
        run_id=run_id,
        run_dir=str(root / RUNS / run_id),
        controller_pid=os.getpid(),
    )


def _output(config: pytest.Config) -> str:
    """Beside pytest-playwright's ``test-results``, as it puts its own under the rootdir."""
    return str(config.rootpath / "test-results" / "edgeprofiles")


def _ini_text(config: pytest.Config, name: str) -> str | None:
    """An ini value as text for its option's parser (pytest 9's TOML may give a number, a bool)."""
    try:
        value = config.getini(name)
    except (pytest.UsageError, ValueError) as exc:  # a TOML value of the wrong type
        raise pytest.UsageError(f"{name}: invalid value in {config.inipath}: {exc}") from None
    if isinstance(value, bool):
        return "true" if value else "false"
    return None if value is None else str(value)


def header(config: pytest.Config, settings: Settings) -> list[str]:
    """What the run will use, said before it uses any."""
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
    from .._chromium import userdata

    tmpdir = userdata.socket_tmpdir(os.environ)
    if tmpdir is not None and userdata.socket_path_too_long(tmpdir):
        lines.append(
            f"edgeprofiles: warning: {userdata.SOCKET_TMPDIR_VAR} {tmpdir} is too deep for a "
            f"browser's socket (over {userdata.SOCKET_PATH_MAX} bytes); the launch helpers give "
            "browsers a short one"
        )
    return lines
