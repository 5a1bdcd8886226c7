"""A manager's ledger: its profiles handed out, by key, their last sizes, and how each comes
back (removed, moved aside, kept). Apart from the manager so its finalizer need not hold it."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from time import monotonic

from .._chromium import processes
from .._system import files
from .._system.lanes import Lanes
from .._system.logs import log
from ..errors import ProfileCleanupError
from . import removal
from .making import NewProfile
from .records import ProfileRecord, left_nothing, write_record
from .registry import Registry


class Ledger:
    """Profiles handed out (and being made, and made ahead) by one manager; thread-safe."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.lanes = Lanes()
        self.failures: list[tuple[str, str]] = []  # (path, error): deletions left to the sweep
        self._lock = threading.RLock()
        self._out: dict[str, ProfileRecord] = {}
        self._making: set[str] = set()
        self._ahead: dict[str, Future[NewProfile]] = {}
        self._sizes: dict[str, tuple[int, float]] = {}  # (size, when): listings may reuse it

    def get(self, key: object) -> ProfileRecord | None:
        if not isinstance(key, str):
            return None  # never a profile of ours
        with self._lock:
            return self._out.get(key)

    def handed_out(self) -> dict[str, ProfileRecord]:
        with self._lock:
            return dict(self._out)

    @contextmanager
    def making(self, key: str) -> Iterator[None]:
        """While the key's profile is made: a second one must not race it."""
        with self._lock:
            if key in self._out or key in self._making:
                held = self._out.get(key)
                where = f" at {held.path}" if held else ""
                raise ValueError(f"worker {key!r} already has a profile{where}")
            self._making.add(key)
        try:
            yield
        finally:
            with self._lock:
                self._making.discard(key)

    def hand_out(self, key: str, new: NewProfile) -> None:
        with self._lock:
            self._out[key] = new.record
            self.note_size(new.record.path, new.size)  # the copy's count: no browser wrote yet

    def make_ahead(self, key: str, make: Callable[[], NewProfile]) -> None:
        with self._lock:
            if key not in self._ahead:
                self._ahead[key] = self.lanes.submit("ahead", make)

    def take_ahead(self, key: str) -> Future[NewProfile] | None:
        with self._lock:
            return self._ahead.pop(key, None)

    def put_back_ahead(self, key: str, made: Future[NewProfile]) -> None:
        """``made`` is the key's clone made ahead again, unless another was asked for meanwhile:
        then it is removed once made, or nobody would (its record names a live owner)."""
        with self._lock:
            if self._ahead.setdefault(key, made) is made:
                return
        made.add_done_callback(_remove_made)

    def note_size(self, path: str, size: int, at: float | None = None) -> None:
        """An older figure never replaces a newer; a profile not handed out is not remembered."""
        at = monotonic() if at is None else at
        with self._lock:
            known = self._sizes.get(path)
            handed_out = any(record.path == path for record in self._out.values())
            if handed_out and (known is None or known[1] <= at):
                self._sizes[path] = (size, at)

    def forget_size(self, path: str) -> None:
        with self._lock:
            self._sizes.pop(path, None)

    def measure(self, path: str) -> int:
        start = monotonic()  # the walk may miss what is written while it runs
        size = files.tree_size(Path(path))
        self.note_size(path, size, start)
        return size

    def recent_size(self, path: str, max_age: float) -> int:
        """The size remembered if at most ``max_age`` s old, else measured now."""
        with self._lock:
            known = self._sizes.get(path)
        if known is not None and monotonic() - known[1] <= max_age:
            return known[0]
        return self.measure(path)

    def free(self, key: str, record: ProfileRecord, later: bool = False) -> None:
        """Forget ``record``, free its slot (``later``: see ``Registry.free``); a newer
        profile of the key stays."""
        with self._lock:
            if self._out.get(key) is record:
                del self._out[key]
            self._sizes.pop(record.path, None)
        try:
            self.registry.free(record.path, later=later)
        except OSError as exc:
            log.warning("could not free the slot of %s: %s", record.path, exc)

    def remove(self, key: str, strict: bool = False) -> bool:
        """False (``ProfileCleanupError`` if ``strict``) when left to the sweep; slot freed."""
        record = self.get(key)
        if record is None:
            return True
        try:
            removal.remove_profile(record)
        except OSError as exc:
            log.warning(
                "could not remove profile %s of %s (left to the sweep): %s", record.path, key, exc
            )
            self.free(key, record)
            if strict:
                raise ProfileCleanupError(key, str(exc)) from exc
            return False
        self.free(key, record)
        return True

    def move_aside(self, key: str, free_slot_later: bool = False) -> None:
        """Moved aside now, deleted in a lane; handed out until then, for ``remove_all``.
        ``free_slot_later``: its slot is freed with the next claim, if nothing is left under
        its name (then a claimant at the cap reclaims it meanwhile)."""
        record = self.get(key)
        if record is None:
            return
        leftovers = removal.move_aside(record)
        self.free(key, record, later=free_slot_later and left_nothing(record.path))
        self.lanes.submit("delete", functools.partial(self._delete, leftovers))

    def _delete(self, paths: list[Path]) -> None:
        failed = removal.delete_in_order(paths)
        if failed is not None:
            self.failures.append((str(failed[0]), str(failed[1])))

    def free_released_slots(self) -> None:
        try:
            self.registry.flush()
        except OSError as exc:  # still due: the next change, or a claimant at the cap, frees them
            log.warning("could not free the slots of released profiles: %s", exc)

    def keep(self, key: str) -> str | None:
        """Left on disk, marked kept: its path, or None."""
        record = self.get(key)
        if record is None:
            return None
        # A browser the test left running would go on writing into the evidence, unbounded.
        processes.stop_browser_on(Path(record.path))
        write_record(record.kept())  # if this fails, the profile stays handed out and counted
        self.free(key, record)
        return record.path

    def remove_all(self) -> int:
        """Remove every profile handed out or made ahead; how many handed out were removed."""
        self.discard_ahead()
        with self._lock:
            keys = list(self._out)
        removed = sum(self.remove(key) for key in keys)
        self.free_released_slots()
        self.lanes.close()
        if keys:
            log.info("removed %d of %d profiles", removed, len(keys))
        return removed

    def discard_ahead(self) -> None:
        with self._lock:
            futures = list(self._ahead.values())
            self._ahead.clear()
        for future in futures:
            _remove_made(future)  # waits until it is made


def _remove_made(made: Future[NewProfile]) -> None:
    """Remove a clone made ahead that nobody will take, once it is made."""
    try:
        record = made.result().record
    except Exception:  # its failure was undone where it happened
        return
    try:
        removal.remove_profile(record)
    except OSError as exc:
        log.warning("could not remove the profile made ahead %s: %s", record.path, exc)
