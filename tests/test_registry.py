"""The shared slot registry: one cap across managers, threads and processes, and its recovery."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest
from browser_support import start_process
from conftest import SINGLETON_LOCK, posix_only

from pytest_edgeprofiles import ProfileLimitError
from pytest_edgeprofiles._chromium import processes
from pytest_edgeprofiles._profiles import removal, sweep
from pytest_edgeprofiles._profiles.records import ProfileRecord, write_record
from pytest_edgeprofiles._profiles.registry import Registry
from pytest_edgeprofiles._system import files
from pytest_edgeprofiles._system import waiting as polling
from pytest_edgeprofiles._system.locks import FileMutex

CHILD = textwrap.dedent(
    """
    import sys
    from pytest_edgeprofiles import ProfileManager
    m = ProfileManager(root=sys.argv[1], registry_path=sys.argv[2], max_profiles=1)
    print(m.create_profile("child"), flush=True)
    sys.stdin.read()
    """
)


def psutil_gone(pid: int) -> bool:
    return not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def names(folder: Path) -> list[str]:
    try:
        return sorted(os.listdir(folder))
    except FileNotFoundError:
        return []


def entries_of(registry_path: Path) -> dict:
    return json.loads(registry_path.read_text())["entries"]


@pytest.fixture
def registry_path(tmp_path: Path) -> Path:
    return tmp_path / "shared" / "registry.json"


def test_two_managers_share_one_cap(manager, registry_path, tmp_root):
    first = manager(max_profiles=1, registry_path=registry_path)
    second = manager(max_profiles=1, registry_path=registry_path)
    path = first.create_profile("gw0")
    with pytest.raises(ProfileLimitError) as info:
        second.create_profile("gw1")
    assert str(info.value) == "Profile limit exceeded: 1/1"
    assert [(h.worker_id, h.path, h.pid) for h in info.value.holders] == [
        ("gw0", path, os.getpid())
    ]
    assert second.list_profiles() == {}
    assert names(tmp_root) == sorted([Path(path).name, f"{Path(path).name}.owner"])
    assert list(entries_of(registry_path)) == [path]


def test_a_slot_freed_later_goes_with_the_next_claim_in_one_write(
    manager, registry_path, monkeypatch
):
    m = manager(max_profiles=2, registry_path=registry_path)
    first = m.create_profile("gw0.1")
    m.release_profile("gw0.1", free_slot_later=True)
    assert list(entries_of(registry_path)) == [first], "left for the next claim"
    assert m._ledger.registry.holders() == [], "yet nobody holds it"
    writes = []
    monkeypatch.setattr("pytest_edgeprofiles._profiles.registry._write", _counting(writes))
    second = m.create_profile("gw0.2")
    assert list(entries_of(registry_path)) == [second]
    assert len(writes) == 1, "freed and claimed in one write"
    m.release_profile("gw0.2", free_slot_later=True)
    assert m.cleanup_all_profiles() == 0
    assert entries_of(registry_path) == {}, "freed at the end at the latest"


def test_a_slot_freed_later_is_reclaimed_by_another_process_at_the_cap(
    manager, registry_path, tmp_root
):
    m = manager(max_profiles=1, registry_path=registry_path)
    m.create_profile("gw0.1")
    m.release_profile("gw0.1", free_slot_later=True)  # its next profile never comes
    child = subprocess.run(
        [sys.executable, "-c", CHILD.replace("sys.stdin.read()", ""), str(tmp_root),
         str(registry_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert child.returncode == 0, child.stderr
    assert Path(child.stdout.strip()).name.startswith("child-")


@pytest.mark.parametrize("cleanup_on_exit", [True, False])
def test_a_slot_freed_later_is_freed_when_the_process_ends(
    registry_path, tmp_root, cleanup_on_exit
):
    code = textwrap.dedent(
        """
        import sys
        from pytest_edgeprofiles import ProfileManager
        m = ProfileManager(
            root=sys.argv[1], registry_path=sys.argv[2], cleanup_on_exit=sys.argv[3] == "True"
        )
        m.create_profile("gw0.1")
        m.release_profile("gw0.1", free_slot_later=True)  # the process ends instead
        """
    )
    args = [str(tmp_root), str(registry_path), str(cleanup_on_exit)]
    result = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert entries_of(registry_path) == {}


def test_a_slot_whose_profile_stays_is_freed_at_once(manager, registry_path, monkeypatch):
    m = manager(max_profiles=1, registry_path=registry_path)
    path = Path(m.create_profile("gw0.1"))
    # A folder that cannot be renamed aside stays under its name: no claimant could tell it
    # from a live one, so its slot must not wait for our next claim.
    monkeypatch.setattr(files, "move_aside", _refuse)
    m.release_profile("gw0.1", free_slot_later=True)
    assert entries_of(registry_path) == {}
    m.drain()
    assert not path.exists()


def _counting(writes: list[object]) -> object:
    from pytest_edgeprofiles._profiles import registry

    real = registry._write

    def write(*args: object) -> None:
        writes.append(args)
        real(*args)  # type: ignore[arg-type]

    return write


def _refuse(path: Path) -> Path:
    raise PermissionError(13, "in use", str(path))


def test_a_private_registry_caps_only_its_manager(manager):
    first = manager(max_profiles=1)
    second = manager(max_profiles=1)
    first.create_profile("gw0")
    assert os.path.isdir(second.create_profile("gw0"))


@posix_only("the modes 0600 and 0700: Windows protects files by ACLs, not modes")
def test_registry_files_are_private(manager, registry_path):
    m = manager(registry_path=registry_path)
    path = m.create_profile("gw0")
    assert stat.S_IMODE(registry_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(Path(f"{registry_path}.lock").stat().st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(f"{path}.owner").st_mode) == 0o600


def test_create_waits_for_a_slot_released_by_another_thread(manager, registry_path, monkeypatch):
    first = manager(max_profiles=1, registry_path=registry_path)
    second = manager(max_profiles=1, registry_path=registry_path)
    first.create_profile("gw0")

    # Learn when the second manager starts waiting: the registry pauses between looks.
    waiting = threading.Event()
    real_sleep = time.sleep

    def pause(seconds: float) -> None:
        waiting.set()
        real_sleep(seconds)

    monkeypatch.setattr(polling, "sleep", pause)
    released = []

    def release() -> None:
        if waiting.wait(timeout=10):
            released.append(first.cleanup_profile("gw0"))

    releaser = threading.Thread(target=release)
    releaser.start()
    try:
        path = second.create_profile("gw1", timeout=10)
    finally:
        waiting.set()
        releaser.join(timeout=10)
    assert released == [True]
    assert os.path.isdir(path)
    assert list(entries_of(registry_path)) == [path]


def test_create_gives_up_when_the_timeout_expires(manager, registry_path):
    first = manager(max_profiles=1, registry_path=registry_path)
    second = manager(max_profiles=1, registry_path=registry_path)
    first.create_profile("gw0")
    start = time.monotonic()
    with pytest.raises(ProfileLimitError, match=r"^Profile limit exceeded: 1/1$"):
        second.create_profile("gw1", timeout=0.2)
    assert time.monotonic() - start >= 0.2
    assert second.list_profiles() == {}
    assert not waiters_of(registry_path), "it gave up: it waits no more"


def waiters_of(registry_path: Path) -> dict:
    return json.loads(registry_path.read_text()).get("waiting", {})


def test_a_spare_slot_is_never_one_a_waiting_taker_could_have(manager, registry_path, monkeypatch):
    ours = manager(max_profiles=2, registry_path=registry_path)
    theirs = manager(max_profiles=2, registry_path=registry_path)
    ours.create_profile("gw0")
    ours.create_profile("gw0.1")
    # Hold the other manager between its looks for a slot, listed as waiting.
    waiting, go_on = threading.Event(), threading.Event()
    real_sleep = time.sleep

    def pause(seconds: float) -> None:
        if threading.current_thread() is not threading.main_thread() and not go_on.is_set():
            waiting.set()
            go_on.wait(timeout=10)
        real_sleep(seconds)

    monkeypatch.setattr(polling, "sleep", pause)
    taken: list[str] = []
    waiter = threading.Thread(target=lambda: taken.append(theirs.create_profile("gw1", timeout=10)))
    waiter.start()
    try:
        assert waiting.wait(timeout=10)
        assert len(waiters_of(registry_path)) == 1
        ours.cleanup_profile("gw0.1")  # a slot is free, and the other manager waits for it
        with pytest.raises(ProfileLimitError):
            ours.create_profile("gw0.2", spare=True)
        assert "gw0.2" not in ours.list_profiles()
    finally:
        go_on.set()
        waiter.join(timeout=10)
    assert len(taken) == 1 and os.path.isdir(taken[0])
    assert not waiters_of(registry_path)
    theirs.cleanup_profile("gw1")
    assert os.path.isdir(ours.create_profile("gw0.2", spare=True)), "nobody waits now"


def test_a_spare_slot_is_taken_at_once_or_not_at_all(manager, registry_path):
    m = manager(max_profiles=1, registry_path=registry_path)
    m.create_profile("gw0")
    start = time.monotonic()
    with pytest.raises(ProfileLimitError):
        m.create_profile("gw0.1", spare=True, timeout=30)
    assert time.monotonic() - start < 5, "a spare take never waits"
    assert not waiters_of(registry_path), "nor is it listed as waiting"


def test_a_waiter_killed_while_it_waits_holds_no_slot_off(manager, registry_path, tmp_root):
    m = manager(max_profiles=1, registry_path=registry_path)
    m.create_profile("gw0")
    script = textwrap.dedent(
        """
        import sys
        from pytest_edgeprofiles import ProfileManager
        m = ProfileManager(root=sys.argv[1], registry_path=sys.argv[2], max_profiles=1)
        m.create_profile("child", timeout=120)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script, str(tmp_root), str(registry_path)])
    try:
        deadline = time.monotonic() + 30
        while not waiters_of(registry_path):  # a poll with a deadline: the child says nothing
            assert child.poll() is None and time.monotonic() < deadline, "the child never waited"
            time.sleep(0.01)
    finally:
        child.kill()
        child.wait()
    m.cleanup_profile("gw0")
    assert os.path.isdir(m.create_profile("gw0.1", spare=True))
    assert not waiters_of(registry_path)


def _start_child(tmp_root: Path, registry_path: Path) -> tuple[subprocess.Popen[str], str]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_root), str(registry_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    path = child.stdout.readline().strip()  # blocks until the child holds its profile
    if not path:
        child.kill()
        _, err = child.communicate()
        pytest.fail(f"the child made no profile: {err}")
    return child, path


@posix_only(f"SIGKILL; {SINGLETON_LOCK}")
def test_processes_share_a_cap_and_a_killed_owner_frees_its_slot(manager, registry_path, tmp_root):
    child, child_path = _start_child(tmp_root, registry_path)
    # The killed owner's browser outlives it, as browsers started by a killed worker do.
    orphan = start_process(
        [sys.executable, "-c", "import time; time.sleep(120)", f"--user-data-dir={child_path}"],
        start_new_session=True,
    )
    try:
        os.symlink(f"{socket.gethostname()}-{orphan.pid}", Path(child_path, "SingletonLock"))
        m = manager(max_profiles=1, registry_path=registry_path)
        with pytest.raises(ProfileLimitError, match=r"^Profile limit exceeded: 1/1$") as info:
            m.create_profile("gw0")
        assert [(h.path, h.pid) for h in info.value.holders] == [(child_path, child.pid)]
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        # Killed: it cleaned nothing up, but it no longer holds its slot...
        path = m.create_profile("gw0")
        assert list(entries_of(registry_path)) == [path]
        # ...and what it left goes at once, its browser too: it would be one over the cap.
        m.drain()
        assert orphan.poll() is not None or psutil_gone(orphan.pid)
        assert not os.path.lexists(child_path)
        assert sweep.sweep(tmp_root).removed == []
    finally:
        for proc in (child, orphan):
            proc.kill()
            proc.wait()
    assert not os.path.lexists(f"{child_path}.owner")
    assert names(tmp_root) == sorted([Path(path).name, f"{Path(path).name}.owner"])


def test_a_child_that_exits_normally_frees_its_slot(manager, registry_path, tmp_root):
    child, child_path = _start_child(tmp_root, registry_path)
    _, err = child.communicate(input="", timeout=30)
    assert child.returncode == 0, err
    assert not os.path.lexists(child_path)
    m = manager(max_profiles=1, registry_path=registry_path)
    path = m.create_profile("gw0")
    assert names(tmp_root) == sorted([Path(path).name, f"{Path(path).name}.owner"])


CORRUPTIONS = {
    "empty": b"",
    "truncated": b'{"version": 1, "entries": {"/tmp/x": {"worker_id": "gw',
    "binary": b"\x00\xff\xfe\x80garbage\x01\x02",
    "list": b"[]",
    "null": b"null",
    "entries-not-a-dict": b'{"entries": 5}',
    "entry-not-a-record": b'{"entries": {"x": 5}, "stats": {"created": 0, "peak": 0}}',
    "no-stats": b'{"version": 1, "entries": {}}',
    "waiting-not-a-dict": b'{"entries": {}, "stats": {"created": 0, "peak": 0}, "waiting": []}',
    "deleted": None,
}


@pytest.mark.parametrize("damage", list(CORRUPTIONS), ids=list(CORRUPTIONS))
def test_a_damaged_registry_is_rebuilt_and_the_cap_holds(
    manager, registry_path, tmp_root, caplog, damage
):
    first = manager(max_profiles=1, registry_path=registry_path)
    live = first.create_profile("gw0")
    content = CORRUPTIONS[damage]
    if content is None:
        registry_path.unlink()
    else:
        registry_path.write_bytes(content)

    with (
        caplog.at_level(logging.WARNING, logger="pytest_edgeprofiles"),
        pytest.raises(ProfileLimitError) as info,
    ):
        first.create_profile("gw1")
    assert [h.path for h in info.value.holders] == [live]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert str(registry_path) in warnings[0]
    assert "rebuilding it from owner records" in warnings[0]
    assert list(entries_of(registry_path)) == [live]

    # A manager that never saw the file counts the live profile too.
    second = manager(max_profiles=1, registry_path=registry_path)
    with pytest.raises(ProfileLimitError):
        second.create_profile("gw1")
    assert first.cleanup_profile("gw0") is True
    assert os.path.isdir(second.create_profile("gw1"))


def test_a_reclaimed_slot_spares_a_profile_its_owner_kept_before_dying(
    manager, registry_path, tmp_root
):
    from pytest_edgeprofiles._profiles.records import read_record, record_path

    child, child_path = _start_child(tmp_root, registry_path)
    try:
        # Killed between marking its profile kept and giving back the slot.
        kept = read_record(record_path(child_path)).kept()
        write_record(kept)
        child.kill()  # SIGKILL; TerminateProcess on Windows: no cleanup either way
        child.wait(timeout=10)
    finally:
        child.kill()
        child.communicate()
    m = manager(max_profiles=1, registry_path=registry_path)
    m.create_profile("gw0")
    m.drain()
    assert os.path.isdir(child_path), "kept: the evidence of a failure"


def test_a_create_interrupted_while_a_dead_owners_browser_stops_leaves_no_slot(
    manager, registry_path, tmp_root, monkeypatch
):
    child, _ = _start_child(tmp_root, registry_path)
    child.kill()  # its profile and its slot are a dead owner's
    child.communicate()

    def interrupted(record: ProfileRecord) -> None:
        raise KeyboardInterrupt  # a Ctrl-C while its browser is stopped: seconds, if killed

    monkeypatch.setattr(removal, "stop_reclaimed", interrupted)
    m = manager(max_profiles=1, registry_path=registry_path)
    with pytest.raises(KeyboardInterrupt):
        m.create_profile("gw0")
    m.drain()
    assert Registry(registry_path).holders() == []
    assert [p.name for p in tmp_root.iterdir() if not p.name.startswith(".")] == [], (
        "the dead owner's profile is removed all the same, and nothing of the new one is left"
    )
    assert os.path.isdir(m.create_profile("gw0")), "the slot is free"


def test_a_rebuild_counts_only_live_unreleased_records_of_this_registry(
    manager, registry_path, tmp_root, dead_owner
):
    m = manager(max_profiles=1, registry_path=registry_path)
    m.create_profile("gw0")
    m.cleanup_profile("gw0")  # the registry now exists and m has seen it
    tmp_root.mkdir(exist_ok=True)
    me = ProfileRecord(
        worker_id="x",
        path="",
        pid=os.getpid(),
        create_time=processes.start_time(os.getpid()),
        host=socket.gethostname(),
        created_at=time.time(),
        registry=str(registry_path.resolve()),
    )
    planted = {
        "dead": {"pid": dead_owner[0], "create_time": dead_owner[1]},
        "released": {"released": True},
        "other-registry": {"registry": str(registry_path.parent / "other.json")},
        "no-registry": {"registry": None},
    }
    for name, changes in planted.items():
        folder = tmp_root / f"{name}-000000000000"
        folder.mkdir()
        write_record(ProfileRecord(**{**me.to_dict(), "path": str(folder), **changes}))
    registry_path.write_bytes(b"")
    path = m.create_profile("gw0")
    assert list(entries_of(registry_path)) == [path]


def test_many_threads_never_exceed_the_cap(manager, registry_path, tmp_root):
    threads_n, cycles, cap = 16, 30, 4
    managers = [manager(max_profiles=cap, registry_path=registry_path) for _ in range(4)]
    tmp_root.mkdir()
    start = threading.Barrier(threads_n + 1)
    done = threading.Event()
    errors: list[BaseException] = []
    seen = {"max_dirs": 0, "max_entries": 0, "samples": 0}

    def work(i: int) -> None:
        m = managers[i % len(managers)]
        worker_id = f"t{i}"
        try:
            start.wait(timeout=30)
            for _ in range(cycles):
                path = m.create_profile(worker_id, timeout=30)
                Path(path, "Local State").write_text("{}")
                if not m.cleanup_profile(worker_id, strict=True):
                    raise AssertionError(f"cleanup of {path} returned False")
        except BaseException as exc:
            errors.append(exc)

    def watch() -> None:
        start.wait(timeout=30)
        while not done.wait(0.001):  # sample about every millisecond until the workers end
            with os.scandir(tmp_root) as it:
                dirs = sum(e.is_dir(follow_symlinks=False) for e in it)
            seen["max_dirs"] = max(seen["max_dirs"], dirs)
            # Under the registry's lock, as every reader: it is written in place.
            held = len(Registry(registry_path).holders()) if registry_path.exists() else 0
            seen["max_entries"] = max(seen["max_entries"], held)
            seen["samples"] += 1

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads_n)]
    watcher = threading.Thread(target=watch)
    for t in [*workers, watcher]:
        t.start()
    for t in workers:
        t.join(timeout=60)
    done.set()
    watcher.join(timeout=10)

    assert errors == []
    assert not any(t.is_alive() for t in workers)
    assert seen["samples"] > 0
    assert 1 <= seen["max_dirs"] <= cap
    assert seen["max_entries"] <= cap
    assert names(tmp_root) == []
    state = json.loads(registry_path.read_text())
    assert state["entries"] == {}
    assert state["stats"]["created"] == threads_n * cycles
    assert 1 <= state["stats"]["peak"] <= cap


@posix_only("fork, and flock's locks shared by a forked child")
def test_a_forked_child_waits_for_the_lock_its_parent_holds(tmp_path: Path) -> None:
    # flock locks belong to the open file: a child forked with ours open would share the lock.
    mutex = FileMutex(tmp_path / "registry.json.lock")
    log = tmp_path / "log"
    with mutex:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                with mutex, open(log, "a") as fh:
                    fh.write("child in\n")
            finally:
                os._exit(0)
        # The child may take the lock only once we give it back: a second to try.
        deadline = time.monotonic() + 1.0
        while not log.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        with open(log, "a") as fh:
            fh.write("parent out\n")
    os.waitpid(pid, 0)
    assert log.read_text() == "parent out\nchild in\n"


@posix_only("flock on a kept file")
def test_a_lock_file_removed_while_waited_for_is_locked_anew(tmp_path: Path) -> None:
    # Another process removed the lock file and locked a new one under the name: a waiter
    # that took the lock of the old file would run beside that process.
    path = tmp_path / "registry.json.lock"
    first, waiter, newcomer = FileMutex(path), FileMutex(path), FileMutex(path)
    with waiter:
        pass  # its file is open: it waits on the old file below
    order: list[str] = []
    first.acquire()
    entered = threading.Event()

    def wait() -> None:
        with waiter:
            order.append("waiter in")
        entered.set()

    thread = threading.Thread(target=wait)
    thread.start()
    path.unlink()
    newcomer.acquire()  # a new file of the same name
    first.release()
    assert not entered.wait(0.5), "the waiter took the lock of the removed file"
    order.append("newcomer out")
    newcomer.release()
    thread.join(10)
    assert order == ["newcomer out", "waiter in"]
