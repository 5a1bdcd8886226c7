"""Flags, environment and settings to start a browser on a profile yourself (see
``_browser.launch``): what a conftest uses to build a base profile or drive its own browser."""

from ._browser.launch import (
    QUIET_FLAGS,
    browser_args,
    browser_env,
    playwright_kwargs,
    selenium_options,
    selenium_service,
    short_tmpdir,
)

__all__ = [
    "QUIET_FLAGS",
    "browser_args",
    "browser_env",
    "playwright_kwargs",
    "selenium_options",
    "selenium_service",
    "short_tmpdir",
]
