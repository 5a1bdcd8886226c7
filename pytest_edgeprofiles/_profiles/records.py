"""Owner records: who made a profile, the source of truth for registries and sweeps.

``<root>/<name>.owner`` is written before the folder ``<root>/<name>`` and removed after it, so
a folder of ours never exists without one, wherever a process is killed.
"""

from __future__ import annotations

import math
import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from .._chromium import processes
from .._system import files
from .._system.logs import log
from .._system.platform import is_mine, this_host

SUFFIX = ".owner"


@dataclass(frozen=True)
class ProfileRecord:
    """A profile and the process that owns it."""

    worker_id: str
    path: str
    pid: int
    #: The owner's start time, as ``processes.start_time`` gives it (not wall-clock time).
    create_time: float
    host: str
    created_at: float
    registry: str | None = None
    #: No sweep may remove it (kept after a failure, or its manager keeps everything).
    keep: bool = False
    #: It holds no slot any more: kept, or its removal failed and it waits for the sweep.
    released: bool = False
    run: str | None = None
    #: The profile's download folder when it lies outside the profile.
    downloads: str | None = None
    #: Made ahead of need: no slot, not handed out, yet its owner's (a sweep spares it).
    prepared: bool = False
    #: The owner's pid namespace (``processes.pid_namespace``); None in records of old.
    pid_ns: int | None = None
    #: The boot the owner ran in (``processes.boot_id``); None in records of old.
    boot_id: str | None = None

    @classmethod
    def from_dict(cls, data: Any) -> ProfileRecord:
        """Rebuild a record; ``ValueError`` when ``data`` is not one."""
        if not isinstance(data, dict):
            raise ValueError(f"not a profile record: {data!r}")
        try:
            record = cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})
        except TypeError as exc:
            raise ValueError(f"not a profile record: {data!r}") from exc
        # A senseless value (a bug, a hand edit, a plant) makes it no record, never an error
        # further on (psutil raises on a negative pid) nor a live owner (pid 0 is the kernel's).
        for name, (makes_sense, wanted) in _FIELDS.items():
            value = getattr(record, name)
            if not makes_sense(value):
                raise ValueError(f"not a profile record: {name} is {value!r}, not {wanted}")
        return record

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))  # every field is plain: asdict's deep copy costs a test 0.1 ms

    def kept(self) -> ProfileRecord:
        return replace(self, keep=True, released=True)

    def released_to_sweep(self) -> ProfileRecord:
        return replace(self, released=True)

    def activated(self) -> ProfileRecord:
        return replace(self, prepared=False)

    def holds_slot(self) -> bool:
        return not (self.released or self.prepared)

    def owner(self) -> str:
        """``this process``, ``alive``, ``dead`` or ``unseen`` (another host's: never dead).

        One in another pid namespace of this boot is taken for alive; one of an earlier boot is
        dead. Old records without namespace or boot are judged by host, pid and start time.
        """
        if self.host != this_host():
            return "unseen"
        this_boot = processes.boot_id()
        if self.boot_id is not None and this_boot is not None and self.boot_id != this_boot:
            return "dead"
        if (self.pid, self.create_time) == processes.own_identity():
            return "this process"
        ours = processes.pid_namespace()
        if self.pid_ns is not None and ours is not None and self.pid_ns != ours:
            return "alive"
        return "alive" if processes.process_alive(self.pid, self.create_time) else "dead"

    def owner_alive(self) -> bool:
        """Whether the owner may still run: anything but ``dead`` (see :meth:`owner`)."""
        return self.owner() != "dead"


def new_record(
    *, worker_id: str, path: str, owner: int | None = None, **rest: Any
) -> ProfileRecord:
    """A record of a profile at ``path`` owned by this process (or by ``owner``, a live parent
    here), its whole identity filled in; ``rest`` sets the other fields."""
    if owner is None:
        pid, create_time = processes.own_identity()
    else:
        pid, create_time = owner, processes.start_time(owner)
    return ProfileRecord(
        worker_id=worker_id,
        path=path,
        pid=pid,
        create_time=create_time,
        host=this_host(),
        created_at=time.time(),
        pid_ns=processes.pid_namespace(),
        boot_id=processes.boot_id(),
        **rest,
    )


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _namespace(value: object) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool) and value > 0)


_TEXT_OR_NONE = (lambda v: v is None or isinstance(v, str), "a string or null")
_FLAG = (lambda v: isinstance(v, bool), "true or false")
#: What each field of a record must be, checked and named by ``ProfileRecord.from_dict``.
_FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "worker_id": (lambda v: isinstance(v, str) and v != "", "a non-empty string"),
    "path": (lambda v: isinstance(v, str) and os.path.isabs(v), "an absolute path"),
    "pid": (processes.valid_pid, "a pid (a positive int within the OS's range)"),
    "create_time": (_finite, "a finite number"),
    "host": (lambda v: isinstance(v, str), "a string"),
    "created_at": (_finite, "a finite number"),
    "registry": _TEXT_OR_NONE,
    "keep": _FLAG,
    "released": _FLAG,
    "run": _TEXT_OR_NONE,
    "downloads": _TEXT_OR_NONE,
    "prepared": _FLAG,
    "pid_ns": (_namespace, "a positive int or null"),
    "boot_id": _TEXT_OR_NONE,
}


def record_path(profile: str | Path) -> Path:
    return Path(f"{os.fspath(profile)}{SUFFIX}")


def left_nothing(profile: str) -> bool:
    """Neither the folder nor its record is left under ``profile``'s name: a slot of such a
    profile is anybody's to reclaim (``Registry``), and so may wait to be freed."""
    return not os.path.lexists(profile) and not os.path.lexists(record_path(profile))


def write_record(record: ProfileRecord) -> None:
    files.write_json_atomic(record_path(record.path), record.to_dict())


def read_record(path: Path) -> ProfileRecord | None:
    """The record at ``path`` (a ``.owner`` file), or None when it is missing or unreadable."""
    try:
        return ProfileRecord.from_dict(files.read_json(path))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable owner record %s: %s", path, exc)
        return None


def profile_of(record_file: Path) -> Path:
    """The profile a record file stands beside (never trust the path written inside it)."""
    return record_file.with_name(record_file.name[: -len(SUFFIX)])


def owned_paths(profile: Path, record: ProfileRecord) -> list[Path]:
    """What removing ``profile`` removes: the folder, a download folder outside it (only one
    named like the profile: a record is never trusted further), and the record last."""
    paths = [profile]
    if record.downloads and _ours(Path(record.downloads), profile.name):
        paths.append(Path(record.downloads))
    paths.append(record_path(profile))
    return paths


def _ours(folder: Path, name: str) -> bool:
    try:
        st = folder.lstat()
    except OSError:
        return False
    return folder.name == name and stat.S_ISDIR(st.st_mode) and is_mine(st)


def owned_by_user(entry: os.DirEntry[str]) -> bool:
    try:
        return is_mine(entry.stat(follow_symlinks=False))
    except OSError:
        return False


def iter_records(root: Path) -> Iterator[tuple[Path, ProfileRecord]]:
    """Each readable owner record directly under ``root`` with its file's path; other users'
    are ignored (in a shared root, anyone can plant a record naming a folder of ours)."""
    for e in files.entries(root):
        if not e.name.endswith(SUFFIX) or e.name == SUFFIX or not e.is_file(follow_symlinks=False):
            continue
        path = root / e.name
        record = read_record(path) if owned_by_user(e) else None
        if record is not None:
            yield path, record
