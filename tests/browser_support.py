"""Starting a real browser from tests: shared by the browser and security suites."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from pytest_edgeprofiles import launch
from pytest_edgeprofiles.chromium import Browser


def wait_for(predicate: Callable[[], bool], what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)  # a poll with a deadline: the browser signals nothing we can wait on


def start_browser(profile: Path, browser: Browser) -> subprocess.Popen[bytes]:
    """A headless browser on ``profile``, returned once it holds the profile's lock."""
    args = launch.browser_args(profile, browser, extra=launch.QUIET_FLAGS)
    proc = subprocess.Popen(
        [browser.path, *args, "about:blank"],
        env=launch.browser_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(lambda: os.path.lexists(profile / "SingletonSocket"), "the browser's lock")
    return proc
