"""The contract's limits and exceptions, and the one exception of ours that extends them."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._profiles.records import ProfileRecord


#: How many profiles a manager may have alive at once (the contract's bounds).
MAX_PROFILES_RANGE = (1, 16)


class ProfileCreationError(Exception):
    """Raised when profile creation fails"""

    def __init__(self, worker_id: str, reason: str):
        self.worker_id = worker_id
        self.reason = reason
        super().__init__(f"Profile creation failed for {worker_id}: {reason}")


class ProfileLimitError(Exception):
    """Raised when max profiles limit exceeded

    ``holders`` (an extension of the contract) lists the records of the profiles holding the
    slots, so a caller can say who they are.
    """

    def __init__(self, current_count: int, max_allowed: int):
        self.current_count = current_count
        self.max_allowed = max_allowed
        self.holders: list[ProfileRecord] = []
        super().__init__(f"Profile limit exceeded: {current_count}/{max_allowed}")


class ProfileCleanupError(Exception):
    """Raised when profile cleanup fails"""

    def __init__(self, worker_id: str, reason: str):
        self.worker_id = worker_id
        self.reason = reason
        super().__init__(f"Profile cleanup failed for {worker_id}: {reason}")


class WorkerIdTypeError(TypeError, ValueError):
    """A worker id that is not a string: a ``TypeError``, and the ``ValueError`` the contract
    names for an invalid id, so that either ``except`` catches it."""
