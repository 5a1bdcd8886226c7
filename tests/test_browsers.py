"""Browser discovery and versions, with stand-in installs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import SH_BROWSER, posix_only

from pytest_edgeprofiles._chromium import installs
from pytest_edgeprofiles._chromium.installs import Browser


@pytest.mark.parametrize(
    ("path", "kind", "channel"),
    [
        ("/opt/microsoft/msedge-beta/msedge", "edge", "msedge-beta"),
        (
            "/Applications/Microsoft Edge Canary.app/Contents/MacOS/Microsoft Edge Canary",
            "edge",
            "msedge-canary",
        ),
        (r"C:\Program Files\Microsoft\Edge SxS\Application\msedge.exe", "edge", "msedge-canary"),
        ("/opt/google/chrome/chrome", "chrome", None),
        ("/usr/bin/chromium", "chromium", None),
    ],
)
def test_kind_and_playwright_channel_of_an_install_path(
    path: str, kind: str, channel: str | None
) -> None:
    assert installs.kind_of(path.replace("\\", "/")) == kind
    assert installs._channel(path) == channel


def test_an_override_that_is_no_browser_is_none(tmp_path: Path) -> None:
    assert installs.find_browser(str(tmp_path / "missing")) is None


@posix_only(f"{SH_BROWSER} (Windows reads the version from the folder beside it)")
def test_an_override_is_asked_for_its_version(tmp_path: Path) -> None:
    fake = tmp_path / "microsoft-edge"
    fake.write_text("#!/bin/sh\necho 'Microsoft Edge 131.0.2903.70'\n")
    fake.chmod(0o755)
    assert installs.find_browser(str(fake)) == Browser(str(fake), "edge", "131.0.2903.70")


def test_on_windows_the_version_comes_from_the_folder_beside_the_browser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("99.0.1.2", "131.0.2903.70", "Installer"):
        (tmp_path / name).mkdir()
    monkeypatch.setattr(sys, "platform", "win32")
    assert installs.browser_version(str(tmp_path / "msedge.exe")) == "131.0.2903.70"


@pytest.mark.parametrize(
    ("base", "browser", "verdict"),
    [("131.0.1.1", "131.0.1.1", "same"), ("132.0.0.0", "131.9.9.9", "newer"),
     ("120.1.0.0", "131.0.0.0", "older"), (None, "131.0.0.0", "unknown"), ("x", "131", "unknown")],
)  # fmt: skip
def test_compare_versions(base: str | None, browser: str, verdict: str) -> None:
    assert installs.compare_versions(base, browser) == verdict


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Stand-in browsers at install paths: Edge stable and beta, Chrome; none on PATH."""
    paths = {
        "msedge": tmp_path / "opt/microsoft/msedge/msedge",
        "msedge-beta": tmp_path / "opt/microsoft/msedge-beta/msedge",
        "chrome": tmp_path / "opt/google/chrome/chrome",
    }
    for path in paths.values():
        path.parent.mkdir(parents=True)
        path.write_text("#!/bin/sh\necho 'Browser 131.0.2903.70'\n")
        path.chmod(0o755)
    by_kind = {
        "edge": [str(paths["msedge"]), str(paths["msedge-beta"])],
        "chrome": [str(paths["chrome"])],
        "chromium": [],
    }
    monkeypatch.setattr(installs, "_install_paths", by_kind.__getitem__)
    monkeypatch.setattr(installs.shutil, "which", lambda name: None)
    return paths


@pytest.mark.parametrize(
    ("channel", "found"),
    [(None, "msedge"), ("msedge", "msedge"), ("msedge-beta", "msedge-beta"),
     ("msedge-dev", "msedge"), ("chrome", "chrome"), ("chromium", None)],
)  # fmt: skip
def test_a_playwright_channel_limits_the_search_to_its_kind(
    installed: dict[str, Path], channel: str | None, found: str | None
) -> None:
    browser = installs.find_browser(channel=channel)
    assert (browser and browser.path) == (found and str(installed[found]))


def test_an_unknown_channel_is_named(installed: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match=r"unknown browser channel 'firefox'"):
        installs.find_browser(channel="firefox")
