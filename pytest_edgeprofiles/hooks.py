"""Hooks a conftest can implement."""

from __future__ import annotations

from pathlib import Path

import pytest

from .chromium import Browser


@pytest.hookspec(firstresult=True)
def pytest_edgeprofiles_base_profile(
    config: pytest.Config, browser: Browser | None, folder: Path
) -> str | Path | None:
    """Make the base profile once per run, before any worker starts: log in once, clone often.

    Called on the controller (or the only process) when no base profile is configured.
    Build a user data dir in ``folder`` (an empty folder in the run's folder, removed after
    the run) and return its path, or return None for no base profile. ``browser`` is the
    browser the plugin found, or None.
    """
