"""What we know of an Edge/Chromium user data dir (``--user-data-dir``): the browser locks it
whole, so every concurrent browser needs its own, and that is what we call a profile."""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .._system import files, platform
from .._system.files import read_json
from .._system.platform import is_mine

#: The entry a running browser locks its dir with, as doctor names it.
LOCK_NAME = "lockfile" if platform.WINDOWS else "SingletonLock"
#: Top-level entries that only mean "a browser runs here": a clone with them refuses to start
#: (or starts as a second instance of the original), so a clone never gets them.
LOCK_ENTRIES = frozenset(
    {"SingletonLock", "SingletonSocket", "SingletonCookie", "lockfile", "DevToolsActivePort"}
)
#: Flags naming a process's user data dir: the browser's, and our mark on a WebDriver server
#: (which ignores it), so that removing a profile stops its leftover driver.
PROFILE_FLAGS = ("--user-data-dir", "--edgeprofiles-user-data-dir")
#: How Chromium reads a switch: after ``--`` or ``-``, on Windows ``/`` too, where the name's
#: case does not count (base/command_line.cc).
_SWITCH_PREFIXES = {False: ("--", "-"), True: ("--", "-", "/")}
#: JSON files a browser must be able to parse; a corrupt one loses the user's settings.
JSON_FILES = ("Local State", "Default/Preferences")
#: A unix socket path holds at most 107 bytes (103 on macOS); the browser aborts past that.
SOCKET_PATH_MAX = 103 if sys.platform == "darwin" else 107
#: What the browser appends to $TMPDIR for its socket.
SOCKET_SUFFIX = "/org.chromium.Chromium.XXXXXX/SingletonSocket"
_SOCKET_DIR = re.compile(
    r"\.?(org\.chromium\.Chromium|com\.google\.Chrome|com\.microsoft\.Edge)[\w.]*\.\w{6}"
)
#: Where a browser makes its socket folder: ``MAC_CHROMIUM_TMPDIR`` on macOS, none on Windows.
SOCKET_TMPDIR_VAR = {"win32": None, "darwin": "MAC_CHROMIUM_TMPDIR"}.get(sys.platform, "TMPDIR")


def switch(arg: str, windows: bool | None = None) -> tuple[str, str | None] | None:
    """``arg`` as the browser reads it: its name spelled ``--name`` and its value (None without
    ``=``); None when it is no switch. ``-user-data-dir=x`` is ``("--user-data-dir", "x")``."""
    windows = platform.WINDOWS if windows is None else windows
    prefix = next((p for p in _SWITCH_PREFIXES[windows] if arg.startswith(p)), "")
    name, eq, value = arg[len(prefix) :].partition("=")
    if not prefix or not name:  # ``--`` alone ends the switches
        return None
    return f"--{name.lower() if windows else name}", value if eq else None


@dataclass(frozen=True)
class SkipRules:
    """Which entries of a base a clone leaves out: by default lock state and caches, which the
    browser recreates (82 % of a small profile's bytes); unknown folders may hold user data."""

    #: Names skipped only at the top level of the user data dir.
    top_level: frozenset[str] = LOCK_ENTRIES | frozenset(
        {"Crashpad", "BrowserMetrics", "component_crx_cache", "extensions_crx_cache"}
    )
    #: Directories skipped at any depth when their name ends with one of these.
    dir_suffixes: tuple[str, ...] = ("Cache",)
    #: Directories skipped at any depth when their last path parts are these.
    dir_tails: tuple[tuple[str, ...], ...] = (("Service Worker", "CacheStorage"),)

    def __post_init__(self) -> None:
        if "Local State" in self.top_level:
            raise ValueError(
                "SkipRules.top_level: 'Local State' cannot be left out of a clone: its "
                "os_crypt.encrypted_key decrypts the cookies and passwords in Default/ (on "
                "Windows); without it the clone loses every login of the base"
            )

    def skips(self, parts: tuple[str, ...], is_dir: bool) -> bool:
        """Whether the entry at relative path ``parts`` is left out of a clone."""
        if len(parts) == 1 and parts[0] in self.top_level:
            return True
        if not is_dir:
            return False
        return parts[-1].endswith(self.dir_suffixes) or any(
            parts[-len(tail) :] == tail for tail in self.dir_tails
        )


DEFAULT_SKIP_RULES = SkipRules()


def json_state(path: Path) -> str:
    """``ok``, ``missing`` or ``corrupt`` (not a JSON object): a person needs to know which."""
    try:
        data = read_json(path)
    except FileNotFoundError:
        return "missing"
    except (OSError, ValueError):
        return "corrupt"
    return "ok" if isinstance(data, dict) else "corrupt"


def json_files_ok(user_data_dir: Path) -> bool:
    """Whether every JSON file the browser needs parses, where present."""
    return all(json_state(user_data_dir / rel) != "corrupt" for rel in JSON_FILES)


def profile_dirs(user_data_dir: Path) -> list[Path]:
    """The profile folders (those holding a ``Preferences`` file) of a user data dir."""
    return [
        Path(e.path)
        for e in files.entries(user_data_dir)
        if e.is_dir(follow_symlinks=False) and os.path.isfile(os.path.join(e.path, "Preferences"))
    ]


def pref_files(user_data_dir: Path) -> list[Path]:
    """The ``Preferences`` files we may rewrite in a clone, ``Default``'s even if missing."""
    default = user_data_dir / "Default" / "Preferences"
    found = [folder / "Preferences" for folder in profile_dirs(user_data_dir)]
    return found if default in found else [*found, default]


def mark_clean_exit(user_data_dir: Path) -> None:
    """Mark a crash as a clean exit, or a killed base's clones greet tests with "Restore?"."""
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
    """The owner the ``SingletonLock`` link (``<host>-<pid>``) names; unknown if no link."""
    lock = user_data_dir / "SingletonLock"
    try:
        target = os.readlink(lock)
    except FileNotFoundError:
        return None
    except OSError:
        return LockOwner(host="", pid=None) if os.path.lexists(lock) else None
    host, _, pid = target.rpartition("-")
    return LockOwner(host=host, pid=int(pid) if pid.isdigit() else None)


def lockfile_held(user_data_dir: Path, windows: bool | None = None) -> bool:
    """Whether a running browser holds the dir's Windows ``lockfile``, shared for reading only
    (so a write open fails with ``EACCES``); one that opens is a leftover."""
    if not (platform.WINDOWS if windows is None else windows):
        return False
    try:
        fd = os.open(user_data_dir / "lockfile", os.O_WRONLY)
    except PermissionError:
        return True
    except OSError:
        return False
    os.close(fd)
    return False


def has_lock_entries(user_data_dir: Path) -> bool:
    """Whether a browser may be running on the dir (cheap: one ``lstat`` per lock entry)."""
    return any(os.path.lexists(user_data_dir / name) for name in ("SingletonLock", "lockfile"))


def remove_lock_links(user_data_dir: Path) -> None:
    """Remove the ``Singleton*`` links a browser killed on the dir left (never followed)."""
    for name in ("SingletonLock", "SingletonSocket", "SingletonCookie"):
        entry = user_data_dir / name
        if entry.is_symlink():
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()


def socket_tmpdir(environ: Mapping[str, str]) -> str | None:
    """Where a browser started with ``environ`` makes its socket folder, if it may be long."""
    if SOCKET_TMPDIR_VAR is None:
        return None
    return environ.get(SOCKET_TMPDIR_VAR) or ("/tmp" if SOCKET_TMPDIR_VAR == "TMPDIR" else None)


def socket_path_too_long(tmpdir: str) -> bool:
    """Whether a browser with its socket folder in ``tmpdir`` would abort (path too long)."""
    return len(os.fsencode(tmpdir.rstrip("/")) + SOCKET_SUFFIX.encode()) > SOCKET_PATH_MAX


def socket_dir(user_data_dir: Path) -> Path | None:
    """The private temp dir the profile's ``SingletonSocket`` link points into, if it is one."""
    try:
        target = Path(os.readlink(user_data_dir / "SingletonSocket"))
    except OSError:
        return None
    ours = target.name == "SingletonSocket" and _SOCKET_DIR.fullmatch(target.parent.name)
    return target.parent if ours else None


def is_leftover_socket_dir(folder: Path) -> bool:
    """Ours, and holding nothing but the browser's ``Singleton*`` entries."""
    try:
        st = folder.lstat()
        names = os.listdir(folder)
    except OSError:
        return False
    return (
        stat.S_ISDIR(st.st_mode) and is_mine(st) and all(n.startswith("Singleton") for n in names)
    )


def set_download_dir(user_data_dir: Path, folder: Path, empty: bool = False) -> int:
    """Point ``Default``'s untracked ``download``/``savefile.default_directory`` at ``folder``
    (``empty``: the dir has no ``Preferences`` yet); the bytes ``Preferences`` grew by."""
    prefs_path = user_data_dir / "Default" / "Preferences"
    old, prefs = b"", {}
    try:
        if not empty:
            old = files.read_bytes(prefs_path)
            prefs = json.loads(old)
    except FileNotFoundError:
        pass
    if not isinstance(prefs, dict):
        raise ValueError(f"{prefs_path} is not a JSON object")
    for section in ("download", "savefile"):
        value = prefs.get(section)
        if not isinstance(value, dict):
            value = prefs[section] = {}
        value["default_directory"] = str(folder)
    prefs_path.parent.mkdir(mode=0o700, exist_ok=True)
    new = json.dumps(prefs, separators=(",", ":")).encode()
    files.write_bytes(prefs_path, new)
    return len(new) - len(old)


def download_dir(user_data_dir: Path) -> str | None:
    """The ``Default`` profile's download folder pref, if set."""
    try:
        prefs = read_json(user_data_dir / "Default" / "Preferences")
        value = prefs["download"]["default_directory"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return value if isinstance(value, str) else None


def last_version(user_data_dir: Path) -> str | None:
    """The version of the browser that last opened the dir (its ``Last Version`` file)."""
    try:
        text = (user_data_dir / "Last Version").read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text or None
