"""Processes: who owns a profile, whether it still lives, and stopping a browser left running."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import psutil

from .._system import files, platform
from .._system.logs import log
from .._system.waiting import Backoff
from . import userdata

#: Two create times closer than this are the same process (Linux counts in 10 ms ticks).
_SAME_START = 0.01
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if sys.platform.startswith("linux") else None
#: The largest pid there can be: pid_t is a signed 32-bit int on POSIX, a DWORD on Windows.
_MAX_PID = 2**32 - 1 if platform.WINDOWS else 2**31 - 1
_PRIVATE = "/private"
_PRIVATE_TOPS = ("/tmp/", "/var/", "/etc/")
_own: tuple[int, float] | None = None
_own_ns: tuple[int, int | None] | None = None


def start_time(pid: int) -> float:
    """When ``pid`` started, which tells it from a later process given its pid. On Linux from
    ``/proc``: psutil adds a boot time that moves with the wall clock (NTP, resume)."""
    if _CLOCK_TICKS is None:
        return psutil.Process(pid).create_time()
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat_line = fh.read()
    except FileNotFoundError:
        raise psutil.NoSuchProcess(pid) from None
    # Fields after the command name, which may hold spaces and ')': state is field 3.
    fields = stat_line[stat_line.rindex(b")") + 2 :].split()
    return int(fields[22 - 3]) / _CLOCK_TICKS


def own_identity() -> tuple[int, float]:
    """This process's pid and start time; recomputed after a fork."""
    global _own
    pid = os.getpid()
    if _own is None or _own[0] != pid:
        _own = (pid, start_time(pid))
    return _own


def pid_namespace() -> int | None:
    """This process's pid namespace inode (Linux): a record of another names unseen pids."""
    global _own_ns
    pid = os.getpid()
    if _own_ns is None or _own_ns[0] != pid:
        try:
            _own_ns = (pid, os.stat("/proc/self/ns/pid").st_ino)
        except OSError:
            _own_ns = (pid, None)
    return _own_ns[1]


@functools.cache
def boot_id() -> str | None:
    """This boot's id (Linux): a record of an earlier boot names a process that is gone."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            return fh.read().strip() or None
    except (OSError, ValueError):
        return None


def valid_pid(pid: object) -> bool:
    """Whether ``pid`` can name a process (psutil raises for a negative, float or huge pid)."""
    return isinstance(pid, int) and not isinstance(pid, bool) and 0 < pid <= _MAX_PID


def _live_and(pid: int, check: Callable[[psutil.Process], bool]) -> bool:
    """Whether ``pid`` runs, is no zombie and passes ``check``; True when access is denied."""
    if not valid_pid(pid):
        return False
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and check(proc)
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True


def process_alive(pid: int, started: float) -> bool:
    """Whether the process ``pid`` started at ``started`` still runs (not a reused pid)."""
    return _live_and(pid, lambda _: abs(start_time(pid) - started) < _SAME_START)


def running_since(pid: int, moment: float) -> bool:
    """Whether ``pid`` runs and ran at ``moment`` (``time.time()``, give or take 2 s)."""
    return _live_and(pid, lambda proc: proc.create_time() <= moment + 2.0)


def process_uses(pid: int, profile: str) -> bool:
    """Whether the live process ``pid`` runs with ``profile`` as its user data dir."""
    if not valid_pid(pid):
        return False
    try:
        return names_profile(psutil.Process(pid).cmdline(), normalise(profile))
    except psutil.AccessDenied:
        return True
    except psutil.Error:
        return False


def names_profile(cmdline: list[str], profile: str) -> bool:
    for i, arg in enumerate(cmdline):
        name, value = userdata.switch(arg) or ("", None)
        if value is None and i + 1 < len(cmdline):
            value = cmdline[i + 1]
        if name in userdata.PROFILE_FLAGS and value is not None and normalise(value) == profile:
            return True
    return False


def normalise(path: str) -> str:
    """``path`` spelled one way, links unresolved: a link swapped in must not match its target."""
    path = os.path.normpath(os.path.abspath(path))
    rest = path[len(_PRIVATE) :]
    if platform.MACOS and path.startswith(_PRIVATE) and f"{rest}/".startswith(_PRIVATE_TOPS):
        # macOS's /tmp and /var are system links to /private/...: the only links we see through.
        path = rest
    return os.path.normcase(path)  # Windows paths compare without case


def browsers_using(profile: str) -> list[psutil.Process]:
    """This user's processes whose command line names exactly ``profile`` as user data dir."""
    wanted = normalise(profile)
    uid = os.getuid() if hasattr(os, "getuid") else None
    attrs = ["cmdline", "uids"] if uid is not None else ["cmdline"]  # psutil: no uids on Windows
    found = []
    for proc in psutil.process_iter(attrs):
        with contextlib.suppress(psutil.Error, OSError):
            uids = proc.info.get("uids")
            mine = uid is None or uids is None or uids.real == uid
            if mine and names_profile(proc.info["cmdline"] or [], wanted):
                found.extend(_fresh(proc, wanted))
    return found


def descendants_using(profile: str) -> list[psutil.Process]:
    """This process's descendants naming ``profile``: seen even before they make a lock."""
    if not _may_have_children():
        return []
    wanted = normalise(profile)
    found = []
    for proc in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if names_profile(proc.cmdline(), wanted):
                found.append(proc)
    return found


def _may_have_children() -> bool:
    """False when Linux's child lists are all empty (cheaper than a process table walk)."""
    try:
        for task in os.listdir("/proc/self/task"):
            if files.read_bytes(f"/proc/self/task/{task}/children").strip():
                return True
    except OSError:
        return True
    return False


#: Popen arguments for a process we may have to kill with all it starts: on POSIX a session,
#: and so a process group, of its own (a wrapper's real browser, its helpers, all in it).
OWN_GROUP: dict[str, Any] = {} if platform.WINDOWS else {"start_new_session": True}


def kill_tree(proc: subprocess.Popen[Any]) -> None:
    """Kill ``proc`` (started with ``OWN_GROUP``) and whatever it started, and reap it: its
    process group on POSIX, which holds even those reparented; its descendants on Windows."""
    if platform.WINDOWS:
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(proc.pid).children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    child.kill()
        if proc.poll() is None:
            proc.kill()
    else:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def stop_browsers(procs: list[psutil.Process], grace: float = 3.0) -> None:
    """Ask the browsers to stop, then kill what survives ``grace`` s, children included. On
    Windows, with no signal to ask and children outliving parents, the whole tree is asked."""
    tree: dict[int, psutil.Process] = {}
    for proc in procs:
        tree[proc.pid] = proc
        with contextlib.suppress(psutil.Error):
            tree.update((child.pid, child) for child in proc.children(recursive=True))
    if platform.WINDOWS:
        asked = list(tree.values())
    else:  # only browser processes: their helpers (``--type=``) follow them
        asked = [p for p in procs if not _is_child_process(p)] or procs
    for proc in asked:
        with contextlib.suppress(psutil.Error):
            ask_to_stop(proc)
    alive = _wait_gone(list(tree.values()), grace)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    still = _wait_gone(alive, grace)
    for proc in still:
        log.warning("process %s on a profile survived SIGKILL", proc.pid)


def _wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Those of ``procs`` still running after at most ``timeout`` s. A zombie is gone: it holds
    nothing, and whoever reaps a browser's helpers (an init that reaps late, or none in a
    container whose first process is not an init) is not ours to wait for."""
    backoff = Backoff(0.005, most=0.05, timeout=timeout)
    while True:
        _, alive = psutil.wait_procs(procs, timeout=0)  # reaps those that are our children
        procs = [proc for proc in alive if not _zombie(proc)]
        if not procs or not backoff.pause():
            return procs


def _zombie(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:  # ZombieProcess too
        return True
    except psutil.Error:
        return False


class _Stoppable(Protocol):
    def terminate(self) -> None: ...
    def send_signal(self, sig: int, /) -> None: ...


def ask_to_stop(proc: _Stoppable, windows: bool | None = None) -> None:
    """Ask a browser process to stop: SIGHUP on POSIX, since headless Chromium removes its
    ``Singleton*`` entries on SIGHUP or SIGINT, not SIGTERM; on Windows ``terminate``."""
    if platform.WINDOWS if windows is None else windows:
        proc.terminate()
    else:
        proc.send_signal(signal.SIGHUP)


def helpers_to_stop(pid: int) -> list[psutil.Process]:
    """The processes browser ``pid`` started, taken before it stops: on Windows they outlive
    it (and its ``lockfile``, that would lead ``stop_browser_on`` to them, goes with it); on
    POSIX they follow it a moment later, and a stop returns only once they did."""
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def group_left_on(pgid: int, profile: Path) -> list[psutil.Process]:
    """Processes of group ``pgid`` (POSIX) still naming ``profile``: helpers a browser started
    after ``helpers_to_stop`` looked, reparented once it exited (seen on 1 stop in 120)."""
    if platform.WINDOWS:
        return []
    try:
        os.killpg(pgid, 0)  # one call, where a stop usually ends: the group is empty
    except ProcessLookupError:
        return []
    except PermissionError:
        pass  # a member of another user: look at each
    wanted = normalise(str(profile))
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(OSError, psutil.Error):
            if os.getpgid(proc.pid) == pgid and names_profile(proc.cmdline(), wanted):
                found.extend(_fresh(proc, wanted))
    return found


def _fresh(proc: psutil.Process, wanted: str) -> list[psutil.Process]:
    """A new handle on ``proc``'s pid, if it still names ``wanted``. ``process_iter`` hands out
    the handle it cached when it first saw the pid: once the pid is reused (a long run, or
    Windows, reuses them) that one reads the new process's command line but is refused its
    signals, and the process outlived its stop."""
    fresh = psutil.Process(proc.pid)
    return [fresh] if names_profile(fresh.cmdline(), wanted) else []


def _is_child_process(proc: psutil.Process) -> bool:
    # Renderer, GPU and utility processes carry --type=; the browser process does not.
    try:
        return any(arg.startswith("--type=") for arg in proc.cmdline())
    except psutil.Error:
        return True


def stop_browser_on(profile: Path, unlocked_too: bool = False) -> None:
    """Stop any browser left on ``profile`` (not a symlink) and remove its leaked socket dir.
    Only a locked profile is looked at, unless ``unlocked_too``: a dead owner's driver names
    the profile, and its browser, whose pipe closed with the owner, exits and unlocks it."""
    if os.path.islink(profile):
        log.warning("not stopping browsers on %s: it is a symlink, not our profile", profile)
        return
    if not unlocked_too and not userdata.has_lock_entries(profile):
        return
    sockets = userdata.socket_dir(profile)
    # A browser still starting launches helpers after the first look: look until none is left.
    for _ in range(3):
        procs = browsers_using(str(profile))
        if not procs:
            break
        stop_browsers(procs)
    if lock_state(profile)[0] == "stale":  # a browser killed before it could tidy up
        userdata.remove_lock_links(profile)
    if sockets is not None and userdata.is_leftover_socket_dir(sockets):
        files.remove_tree(sockets)


def a_browser(pid: int | None) -> str:
    """How messages name the browser a live lock shows: a Windows ``lockfile`` names no pid."""
    return "a browser" if pid is None else f"a browser (pid {pid})"


def lock_state(user_data_dir: Path) -> tuple[str, userdata.LockOwner | None]:
    """What the dir's lock says, and who it names: ``none``, ``live``, ``stale`` (its process
    is gone: the next browser takes over), ``foreign-host`` or ``invalid`` (both refused)."""
    owner = userdata.read_singleton_lock(user_data_dir)
    if owner is None:  # Windows browsers hold a ``lockfile`` instead, which names nobody
        return ("live" if userdata.lockfile_held(user_data_dir) else "none"), None
    if owner.pid is None:
        return "invalid", owner
    if owner.host != platform.this_host():
        return "foreign-host", owner
    return ("live" if process_uses(owner.pid, str(user_data_dir)) else "stale"), owner
