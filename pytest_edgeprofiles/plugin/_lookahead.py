"""What a test asks of the run, and what the next test will: the fixtures' names, the flags
its browser is launched with, and the stash keys the one look-ahead hook fills per test."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from ._config import SETTINGS

if TYPE_CHECKING:  # imported when a test asks for a browser: the plugin loads into every run
    from .._browser.ahead import LaunchFlags

PROFILE_FIXTURES = frozenset(
    {"edge_profile", "edge_session_profile", "edge_profile_manager", "edge_download_dir"}
)
LAUNCH_FIXTURES = frozenset(
    {"edge_browser", "edge_launch_args", "edge_selenium_options", "edge_playwright_kwargs"}
)
#: The fixtures that start a browser (edge_driver asks for the session when it runs).
BROWSER_FIXTURES = frozenset({"edge_browser_session", "edge_driver", "edge_context", "edge_page"})
#: The fixtures that get the run ready when a test asks for one of them.
EDGE_FIXTURES = PROFILE_FIXTURES | LAUNCH_FIXTURES | BROWSER_FIXTURES | {"edge_playwright"}

#: Marker and ini value: flags added to the browser's command line.
ARGS_NAME = "edge_browser_args"

#: Per test: the flags of the browser it asks for, if it asks for one.
FLAGS = pytest.StashKey["LaunchFlags"]()
#: Per test: the flags of the next test's browser, if it asks for one (and is not skipped).
NEXT_FLAGS = pytest.StashKey["LaunchFlags | None"]()
#: Per test: whether the next test asks for ``edge_profile`` too.
NEXT_WANTS_PROFILE = pytest.StashKey[bool]()
#: Per test on ``edge_profile``: whether each phase (setup, call) failed, for its retention.
PHASE_FAILED = pytest.StashKey[dict[str, bool]]()


def headed(config: pytest.Config) -> bool:
    """``--edge-headed``, or pytest-playwright's ``--headed``: one switch to see browsers."""
    theirs = config.pluginmanager.hasplugin("playwright") and bool(config.getoption("headed"))
    return config.stash[SETTINGS].headed or theirs


def ini_args(config: pytest.Config) -> list[str]:
    return [str(a) for a in config.getini(ARGS_NAME)]


def extra_args(item: pytest.Item) -> list[str]:
    """The flags a test's browser gets beyond the run's: the ini's, then its markers' (the
    closest last: for a repeated switch the browser takes the last)."""
    args = ini_args(item.config)
    for marker in reversed(list(item.iter_markers(ARGS_NAME))):
        args.extend(str(a) for a in marker.args)
    return args


def flags_of(item: pytest.Item | None) -> LaunchFlags | None:
    """The flags of the browser ``item`` asks for; None if it asks for none."""
    if item is None or not BROWSER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
        return None
    from .._browser.ahead import LaunchFlags

    return LaunchFlags(not headed(item.config), tuple(extra_args(item)))


def run_flags(config: pytest.Config) -> LaunchFlags:
    """What browsers started ahead are started with: the run's flags, no marker's."""
    from .._browser.ahead import LaunchFlags

    return LaunchFlags(not headed(config), tuple(ini_args(config)))


def failed(item: pytest.Item) -> bool:
    """Whether the test failed; one without a call report erred in setup and counts as
    failed, as pytest-playwright counts it."""
    phases = item.stash.get(PHASE_FAILED, {})
    if "call" not in phases:
        return phases.get("setup", True)
    return phases["call"]
