"""Every way a profile leaves the disk, in one order: stop its browser, remove the folder, the
download folder outside it, and the owner record last, so a half-removed profile is found again.
"""

from __future__ import annotations

import contextlib
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .._chromium import processes
from .._system import files
from .._system.logs import log
from .._system.platform import is_mine
from .records import ProfileRecord, owned_paths, read_record, record_path, write_record


@dataclass
class SweepResult:
    """What a sweep removed (or, on a dry run, would remove)."""

    removed: list[Path] = field(default_factory=list)
    failed: list[Path] = field(default_factory=list)
    freed_bytes: int = 0
    #: The error of each path in ``failed``, in the same order.
    errors: list[OSError] = field(default_factory=list)


def remove(path: Path, record: ProfileRecord | None, owner_gone: bool = False) -> None:
    """Remove one profile, in the order above; ``record`` None is garbage, just removed."""
    if record is None:
        files.remove_tree(path)
        return
    processes.stop_browser_on(path, unlocked_too=owner_gone)
    for leftover in owned_paths(path, record):
        files.remove_tree(leftover)


def remove_profile(record: ProfileRecord) -> None:
    """Remove ``record``'s profile; on failure, mark the record for the sweep and raise."""
    try:
        remove(Path(record.path), record)
    except OSError:
        with contextlib.suppress(OSError):
            write_record(record.released_to_sweep())
        raise


def remove_many(
    doomed: Iterable[tuple[Path, ProfileRecord | None]], dry_run: bool = False
) -> SweepResult:
    """Remove each profile of an owner that is gone (or garbage, no record), counting what it
    frees; failures are listed with their errors, for the caller to report."""
    result = SweepResult()
    for path, record in doomed:
        size = files.tree_size(path)
        if not dry_run:
            try:
                remove(path, record, owner_gone=True)
            except OSError as exc:
                result.failed.append(path)
                result.errors.append(exc)
                continue
        result.removed.append(path)
        result.freed_bytes += size
    return result


def move_aside(record: ProfileRecord) -> list[Path]:
    """Stop the profile's browser and rename it ``garbage-<name>``; return what remains to
    delete, in order. The record goes now if the sweep finds the rest by name, else it is
    marked for the sweep and comes last."""
    path = Path(record.path)
    leftovers = owned_paths(path, record)
    try:
        processes.stop_browser_on(path)
        leftovers[0] = files.move_aside(path)
    except FileNotFoundError:
        leftovers.pop(0)
    except OSError as exc:
        log.info("could not move %s aside (%s); removing it in place", path, exc)
    record_file = leftovers.pop()
    if any(not p.name.startswith(files.GARBAGE_PREFIX) for p in leftovers):
        with contextlib.suppress(OSError):
            write_record(record.released_to_sweep())
        return [*leftovers, record_file]
    try:
        files.remove_tree(record_file)
    except OSError as exc:
        log.warning("could not remove the owner record %s: %s", record_file, exc)
    return leftovers


def delete_in_order(paths: list[Path]) -> tuple[Path, OSError] | None:
    """Delete ``paths`` in order; return the first that fails, with its error (the rest stays)."""
    for path in paths:
        try:
            files.remove_tree(path)
        except OSError as exc:
            log.warning("could not remove %s (left to the sweep): %s", path, exc)
            return path, exc
    return None


def remove_reclaimed(record: ProfileRecord) -> None:
    """Remove the profile of a dead owner whose slot a registry reclaimed (``reclaimable``)."""
    on_disk = _reclaimable(record)
    if on_disk is None:
        return
    try:
        remove(Path(on_disk.path), on_disk, owner_gone=True)
    except OSError as exc:
        log.warning("could not remove %s of a dead owner (left to the sweep): %s", record.path, exc)


def stop_reclaimed(record: ProfileRecord) -> None:
    """Stop a browser the dead owner left on a reclaimed profile, before its slot serves a new
    one: else, for a moment, one browser more than the cap would run."""
    on_disk = _reclaimable(record)
    if on_disk is not None:
        processes.stop_browser_on(Path(on_disk.path), unlocked_too=True)


def _reclaimable(record: ProfileRecord) -> ProfileRecord | None:
    """The owner record on disk of a reclaimed profile, only if it is ours (a shared registry
    could name any folder), names that owner and is not kept."""
    record_file = record_path(record.path)
    try:
        st = record_file.lstat()
    except OSError:
        return None
    if not (stat.S_ISREG(st.st_mode) and is_mine(st)):
        return None
    on_disk = read_record(record_file)
    if on_disk is None or on_disk.keep or _identity(on_disk) != _identity(record):
        return None
    return on_disk  # its path is the record file's profile: the identity names it


def _identity(record: ProfileRecord) -> tuple[str, int, float, str]:
    return record.path, record.pid, record.create_time, record.host
