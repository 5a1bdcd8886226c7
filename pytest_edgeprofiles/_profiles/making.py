"""Making a profile: record and slot first (so every folder of ours has a record that leads a
sweep to it), then folder and contents; in the root, else once more in the fallback root."""

from __future__ import annotations

import contextlib
import functools
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from .._system import files
from .._system.lanes import Lanes
from .._system.logs import log
from ..errors import ProfileLimitError
from . import removal, roots
from .clone import Cloner
from .records import ProfileRecord, new_record, record_path, write_record
from .registry import Registry, RegistryFull


class NewProfile(NamedTuple):
    record: ProfileRecord
    size: int  # known from the copy, without a walk


@dataclass(eq=False)
class ProfileMaker:
    """Makes profiles under one root (and its fallback), each taking a slot of one cap."""

    root: Path
    fallback_root: Path
    registry: Registry
    max_profiles: int
    cloner: Cloner
    lanes: Lanes
    keep: bool
    run_id: str | None
    download_root: Path | None
    #: Asked once: not on every profile.
    _private_roots: set[Path] = field(default_factory=roots.private_roots, init=False)

    def make(
        self, key: str, timeout: float, prepared: bool = False, spare: bool = False
    ) -> NewProfile:
        """A filled profile; ``prepared`` takes no slot until ``claim_slot``. Raises
        ProfileLimitError, ProfileCreationError (too big), OSError (neither root, or the base)."""
        failures: list[OSError] = []
        for root in (self.root, self.fallback_root):
            if failures:
                log.warning(
                    "cannot create a profile under %s (%s); trying %s", self.root, failures[0], root
                )
                self.registry.add_rebuild_root(root)
            try:
                record = self._claim(root, key, timeout, prepared, spare)
            except roots.UnsafeDirectoryError:
                raise
            except OSError as exc:  # the root's fault: worth one try elsewhere
                failures.append(exc)
                continue
            try:
                downloads = Path(record.downloads) if record.downloads else None
                size = self.cloner.fill(key, Path(record.path), downloads)
            except OSError as exc:
                self.undo(record)
                if exc.errno not in files.DESTINATION_ERRNOS:
                    raise  # the base's fault: another root would not help
                failures.append(exc)
                continue
            except BaseException:
                self.undo(record)
                raise
            return NewProfile(record, size)
        raise failures[1] from failures[0]  # both roots failed

    def _claim(
        self, root: Path, key: str, timeout: float, prepared: bool, spare: bool
    ) -> ProfileRecord:
        """Record, slot (unless prepared), an empty folder; any ``OSError`` here is the root's."""
        roots.prepare_root(root, self._private_roots)
        record = self._new_record(root, key, prepared)
        if prepared:
            write_record(record)  # holds no slot: no browser can be using it yet
        else:
            try:
                self.claim_slot(record, timeout, spare)
            except ProfileLimitError:
                raise  # no record was written
            except BaseException:
                with contextlib.suppress(OSError):
                    record_path(record.path).unlink()  # written, yet no slot claimed
                raise
        try:
            Path(record.path).mkdir(mode=0o700)
            self.cloner.check_room(key, root)
        except BaseException:
            self.undo(record)
            raise
        return record

    def _new_record(self, root: Path, key: str, prepared: bool) -> ProfileRecord:
        name = f"{key}-{uuid.uuid4().hex[:12]}"
        return new_record(
            worker_id=key,
            path=str(root / name),
            registry=None if self.registry.path is None else str(self.registry.path),
            keep=self.keep,
            run=self.run_id,
            downloads=None if self.download_root is None else str(self.download_root / name),
            prepared=prepared,
        )

    def claim_slot(self, record: ProfileRecord, timeout: float, spare: bool = False) -> None:
        """Claim a slot, writing ``record`` under the registry's lock: no rebuild misses it.
        Raising, it leaves no slot claimed."""
        try:
            dead = self.registry.claim(
                record, self.max_profiles, timeout, lambda: write_record(record), spare=spare
            )
        except RegistryFull as full:
            self._remove_reclaimed(full.reaped)
            error = ProfileLimitError(len(full.holders), self.max_profiles)
            error.holders = full.holders
            raise error from None
        try:
            for leftover in dead:  # a killed owner's browser may still run: one over the cap
                removal.stop_reclaimed(leftover)  # seconds, if it must be killed: a Ctrl-C
        except BaseException:
            with contextlib.suppress(OSError):
                self.registry.free(record.path)
            raise
        finally:
            self._remove_reclaimed(dead)

    def _remove_reclaimed(self, records: list[ProfileRecord]) -> None:
        for leftover in records:
            self.lanes.submit("delete", functools.partial(removal.remove_reclaimed, leftover))

    def undo(self, record: ProfileRecord) -> None:
        """Remove a profile never handed out, and free its slot."""
        try:
            removal.remove_profile(record)
        except OSError as exc:
            log.warning("could not remove the partial profile %s: %s", record.path, exc)
        self.registry.free(record.path)
