"""Browser discovery and versions, with stand-in browsers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pytest_edgeprofiles import browsers
from pytest_edgeprofiles.browsers import Browser


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
    assert browsers.kind_of(path.replace("\\", "/")) == kind
    assert browsers._channel(path) == channel


def test_an_override_that_is_no_browser_is_none(tmp_path: Path) -> None:
    assert browsers.find_browser(str(tmp_path / "missing")) is None


def test_an_override_is_asked_for_its_version(tmp_path: Path) -> None:
    fake = tmp_path / "microsoft-edge"
    fake.write_text("#!/bin/sh\necho 'Microsoft Edge 131.0.2903.70'\n")
    fake.chmod(0o755)
    assert browsers.find_browser(str(fake)) == Browser(str(fake), "edge", "131.0.2903.70")


def test_on_windows_the_version_comes_from_the_folder_beside_the_browser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("99.0.1.2", "131.0.2903.70", "Installer"):
        (tmp_path / name).mkdir()
    monkeypatch.setattr(sys, "platform", "win32")
    assert browsers.browser_version(str(tmp_path / "msedge.exe")) == "131.0.2903.70"


@pytest.mark.parametrize(
    ("base", "browser", "verdict"),
    [("131.0.1.1", "131.0.1.1", "same"), ("132.0.0.0", "131.9.9.9", "newer"),
     ("120.1.0.0", "131.0.0.0", "older"), (None, "131.0.0.0", "unknown"), ("x", "131", "unknown")],
)  # fmt: skip
def test_compare_versions(base: str | None, browser: str, verdict: str) -> None:
    assert browsers.compare_versions(base, browser) == verdict
