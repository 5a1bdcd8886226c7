"""The contract's module: ``ProfileManager`` and its exceptions (see ``_profiles.manager``)."""

from ._profiles.manager import LISTED_SIZE_MAX_AGE, ProfileManager, check_worker_id
from .errors import (
    MAX_PROFILES_RANGE,
    ProfileCleanupError,
    ProfileCreationError,
    ProfileLimitError,
    WorkerIdTypeError,
)

__all__ = [
    "LISTED_SIZE_MAX_AGE",
    "MAX_PROFILES_RANGE",
    "ProfileCleanupError",
    "ProfileCreationError",
    "ProfileLimitError",
    "ProfileManager",
    "WorkerIdTypeError",
    "check_worker_id",
]
