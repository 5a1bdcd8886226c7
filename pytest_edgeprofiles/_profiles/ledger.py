"""A manager's ledger: the profiles it has handed out, by key, and how they come back.

Kept apart from the manager so that the manager's finalizer can remove everything without
holding on to the manager itself. A profile comes back in one of three ways: removed now
(``remove``), moved aside and deleted in the background (``move_aside``), or kept on disk
(``keep``); each gives its slot back and forgets it. It also remembers the last size measured
of each profile, for listings that may not walk every tree.
"""

from __future__ import annotations

import functools
import threading
from concurrent.futures import Future
from pathlib import Path
from time import monotonic

from .._chromium import processes
from .._system import files
from .._system.lanes import Lanes
from .._system.logs import log
from ..errors import ProfileCleanupError
from . import removal
from .making import Made
from .records import ProfileRecord, write_record
from .registry import Registry


class Handouts:
    """Profiles handed out (and being made, and prepared ahead) by one manager."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.lock = threading.RLock()
        self.profiles: dict[str, ProfileRecord] = {}
        #: Keys whose profile is being made: a second ``create_profile`` must not race it.
        self.pending: set[str] = set()
        self.prepared: dict[str, Future[Made]] = {}
        #: The last size measured (or known from a copy) of a profile handed out, by path,
        #: with when (``monotonic``): what a listing may reuse instead of a walk.
        self.sizes: dict[str, tuple[int, float]] = {}
        self.background = Lanes()
        #: Paths whose background removal failed, with the error: left to the sweep.
        self.failures: list[tuple[str, str]] = []

    def get(self, key: object) -> ProfileRecord | None:
        if not isinstance(key, str):
            return None  # never a profile of ours
        with self.lock:
            return self.profiles.get(key)

    def note_size(self, path: str, size: int, at: float | None = None) -> None:
        """Remember ``size`` as the size of the profile at ``path`` at ``at`` (now if None).

        An older figure never replaces a newer one (a walk may end after a copy that started
        later), and a profile no longer handed out is not remembered.
        """
        at = monotonic() if at is None else at
        with self.lock:
            known = self.sizes.get(path)
            handed_out = any(record.path == path for record in self.profiles.values())
            if handed_out and (known is None or known[1] <= at):
                self.sizes[path] = (size, at)

    def measure(self, path: str) -> int:
        """Walk the profile at ``path`` now: its size, remembered for listings."""
        # Stamped with the start: the walk may miss what is written while it runs.
        start = monotonic()
        size = files.tree_size(Path(path))
        self.note_size(path, size, start)
        return size

    def recent_size(self, path: str, max_age: float) -> int:
        """The size remembered for ``path`` if measured at most ``max_age`` seconds ago,
        else measured now."""
        with self.lock:
            known = self.sizes.get(path)
        if known is not None and monotonic() - known[1] <= max_age:
            return known[0]
        return self.measure(path)

    def give_back(self, key: str, record: ProfileRecord) -> None:
        """Forget ``record`` and give its slot back; a newer profile of the key stays."""
        with self.lock:
            if self.profiles.get(key) is record:
                del self.profiles[key]
            self.sizes.pop(record.path, None)
        try:
            self.registry.give_back(record.path)
        except OSError as exc:
            log.warning("could not give back the slot of %s: %s", record.path, exc)

    def remove(self, key: str, strict: bool = False) -> bool:
        """Remove the key's profile now; False (or ``ProfileCleanupError`` when ``strict``)
        when it could not be, and it is left to the sweep. The slot comes back either way."""
        record = self.get(key)
        if record is None:
            return True
        try:
            removal.remove_profile(record)
        except OSError as exc:
            log.warning(
                "could not remove profile %s of %s (left to the sweep): %s", record.path, key, exc
            )
            self.give_back(key, record)
            if strict:
                raise ProfileCleanupError(key, str(exc)) from exc
            return False
        self.give_back(key, record)
        return True

    def move_aside(self, key: str) -> None:
        """Move the key's profile aside now and delete it in the background."""
        # Tracked until its slot is given back: interrupted before, remove_all still has it.
        record = self.get(key)
        if record is None:
            return
        leftovers = removal.move_aside(record)
        self.give_back(key, record)
        self.background.submit("delete", functools.partial(self._delete, leftovers))

    def _delete(self, paths: list[Path]) -> None:
        failed = removal.delete_in_order(paths)
        if failed is not None:
            self.failures.append((str(failed[0]), str(failed[1])))

    def keep(self, key: str) -> str | None:
        """Leave the key's profile on disk, marked kept; its path, or None if it has none."""
        record = self.get(key)
        if record is None:
            return None
        # A browser the test left running would go on writing into the evidence, unbounded.
        processes.stop_browser_on(Path(record.path))
        write_record(record.kept())  # if this fails, the profile stays handed out and counted
        self.give_back(key, record)
        return record.path

    def remove_all(self) -> int:
        """Remove every profile handed out or prepared; the number handed out removed."""
        self.discard_prepared()
        with self.lock:
            keys = list(self.profiles)
        removed = sum(self.remove(key) for key in keys)
        self.background.close()
        if keys:
            log.info("removed %d of %d profiles", removed, len(keys))
        return removed

    def discard_prepared(self) -> None:
        with self.lock:
            futures = list(self.prepared.values())
            self.prepared.clear()
        for future in futures:
            try:
                record = future.result().record
            except Exception:  # its failure was undone where it happened
                continue
            try:
                removal.remove_profile(record)
            except OSError as exc:
                log.warning("could not remove the prepared profile %s: %s", record.path, exc)
