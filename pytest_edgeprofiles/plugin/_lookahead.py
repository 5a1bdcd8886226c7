"""What a test and the next ask of the run: fixture names, launch flags, look-ahead stash keys."""

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
BROWSER_FIXTURES = frozenset({"edge_browser_session", "edge_driver", "edge_context", "edge_page"})
EDGE_FIXTURES = PROFILE_FIXTURES | LAUNCH_FIXTURES | BROWSER_FIXTURES | {"edge_playwright"}

ARGS_NAME = "edge_browser_args"  # marker and ini value: flags for the browser's command line

# Per test: its browser's flags; the next test's (None: none, or skipped); whether the next
# asks for edge_profile, and for edge_driver; on edge_profile, whether each phase failed (for
# its retention).
FLAGS = pytest.StashKey["LaunchFlags"]()
NEXT_FLAGS = pytest.StashKey["LaunchFlags | None"]()
NEXT_WANTS_PROFILE = pytest.StashKey[bool]()
NEXT_WANTS_DRIVER = pytest.StashKey[bool]()
PHASE_FAILED = pytest.StashKey[dict[str, bool]]()


def headed(config: pytest.Config) -> bool:
    """``--edge-headed`` or pytest-playwright's ``--headed``: one switch to see browsers."""
    theirs = config.pluginmanager.hasplugin("playwright") and bool(config.getoption("headed"))
    return config.stash[SETTINGS].headed or theirs


def launch_flags(config: pytest.Config, item: pytest.Item | None = None) -> LaunchFlags:
    """``item``'s flags: the ini's, then its markers' (the closest last: a browser takes a
    switch's last); without ``item`` the run's, which browsers started ahead get."""
    from .._browser.ahead import LaunchFlags

    args = [str(a) for a in config.getini(ARGS_NAME)]
    for marker in reversed(list(item.iter_markers(ARGS_NAME))) if item else ():
        args.extend(str(a) for a in marker.args)
    return LaunchFlags(not headed(config), tuple(args))


def asks(item: pytest.Item) -> bool:
    """Whether ``item`` asks for an edge fixture (as collected: not one asked on the fly)."""
    return bool(EDGE_FIXTURES.intersection(getattr(item, "fixturenames", ())))


def fixtures_used(item: pytest.Item) -> list[str]:
    """The fixtures ``item`` asked for, on the fly (``getfixturevalue``) too: only its request
    knows those, and an item has no public way to it."""
    request = getattr(item, "_request", None)
    used: list[str] | None = getattr(request, "fixturenames", None)
    return used if used is not None else list(getattr(item, "fixturenames", ()))


def flags_of(item: pytest.Item | None) -> LaunchFlags | None:
    if item is None or not BROWSER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
        return None
    return launch_flags(item.config, item)


def failed(item: pytest.Item) -> bool:
    """Without a call report the test erred in setup: failed, as pytest-playwright counts it."""
    phases = item.stash.get(PHASE_FAILED, {})
    return phases["call"] if "call" in phases else phases.get("setup", True)
