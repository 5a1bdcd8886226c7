"""A test run's shared folder ``<root>/.runs/<run id>/``, made when a test first needs a profile.

It holds ``registry.json`` (the run's one cap), ``events.jsonl`` (so the summary survives a dead
worker) and ``clone-source/``; its owner record names the controller, so a killed run is swept.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._system import files
from .._system.locks import FileMutex
from .._system.logs import log
from . import clone
from .records import new_record, record_path, write_record
from .roots import (
    RUNS,
    UnsafeDirectoryError,
    fallback_root,
    make_private_dir,
    prepare_root,
    refuse_foreign,
    refuse_planted_root,
)
from .sweep import SweepResult, sweep


@dataclass(frozen=True)
class RunFolder:
    path: Path

    @property
    def registry_path(self) -> Path:
        return self.path / "registry.json"

    @property
    def events_path(self) -> Path:
        return self.path / "events.jsonl"

    @classmethod
    def create(cls, root: Path, run_id: str, owner: int | None = None) -> RunFolder:
        """Make the run's folder under ``root``, its owner record (``owner``'s, else ours) first."""
        prepare_root(root)  # refuses a planted one
        runs = root / RUNS
        # In a shared root, another user could make it first and swap the run's folder.
        make_private_dir(runs)
        path = runs / run_id
        write_record(new_record(worker_id="run", path=str(path), run=run_id, owner=owner))
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            raise  # another process of the run made it: the record is as much its own
        except BaseException:
            files.remove_tree(record_path(path))  # no record without its folder either
            raise
        return cls(path)

    @classmethod
    def open(cls, root: Path, run_id: str, owner: int) -> tuple[RunFolder, int]:
        """The run's folder and how many leftovers were swept: only the process whose ``mkdir``
        wins the race makes it and sweeps (racers all write the same owner record)."""
        path = root / RUNS / run_id
        if path.is_dir():
            return cls(path), 0
        try:
            run = cls.create(root, run_id, owner)
        except FileExistsError:
            if not path.is_dir():
                raise
            return cls(path), 0
        return run, len(sweep_leftovers(root).removed)

    @property
    def clone_source(self) -> Path:
        """The run's sanitised snapshot of the base, which every clone is made from."""
        return self.path / "clone-source"

    def make_clone_source(self, base: Path, owner: int | None = None) -> Path:
        """Copy ``base`` once per run (the first caller; others wait on a lock), without caches
        and locks, so clones read a small unchanging tree; return where it is: under the
        fallback root if the root's disk is full, in a run folder that is ``owner``'s."""
        spare = self._spare()
        with FileMutex(Path(f"{self.clone_source}.lock")):
            for made in (self.clone_source, spare.clone_source):
                if made.is_dir():
                    return made
            try:
                return self._snapshot(base)
            except OSError as exc:
                if exc.errno not in files.DESTINATION_ERRNOS:
                    raise
                log.warning("the base's snapshot does not fit under %s (%s)", self.path, exc)
            if not spare.path.is_dir():
                spare = RunFolder.create(spare.path.parent.parent, self.path.name, owner)
            return spare._snapshot(base)

    def _snapshot(self, base: Path) -> Path:
        partial = self.path / f".clone-source.{os.getpid()}"
        partial.mkdir(mode=0o700)
        try:
            clone.snapshot(base, partial)
            os.rename(partial, self.clone_source)
        except BaseException:
            files.remove_tree(partial)
            raise
        return self.clone_source

    def _spare(self) -> RunFolder:
        """This run's folder under the fallback root of its root (made only when needed)."""
        root = self.path.parent.parent
        return RunFolder(fallback_root(root) / RUNS / self.path.name)

    def add_event(self, kind: str, **data: Any) -> None:
        """Append one event; a line this short is written whole by one ``write``."""
        line = json.dumps({"kind": kind, **data}) + "\n"
        fd = os.open(self.events_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)

    def events(self) -> list[dict[str, Any]]:
        try:
            text = self.events_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        events = []
        for line in text.splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
        return events

    def remove(self) -> None:
        """Remove the run folder, and its spare under the fallback root if one was made: each,
        whatever the other did (the first error is raised after)."""
        errors: list[OSError] = []
        for folder in (self.path, self._spare().path):
            try:
                files.remove_tree(folder)
                files.remove_tree(record_path(folder))
            except OSError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


def sweep_leftovers(root: Path) -> SweepResult:
    """Sweep dead owners' profiles under ``root`` and its fallback root, and the run folders
    of both (a snapshot that did not fit under ``root`` went to the fallback's). A planted
    default root is refused (``UnsafeDirectoryError``); a planted fallback root or ``.runs``
    is passed over with a warning."""
    refuse_planted_root(root)
    result = sweep(root)
    fallback = fallback_root(root)
    for other, refuse in (
        (fallback, refuse_planted_root),
        (root / RUNS, refuse_foreign),
        (fallback / RUNS, _refuse_in_fallback),
    ):
        try:
            refuse(other)
        except UnsafeDirectoryError as exc:
            log.warning("not sweeping %s: %s", other, exc)
            continue
        more = sweep(other)
        if other.name != RUNS:  # profiles, not run folders, are what the summary counts
            result.removed += more.removed
            result.freed_bytes += more.freed_bytes
        result.failed += more.failed
    return result


def _refuse_in_fallback(runs: Path) -> None:
    """The fallback root's run folders: refused when planted, or in a planted fallback root."""
    refuse_planted_root(runs.parent)
    refuse_foreign(runs)
