"""A browser we start on a profile, ready for Selenium or Playwright to attach; and its stop.

A browser chromedriver launches stalls its first navigation in ~4 of 10 starts (1.2 or 5.2 s,
"Waiting for pending navigations"); one we start and attach to once its first page exists does
not. Its endpoint serves one test: on POSIX a bridge to ``--remote-debugging-pipe`` that answers
this user only; on Windows, for now, ``--remote-debugging-port=0`` on 127.0.0.1.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
import tempfile
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from .._chromium import processes, userdata
from .._chromium.installs import Browser
from .._system import platform
from .._system.logs import log
from .._system.waiting import Backoff
from . import launch
from .bridge import Bridge

#: The switches chromedriver 156 adds to a browser it launches (chrome_launcher.cc,
#: ``kDesiredSwitches``): an attached session ignores the options' flags, so we pass them, for
#: tests to see the browser they would under Selenium. Its log switches are left out.
CHROMEDRIVER_SWITCHES = (
    "--allow-pre-commit-input", "--disable-background-networking",
    "--disable-background-timer-throttling", "--disable-backgrounding-occluded-windows",
    "--disable-client-side-phishing-detection", "--disable-default-apps",
    "--disable-features=IgnoreDuplicateNavs,Prewarm", "--disable-hang-monitor",
    "--disable-popup-blocking", "--disable-prompt-on-repost", "--disable-sync",
    "--enable-automation", "--no-service-autorun", "--password-store=basic",
    "--test-type=webdriver", "--use-mock-keychain",
)  # fmt: skip

#: Where the browser writes its DevTools port (first line) and browser target (second line).
PORT_FILE = "DevToolsActivePort"
#: Whether a browser speaks DevTools on a pipe, behind a bridge for this user only (POSIX), or
#: on a port of its own on 127.0.0.1 (Windows, where the pipe is not wired up yet).
DEVTOOLS_PIPE = not platform.WINDOWS
#: How long a browser may take to be ready: a cold start is ~0.5 s, a loaded CI machine slower.
START_TIMEOUT = 30.0
_POLL = 0.01
_STDERR_TAIL = 2000
_BROWSER_TARGET = re.compile(r"/devtools/browser/[0-9a-f-]{36}")
#: Flags that would take the session from the fixture: its profile, or its DevTools endpoint.
RESERVED_FLAGS = ("--user-data-dir", "--remote-debugging-port", "--remote-debugging-address",
                  "--remote-debugging-pipe")  # fmt: skip


class BrowserStartError(RuntimeError):
    """The browser exited, or was not ready in time; it has been stopped. ``exited``: it could
    not run or ended by itself, which a later start with the same flags will too."""

    def __init__(self, message: str, exited: bool = False) -> None:
        super().__init__(message)
        self.exited = exited


@dataclass
class BrowserSession:
    """A browser we started on ``profile``, listening for DevTools on 127.0.0.1:``port``."""

    browser: Browser
    profile: Path
    process: subprocess.Popen[bytes]
    port: int
    browser_target: str
    _stderr: IO[bytes] = field(repr=False)
    _bridge: Bridge | None = field(default=None, repr=False)

    @property
    def debugger_address(self) -> str:
        """``host:port`` for Selenium's ``debugger_address`` option."""
        return f"127.0.0.1:{self.port}"

    @property
    def cdp_url(self) -> str:
        """The browser's WebSocket endpoint, for Playwright's ``connect_over_cdp``: no discovery
        over HTTP first, which could be sent through a proxy."""
        return f"ws://127.0.0.1:{self.port}{self.browser_target}"

    def has_page(self) -> bool:
        """Whether the browser answers, with a page to attach to."""
        if self._bridge is not None:
            return self._bridge.has_page()
        return has_page(self.port)

    def stop(self, grace: float = 10.0) -> int | None:
        """Stop the browser, its helpers and whatever it left on the profile; its exit status.
        A second call does nothing."""
        if self._stderr.closed:
            return self.process.returncode
        try:
            if self.process.poll() is None:
                helpers = processes.helpers_to_stop(self.process.pid)
                processes.ask_to_stop(self.process)
                try:
                    self.process.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    log.warning("browser %s did not stop in %s s", self.process.pid, grace)
                    self.process.kill()
                    self.process.wait()
                late = processes.group_left_on(self.process.pid, self.profile)
                processes.stop_browsers(helpers + late)
            processes.stop_browser_on(self.profile)
        finally:
            self._stderr.close()
            if self._bridge is not None:
                self._bridge.close()
        return self.process.returncode


def start_session(
    profile: str | os.PathLike[str],
    browser: Browser,
    *,
    headless: bool = True,
    extra: Sequence[str] = (),
    timeout: float = START_TIMEOUT,
) -> BrowserSession:
    """Start ``browser`` on ``profile``; return it once it answers DevTools and a page
    target exists (attaching earlier costs 0.19 s more). ``ValueError`` when ``extra`` has
    ``RESERVED_FLAGS``; ``BrowserStartError`` (with the exit status and last output) when the
    browser exits or is not ready within ``timeout``."""
    profile = Path(profile)
    # Spelled as the browser reads them: one dash, or on Windows a slash and any case, counts.
    names = {arg: (userdata.switch(arg) or ("",))[0] for arg in extra}
    reserved = [arg for arg, name in names.items() if name in RESERVED_FLAGS]
    if reserved:
        raise ValueError(
            f"browser flags {reserved} (read as {', '.join(sorted({names[a] for a in reserved}))}) "
            f"would take the session from under the fixture: its profile and its DevTools "
            f"endpoint are the fixture's to set"
        )
    # Left by an earlier browser on this profile: it would name a port nobody listens on.
    (profile / PORT_FILE).unlink(missing_ok=True)
    # The run's flags, the switches chromedriver would add, and the DevTools endpoint.
    switches = [s for s in CHROMEDRIVER_SWITCHES if s not in launch.QUIET_FLAGS]
    endpoint = "--remote-debugging-pipe" if DEVTOOLS_PIPE else "--remote-debugging-port=0"
    flags = [*launch.QUIET_FLAGS, *switches, endpoint, *extra]
    args = [
        browser.path,
        *launch.browser_args(profile, browser, headless=headless, extra=flags),
        "about:blank",
    ]
    # Outlives this function: the session closes it when the browser stops.
    stderr = tempfile.TemporaryFile()  # noqa: SIM115
    bridge = None
    try:
        if DEVTOOLS_PIPE:
            proc, bridge = _on_pipes(args, stderr)
        else:
            proc = _popen(args, stderr)
    except OSError as exc:  # not there, or not a program
        stderr.close()
        raise BrowserStartError(f"cannot start {browser.describe()}: {exc}", exited=True) from None
    try:
        port, target = _wait_ready(proc, profile, timeout, bridge)
    except BaseException as exc:
        # A browser that is not ready is of no use: stop it hard, and whatever it started.
        processes.kill_tree(proc)
        processes.stop_browser_on(profile)
        if bridge is not None:
            bridge.close()
        if isinstance(exc, BrowserStartError):
            described = f"{exc}{_describe(browser, profile, proc, stderr)}"
            raise BrowserStartError(described, exc.exited) from None
        stderr.close()
        raise
    return BrowserSession(browser, profile, proc, port, target, stderr, bridge)


def _popen(
    args: list[str],
    stderr: IO[bytes],
    stdin: int = subprocess.DEVNULL,
    stdout: int = subprocess.DEVNULL,
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        args,
        env=launch.browser_env(),
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        **processes.OWN_GROUP,
    )


def _on_pipes(args: list[str], stderr: IO[bytes]) -> tuple[subprocess.Popen[bytes], Bridge]:
    """The browser started with its DevTools pipes on fds 3 (in) and 4 (out), where it reads
    them, and a bridge to them. Popen places them as stdin and stdout, and a shell moves them
    on: ``preexec_fn`` is unsafe in a process with threads, and dash takes one-digit fds only."""
    if shutil.which(args[0]) is None:  # else the shell runs, and exits 127
        code = errno.EACCES if os.path.exists(args[0]) else errno.ENOENT
        raise OSError(code, os.strerror(code), args[0])
    theirs_in, ours_out = os.pipe()
    ours_in, theirs_out = os.pipe()
    moved = 'exec "$@" 3<&0 4>&1 </dev/null >/dev/null'
    try:
        proc = _popen(["/bin/sh", "-c", moved, "sh", *args], stderr, theirs_in, theirs_out)
    except OSError:
        for fd in (ours_in, ours_out):
            os.close(fd)
        raise
    finally:
        for fd in (theirs_in, theirs_out):
            os.close(fd)
    return proc, Bridge(ours_out, ours_in)


def _wait_ready(
    proc: subprocess.Popen[bytes], profile: Path, timeout: float, bridge: Bridge | None
) -> tuple[int, str]:
    endpoint: tuple[int, str] | None = None
    # The browser signals nothing we can wait on: poll, with a deadline.
    backoff = Backoff(_POLL, most=_POLL, timeout=timeout)
    while True:
        if proc.poll() is not None:
            raise BrowserStartError("the browser exited while starting", exited=True)
        if bridge is not None:  # it answers once DevTools is up, at once if it exits
            if bridge.has_page(max(backoff.remaining(), 0.0)):
                return bridge.port, bridge.target
        elif (endpoint := endpoint or _port_of(proc, profile)) and has_page(endpoint[0]):
            return endpoint
        if not backoff.pause():
            raise BrowserStartError("the browser was not ready in time")


def _port_of(proc: subprocess.Popen[bytes], profile: Path) -> tuple[int, str] | None:
    """The endpoint ``DevToolsActivePort`` names, once written, if the browser listens there."""
    endpoint = read_port_file(profile / PORT_FILE)
    if endpoint is None or processes.listens_on(proc.pid, endpoint[0]):
        return endpoint
    if proc.poll() is not None:
        return None  # it exited meanwhile, which the next look says
    # Never attach to whatever else listens there: it would get the test's pages.
    raise BrowserStartError(
        f"{PORT_FILE} names port {endpoint[0]}, where this browser does not listen"
    )


def read_port_file(path: Path) -> tuple[int, str] | None:
    """The port and browser target in a ``DevToolsActivePort`` file; None until both are."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    if len(lines) < 2 or not lines[0].strip().isdigit():
        return None
    if not _BROWSER_TARGET.fullmatch(lines[1].strip()):
        return None  # still being written
    return int(lines[0]), lines[1].strip()


#: No proxy: urllib sends 127.0.0.1 through ``http_proxy`` unless ``no_proxy`` names it, and
#: behind a proxy every start would time out.
_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def has_page(port: int) -> bool:
    """Whether the browser on ``port`` lists a page target."""
    try:
        with _LOCAL.open(f"http://127.0.0.1:{port}/json/list", timeout=2) as reply:
            targets = json.load(reply)
    except (OSError, ValueError):  # not listening yet, or a reply cut short
        return False
    return any(t.get("type") == "page" for t in targets if isinstance(t, dict))


def _describe(
    browser: Browser, profile: Path, proc: subprocess.Popen[bytes], stderr: IO[bytes]
) -> str:
    try:
        stderr.seek(0, os.SEEK_END)
        stderr.seek(max(0, stderr.tell() - _STDERR_TAIL))
        tail = stderr.read().decode("utf-8", "replace").strip()
    finally:
        stderr.close()
    return (
        f": {browser.describe()} on profile {profile}, exit status {proc.returncode}; "
        f"its last output:\n{tail or '(none)'}"
    )
