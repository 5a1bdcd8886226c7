"""The plugin's options: declared once in :data:`OPTIONS`, parsed and resolved in one place.

Imports nothing heavy (pytest, psutil, the manager) at import time, so reading options
costs a run that uses no profile nothing; the parsers that need those import them when they run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from ._system.platform import expand_user
from .errors import MAX_PROFILES_RANGE  # the contract's bounds

RETENTION_POLICIES = ("all", "failed", "none")
CAPTURE_MODES = ("on", "off", "only-on-failure")
TRACING_MODES = ("on", "off", "retain-on-failure")


class OptionError(ValueError):
    """An option's value is invalid; the message names the option, the value and its source."""


# Parsers: text in, value out, ValueError (or OSError) with the reason.
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


def _count_or_auto(low: int, high: int) -> Callable[[str], int | None]:
    """A whole number, or ``auto`` (None): the plugin decides."""
    count = _int_in(low, high)

    def parse(text: str) -> int | None:
        if text.strip().lower() == "auto":
            return None
        try:
            return count(text)
        except ValueError:
            raise ValueError(f"expected auto or a whole number from {low} to {high}") from None

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise ValueError("expected a number of seconds >= 0")
    return value


def _one_of(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return text

    return parse


def _existing_base(text: str) -> str:
    from ._profiles.clone import check_base_profile

    return str(check_base_profile(text))


def _folder(text: str) -> str:
    path = expand_user(text)
    if path.exists() and not path.is_dir():
        raise ValueError("is not a directory")
    folder = existing = path.resolve()
    # It can be made: its nearest existing parent is a writable folder that takes a new one
    # (tried, and removed at once).
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{existing} is a file, not a directory")
    if hasattr(os, "statvfs") and os.statvfs(existing).f_flag & os.ST_RDONLY:
        raise ValueError(f"{existing} is on a read-only file system")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{existing} is not writable")
    if existing != folder:  # /proc and the like pass every look and still refuse a folder
        probe = folder
        while probe.parent != existing:
            probe = probe.parent
        try:
            probe.mkdir(mode=0o700)
            probe.rmdir()
        except FileExistsError:
            pass  # made meanwhile
        except OSError as exc:
            raise ValueError(f"cannot make a folder in {existing} ({exc.strerror})") from None
    return str(folder)


def _browser(text: str) -> str:
    # Found, not run: asking its version starts a process, which waits for first use.
    path = shutil.which(text) or (text if os.path.isfile(text) else None)
    if path is None:
        raise ValueError("no such browser (neither a file nor a command on PATH)")
    return path


def _flag(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
        raise ValueError("expected 1/0, true/false, yes/no or on/off")
    return lowered in ("1", "true", "yes", "on")


class Option(NamedTuple):
    """One option: a flag (None: ini only), an environment variable and the ini ``edge_<key>``.

    ``default`` is text parsed like a given value; ``is_path``: relative to the ini file's folder.
    """

    key: str
    flag: str | None
    env: str | None
    help: str
    default: str | None
    parse: Callable[[str], Any]
    is_path: bool = False
    const: str | None = None
    #: What a native TOML config (pytest 9's ``[tool.pytest]``) may give; ini text is parsed.
    ini_type: str = "string"

    @property
    def ini(self) -> str:
        """The ini name, also the flag's argparse ``dest``."""
        return f"edge_{self.key}"

    @property
    def name(self) -> str:
        """The name an error message gives the option: its flag, else its ini name."""
        return self.flag or self.ini


OPTIONS = (
    Option("base_profile", "--edge-base-profile", "EDGEPROFILES_BASE_PROFILE",
           "template user data dir that every profile is cloned from "
           "(default: none, empty profiles)", None, _existing_base, is_path=True),
    Option("max_profiles", "--edge-max-profiles", "EDGEPROFILES_MAX_PROFILES",
           "profiles alive at once across all xdist workers, 1 to 16 (default: 8)",
           "8", _int_in(*MAX_PROFILES_RANGE), ini_type="int"),
    Option("profile_size_limit_mb", "--edge-profile-size-limit", "EDGEPROFILES_SIZE_LIMIT_MB",
           "size limit of one profile in MB (default: 500)", "500", _int_in(1, None),
           ini_type="int"),
    Option("profile_retention", "--edge-profile-retention", "EDGEPROFILES_RETENTION",
           "which profiles survive their test: all, failed or none (default: failed)",
           "failed", _one_of(RETENTION_POLICIES)),
    Option("profile_wait", "--edge-profile-wait", "EDGEPROFILES_WAIT",
           "seconds a test waits for a free profile slot, 0 for not at all (default: 300)",
           "300", _seconds, ini_type="float"),
    Option("profile_root", "--edge-profile-root", "EDGEPROFILES_ROOT",
           "folder for profiles (default: <system temp>/edgeprofiles-of-<user>)",
           None, _folder, is_path=True),
    Option("download_root", "--edge-download-root", "EDGEPROFILES_DOWNLOAD_ROOT",
           "folder for each profile's own download folder (default: <profile>/Downloads)",
           None, _folder, is_path=True),
    Option("browser", "--edge-browser", "EDGEPROFILES_BROWSER",
           "browser to launch, a path or a command (default: Edge, else Chrome, else Chromium)",
           None, _browser),
    Option("headed", "--edge-headed", "EDGEPROFILES_HEADED",
           "launch browsers with a window; the launch fixtures are headless by default",
           "0", _flag, const="1", ini_type="bool"),
    Option("require_browser", "--edge-require-browser", "EDGEPROFILES_REQUIRE_BROWSER",
           "fail, not skip, the tests that need a browser when none is found (for CI)",
           "0", _flag, const="1", ini_type="bool"),
    Option("prelaunch", "--edge-prelaunch", "EDGEPROFILES_PRELAUNCH",
           "browsers each worker starts ahead, while a test runs, for its next tests that ask "
           "for edge_driver, edge_context or edge_page, 0 to 16; auto: 1 with a core to spare, "
           "else 1 while tests outlast a browser start (default: auto)",
           "auto", _count_or_auto(0, 16), ini_type="int"),
    Option("screenshot", "--edge-screenshot", "EDGEPROFILES_SCREENSHOT",
           "full-page screenshot of each page of a test's browser: on, off or only-on-failure "
           "(default: only-on-failure)", "only-on-failure", _one_of(CAPTURE_MODES)),
    Option("page_source", "--edge-page-source", "EDGEPROFILES_PAGE_SOURCE",
           "the HTML of each page of a test's browser, with its URL and console: on, off or "
           "only-on-failure (default: only-on-failure)", "only-on-failure",
           _one_of(CAPTURE_MODES)),
    Option("tracing", "--edge-tracing", "EDGEPROFILES_TRACING",
           "Playwright trace (trace.zip) of edge_context and edge_page: on, off or "
           "retain-on-failure (default: off)", "off", _one_of(TRACING_MODES)),
    Option("output", "--edge-output", "EDGEPROFILES_OUTPUT",
           "folder for what a test's browser showed, a folder per test "
           "(default: test-results/edgeprofiles under the rootdir)", None, _folder, is_path=True),
    Option("profile_retention_count", None, None,
           "kept profiles of how many runs stay on disk, as for tmp_path (default: 3)",
           "3", _int_in(0, None), ini_type="int"),
)  # fmt: skip

_BY_KEY = {option.key: option for option in OPTIONS}


def option(key: str) -> Option:
    """The option with this key (``KeyError`` if none)."""
    return _BY_KEY[key]


def env_of(key: str) -> str:
    """The environment variable of the option with this key (``KeyError`` if none)."""
    env = option(key).env
    if env is None:
        raise KeyError(f"option {key} has no environment variable")
    return env


def resolve(
    opt: Option,
    *,
    cli: str | None,
    ini: str | None,
    inipath: Path | None,
    environ: Mapping[str, str] | None = None,
) -> Any:
    """The value of one option: command line, then environment, then ini file, then default
    (None if none); ``OptionError`` naming the option, value and source when invalid."""
    env = os.environ if environ is None else environ
    sources: list[tuple[str | None, str, Path | None]] = [
        (cli, f"on the command line ({opt.flag})", None),
        (env.get(opt.env) if opt.env else None, f"in the environment ({opt.env})", None),
        (ini or None, f"in {inipath} ({opt.ini})", inipath.parent if inipath else None),
    ]
    for position, (value, where, base) in enumerate(sources):
        # An empty variable or ini line means "not set"; an empty --flag= is a mistake.
        if value is None or (value == "" and position > 0):
            continue
        text = value
        try:
            if opt.is_path and base:
                text = str(base / expand_user(value))
            if not value.strip():  # a folder named " " in the working directory is no root
                raise ValueError("the value is empty" if not value else "the value is blank")
            return opt.parse(text)
        except (ValueError, OSError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            shown = repr(value) if text == value else f"{value!r} ({text})"
            raise OptionError(f"{opt.name}: invalid value {shown} {where}: {reason}") from None
    return None if opt.default is None else opt.parse(opt.default)


def resolve_all(
    cli: Callable[[Option], str | None],
    ini: Callable[[Option], str | None],
    inipath: Path | None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Every option's value by key, in the order of :data:`OPTIONS` (``OptionError``: the
    first invalid one)."""
    return {
        opt.key: resolve(opt, cli=cli(opt), ini=ini(opt), inipath=inipath, environ=environ)
        for opt in OPTIONS
    }


class Settings(NamedTuple):
    """The resolved options of a run by key (an unset root already the default one, unset flags
    False), then from ``run_id`` what the controller derives. Plain data: it crosses to xdist
    workers as a dict, and making it creates nothing."""

    base_profile: str | None
    max_profiles: int
    profile_size_limit_mb: int
    profile_retention: str
    profile_wait: float
    profile_root: str
    download_root: str | None
    #: The ``browser`` option as given (a path), None for the search at first use.
    browser: str | None
    headed: bool
    require_browser: bool
    #: Browsers started ahead per process (each holds a slot of the cap); None: auto.
    prelaunch: int | None
    #: ``CAPTURE_MODES``: what is written of a test's browser, into ``output``.
    screenshot: str
    page_source: str
    #: ``TRACING_MODES``: a Playwright trace of each test on edge_context.
    tracing: str
    output: str
    profile_retention_count: int
    run_id: str
    #: ``<profile_root>/.runs/<run_id>``: made by the first process that needs it.
    run_dir: str
    #: The process whose run this is: it owns the run folder, whoever makes it.
    controller_pid: int
