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

    Called when no base profile is configured, once per run, in the first process (the only
    one, or an xdist worker) whose test needs a profile; the others wait for it. Never
    called by a run that needs no profile, nor by ``--collect-only``. Build a user data dir
    in ``folder`` (an empty folder in the run's folder, removed after the run) and return
    its path, or return None for no base profile. ``browser`` is the browser the plugin
    found, or None.
    """
