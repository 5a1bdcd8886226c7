"""Shared fixtures for the core library tests: fake Edge user data dirs, managers, dead owners.

The ``pytester`` plugin is enabled by ``pyproject.toml`` (``-p pytester``); do not load it here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pytest_edgeprofiles import ProfileManager
from pytest_edgeprofiles._chromium import processes
from pytest_edgeprofiles.chromium import Browser, find_browser

#: The real system temp dir, captured before any test points ``tempfile`` elsewhere.
SYSTEM_TMP = tempfile.gettempdir()

# -- what only some platforms have -----------------------------------------------------------

#: Not Windows: POSIX signals, file modes and owners, FIFOs, fork, and symlinks anyone may make
#: (Windows needs a privilege for a symlink, and its chmod only sets the read-only flag).
POSIX = sys.platform != "win32"
LINUX = sys.platform.startswith("linux")


def posix_only(why: str) -> pytest.MarkDecorator:
    """Skip the test on Windows; ``why`` names the POSIX behaviour it needs."""
    return pytest.mark.skipif(not POSIX, reason=f"POSIX only: {why}")


def linux_only(why: str) -> pytest.MarkDecorator:
    """Skip the test but on Linux; ``why`` names the Linux behaviour it needs."""
    return pytest.mark.skipif(not LINUX, reason=f"Linux only: {why}")


#: Why a test that makes symlinks skips on Windows.
SYMLINKS = "symlinks (making one needs a privilege on Windows)"
#: Why a test of a browser's lock skips on Windows, where browsers lock with a ``lockfile``.
SINGLETON_LOCK = "a SingletonLock symlink, the lock of POSIX browsers"
#: Why a test whose stand-in browser is a shell script skips on Windows.
SH_BROWSER = "the browser is a #!/bin/sh script, which Windows does not run as a program"
#: Why the tests of a ``~user`` with no home run on POSIX only.
NO_HOME = "a ~user of no one has no home (Windows guesses one)"


BASE_FILES: dict[str, bytes] = {
    "Local State": json.dumps({"os_crypt": {"encrypted_key": "RFBBUEkBAAAA"}}).encode(),
    "Last Version": b"131.0.2903.112",
    "Default/Cookies": b"SQLite format 3\x00" + bytes(range(256)) * 8,
    "Default/Local Storage/leveldb/CURRENT": b"MANIFEST-000001\n",
    "Default/Local Storage/leveldb/LOCK": b"",
    "Default/Local Storage/leveldb/LOG": b"2024/01/01-00:00:00.000 Recovering log #3\n",
    "Default/Collections/x": b"collection data",
    "Default/EdgeWallet/x": b"wallet data",
    "Default/Service Worker/Database/x": b"sw registration",
    # Caches and crash/metrics folders: a clone leaves them out.
    "Default/Cache/Cache_Data/f_000001": b"c" * 4096,
    "Default/Code Cache/js/x": b"j" * 2048,
    "GrShaderCache/x": b"s" * 1024,
    "Default/Service Worker/CacheStorage/x": b"w" * 1024,
    "Crashpad/x": b"crash report",
    "BrowserMetrics/x": b"metrics",
    "component_crx_cache/x": b"crx",
    # Lock state a live or killed browser leaves at the top level.
    "DevToolsActivePort": b"9222\n/devtools/browser/abc\n",
}
#: The ``Singleton*`` links a browser killed on POSIX leaves. A Windows browser makes none (it
#: locks with a ``lockfile``), and making a symlink there needs a privilege: none there.
LOCK_LINKS: dict[str, str] = (
    {
        "SingletonLock": "host-123",
        "SingletonSocket": "/tmp/nowhere/SingletonSocket",
        "SingletonCookie": "42",
    }
    if POSIX
    else {}
)
#: Entries a clone of ``make_base`` leaves out (relative to the user data dir).
SKIPPED = (
    "Default/Cache",
    "Default/Code Cache",
    "GrShaderCache",
    "Default/Service Worker/CacheStorage",
    "Crashpad",
    "BrowserMetrics",
    "component_crx_cache",
    "DevToolsActivePort",
    *LOCK_LINKS,
)
#: Entries a clone of ``make_base`` keeps.
KEPT = (
    "Local State",
    "Last Version",
    "Default/Preferences",
    "Default/Cookies",
    "Default/Local Storage/leveldb/CURRENT",
    "Default/Local Storage/leveldb/LOCK",
    "Default/Local Storage/leveldb/LOG",
    "Default/Collections/x",
    "Default/EdgeWallet/x",
    "Default/Service Worker/Database/x",
)


def preferences(exit_type: str = "Crashed") -> dict[str, Any]:
    return {
        "profile": {"exit_type": exit_type, "name": "Person 1"},
        "download": {"default_directory": "/home/user/Downloads", "prompt_for_download": False},
        "protection": {"macs": {"homepage": "ABCDEF"}},
    }


@pytest.fixture
def tmp_root(tmp_path: Path) -> Path:
    """A profile root under ``tmp_path``; not created (the manager creates it)."""
    return tmp_path / "profiles"


@pytest.fixture
def make_base(tmp_path: Path) -> Callable[..., Path]:
    """Factory for a realistic fake Edge user data dir, as a killed browser leaves it."""
    counter = iter(range(1000))

    def make(name: str | None = None, *, exit_type: str = "Crashed") -> Path:
        base = tmp_path / (name or f"base{next(counter)}") / "User Data"
        for rel, data in BASE_FILES.items():
            target = base / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        (base / "Default" / "Preferences").write_text(
            json.dumps(preferences(exit_type), indent=3), encoding="utf-8"
        )
        for name_, target in LOCK_LINKS.items():
            os.symlink(target, base / name_)
        return base

    return make


@pytest.fixture
def base_layout() -> SimpleNamespace:
    """What ``make_base`` writes and which entries a clone keeps and skips."""
    return SimpleNamespace(files=BASE_FILES, lock_links=LOCK_LINKS, kept=KEPT, skipped=SKIPPED)


@pytest.fixture
def sandbox_tempdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the system temp dir and the user cache into ``tmp_path``.

    The default root (``<temp>/edgeprofiles-of-<user>``) and the fallback roots then land there,
    so no test ever writes into the real ``/tmp`` or ``~/.cache``.
    """
    systmp = tmp_path / "systmp"
    systmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(systmp))
    monkeypatch.setenv("TMPDIR", str(systmp))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return systmp


#: What xdist sets in its workers; an inner run that inherits them takes itself for a worker.
OUTER_XDIST = ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_TESTRUNUID", "PYTEST_XDIST_WORKER_COUNT")


@pytest.fixture(autouse=True)
def _inner_runs_keep_to_their_own_temp(request: pytest.FixtureRequest) -> None:
    """Give each pytester run a temp dir and cache of its own, and no outer xdist worker.

    An inner run sweeps its root's fallback, the per-user default root under the temp dir, and
    counts what it removed: sharing the real one, it would sweep (and count) leftovers of other
    tests, or of another job of this user on the machine.
    """
    if "pytester" in request.fixturenames:
        request.getfixturevalue("sandbox_tempdir")
        monkeypatch = request.getfixturevalue("monkeypatch")
        for name in OUTER_XDIST:
            monkeypatch.delenv(name, raising=False)


@pytest.fixture
def manager(tmp_root: Path, sandbox_tempdir: Path) -> Iterator[Callable[..., ProfileManager]]:
    """Factory for ProfileManagers rooted at ``tmp_root``; all are cleaned up at teardown."""
    made: list[ProfileManager] = []

    def make(*args: Any, **kwargs: Any) -> ProfileManager:
        kwargs.setdefault("root", tmp_root)
        m = ProfileManager(*args, **kwargs)
        made.append(m)
        return m

    yield make
    for m in made:
        m.cleanup_all_profiles()


@pytest.fixture
def dead_owner() -> tuple[int, float]:
    """The pid and create time of a process that has finished (and been reaped).

    Made for each test: with a ``pid_max`` of 32768 and browsers starting many processes, a
    pid freed early in the session may belong to a live process by the time a late test runs.
    """
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1000)"])
    try:
        create_time = processes.start_time(proc.pid)
    finally:
        proc.kill()
        proc.wait()
    return proc.pid, create_time


# -- running code as an unprivileged user ------------------------------------------------------

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


class Unprivileged:
    """Runs code in a fresh interpreter without root's powers over files, in ``folder``.

    As root it drops every capability through ``setpriv`` and stays uid 0, so it still reads
    the venv and the project wherever CI put them, but obeys file permissions like any user.
    As any other user it just runs.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.prefix: list[str] = []
        if IS_ROOT:
            setpriv = shutil.which("setpriv")
            if setpriv is None:
                pytest.skip("running as root without setpriv (util-linux): cannot drop privileges")
            self.prefix = [setpriv, "--bounding-set=-all", "--inh-caps=-all"]

    def run(self, code: str, *args: str) -> subprocess.CompletedProcess[str]:
        env = dict(
            os.environ,
            TMPDIR=str(self.folder),
            HOME=str(self.folder),
            XDG_CACHE_HOME=str(self.folder / ".cache"),
        )
        return subprocess.run(
            [*self.prefix, sys.executable, "-c", code, *args],
            cwd=self.folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )


@pytest.fixture
def unprivileged() -> Iterator[Unprivileged]:
    """An :class:`Unprivileged` runner with a fresh folder, removed at teardown."""
    folder = Path(tempfile.mkdtemp(prefix="edgeprofiles-test-", dir=SYSTEM_TMP))
    try:
        yield Unprivileged(folder)
    finally:
        # A non-root owner must reopen read-only folders first; root needs nothing.
        for dirpath, dirnames, _ in os.walk(folder):
            for d in dirnames:
                p = os.path.join(dirpath, d)
                if not os.path.islink(p):
                    os.chmod(p, 0o700)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def browser() -> Browser:
    """The browser the plugin would use; a failure, not a skip, when CI requires one."""
    found = find_browser()
    if found is None:
        if os.environ.get("EDGEPROFILES_REQUIRE_BROWSER") == "1":
            pytest.fail("no browser found and EDGEPROFILES_REQUIRE_BROWSER=1")
        pytest.skip("no Edge, Chrome or Chromium installed")
    return found


# -- running pytest on a file system of a given kind -------------------------------------------

#: Why a test run in such a mount skips but on Linux (and there without root, on its own).
A_MOUNT = "a tmpfs mounted in a mount namespace of its own (unshare)"


def run_in_a_mount(
    pytester: pytest.Pytester, mount_options: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run pytest in ``pytester.path`` with ``{mnt}`` in ``args`` and ``env`` standing for a
    fresh tmpfs mounted with ``mount_options`` (``ro``, ``size=1m``, ...), in a mount
    namespace of its own: a read-only or full disk, without touching the machine's."""
    if not IS_ROOT or shutil.which("unshare") is None:
        pytest.skip("mounting a file system for one test needs root and unshare")
    mnt = pytester.path / "mnt"
    mnt.mkdir()
    inner = " ".join(f"'{a.format(mnt=mnt)}'" for a in args)
    script = f"mount -t tmpfs -o {mount_options} tmpfs '{mnt}' && exec '{sys.executable}' -m pytest {inner}"
    return subprocess.run(
        ["unshare", "--mount", "sh", "-c", script],
        cwd=pytester.path,
        env={**os.environ, **{k: v.format(mnt=mnt) for k, v in (env or {}).items()}},
        capture_output=True,
        text=True,
        timeout=120,
    )
