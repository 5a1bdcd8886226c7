"""Flags, environment, Selenium and Playwright settings to start a browser on a profile."""

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

#: Keep a test browser from calling home, which is slow or refused on CI machines.
QUIET_FLAGS = ("--disable-background-networking", "--disable-component-update", "--disable-sync")


def browser_args(
    profile: str | os.PathLike[str],
    browser: Browser,
    *,
    headless: bool = True,
    extra: Sequence[str] = (),
) -> list[str]:
    """Command-line flags that start ``browser`` on ``profile``."""
    args = [f"--user-data-dir={os.fspath(profile)}", "--no-first-run", "--no-default-browser-check"]
    if browser.is_edge:
        # Edge 133+ on Windows relaunches through a compatibility layer and breaks the driver.
        args.append("--edge-skip-compat-layer-relaunch")
    if headless:
        args.append("--headless=new")
    if sys.platform.startswith("linux") and os.geteuid() == 0:
        args.append("--no-sandbox")  # as root, Chromium refuses to start without it
    args.extend(extra)
    return args


def browser_env(environ: dict[str, str] | None = None) -> dict[str, str] | None:
    """None when the current environment will do, else a copy whose ``SOCKET_TMPDIR_VAR`` names
    a short folder: under a deep ``TMPDIR`` (CI, pytester) the browser's socket path is too
    long and every launch aborts."""
    environ = _snapshot() if environ is None else dict(environ)
    tmpdir = socket_tmpdir(environ)
    if SOCKET_TMPDIR_VAR is None or tmpdir is None or not socket_path_too_long(tmpdir):
        return None
    environ[SOCKET_TMPDIR_VAR] = str(short_tmpdir())
    return environ


def launch_env() -> dict[str, str]:
    """The environment of a browser or driver we start: ``browser_env`` of one snapshot of
    ours, passed whole. Inherited instead, it is read again at the launch: a browser starts
    ahead in a thread while a test's ``monkeypatch`` sets ``TMPDIR`` and puts it back."""
    environ = _snapshot()
    return browser_env(environ) or environ


def _snapshot() -> dict[str, str]:
    while True:
        try:
            return dict(os.environ)
        except KeyError:  # another thread removed a variable as we copied (pytest's, per test)
            continue


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
    """Selenium options (Edge's for Edge, else Chrome's) with the binary and profile set."""
    if browser.is_edge:
        from selenium.webdriver.edge.options import Options
    else:
        from selenium.webdriver.chrome.options import Options  # type: ignore[assignment]
    options = Options()
    options.binary_location = browser.path
    for arg in browser_args(profile, browser, headless=headless, extra=extra):
        options.add_argument(arg)
    return options


def selenium_service(browser: Browser, profile: str | os.PathLike[str] | None = None) -> Any:
    """A service for the driver on PATH (else Selenium Manager's), with the browser's environment
    as it is when the service is made (``launch_env``); with ``profile`` its command line names
    it (a flag it ignores), so that removing the profile stops a driver whose test process was
    killed. ``start`` does nothing while the driver runs, so ``edge_driver`` may start it ahead
    of the WebDriver's constructor."""
    if browser.is_edge:
        from selenium.webdriver.edge.service import Service
    else:
        from selenium.webdriver.chrome.service import Service  # type: ignore[assignment]
    driver = shutil.which("msedgedriver" if browser.is_edge else "chromedriver")
    args = [] if profile is None else [f"{PROFILE_FLAGS[1]}={os.fspath(profile)}"]
    return _started_once(Service)(executable_path=driver, service_args=args, env=launch_env())


#: Starts of a driver that exits at once (its port taken) before its exit is the error.
DRIVER_STARTS = 3


@functools.cache
def _started_once(service: type[Any]) -> type[Any]:
    from selenium.webdriver.common.utils import free_port

    class StartedOnce(service):  # type: ignore[misc]
        _exited = False  # the driver exited by itself while it was being started

        def start(self) -> None:
            process = getattr(self, "process", None)
            if process is not None and process.poll() is None:
                return
            for left in reversed(range(DRIVER_STARTS)):
                # Selenium keeps handles on Windows: a browser's pipe, launched meanwhile,
                # would stay open in the driver, and the browser's exit go unseen.
                self.popen_kw.setdefault("close_fds", True)  # Selenium pops it at each start
                self._exited = False
                try:
                    super().start()
                    return
                except Exception:
                    if not (left and self._exited):
                        raise  # a driver that ran and did not answer is not started again
                # Selenium picks a free port, then the driver binds it: another process
                # (a browser, a bridge, a connection) may take it in between, and the
                # driver exits ("port not available"). A new port, then.
                self.port = free_port()

        def assert_process_still_running(self) -> None:
            # Selenium stops a driver whose start failed before it raises: by then any
            # driver has exited, so the exit is marked where Selenium finds it.
            try:
                super().assert_process_still_running()
            except Exception:
                self._exited = True
                raise

    return StartedOnce


def playwright_kwargs(
    profile: str | os.PathLike[str],
    browser: Browser,
    *,
    headless: bool = True,
    downloads: str | os.PathLike[str] | None = None,
    extra: Sequence[str] = (),
) -> dict[str, Any]:
    """Keyword arguments for Playwright's ``launch_persistent_context``; the profile's download
    folder as ``downloads_path``, since Playwright ignores the download pref."""
    args = browser_args(profile, browser, headless=False, extra=extra)
    kwargs: dict[str, Any] = {"user_data_dir": os.fspath(profile), "headless": headless}
    kwargs["args"] = [a for a in args if not a.startswith("--user-data-dir=")]
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


#: pytest-playwright's ``browser_context_args`` an attached persistent context can take: the
#: context is the profile's own, made before any client attached, so every other (``base_url``,
#: ``storage_state``, a device's ``is_mobile``, ...) is set when a context is made, not after.
CONTEXT_ARGS = frozenset(
    {"viewport", "locale", "timezone_id", "color_scheme", "ignore_https_errors",
     "extra_http_headers", "geolocation", "permissions", "offline", "user_agent"}
)  # fmt: skip
#: Those pytest-playwright gives for ``--video``, which its summary line names instead.
VIDEO_ARGS = frozenset({"record_video_dir", "record_video_size"})


def apply_context_args(context: Any, args: dict[str, Any]) -> None:
    """Apply ``browser_context_args`` (of ``CONTEXT_ARGS``) to an attached ``context``: to it
    where Playwright can, else to each page, open or opened later, over CDP."""
    locale, zone, agent = args.get("locale"), args.get("timezone_id"), args.get("user_agent")
    headers = dict(args.get("extra_http_headers") or {})
    if locale:
        headers.setdefault("Accept-Language", locale)
    if headers:
        context.set_extra_http_headers(headers)
    if args.get("geolocation"):
        context.set_geolocation(args["geolocation"])
    if args.get("permissions"):
        context.grant_permissions(args["permissions"])
    if args.get("offline"):
        context.set_offline(True)
    if args.get("ignore_https_errors"):
        browser_cdp = context.browser.new_browser_cdp_session()
        browser_cdp.send("Security.setIgnoreCertificateErrors", {"ignore": True})
    overrides = [
        (method, params)
        for method, params, given in (
            ("Emulation.setLocaleOverride", {"locale": locale}, locale),
            ("Emulation.setTimezoneOverride", {"timezoneId": zone}, zone),
            ("Emulation.setUserAgentOverride", {"userAgent": agent}, agent),
        )
        if given
    ]
    sessions: list[Any] = []  # an override lasts while its CDP session is attached

    def set_up(page: Any) -> None:
        if args.get("viewport"):
            page.set_viewport_size(args["viewport"])
        if args.get("color_scheme"):
            page.emulate_media(color_scheme=args["color_scheme"])
        if overrides:
            sessions.append(context.new_cdp_session(page))
            for method, params in overrides:
                sessions[-1].send(method, params)

    for page in context.pages:
        set_up(page)
    context.on("page", set_up)
