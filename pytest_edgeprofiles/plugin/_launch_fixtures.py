"""Fixtures to launch a browser yourself on the test's profile: ``edge_browser`` and the flags
and options for it. Like the plugin, this module imports nothing heavy until a test asks."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .._options import option
from ._config import fail, run_of
from ._lookahead import headed

if TYPE_CHECKING:
    from .._chromium.installs import Browser


@pytest.fixture(scope="session")
def edge_browser(pytestconfig: pytest.Config) -> Browser:
    """The browser profiles are launched with: Edge, else Chrome, else Chromium. Without one
    the test is skipped, or fails with ``--edge-require-browser`` (for CI)."""
    run = run_of(pytestconfig)
    try:
        browser = run.browser()
    except ValueError as exc:
        fail(f"edgeprofiles: --browser-channel (pytest-playwright): {exc}")
    if browser is None:
        flag, channel = option("browser").flag, run.playwright_channel()
        wanted = f"browser of channel {channel}" if channel else "Edge, Chrome or Chromium"
        message = f"edgeprofiles: no {wanted} found; name one with {flag}"
        if run.settings.require_browser:
            required = option("require_browser")
            fail(f"{message} ({required.flag}, {required.env})")
        pytest.skip(message)
    return browser


def _keywords(config: pytest.Config, monkeypatch: pytest.MonkeyPatch | None) -> dict[str, Any]:
    """What the launch helpers are given: headless unless ``--edge-headed`` (or pytest-playwright's
    ``--headed``), quiet flags; with
    ``monkeypatch``, the socket folder the test's browser inherits made short where needed."""
    from .._browser import launch
    from .._chromium.userdata import SOCKET_TMPDIR_VAR

    # Flags cannot carry the environment: a driver the test starts (pytest-selenium's, a Service
    # without env) inherits ours. ``tempfile`` caches its folder: the test's own files stay put.
    env = launch.browser_env() if monkeypatch is not None else None
    if monkeypatch is not None and env is not None and SOCKET_TMPDIR_VAR is not None:
        monkeypatch.setenv(SOCKET_TMPDIR_VAR, env[SOCKET_TMPDIR_VAR])
    return {"headless": not headed(config), "extra": launch.QUIET_FLAGS}


@pytest.fixture
def edge_launch_args(
    pytestconfig: pytest.Config,
    edge_profile: Path,
    edge_browser: Browser,
    monkeypatch: pytest.MonkeyPatch,
) -> list[str]:
    """Command-line flags that start ``edge_browser`` on ``edge_profile``; under a ``TMPDIR``
    too deep for the browser's socket, the test gets a short one for its browser to inherit."""
    from .._browser import launch

    return launch.browser_args(edge_profile, edge_browser, **_keywords(pytestconfig, monkeypatch))


@pytest.fixture
def edge_selenium_options(
    pytestconfig: pytest.Config,
    edge_profile: Path,
    edge_browser: Browser,
    monkeypatch: pytest.MonkeyPatch,
) -> Any:
    """Selenium options for ``edge_browser`` on ``edge_profile`` (needs the selenium extra);
    a short ``TMPDIR`` as with ``edge_launch_args``."""
    from .._browser import launch

    require("selenium")
    return launch.selenium_options(
        edge_profile, edge_browser, **_keywords(pytestconfig, monkeypatch)
    )


@pytest.fixture
def edge_playwright_kwargs(
    pytestconfig: pytest.Config, edge_profile: Path, edge_browser: Browser, edge_download_dir: Path
) -> dict[str, Any]:
    """Keyword arguments for Playwright's ``launch_persistent_context`` on ``edge_profile``."""
    from .._browser import launch

    kw = _keywords(pytestconfig, None)
    return launch.playwright_kwargs(edge_profile, edge_browser, downloads=edge_download_dir, **kw)


def require(module: str) -> None:
    try:
        __import__(module)
    except ImportError:
        fail(
            f"edgeprofiles: this fixture needs {module}: pip install {module} "
            f"(or install pytest-edgeprofiles with its [{module}] extra)"
        )
