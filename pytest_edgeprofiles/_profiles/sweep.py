"""Sweeping a root: finding what crashed or finished processes left, for ``removal`` to remove."""

from __future__ import annotations

import contextlib
import os
import re
import stat
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from .._chromium.processes import running_since
from .._system import files
from .._system.logs import log
from .._system.platform import is_mine, this_host
from .records import SUFFIX, ProfileRecord, iter_records, owned_by_user, profile_of, record_path
from .removal import SweepResult, remove_many
from .roots import RUNS, UnsafeDirectoryError, fallback_root, refuse_planted_root

__all__ = ["SweepResult", "garbage_folders", "prune_kept", "sweep", "unreadable_records"]


def sweep(root: Path, *, dry_run: bool = False, older_than: float = 0.0) -> SweepResult:
    """Remove under ``root`` the profiles of dead owners or released to the sweep (never kept
    ones), ``garbage-*`` folders and killed writers' temp files; ``older_than`` (seconds) spares
    younger profiles."""
    now = time.time()
    doomed: list[tuple[Path, ProfileRecord | None]] = [
        (profile_of(record_file), record)
        for record_file, record in iter_records(root)
        if not record.keep
        and (record.released or record.owner() == "dead")
        and now - record.created_at >= older_than
    ]
    # Garbage of a process still finishing with it: removing it twice is harmless.
    doomed += [(garbage, None) for garbage in garbage_folders(root)]
    doomed += [(nonsense, None) for nonsense in unreadable_records(root, now - older_than)]
    result = _remove(doomed, dry_run)
    if not dry_run:
        for temp in _stale_temp_files(root):
            # Not a profile: not reported. Gone already: its writer finished after all.
            with contextlib.suppress(OSError):
                os.unlink(temp)
    return result


def unreadable_records(root: Path, written_before: float) -> list[Path]:
    """This user's unreadable owner records under ``root`` written before ``written_before``,
    each after its profile folder; none beside a symlink or another user's folder."""
    doomed: list[Path] = []
    for entry in files.entries(root):
        if not entry.name.endswith(SUFFIX) or entry.name == SUFFIX:
            continue
        record_file = Path(entry.path)
        try:
            if not (entry.is_file(follow_symlinks=False) and owned_by_user(entry)):
                continue
            if entry.stat(follow_symlinks=False).st_mtime > written_before:
                continue
            ProfileRecord.from_dict(files.read_json(record_file))
            continue  # a record: the sweep judges its owner
        except FileNotFoundError:
            continue  # removed meanwhile
        except (OSError, ValueError):
            pass
        profile = profile_of(record_file)
        try:
            st = profile.lstat()
        except FileNotFoundError:
            doomed.append(record_file)  # the record alone
            continue
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and is_mine(st):
            doomed += [profile, record_file]
    return doomed


_GARBAGE = re.compile(re.escape(files.GARBAGE_PREFIX) + r".+-[0-9a-f]{12}")


def garbage_folders(root: Path) -> list[Path]:
    """This user's ``garbage-*`` folders under ``root``: profiles moved aside to be deleted
    (one with an owner record is a profile: moving aside never renames the record)."""
    return sorted(
        Path(e.path)
        for e in files.entries(root)
        if _GARBAGE.fullmatch(e.name)
        and owned_by_user(e)
        and not os.path.lexists(record_path(Path(e.path)))
    )


#: What ``files.write_json_atomic`` writes before renaming an owner record:
#: ``.<name>.owner.<host>.<pid>.<thread>.tmp``.
_TEMP = re.compile(r"\..+\.owner\.(.+)\.(\d+)\.\d+\.tmp")


def _stale_temp_files(root: Path) -> list[Path]:
    """Our temp files whose writer died before renaming them: nothing else removes them."""
    stale = []
    for entry in files.entries(root):
        match = _TEMP.fullmatch(entry.name)
        if match is None or match[1] != this_host() or not owned_by_user(entry):
            continue  # not ours, or another host's, whose processes we cannot see
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and not running_since(int(match[2]), st.st_mtime):
            stale.append(Path(entry.path))
    return stale


def prune_kept(root: Path, keep_runs: int, *, dry_run: bool = False) -> SweepResult:
    """Remove kept profiles of all but the newest ``keep_runs`` runs: only those given up (with
    ``cleanup_on_exit=False``, profiles in use are kept too), of runs whose owners are all dead
    or this very process (at its end)."""
    if keep_runs < 0:
        raise ValueError(f"keep_runs must be >= 0, got {keep_runs}")
    runs: dict[str, list[tuple[Path, ProfileRecord]]] = defaultdict(list)
    for record_file, record in _records_of_runs_on(root):
        if record.keep and record.released and record.run is not None:
            runs[record.run].append((record_file, record))
    newest_first = sorted(
        runs.values(), key=lambda rs: max(r.created_at for _, r in rs), reverse=True
    )
    old: list[tuple[Path, ProfileRecord | None]] = [
        (profile_of(record_file), record)
        for group in newest_first[keep_runs:]
        if all(record.owner() in ("dead", "this process") for _, record in group)
        for record_file, record in group
    ]
    return _remove(old, dry_run)


def _records_of_runs_on(root: Path) -> Iterator[tuple[Path, ProfileRecord]]:
    """The records under ``root``, and those runs on ``root`` left under its fallback root
    (their registry is in ``root``'s run folders): never another root's runs' profiles."""
    yield from iter_records(root)
    fallback = fallback_root(root)
    try:
        refuse_planted_root(fallback)
    except UnsafeDirectoryError:
        return
    runs = f"{root / RUNS}{os.sep}"
    for record_file, record in iter_records(fallback):
        if record.registry is not None and record.registry.startswith(runs):
            yield record_file, record


def _remove(doomed: list[tuple[Path, ProfileRecord | None]], dry_run: bool) -> SweepResult:
    result = remove_many(doomed, dry_run)
    for path, exc in zip(result.failed, result.errors, strict=True):
        log.warning("sweep could not remove %s: %s", path, exc)
    return result
