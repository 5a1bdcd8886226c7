"""Hooks a conftest can implement."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .._chromium.installs import Browser


@pytest.hookspec(firstresult=True)
def pytest_edgeprofiles_base_profile(
    config: pytest.Config, browser: Browser | None, folder: Path
) -> str | Path | None:
    """Make the base profile once per run: log in once, clone often.

    Called when no base profile is configured, in the first process whose test needs a
    profile (never under ``--collect-only``); the others wait. Build a user data dir in
    ``folder`` (empty, removed after the run) and return its path, or None for no base.
    ``browser`` is the browser the plugin found, or None.
    """
