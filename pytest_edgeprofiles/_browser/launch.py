"""Everything to start a browser on a profile: flags, environment, Selenium and Playwright.

Neither Selenium nor Playwright is a dependency: the Selenium helpers import it when called
(extra ``selenium``), and the Playwright helper only builds keyword arguments.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._chromium.installs import Browser
from .._chromium.userdata import (
    PROFILE_FLAGS,
    SOCKET_TMPDIR_VAR,
    socket_path_too_long,
    socket_tmpdir,
)
from .._profiles import roots

#: Flags that keep a test browser off the network it does not need: without them it keeps
#: calling home, which is slow or refused on CI machines.
QUIET_FLAGS = (
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def browser_args(
    profile: str | os.PathLike[str],
    browser: Browser,
    *,
    headless: bool = True,
    extra: Sequence[str] = (),
) -> list[str]:
    """Command-line flags that start ``browser`` on ``profile``.

    As root on Linux, Chromium refuses to start without ``--no-sandbox``, so it is added there.
    """
    args = [f"--user-data-dir={os.fspath(profile)}", "--no-first-run", "--no-default-browser-check"]
    if browser.is_edge:
        # Edge 133+ on Windows relaunches through a compatibility layer and breaks the driver.
        args.append("--edge-skip-compat-layer-relaunch")
    if headless:
        args.append("--headless=new")
    if _is_root_on_linux():
        args.append("--no-sandbox")
    args.extend(extra)
    return args


def _is_root_on_linux() -> bool:
    return sys.platform.startswith("linux") and os.geteuid() == 0


def browser_env(environ: dict[str, str] | None = None) -> dict[str, str] | None:
    """The environment for the browser: None when the current one will do, else a copy whose
    ``SOCKET_TMPDIR_VAR`` (``TMPDIR``; ``MAC_CHROMIUM_TMPDIR`` on macOS) names a folder short
    enough for the browser's socket path (a deep ``TMPDIR``, as CI systems and pytester set,
    makes every launch abort)."""
    environ = dict(os.environ if environ is None else environ)
    tmpdir = socket_tmpdir(environ)
    if SOCKET_TMPDIR_VAR is None or tmpdir is None or not socket_path_too_long(tmpdir):
        return None
    environ[SOCKET_TMPDIR_VAR] = str(short_tmpdir())
    return environ


def short_tmpdir() -> Path:
    """A private folder with a short path for browser sockets."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    for parent in ("/tmp", "/var/tmp", "/dev/shm"):
        if os.path.isdir(parent):
            folder = Path(parent) / f"edgeprofiles-{uid}"
            roots.make_private_dir(folder)
            return folder
    raise OSError("no short temporary folder for the browser's socket")


def selenium_options(
    profile: str | os.PathLike[str],
    browser: Browser,
    *,
    headless: bool = True,
    extra: Sequence[str] = (),
) -> Any:
    """Selenium options (Edge options for Edge, Chrome options otherwise) with the binary and
    the profile set."""
    options = _options_class(browser)()
    options.binary_location = browser.path
    for arg in browser_args(profile, browser, headless=headless, extra=extra):
        options.add_argument(arg)
    return options


def _options_class(browser: Browser) -> Any:
    if browser.is_edge:
        from selenium.webdriver.edge.options import Options
    else:
        from selenium.webdriver.chrome.options import Options  # type: ignore[assignment]
    return Options


def selenium_service(browser: Browser, profile: str | os.PathLike[str] | None = None) -> Any:
    """A Selenium service for the driver on PATH (``msedgedriver`` or ``chromedriver``), with
    the browser's environment; Selenium Manager is asked only when none is on PATH.

    With ``profile``, the driver's command line names it (a flag the driver ignores), so
    that removing the profile stops a driver whose test process was killed. Its ``start``
    does nothing while its driver runs, so the driver may be started ahead (``edge_driver``
    starts it while the browser starts) of the WebDriver, whose constructor starts it too.
    """
    if browser.is_edge:
        from selenium.webdriver.edge.service import Service

        driver = shutil.which("msedgedriver")
    else:
        from selenium.webdriver.chrome.service import Service  # type: ignore[assignment]

        driver = shutil.which("chromedriver")
    args = [] if profile is None else [f"{PROFILE_FLAGS[1]}={os.fspath(profile)}"]
    return _started_once(Service)(executable_path=driver, service_args=args, env=browser_env())


@functools.cache
def _started_once(service: type[Any]) -> type[Any]:
    """``service`` whose ``start`` does nothing while its driver runs."""

    class StartedOnce(service):  # type: ignore[misc]
        def start(self) -> None:
            process = getattr(self, "process", None)
            if process is None or process.poll() is not None:
                super().start()

    return StartedOnce


def playwright_kwargs(
    profile: str | os.PathLike[str],
    browser: Browser,
    *,
    headless: bool = True,
    downloads: str | os.PathLike[str] | None = None,
    extra: Sequence[str] = (),
) -> dict[str, Any]:
    """Keyword arguments for Playwright's ``launch_persistent_context``.

    Playwright ignores the download pref and saves where ``downloads_path`` says, so the
    profile's own download folder is passed that way.
    """
    args = [
        a
        for a in browser_args(profile, browser, headless=False, extra=extra)
        if not a.startswith("--user-data-dir=")
    ]
    kwargs: dict[str, Any] = {"user_data_dir": os.fspath(profile), "headless": headless}
    kwargs["args"] = args
    if browser.channel:
        kwargs["channel"] = browser.channel
    else:
        kwargs["executable_path"] = browser.path
    if downloads is not None:
        kwargs["downloads_path"] = os.fspath(downloads)
    env = browser_env()
    if env is not None:
        kwargs["env"] = env
    return kwargs
