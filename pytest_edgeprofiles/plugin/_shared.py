"""The run's shared folder: made by the first process to need it, removed by the controller."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from .._options import Settings
from .._profiles.runs import RunFolder, sweep_leftovers
from .._profiles.sweep import prune_kept
from .._system.logs import log


class SharedFolder:
    """``<root>/.runs/<run id>`` for one process of the run; thread-safe."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.folder = RunFolder(Path(settings.run_dir))
        self._lock = threading.Lock()
        self._made = False

    def get(self) -> RunFolder:
        """The run folder, made (dead runs' leftovers swept) if no process has yet."""
        with self._lock:
            if not self._made:
                s = self.settings
                run, swept = RunFolder.open(Path(s.profile_root), s.run_id, s.controller_pid)
                if swept:
                    run.add_event("swept", count=swept)
                self._made = True
            return self.folder

    def note(self, kind: str, **fields: Any) -> None:
        """An event for the controller's summary, best effort: never a test's failure."""
        try:
            self.get().add_event(kind, **fields)
        except OSError as exc:  # UnsafeDirectoryError included: the fixture says it again
            log.warning("edgeprofiles: could not note %s %r: %s", kind, fields, exc)

    def sweep_again(self) -> None:
        try:
            swept = len(sweep_leftovers(Path(self.settings.profile_root)).removed)
            if swept:
                self.folder.add_event("swept", count=swept)
        except OSError as exc:  # a planted or lost root at the end: the run is over anyway
            log.warning("edgeprofiles: could not sweep %s: %s", self.settings.profile_root, exc)

    def remove(self) -> None:
        """The controller's end: older runs' kept profiles pruned (not this run's), folder gone."""
        if not self.folder.path.is_dir():
            return  # a run that used no profile made nothing, and prunes nothing
        try:
            prune_kept(Path(self.settings.profile_root), self.settings.profile_retention_count)
            self.folder.remove()
        except OSError as exc:
            log.warning("could not remove the run folder %s: %s", self.settings.run_dir, exc)
