"""Processes: who owns a profile, whether it still lives, and stopping a browser left running."""

from __future__ import annotations

import functools
import os
import signal
import sys
from pathlib import Path
from typing import Protocol

import psutil

from .._system import files, platform
from .._system.logs import log
from . import userdata

#: Two create times closer than this are the same process (Linux counts in 10 ms ticks).
_SAME_START = 0.01
_own: tuple[int, float] | None = None


def start_time(pid: int) -> float:
    """When process ``pid`` started: the key, with the pid, that tells it from a later process
    given the same pid.

    On Linux, seconds since boot from ``/proc/<pid>/stat``: psutil's ``create_time`` adds the
    boot time, which moves whenever the wall clock steps (NTP, a resume from suspend), and
    would then make every live owner look dead. Elsewhere psutil's ``create_time``.
    """
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


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if sys.platform.startswith("linux") else None


def own_identity() -> tuple[int, float]:
    """This process's pid and start time; recomputed after a fork."""
    global _own
    pid = os.getpid()
    if _own is None or _own[0] != pid:
        _own = (pid, start_time(pid))
    return _own


def pid_namespace() -> int | None:
    """The id (inode) of this process's pid namespace; None where there are none (not Linux).

    Pids are only meaningful within one namespace: a record written in another one (a
    container sharing our host name and temp dir) names a process we cannot see.
    """
    global _own_ns
    pid = os.getpid()
    if _own_ns is None or _own_ns[0] != pid:
        try:
            _own_ns = (pid, os.stat("/proc/self/ns/pid").st_ino)
        except OSError:
            _own_ns = (pid, None)
    return _own_ns[1]


_own_ns: tuple[int, int | None] | None = None


@functools.cache
def boot_id() -> str | None:
    """This boot's random id (Linux), None elsewhere: a record of an earlier boot names a
    process that is gone, whatever now runs with its pid and start time."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            return fh.read().strip() or None
    except (OSError, ValueError):
        return None


#: The largest pid there can be: pid_t is a signed 32-bit int on POSIX, a DWORD on Windows.
_MAX_PID = 2**32 - 1 if platform.WINDOWS else 2**31 - 1


def valid_pid(pid: object) -> bool:
    """Whether ``pid`` can name a process at all: records and registries may hold anything,
    and psutil raises (not returns) for a negative pid, a float or a pid past the OS's range."""
    return isinstance(pid, int) and not isinstance(pid, bool) and 0 < pid <= _MAX_PID


def process_alive(pid: int, started: float) -> bool:
    """Whether the process that was ``pid``, started at ``started`` (see ``start_time``),
    still runs: a pid reused by another process does not count, nor one that cannot be."""
    if not valid_pid(pid):
        return False
    try:
        if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return False
        return abs(start_time(pid) - started) < _SAME_START
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True


def running_since(pid: int, moment: float) -> bool:
    """Whether process ``pid`` runs and already ran at ``moment`` (a ``time.time()``): then it
    may be the writer of a file last changed at that moment; a pid reused since is not."""
    if not valid_pid(pid):
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        # Start times derive from a boot time counted in whole seconds: allow for that.
        return proc.create_time() <= moment + 2.0
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True


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
        flag, eq, value = arg.partition("=")
        if flag not in userdata.PROFILE_FLAGS:
            continue
        if not eq:
            if i + 1 >= len(cmdline):
                continue
            value = cmdline[i + 1]
        if normalise(value) == profile:
            return True
    return False


def normalise(path: str) -> str:
    """``path`` spelled one way, links never resolved: a profile is only ever the folder we
    made, and a link swapped in for it must not match a browser on the link's target."""
    path = os.path.normpath(os.path.abspath(path))
    rest = path[len(_PRIVATE) :]
    if platform.MACOS and path.startswith(_PRIVATE) and f"{rest}/".startswith(_PRIVATE_TOPS):
        # macOS shows /tmp and /var as /private/tmp and /private/var: the same folders,
        # through links of the system's own, the only links a comparison may see through.
        path = rest
    return os.path.normcase(path)  # Windows paths compare without case


_PRIVATE = "/private"
_PRIVATE_TOPS = ("/tmp/", "/var/", "/etc/")


def browsers_using(profile: str) -> list[psutil.Process]:
    """This user's processes whose command line names exactly ``profile`` as user data dir."""
    wanted = normalise(profile)
    uid = os.getuid() if hasattr(os, "getuid") else None
    # "uids" is POSIX only: psutil refuses the name on Windows.
    attrs = ["cmdline", "uids"] if uid is not None else ["cmdline"]
    found = []
    for proc in psutil.process_iter(attrs):
        try:
            cmdline = proc.info["cmdline"] or []
            uids = proc.info.get("uids")
            if uid is not None and uids is not None and uids.real != uid:
                continue
            if names_profile(cmdline, wanted):
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


def stop_browsers(procs: list[psutil.Process], grace: float = 3.0) -> None:
    """Stop the browsers (and their children) gracefully, then kill what survives ``grace`` s.

    On POSIX the browser processes are asked (``ask_to_stop``) and stop their children
    themselves. Windows has no signal to ask with, and a child outlives its parent there: every
    process of the tree is terminated.
    """
    tree: dict[int, psutil.Process] = {}
    for proc in procs:
        tree[proc.pid] = proc
        try:
            tree.update((child.pid, child) for child in proc.children(recursive=True))
        except psutil.Error:
            continue
    if platform.WINDOWS:
        asked = list(tree.values())
    else:  # only browser processes: their helpers (``--type=``) follow them
        asked = [p for p in procs if not _is_child_process(p)] or procs
    for proc in asked:
        try:
            ask_to_stop(proc)
        except psutil.Error:
            continue
    _, alive = psutil.wait_procs(list(tree.values()), timeout=grace)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            continue
    _, still = psutil.wait_procs(alive, timeout=grace)
    for proc in still:
        log.warning("process %s on a profile survived SIGKILL", proc.pid)


class _Stoppable(Protocol):
    def terminate(self) -> None: ...
    def send_signal(self, sig: int, /) -> None: ...


def ask_to_stop(proc: _Stoppable, windows: bool | None = None) -> None:
    """Ask a browser process (a ``psutil.Process`` or a ``Popen``) to stop.

    SIGHUP on POSIX: headless Chromium removes its ``Singleton*`` entries on SIGHUP or SIGINT
    but not on SIGTERM. Windows has neither: ``terminate`` (``TerminateProcess``) it is, and
    the browser's ``lockfile`` goes with its last handle.
    """
    if platform.WINDOWS if windows is None else windows:
        proc.terminate()
    else:
        proc.send_signal(signal.SIGHUP)


def helpers_to_stop(pid: int) -> list[psutil.Process]:
    """The processes browser ``pid`` started that would outlive it, taken before it stops.

    None on POSIX, where helpers follow their browser. On Windows a child outlives its parent,
    and the ``lockfile`` that would lead ``stop_browser_on`` to them goes with the browser.
    """
    if not platform.WINDOWS:
        return []
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _is_child_process(proc: psutil.Process) -> bool:
    # Renderer, GPU and utility processes carry --type=; the browser process does not.
    try:
        return any(arg.startswith("--type=") for arg in proc.cmdline())
    except psutil.Error:
        return True


def stop_browser_on(profile: Path) -> None:
    """Stop whatever browser still runs on ``profile`` and remove the socket dir it leaked.

    A ``profile`` that is a symlink stops nothing. Cheap when nothing runs: the process table
    is scanned only when the profile shows lock entries. The socket dir under ``$TMPDIR`` is
    removed only when it is ours and holds nothing but ``Singleton*`` entries.
    """
    if os.path.islink(profile):
        # A profile swapped for a link: whatever runs on its target is not ours to stop.
        log.warning("not stopping browsers on %s: it is a symlink, not our profile", profile)
        return
    if not userdata.has_lock_entries(profile):
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
    """What the dir's ``SingletonLock`` (or Windows ``lockfile``) says, and who it names.

    ``none``; ``live`` (a browser of this host runs on the dir; on Windows its owner is not
    known); ``stale`` (its process is
    gone, or is no browser on this dir: the next browser takes over); ``foreign-host`` (a
    container whose hostname changed: the browser refuses the dir); ``invalid`` (not a
    ``<host>-<pid>`` link: refused too).
    """
    owner = userdata.read_singleton_lock(user_data_dir)
    if owner is None:  # Windows browsers hold a ``lockfile`` instead, which names nobody
        return ("live" if userdata.lockfile_held(user_data_dir) else "none"), None
    if owner.pid is None:
        return "invalid", owner
    if owner.host != platform.this_host():
        return "foreign-host", owner
    return ("live" if process_uses(owner.pid, str(user_data_dir)) else "stale"), owner
