"""The slot registry: how many profiles are alive, shared by every process that names one file.

The file is JSON, changed read-modify-write under a lock on a file beside it (without a file,
it lives in memory). Writes go in place, one ``write`` padded to the old length, not a temp file
renamed over it (~0.3 ms on ext4, half a slot's cost); a write torn by a kill does not parse
and is rebuilt from the owner records like any corrupt registry, so the cap is never lifted.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .._system import files
from .._system.locks import FileMutex
from .._system.logs import log
from .._system.waiting import Backoff
from .records import ProfileRecord, iter_records, left_nothing

#: First and largest pause between looks for a free slot.
SLOT_POLL = (0.0005, 0.01)


class RegistryFull(Exception):
    """No slot is free; ``holders`` hold them, ``reaped`` were dead owners' reclaimed on the way."""

    def __init__(
        self,
        holders: list[ProfileRecord],
        max_profiles: int,
        reaped: list[ProfileRecord] | None = None,
    ) -> None:
        self.holders = holders
        self.max_profiles = max_profiles
        self.reaped = reaped or []
        super().__init__(f"{len(holders)}/{max_profiles} slots claimed")


def _empty() -> dict[str, Any]:
    return {"version": 1, "entries": {}, "stats": {"created": 0, "peak": 0}}


class Registry:
    """Slots for profiles, capped per call by the caller's ``max_profiles``."""

    def __init__(self, path: Path | None, rebuild_roots: Sequence[Path] = ()) -> None:
        self.path = path
        self._rebuild_roots = list(rebuild_roots)
        self._mutex = threading.Lock()
        self._memory = _empty()
        self._file_lock = FileMutex(Path(f"{path}.lock")) if path is not None else None
        self._seen = False
        self._roots_seen: set[str] = set()
        self._free_later: set[str] = set()  # slots freed with the next change (``free``)

    def add_rebuild_root(self, root: Path) -> None:
        """Also look under ``root`` for owner records when the file must be rebuilt."""
        if root not in self._rebuild_roots:
            self._rebuild_roots.append(root)

    def claim(
        self,
        record: ProfileRecord,
        max_profiles: int,
        timeout: float = 0.0,
        on_claim: Callable[[], None] | None = None,
        *,
        spare: bool = False,
    ) -> list[ProfileRecord]:
        """Claim a slot for ``record``, waiting up to ``timeout`` s; ``RegistryFull`` if none.
        Returns the dead owners' records whose slots were reclaimed: theirs to remove.

        ``on_claim`` runs under the lock before the slot is claimed (if it raises, none is): the
        owner record written there keeps the slot in a rebuilt registry. A ``spare`` slot (for
        work started ahead) is claimed at once or not at all, never one a waiting claimant
        could have.
        """
        # Polling: a slot freed in another process sends us no event.
        backoff = Backoff(SLOT_POLL[0], most=SLOT_POLL[1], timeout=timeout)
        reaped: list[ProfileRecord] = []
        waiting = False
        try:
            while True:
                with self._state() as state:
                    entries = state["entries"]
                    if len(entries) >= max_profiles:
                        reaped += self._reap(entries)
                    if self._has_room(state, max_profiles, spare):
                        if on_claim is not None:
                            on_claim()
                        entries[record.path] = record.to_dict()
                        state.get("waiting", {}).pop(record.path, None)
                        waiting = False
                        stats = state["stats"]
                        stats["created"] += 1
                        stats["peak"] = max(stats["peak"], len(entries))
                        return reaped
                    holders = [ProfileRecord.from_dict(e) for e in entries.values()]
                    may_wait = not spare and backoff.remaining() > 0
                    if may_wait:
                        # Again on every look: a registry rebuilt meanwhile forgot us.
                        state.setdefault("waiting", {})[record.path] = record.to_dict()
                        waiting = True
                if not may_wait or not backoff.pause():
                    raise RegistryFull(holders, max_profiles, reaped)
        finally:
            if waiting:  # timed out or interrupted: nobody waits under this name any more
                with contextlib.suppress(OSError), self._state() as state:
                    state.get("waiting", {}).pop(record.path, None)

    @staticmethod
    def _has_room(state: dict[str, Any], max_profiles: int, spare: bool) -> bool:
        free = max_profiles - len(state["entries"])
        if not spare:
            return free > 0
        waiters = state.get("waiting", {})
        for key, entry in list(waiters.items()):
            try:
                alive = ProfileRecord.from_dict(entry).owner_alive()
            except ValueError:
                alive = False
            if not alive:  # a waiter killed while it waited waits no more
                del waiters[key]
        return free > len(waiters)

    def free(self, path: str, later: bool = False) -> None:
        """Free the slot of the profile at ``path`` (nothing if it holds none). ``later``: with
        this registry's next change (the next claim), not a write of its own; only for a
        profile whose folder and record are gone, which a claimant at the cap reclaims
        meanwhile. ``flush`` frees it at the latest."""
        if later:
            with self._mutex:
                self._free_later.add(path)
            return
        with self._state() as state:
            state["entries"].pop(path, None)

    def flush(self) -> None:
        """Free the slots ``free(later=True)`` left for the next change."""
        if self._free_later:
            with self._state():
                pass

    def holders(self) -> list[ProfileRecord]:
        with self._state(write=False) as state:
            return [ProfileRecord.from_dict(e) for e in state["entries"].values()]

    def stats(self) -> dict[str, int]:
        """Profiles created through this registry and the peak alive at once."""
        with self._state(write=False) as state:
            return dict(state["stats"])

    @staticmethod
    def _reap(entries: dict[str, Any]) -> list[ProfileRecord]:
        dead = []
        for key, entry in list(entries.items()):
            record = ProfileRecord.from_dict(entry)
            if not record.owner_alive():
                log.info("reclaiming the slot of %s: its owner %s is gone", record.path, record.pid)
                del entries[key]
                dead.append(record)
            elif left_nothing(record.path):
                # Removed, but its slot never freed (the registry could not be written).
                log.info("reclaiming the slot of %s: the profile is gone", record.path)
                del entries[key]
        return dead

    @contextmanager
    def _state(self, write: bool = True) -> Iterator[dict[str, Any]]:
        with self._mutex:
            if self._file_lock is None or self.path is None:
                self._apply_frees(self._memory)
                self._free_later.clear()  # out of the one state there is
                yield self._memory
                return
            try:
                if not self._seen:
                    # Only at first: later a missing folder was removed on purpose (a run ended).
                    files.make_dirs(self.path.parent)
                self._file_lock.acquire()
            except OSError as exc:
                raise _registry_error(self.path, "lock", exc) from exc
            try:
                state = self._load(self.path)
                before = repr(state)
                self._apply_frees(state)
                yield state
                if write and repr(state) != before:
                    _write(self.path, state)
                    self._seen = True
                if write:
                    self._free_later.clear()  # written: a failed change leaves them due
            finally:
                self._file_lock.release()

    def _apply_frees(self, state: dict[str, Any]) -> None:
        """Free in ``state`` the slots left for the next change (a read only hides them)."""
        for path in self._free_later:
            state["entries"].pop(path, None)

    def _load(self, path: Path) -> dict[str, Any]:
        try:
            state = files.read_json(path)
            _check_shape(state)
            dropped = _drop_nonsense(path, state["entries"])
            self._seen = True
            # Roots of other managers sharing the file: a rebuild must count their profiles.
            self._roots_seen.update(os.path.dirname(p) for p in state["entries"])
            if dropped:
                # A dropped entry may be a live profile's: its owner record still holds the slot.
                state["entries"] = {**self._rebuild(path)["entries"], **state["entries"]}
                _write(path, state)
            return state  # type: ignore[no-any-return]
        except FileNotFoundError:
            if self._seen:
                log.warning("registry %s vanished; rebuilding it from owner records", path)
        except (OSError, ValueError) as exc:
            log.warning(
                "registry %s is unreadable (%s); rebuilding it from owner records", path, exc
            )
        return self._rebuild(path)

    def _rebuild(self, path: Path) -> dict[str, Any]:
        state = _empty()
        roots = dict.fromkeys([*self._rebuild_roots, *map(Path, sorted(self._roots_seen))])
        for root in roots:
            for _, record in iter_records(root):
                if record.registry == str(path) and record.holds_slot() and record.owner_alive():
                    state["entries"][record.path] = record.to_dict()
        _write(path, state)
        return state


def _write(path: Path, state: dict[str, Any]) -> None:
    """Write the registry (an error names it); a read-only one is replaced: the cap must count."""
    try:
        _write_in_place(path, state)
    except PermissionError as exc:
        log.warning("registry %s is read-only (%s); replacing it", path, exc.strerror)
        try:
            files.write_json_atomic(path, state)
        except OSError as again:
            raise _registry_error(path, "write", again) from exc
    except OSError as exc:
        raise _registry_error(path, "write", exc) from exc


def _registry_error(path: Path, action: str, exc: OSError) -> OSError:
    """``exc`` (same type and errno) naming the registry and the action."""
    reason = exc.strerror or str(exc)
    return type(exc)(exc.errno, f"cannot {action} the profile registry ({reason})", str(path))


def _write_in_place(path: Path, state: dict[str, Any]) -> None:
    data = json.dumps(state, separators=(",", ":")).encode()
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        old_size = os.fstat(fd).st_size
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, data.ljust(old_size))  # one write: old text or new, never half a line
        if old_size > len(data):
            os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


def _check_shape(state: Any) -> None:
    if not isinstance(state, dict):
        raise ValueError("not a JSON object")
    entries, stats = state.get("entries"), state.get("stats")
    if not isinstance(entries, dict) or not isinstance(stats, dict):
        raise ValueError("no entries or stats")
    if not all(isinstance(stats.get(k), int) for k in ("created", "peak")):
        raise ValueError("bad stats")
    if not isinstance(state.get("waiting", {}), dict):
        raise ValueError("bad waiting list")


def _drop_nonsense(path: Path, entries: dict[str, Any]) -> bool:
    """Drop (with a warning) entries that are no profile record; whether any was. Not the whole
    file: a rebuild from only the roots we know would lose other roots' slots sharing it."""
    dropped = []
    for key, entry in list(entries.items()):
        try:
            record = ProfileRecord.from_dict(entry)
            if record.path != key:
                raise ValueError(f"it names the profile {record.path!r}")
        except ValueError as exc:
            dropped.append(f"{key!r} ({exc})")
            del entries[key]
    if dropped:
        log.warning(
            "registry %s: dropping entries that are no profile record, %s; rebuilding it from "
            "owner records",
            path,
            ", ".join(dropped),
        )
    return bool(dropped)
