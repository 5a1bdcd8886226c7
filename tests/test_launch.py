"""Launch helpers: flags, environment, Selenium and Playwright settings, without a browser."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from conftest import POSIX, posix_only

from pytest_edgeprofiles._browser import launch
from pytest_edgeprofiles._chromium import userdata
from pytest_edgeprofiles.chromium import Browser

EDGE = Browser("/opt/microsoft/msedge/msedge", "edge", "131.0.2903.70", "msedge")
CHROMIUM = Browser("/usr/lib/chromium/chromium", "chromium", "156.0.8078.73")


def test_edge_flags_start_on_the_profile_and_skip_the_compat_relaunch(tmp_path: Path) -> None:
    args = launch.browser_args(tmp_path, EDGE, headless=False)
    assert args[:3] == [
        f"--user-data-dir={tmp_path}",
        "--no-first-run",
        "--no-default-browser-check",
    ]
    assert "--edge-skip-compat-layer-relaunch" in args
    assert "--headless=new" not in args


def test_chromium_flags_are_headless_and_take_extras(tmp_path: Path) -> None:
    args = launch.browser_args(tmp_path, CHROMIUM, extra=launch.QUIET_FLAGS)
    assert "--edge-skip-compat-layer-relaunch" not in args
    assert "--headless=new" in args
    assert args[-3:] == list(launch.QUIET_FLAGS)
    root_on_linux = sys.platform.startswith("linux") and os.geteuid() == 0
    assert ("--no-sandbox" in args) == root_on_linux


def test_playwright_gets_a_channel_for_installed_edge_and_a_path_otherwise(tmp_path: Path) -> None:
    edge = launch.playwright_kwargs(tmp_path, EDGE, downloads=tmp_path / "dl")
    assert edge["channel"] == "msedge" and "executable_path" not in edge
    assert edge["user_data_dir"] == str(tmp_path)
    assert edge["downloads_path"] == str(tmp_path / "dl")
    assert not any(a.startswith("--user-data-dir") for a in edge["args"])
    other = launch.playwright_kwargs(tmp_path, CHROMIUM)
    assert other["executable_path"] == CHROMIUM.path and "channel" not in other


def test_selenium_options_name_the_binary_and_the_profile(tmp_path: Path) -> None:
    from selenium.webdriver.chrome.options import Options as ChromeOptions
    from selenium.webdriver.edge.options import Options as EdgeOptions

    edge = launch.selenium_options(tmp_path, EDGE)
    assert isinstance(edge, EdgeOptions) and edge.binary_location == EDGE.path
    assert f"--user-data-dir={tmp_path}" in edge.arguments
    chrome = launch.selenium_options(tmp_path, CHROMIUM)
    assert isinstance(chrome, ChromeOptions) and not isinstance(chrome, EdgeOptions)


@pytest.mark.skipif(
    not POSIX and sys.prefix != sys.base_prefix,
    reason="a venv's python.exe on Windows runs the interpreter as a second process with the "
    "same command line: two processes where the test starts one",
)
def test_a_driver_started_for_a_profile_is_found_with_its_browsers(tmp_path: Path) -> None:
    from browser_support import start_process

    from pytest_edgeprofiles._chromium import processes

    service = launch.selenium_service(CHROMIUM, tmp_path / "p")
    assert service.service_args == [f"--edgeprofiles-user-data-dir={tmp_path / 'p'}"]
    assert launch.selenium_service(CHROMIUM).service_args == []
    # A stand-in for the driver: what counts is its command line.
    proc = start_process(
        [sys.executable, "-c", "import time; time.sleep(60)", *service.service_args]
    )
    try:
        assert [p.pid for p in processes.browsers_using(str(tmp_path / "p"))] == [proc.pid]
        assert processes.browsers_using(str(tmp_path / "other")) == []
    finally:
        proc.kill()
        proc.wait()


@posix_only("the browser's socket under TMPDIR, and a 0700 folder for it")
def test_a_deep_temp_dir_gets_the_browser_a_short_one(tmp_path: Path) -> None:
    variable = userdata.SOCKET_TMPDIR_VAR
    assert variable is not None
    deep = str(tmp_path / ("d" * 100))
    assert launch.browser_env({variable: "/tmp"}) is None
    env = launch.browser_env({variable: deep, "KEEP": "me"})
    assert env is not None and env["KEEP"] == "me"
    assert not userdata.socket_path_too_long(env[variable])
    assert oct(os.stat(env[variable]).st_mode & 0o777) == "0o700"


@posix_only("a shell script stands in for the driver")
def test_a_driver_that_runs_but_does_not_answer_is_not_started_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only a driver that exits at once (its port taken meanwhile) is started again: one that
    # runs and never answers fails once, not after three starts' worth of waiting.
    from selenium.common.exceptions import WebDriverException

    driver = tmp_path / "driver"
    driver.write_text("#!/bin/sh\nexec sleep 60\n")
    driver.chmod(0o755)
    service = launch.selenium_service(CHROMIUM)
    service.path = str(driver)
    started: list[object] = []
    start_process = service._start_process

    def counted(path: str) -> None:
        start_process(path)
        started.append(service.process)

    def no_answer() -> bool:
        raise WebDriverException("no answer")

    monkeypatch.setattr(service, "_start_process", counted)
    monkeypatch.setattr(service, "is_connectable", no_answer)
    with pytest.raises(WebDriverException, match="no answer"):
        service.start()
    assert len(started) == 1, "started again"
    assert service.process.poll() is not None, "the driver was stopped"
