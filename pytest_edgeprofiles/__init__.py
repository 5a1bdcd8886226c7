"""Temporary Microsoft Edge (and Chromium) profiles for every test and pytest-xdist worker.

The layers, the module map and the glossary are in ``docs/architecture.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import ProfileCleanupError, ProfileCreationError, ProfileLimitError

if TYPE_CHECKING:
    from ._profiles.manager import ProfileManager

__all__ = ["ProfileCleanupError", "ProfileCreationError", "ProfileLimitError", "ProfileManager"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # The plugin is imported into every pytest run, and with it this package: the manager
    # (and psutil with it) only when someone asks for it.
    if name == "ProfileManager":
        from ._profiles.manager import ProfileManager

        return ProfileManager
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
