"""Starting a real browser, and a site for it, from tests: shared by the browser suites."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil
from conftest import POSIX

from pytest_edgeprofiles._browser import launch
from pytest_edgeprofiles.chromium import Browser


@contextlib.contextmanager
def serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A local site answered by ``handler`` on 127.0.0.1; its address, without a slash."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def wait_for(predicate: Callable[[], bool], what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)  # a poll with a deadline: the browser signals nothing we can wait on


def start_process(
    args: list[str], shown: list[str] | None = None, **kwargs: Any
) -> subprocess.Popen[bytes]:
    """``Popen(args)``, returned once the kernel shows its command line: ``shown``, for a
    program that execs another (``setpriv``), else ``args``.

    Popen returns once exec has begun, not finished: for a moment ``/proc/<pid>/cmdline``
    is still empty, and a scan for the processes naming a profile would miss this one.
    """
    proc = subprocess.Popen(args, **kwargs)

    def shows() -> bool:
        try:
            return psutil.Process(proc.pid).cmdline() == (shown or args)
        except psutil.Error:
            return False

    wait_for(lambda: shows() or proc.poll() is not None, f"{args[0]} to start", 10)
    return proc


def start_browser(profile: Path, browser: Browser) -> subprocess.Popen[bytes]:
    """A headless browser on ``profile``, returned once it is up.

    Its lock appears early in start-up, before the browser handles signals or has started its
    helper processes; ``DevToolsActivePort`` is written once it listens, that is when it is up.
    On POSIX it has made its ``SingletonSocket`` link by then (a Windows browser makes none).
    """
    args = launch.browser_args(
        profile, browser, extra=[*launch.QUIET_FLAGS, "--remote-debugging-port=0"]
    )
    ready = profile / "DevToolsActivePort"
    ready.unlink(missing_ok=True)  # left by an earlier browser on this profile
    proc = subprocess.Popen(
        [browser.path, *args, "about:blank"],
        env=launch.browser_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: ready.is_file() or proc.poll() is not None, "the browser to start", 60)
        assert proc.poll() is None, f"the browser exited with {proc.returncode}"
        assert not POSIX or os.path.lexists(profile / "SingletonSocket")
    except BaseException:
        proc.kill()  # never leave a browser behind, spinning on a folder about to go
        proc.wait()
        raise
    return proc


def stop_browser(proc: subprocess.Popen[bytes]) -> None:
    """Stop a browser of ``start_browser`` gracefully; kill it if it does not go in 10 s.

    SIGHUP lets headless Chromium remove its ``Singleton*`` links; Windows has no signal to
    ask with, and terminates it.
    """
    if POSIX:
        proc.send_signal(signal.SIGHUP)
    else:
        proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
