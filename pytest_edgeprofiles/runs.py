"""A test run's shared folder: its registry and the events its workers report.

``<root>/.runs/<run id>/`` holds ``registry.json`` (the run's one cap), ``events.jsonl``
(kept profiles, cleanup failures, sweeps), so the summary survives a worker that dies, and
``clone-source/``, the run's sanitised copy of the base profile. The
folder has an owner record like a profile, naming the process that made it, so a run killed
outright is swept by the next one.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from . import files
from .chromium import DEFAULT_SKIP_RULES, mark_clean_exit
from .profile_manager import fallback_root, prepare_root, private_roots
from .records import new_record, record_path, write_record
from .sweep import SweepResult, sweep

RUNS = ".runs"
log = logging.getLogger("pytest_edgeprofiles")


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
    def create(cls, root: Path, run_id: str) -> RunFolder:
        prepare_root(root, private_roots())  # refuses a planted one
        runs = root / RUNS
        runs.mkdir(mode=0o700, exist_ok=True)
        path = runs / run_id
        write_record(new_record(worker_id="run", path=str(path), run=run_id))
        path.mkdir(mode=0o700)
        return cls(path)

    @property
    def clone_source(self) -> Path:
        """The run's sanitised snapshot of the base, which every clone is made from."""
        return self.path / "clone-source"

    def make_clone_source(self, base: Path) -> Path:
        """Copy ``base`` once per run, without caches and locks, as ``clone_source``: clones
        then read a small, hot, unchanging tree instead of the user's live one.

        Every process of the run may ask; the first copies (into a temp folder, renamed when
        complete), the others wait for it on a lock in the run folder.
        """
        target = self.clone_source
        with FileLock(f"{target}.lock", mode=0o600, thread_local=False):
            if target.is_dir():
                return target
            partial = self.path / f".clone-source.{os.getpid()}"
            partial.mkdir(mode=0o700)
            try:
                files.copy_tree(base, partial, DEFAULT_SKIP_RULES.skips)
                mark_clean_exit(partial)
                os.rename(partial, target)
            except BaseException:
                files.remove_tree(partial)
                raise
        return target

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
        files.remove_tree(self.path)
        files.remove_tree(record_path(self.path))


def refuse_planted_root(root: Path) -> None:
    """Raise ``UnsafeDirectoryError`` when ``root`` is the per-user default root (or its
    fallback) and another local user could have planted it: a symlink, or not ours. Checked
    as pytest checks ``pytest-of-<user>``; a root the user named is the user's business."""
    if root in private_roots():
        files.refuse_foreign(root)


def sweep_leftovers(root: Path) -> SweepResult:
    """Sweep dead owners' profiles under ``root`` and its fallback root, and run folders.

    A planted default root is refused (``UnsafeDirectoryError``); a planted fallback root is
    passed over with a warning: nothing is ever read or removed through it.
    """
    refuse_planted_root(root)
    result = sweep(root)
    for other in (fallback_root(root), root / RUNS):
        try:
            refuse_planted_root(other)
        except files.UnsafeDirectoryError as exc:
            log.warning("not sweeping %s: %s", other, exc)
            continue
        more = sweep(other)
        if other != root / RUNS:
            result.removed += more.removed
            result.freed_bytes += more.freed_bytes
        result.failed += more.failed
    return result
