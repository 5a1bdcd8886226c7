"""What we know of an Edge/Chromium user data dir, as data plus small functions.

A *user data dir* (what ``--user-data-dir`` names) holds ``Local State`` and one folder per
profile (``Default``, ``Profile 1``, ...). The browser locks the whole dir, so every concurrent
browser needs a dir of its own; that dir is what this package calls a profile.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from .files import read_json

#: Entries at the top level that only mean "a browser runs here". Copying them makes the clone
#: refuse to start (or start as a second instance of the original), so a clone never gets them.
LOCK_ENTRIES = frozenset(
    {"SingletonLock", "SingletonSocket", "SingletonCookie", "lockfile", "DevToolsActivePort"}
)

#: JSON files a browser must be able to parse; a corrupt one loses the user's settings.
JSON_FILES = ("Local State", "Default/Preferences")


@dataclass(frozen=True)
class SkipRules:
    """Which entries of a base profile a clone leaves out.

    The defaults drop lock state and caches, which the browser recreates: measured on a small
    profile, 82 % of its bytes were cache and a clone without them started faster. Everything
    else is kept, unknown Edge folders included, since several of them hold user data.
    """

    #: Names skipped only at the top level of the user data dir.
    top_level: frozenset[str] = LOCK_ENTRIES | frozenset(
        {"Crashpad", "BrowserMetrics", "component_crx_cache", "extensions_crx_cache"}
    )
    #: Directories skipped at any depth when their name ends with one of these.
    dir_suffixes: tuple[str, ...] = ("Cache",)
    #: Directories skipped at any depth when their last path parts are these.
    dir_tails: tuple[tuple[str, ...], ...] = (("Service Worker", "CacheStorage"),)

    def skips(self, parts: tuple[str, ...], is_dir: bool) -> bool:
        """Whether the entry at relative path ``parts`` is left out of a clone."""
        if len(parts) == 1 and parts[0] in self.top_level:
            return True
        if not is_dir:
            return False
        name = parts[-1]
        if name.endswith(self.dir_suffixes):
            return True
        return any(parts[-len(tail) :] == tail for tail in self.dir_tails)


DEFAULT_SKIP_RULES = SkipRules()


def json_files_ok(user_data_dir: Path) -> bool:
    """Whether every JSON file the browser needs parses, where present."""
    for rel in JSON_FILES:
        try:
            data = read_json(user_data_dir / rel)
        except FileNotFoundError:
            continue
        except (OSError, ValueError):
            return False
        if not isinstance(data, dict):
            return False
    return True


def profile_dirs(user_data_dir: Path) -> list[Path]:
    """The profile folders (those holding a ``Preferences`` file) of a user data dir."""
    try:
        entries = list(os.scandir(user_data_dir))
    except OSError:
        return []
    return [
        Path(e.path)
        for e in entries
        if e.is_dir(follow_symlinks=False) and os.path.isfile(os.path.join(e.path, "Preferences"))
    ]


def mark_clean_exit(user_data_dir: Path) -> None:
    """Turn ``profile.exit_type: Crashed`` into ``Normal`` in every profile folder.

    A clone of a base whose browser was killed would otherwise greet every test with a
    "Restore pages?" bubble. Only this untracked pref is touched.
    """
    for folder in profile_dirs(user_data_dir):
        prefs_path = folder / "Preferences"
        try:
            prefs = read_json(prefs_path)
        except (OSError, ValueError):
            continue
        profile = prefs.get("profile") if isinstance(prefs, dict) else None
        if isinstance(profile, dict) and profile.get("exit_type") == "Crashed":
            profile["exit_type"] = "Normal"
            prefs_path.write_text(json.dumps(prefs, separators=(",", ":")), encoding="utf-8")


def looks_like_profile_folder(path: Path) -> bool:
    """A profile folder (``.../User Data/Default``) given where a user data dir belongs."""
    return (path / "Preferences").is_file() and not (path / "Local State").exists()


@dataclass(frozen=True)
class LockOwner:
    """Who a ``SingletonLock`` says holds the dir: ``pid`` is None when it cannot be parsed."""

    host: str
    pid: int | None


def read_singleton_lock(user_data_dir: Path) -> LockOwner | None:
    """The owner named by the POSIX ``SingletonLock`` link, or None when there is none.

    The link's target is ``<hostname>-<pid>``. A lock that is not a link (which makes the browser
    refuse the dir) is reported with an unknown host and pid.
    """
    lock = user_data_dir / "SingletonLock"
    try:
        target = os.readlink(lock)
    except FileNotFoundError:
        return None
    except OSError:
        return LockOwner(host="", pid=None) if os.path.lexists(lock) else None
    host, _, pid = target.rpartition("-")
    return LockOwner(host=host, pid=int(pid) if pid.isdigit() else None)


def has_lock_entries(user_data_dir: Path) -> bool:
    """Whether a browser may be running on the dir (cheap: one ``lstat`` per lock entry)."""
    return any(os.path.lexists(user_data_dir / name) for name in ("SingletonLock", "lockfile"))


def this_host() -> str:
    """The host name as Chromium writes it into ``SingletonLock``."""
    return socket.gethostname()
