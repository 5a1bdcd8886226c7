"""What we know of an Edge/Chromium user data dir, as data plus small functions.

A *user data dir* (what ``--user-data-dir`` names) holds ``Local State`` and one folder per
profile (``Default``, ``Profile 1``, ...). The browser locks the whole dir, so every concurrent
browser needs a dir of its own; that dir is what this package calls a profile.
"""

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

from .._system import platform

# Re-exported: users import these from here.
from .._system.files import read_json
from .._system.platform import is_mine

#: The entry a running browser locks its dir with, as doctor names it.
LOCK_NAME = "lockfile" if platform.WINDOWS else "SingletonLock"

#: Entries at the top level that only mean "a browser runs here". Copying them makes the clone
#: refuse to start (or start as a second instance of the original), so a clone never gets them.
LOCK_ENTRIES = frozenset(
    {"SingletonLock", "SingletonSocket", "SingletonCookie", "lockfile", "DevToolsActivePort"}
)

#: Flags that name the user data dir a process works on: the browser's own, and the mark the
#: launch helpers put on a WebDriver server started for a profile (the driver ignores it), so
#: that removing the profile also stops a driver its killed worker left behind.
PROFILE_FLAGS = ("--user-data-dir", "--edgeprofiles-user-data-dir")

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


def pref_files(user_data_dir: Path) -> list[Path]:
    """The ``Preferences`` files this package may rewrite in a clone (``mark_clean_exit``,
    ``set_download_dir``): each profile folder's, and ``Default``'s even before it exists."""
    default = user_data_dir / "Default" / "Preferences"
    found = [folder / "Preferences" for folder in profile_dirs(user_data_dir)]
    return found if default in found else [*found, default]


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


def lockfile_held(user_data_dir: Path, windows: bool | None = None) -> bool:
    """Whether a running browser holds the dir's Windows ``lockfile``.

    On Windows the browser keeps ``lockfile`` open for writing, shared for reading only, and
    deleted when it closes: opening it for writing is refused while the browser runs (the C
    runtime under ``os.open`` reports the sharing violation as a plain ``EACCES``). A
    ``lockfile`` that opens is a leftover (a browser of a machine that lost power), which the
    next browser takes over. POSIX browsers lock with ``SingletonLock``.
    """
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


# -- the socket dir a live browser makes under $TMPDIR -------------------------------------

#: A unix socket path holds at most 107 bytes (103 on macOS); the browser aborts when its
#: socket's is longer.
SOCKET_PATH_MAX = 103 if sys.platform == "darwin" else 107
#: What the browser appends to $TMPDIR for its socket.
SOCKET_SUFFIX = "/org.chromium.Chromium.XXXXXX/SingletonSocket"
_SOCKET_DIR = re.compile(
    r"\.?(org\.chromium\.Chromium|com\.google\.Chrome|com\.microsoft\.Edge)[\w.]*\.\w{6}"
)


#: The variable naming the folder a browser makes its socket folder in. Chromium reads only
#: ``MAC_CHROMIUM_TMPDIR`` on macOS, not ``TMPDIR``; Windows browsers have no socket (they
#: find each other through a window and the ``lockfile``).
SOCKET_TMPDIR_VAR = {"win32": None, "darwin": "MAC_CHROMIUM_TMPDIR"}.get(sys.platform, "TMPDIR")


def socket_tmpdir(environ: Mapping[str, str]) -> str | None:
    """The folder a browser started with ``environ`` makes its socket folder in, when its
    length can matter: None on Windows, and on macOS without ``MAC_CHROMIUM_TMPDIR`` (the
    system's per-user temp folder, which is short)."""
    if SOCKET_TMPDIR_VAR is None:
        return None
    return environ.get(SOCKET_TMPDIR_VAR) or ("/tmp" if SOCKET_TMPDIR_VAR == "TMPDIR" else None)


def socket_path_too_long(tmpdir: str) -> bool:
    """Whether a browser whose socket folder goes in ``tmpdir`` (see ``socket_tmpdir``) would
    abort ("Socket path too long")."""
    return len(os.fsencode(tmpdir.rstrip("/")) + SOCKET_SUFFIX.encode()) > SOCKET_PATH_MAX


def socket_dir(user_data_dir: Path) -> Path | None:
    """The private temp dir the profile's ``SingletonSocket`` link points into, if it is one."""
    try:
        target = Path(os.readlink(user_data_dir / "SingletonSocket"))
    except OSError:
        return None
    folder = target.parent
    if target.name != "SingletonSocket" or not _SOCKET_DIR.fullmatch(folder.name):
        return None
    return folder


def is_leftover_socket_dir(folder: Path) -> bool:
    """Ours, and holding nothing but the browser's ``Singleton*`` entries."""
    try:
        st = folder.lstat()
        names = os.listdir(folder)
    except OSError:
        return False
    return (
        stat.S_ISDIR(st.st_mode)
        and is_mine(st)
        and all(name.startswith("Singleton") for name in names)
    )


# -- preferences ---------------------------------------------------------------------------


def set_download_dir(user_data_dir: Path, folder: Path) -> None:
    """Point the untracked prefs ``download.default_directory`` and
    ``savefile.default_directory`` of the ``Default`` profile at ``folder``.

    Every other pref, the base's other download and ``safebrowsing.*`` settings included, stays.
    """
    prefs_path = user_data_dir / "Default" / "Preferences"
    try:
        prefs = read_json(prefs_path)
    except FileNotFoundError:
        prefs = {}
    if not isinstance(prefs, dict):
        raise ValueError(f"{prefs_path} is not a JSON object")
    for section, key in (("download", "default_directory"), ("savefile", "default_directory")):
        value = prefs.get(section)
        if not isinstance(value, dict):
            value = prefs[section] = {}
        value[key] = str(folder)
    prefs_path.parent.mkdir(mode=0o700, exist_ok=True)
    prefs_path.write_text(json.dumps(prefs, separators=(",", ":")), encoding="utf-8")


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
