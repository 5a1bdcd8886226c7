"""Processes: which processes run "on" a profile, and whether an owner lives."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from browser_support import start_process, wait_for
from conftest import SYMLINKS, posix_only

from pytest_edgeprofiles._chromium import processes, userdata
from pytest_edgeprofiles._system import platform


@pytest.fixture
def on_folder(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    """A process of this user whose command line names a real folder as its user data dir."""
    folder = tmp_path / "real"
    folder.mkdir()
    proc = start_process(
        [sys.executable, "-c", "import time; time.sleep(120)", f"--user-data-dir={folder}"]
    )
    try:
        yield folder, proc
    finally:
        proc.kill()
        proc.wait()


@posix_only(SYMLINKS)
def test_a_link_to_a_folder_in_use_is_not_that_folder(
    tmp_path: Path, on_folder: tuple[Path, subprocess.Popen[bytes]]
) -> None:
    folder, proc = on_folder
    link = tmp_path / "link"
    link.symlink_to(folder)
    linked_parent = tmp_path / "linked-parent"
    linked_parent.symlink_to(tmp_path)
    for path in (link, linked_parent / "real"):
        assert processes.browsers_using(str(path)) == [], path
        assert processes.process_uses(proc.pid, str(path)) is False, path
    # Spelled differently, the same folder without a link on the way still matches.
    for same in (folder, f"{folder}/", f"{tmp_path}/./x/../real"):
        assert [p.pid for p in processes.browsers_using(str(same))] == [proc.pid], same
        assert processes.process_uses(proc.pid, str(same)) is True, same


@posix_only(f"{SYMLINKS}: a SingletonLock, and a profile that is a link")
def test_stop_browser_on_a_link_stops_nothing(
    tmp_path: Path, on_folder: tuple[Path, subprocess.Popen[bytes]]
) -> None:
    folder, proc = on_folder
    os.symlink(f"host-{proc.pid}", folder / "SingletonLock")
    link = tmp_path / "profile"
    link.symlink_to(folder)
    processes.stop_browser_on(link)
    assert proc.poll() is None, "a process on the link's target was stopped"
    assert (folder / "SingletonLock").is_symlink()


@posix_only("POSIX paths: on Windows /private/tmp is a folder on the current drive")
def test_macos_private_prefix_is_the_same_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    # macOS shows /tmp and /var as /private/tmp and /private/var in command lines.
    monkeypatch.setattr(platform, "MACOS", True)
    assert processes.normalise("/private/tmp/p") == processes.normalise("/tmp/p")
    assert processes.normalise("/private/var/folders/p") == processes.normalise("/var/folders/p")
    assert processes.normalise("/private/tmp") == processes.normalise("/tmp")
    assert processes.normalise("/private/other/p") != processes.normalise("/other/p")
    assert processes.normalise("/private/tmpx") != processes.normalise("/tmpx")
    monkeypatch.setattr(platform, "MACOS", False)
    assert processes.normalise("/private/tmp/p") != processes.normalise("/tmp/p")


def test_odd_paths_are_compared_without_error() -> None:
    assert processes.names_profile(["x", "--user-data-dir"], processes.normalise("/p")) is False
    assert processes.names_profile(["--user-data-dir=", "/p"], processes.normalise("/p")) is False


@pytest.mark.parametrize("pid", [-1, 0, 2**31, 2**64, True, 1.5, None, "1"])
def test_odd_pids_are_no_process_and_never_raise(pid: object) -> None:
    # A record or registry entry may carry anything: a pid psutil rejects is no process.
    assert processes.process_alive(pid, 0.0) is False  # type: ignore[arg-type]
    assert processes.running_since(pid, time.time()) is False  # type: ignore[arg-type]
    assert processes.process_uses(pid, "/p") is False  # type: ignore[arg-type]


@posix_only("a process that never reaps its children")
def test_a_zombie_left_unreaped_by_its_parent_counts_as_stopped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A browser's helpers go to an init that may reap them late (or to none, in a container
    # whose first process is not an init): a stop must not wait for a dead process to vanish.
    parent = start_process(["sh", "-c", "(exit 0) & exec sleep 120"], shown=["sleep", "120"])
    try:

        def zombies() -> list[psutil.Process]:
            children = psutil.Process(parent.pid).children()
            return [child for child in children if child.status() == psutil.STATUS_ZOMBIE]

        wait_for(lambda: bool(zombies()), "the child to exit")
        processes.stop_browsers(zombies(), grace=30)
        assert "survived SIGKILL" not in caplog.text
        assert parent.poll() is None, "only the zombie was to stop"
    finally:
        parent.kill()
        parent.wait()


#: Where Linux takes the pid before the next one it hands out: root may set it.
LAST_PID = Path("/proc/sys/kernel/ns_last_pid")


def on_a_reused_pid(args: list[str]) -> subprocess.Popen[bytes]:
    """``args`` started, in a session of its own as a browser is, on the pid of a process that
    ``psutil.process_iter`` saw (and keeps a handle on) and that has exited since. Tried again
    while another process takes the pid first, or the two start in one clock tick (to psutil,
    one process then)."""
    for _ in range(20):
        old = start_process(["sleep", "120"])
        seen = [proc.create_time() for proc in psutil.process_iter() if proc.pid == old.pid]
        assert seen, "the scan did not see the process whose pid is to be reused"
        old.kill()
        old.wait()
        try:
            LAST_PID.write_text(str(old.pid - 1))
        except PermissionError:  # root without CAP_SYS_ADMIN (a container's)
            pytest.skip("choosing the next pid needs CAP_SYS_ADMIN")
        proc = start_process(args, start_new_session=True)
        if proc.pid == old.pid and psutil.Process(proc.pid).create_time() != seen[0]:
            return proc
        proc.kill()
        proc.wait()
    pytest.fail("no pid was ours to reuse in 20 tries")


@pytest.mark.skipif(
    not os.access(LAST_PID, os.W_OK), reason="reusing a pid at will needs Linux and root"
)
@pytest.mark.parametrize("scan", ["on the profile", "in the browser's process group"])
def test_a_browser_on_a_reused_pid_is_stopped(tmp_path: Path, scan: str) -> None:
    # A long run (or Windows, which reuses pids at once) starts a browser on the pid of a
    # process an earlier scan saw: the scan must not hand back the handle it kept for that one.
    args = [sys.executable, "-c", "import time; time.sleep(120)", f"--user-data-dir={tmp_path}"]
    browser = on_a_reused_pid(args)
    try:
        if scan == "on the profile":
            found = processes.browsers_using(str(tmp_path))
        else:
            found = processes.group_left_on(browser.pid, tmp_path)
        assert [proc.pid for proc in found] == [browser.pid]
        processes.stop_browsers(found, grace=5)
        assert browser.poll() is not None, "the browser on a reused pid still runs"
    finally:
        browser.kill()
        browser.wait()


@pytest.mark.parametrize(
    ("arg", "windows", "read"),
    [
        ("--user-data-dir=/p", False, ("--user-data-dir", "/p")),
        ("-user-data-dir=/p", False, ("--user-data-dir", "/p")),
        ("--User-Data-Dir=/p", False, ("--User-Data-Dir", "/p")),  # POSIX: case counts
        ("/user-data-dir=/p", False, None),  # a path, not a switch
        ("-", False, None),
        ("--", False, None),
        ("--headless", False, ("--headless", None)),
        ("/User-Data-Dir=C:\\p", True, ("--user-data-dir", "C:\\p")),
        ("-USER-DATA-DIR=C:\\p", True, ("--user-data-dir", "C:\\p")),
    ],
)
def test_a_switch_is_read_as_the_browser_reads_it(
    arg: str, windows: bool, read: tuple[str, str | None] | None
) -> None:
    assert userdata.switch(arg, windows=windows) == read


def test_a_browser_on_a_profile_named_with_one_dash_is_found() -> None:
    profile = processes.normalise("/p")
    assert processes.names_profile(["chromium", "-user-data-dir=/p"], profile)
