"""A browser we start on a profile, ready for Selenium or Playwright to attach; and its stop.

A browser chromedriver launches stalls its first navigation in ~4 of 10 starts (1.2 or 5.2 s,
"Waiting for pending navigations"); one we start and attach to once its first page exists does
not. Its endpoint serves one test: a bridge to ``--remote-debugging-pipe`` that answers this
user only; the browser itself listens on no port.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .._chromium import processes, userdata
from .._chromium.installs import Browser
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

#: How long a browser may take to be ready: a cold start is ~0.5 s, a loaded CI machine slower.
START_TIMEOUT = 30.0
_POLL = 0.01
_STDERR_TAIL = 2000
#: Flags that would take the session from the fixture: its profile, or its DevTools endpoint.
RESERVED_FLAGS = ("--user-data-dir", "--remote-debugging-port", "--remote-debugging-address",
                  "--remote-debugging-pipe", "--remote-debugging-io-pipes")  # fmt: skip


class BrowserStartError(RuntimeError):
    """The browser exited, or was not ready in time; it has been stopped. ``exited``: it could
    not run or ended by itself, which a later start with the same flags will too."""

    def __init__(self, message: str, exited: bool = False) -> None:
        super().__init__(message)
        self.exited = exited


@dataclass
class BrowserSession:
    """A browser we started on ``profile``, its DevTools served on 127.0.0.1:``port``."""

    browser: Browser
    profile: Path
    process: subprocess.Popen[bytes]
    _stderr: IO[bytes] = field(repr=False)
    _bridge: Bridge = field(repr=False)
    #: A Selenium service started for this browser ahead of its test, until the test takes it.
    driver: Any = field(default=None, repr=False)

    @property
    def port(self) -> int:
        return self._bridge.port

    @property
    def browser_target(self) -> str:
        """The browser's WebSocket path, ``/devtools/browser/<id>``."""
        return self._bridge.target

    @property
    def debugger_address(self) -> str:
        """``host:port`` for Selenium's ``debugger_address`` option."""
        return f"127.0.0.1:{self.port}"

    @property
    def cdp_url(self) -> str:
        """The browser's WebSocket endpoint, for Playwright's ``connect_over_cdp``: no discovery
        over HTTP first, which could be sent through a proxy."""
        return f"ws://127.0.0.1:{self.port}{self.browser_target}"

    def has_page(self, timeout: float = 2.0) -> bool:
        """Whether the browser answers within ``timeout`` s, with a page to attach to."""
        return self._bridge.has_page(timeout)

    def take_driver(self) -> Any:
        """The Selenium service started for this browser, once; None if none was."""
        driver, self.driver = self.driver, None
        return driver

    def stop(self, grace: float = 10.0) -> int | None:
        """Stop the browser, its helpers and whatever it left on the profile; its exit status.
        A second call does nothing."""
        if self._stderr.closed:
            return self.process.returncode
        if (driver := self.take_driver()) is not None:
            with contextlib.suppress(Exception):  # a driver that is gone is stopped
                driver.stop()
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
    # The run's flags, the switches chromedriver would add, and the DevTools endpoint.
    switches = [s for s in CHROMEDRIVER_SWITCHES if s not in launch.QUIET_FLAGS]
    flags = [*launch.QUIET_FLAGS, *switches, "--remote-debugging-pipe", *extra]
    args = [
        browser.path,
        *launch.browser_args(profile, browser, headless=headless, extra=flags),
        "about:blank",
    ]
    # Outlives this function: the session closes it when the browser stops.
    stderr = tempfile.TemporaryFile()  # noqa: SIM115
    try:
        proc, bridge = _on_pipes(args, stderr)
    except OSError as exc:  # not there, or not a program
        stderr.close()
        raise BrowserStartError(f"cannot start {browser.describe()}: {exc}", exited=True) from None
    try:
        _wait_ready(proc, timeout, bridge)
    except BaseException as exc:
        # A browser that is not ready is of no use: stop it hard, and whatever it started.
        processes.kill_tree(proc)
        processes.stop_browser_on(profile)
        bridge.close()
        if isinstance(exc, BrowserStartError):
            described = f"{exc}{_describe(browser, profile, proc, stderr)}"
            raise BrowserStartError(described, exc.exited) from None
        stderr.close()
        raise
    return BrowserSession(browser, profile, proc, stderr, bridge)


def _on_pipes(args: list[str], stderr: IO[bytes]) -> tuple[subprocess.Popen[bytes], Bridge]:
    """The browser started with its DevTools pipes, and a bridge to them. The bridge comes
    first: made after the browser, its failure would leave the browser running."""
    if shutil.which(args[0]) is None:  # else the shell runs, and exits 127
        code = errno.EACCES if os.path.exists(args[0]) else errno.ENOENT
        raise OSError(code, os.strerror(code), args[0])
    theirs_in, ours_out = os.pipe()
    ours_in, theirs_out = os.pipe()
    try:
        bridge = Bridge(ours_out, ours_in)
    except OSError:
        for fd in (theirs_in, theirs_out, ours_in, ours_out):
            os.close(fd)
        raise
    try:
        # What the OS can pass, not a path to take: tests play Windows' stop on POSIX.
        start = _with_handles if sys.platform == "win32" else _on_fds_3_and_4
        command, passing = start(args, theirs_in, theirs_out)
        proc = subprocess.Popen(
            command, env=launch.launch_env(), stderr=stderr, **passing, **processes.OWN_GROUP
        )
    except OSError:
        bridge.close()  # its reader ends as the browser's end of its pipe closes below
        raise
    finally:
        for fd in (theirs_in, theirs_out):
            os.close(fd)
    return proc, bridge


def _on_fds_3_and_4(
    args: list[str], theirs_in: int, theirs_out: int
) -> tuple[list[str], dict[str, Any]]:
    """POSIX browsers read their pipes on fds 3 (in) and 4 (out). Popen places them as stdin
    and stdout, and a shell moves them on: ``preexec_fn`` is unsafe in a process with
    threads, and dash takes one-digit fds only. The command and Popen's arguments."""
    moved = 'exec "$@" 3<&0 4>&1 </dev/null >/dev/null'
    return ["/bin/sh", "-c", moved, "sh", *args], {"stdin": theirs_in, "stdout": theirs_out}


def _with_handles(
    args: list[str], theirs_in: int, theirs_out: int
) -> tuple[list[str], dict[str, Any]]:
    """Windows browsers take their pipes' handles by value (``--remote-debugging-io-pipes``),
    inherited: only these two and the standard ones (``handle_list``), never another
    thread's. The command and Popen's arguments."""
    if sys.platform != "win32":  # and the type checker reads the rest as Windows code
        raise OSError(errno.ENOSYS, "pipe handles are passed by value on Windows only")
    import msvcrt

    handles = [msvcrt.get_osfhandle(fd) for fd in (theirs_in, theirs_out)]
    for handle in handles:
        os.set_handle_inheritable(handle, True)
    pipes = f"--remote-debugging-io-pipes={handles[0]},{handles[1]}"
    return [args[0], pipes, *args[1:]], {
        "stdin": subprocess.DEVNULL,
        "stdout": subprocess.DEVNULL,
        "close_fds": True,
        "startupinfo": subprocess.STARTUPINFO(lpAttributeList={"handle_list": handles}),
    }


def _wait_ready(proc: subprocess.Popen[bytes], timeout: float, bridge: Bridge) -> None:
    # The browser signals nothing we can wait on: poll, with a deadline.
    backoff = Backoff(_POLL, most=_POLL, timeout=timeout)
    while True:
        if proc.poll() is not None:
            raise BrowserStartError("the browser exited while starting", exited=True)
        # It answers once DevTools is up, at once if it exits.
        if bridge.has_page(max(backoff.remaining(), 0.0)):
            return
        if not backoff.pause():
            raise BrowserStartError("the browser was not ready in time")


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
