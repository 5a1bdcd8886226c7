"""Temporary Microsoft Edge (and Chromium) profiles for every test and pytest-xdist worker."""

from .profile_manager import (
    ProfileCleanupError,
    ProfileCreationError,
    ProfileLimitError,
    ProfileManager,
)

__all__ = [
    "ProfileCleanupError",
    "ProfileCreationError",
    "ProfileLimitError",
    "ProfileManager",
]
__version__ = "0.1.0"
