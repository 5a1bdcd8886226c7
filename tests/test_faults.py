"""Faults: processes killed at every step, a damaged or read-only registry, full disks and I/O
errors, entries changed behind our back, two runs on one root, and generated hostile input.

Whatever happens, the cap holds, nothing leaks (no folder, record, slot or temp file), and a
bad input is a clear error that creates nothing.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import linux_only, posix_only
from filelock import FileLock, Timeout
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from pytest_edgeprofiles import ProfileLimitError, ProfileManager
from pytest_edgeprofiles._profiles import runs, sweep
from pytest_edgeprofiles._profiles.manager import check_worker_id
from pytest_edgeprofiles._system import files, treecopy

OUTER_XDIST = ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_TESTRUNUID", "PYTEST_XDIST_WORKER_COUNT")


def names(folder: Path | str) -> list[str]:
    try:
        return sorted(os.listdir(folder))
    except FileNotFoundError:
        return []


def small_base(folder: Path) -> Path:
    """A user data dir with few folders: every mkdir/rmdir costs a millisecond on CI disks."""
    (folder / "Default").mkdir(parents=True)
    (folder / "Local State").write_text('{"os_crypt": {"encrypted_key": "RFBBUEkBAAAA"}}')
    (folder / "Default" / "Preferences").write_text('{"profile": {"exit_type": "Crashed"}}')
    (folder / "Default" / "Cookies").write_bytes(b"SQLite format 3\x00" + b"c" * 20000)
    return folder


def entries_of(registry_path: Path) -> dict[str, Any]:
    return json.loads(registry_path.read_text())["entries"]  # type: ignore[no-any-return]


@pytest.fixture
def registry_path(tmp_path: Path) -> Path:
    return tmp_path / "shared" / "registry.json"


def assert_all_slots_free(root: Path, registry_path: Path, cap: int) -> None:
    """A fresh manager takes every slot (dead owners' slots reclaimed), and not one more."""
    m = ProfileManager(root=root, registry_path=registry_path, max_profiles=cap)
    try:
        paths = [m.create_profile(f"check{i}") for i in range(cap)]
        assert all(os.path.isdir(p) for p in paths)
        with pytest.raises(ProfileLimitError):
            m.create_profile("one-too-many")
    finally:
        assert m.cleanup_all_profiles() == cap


# -- SIGKILL at every step of create, copy and cleanup -----------------------------------------

# Forks one child per kill point (a fork costs milliseconds, a fresh interpreter ~100 ms). Every
# file-system call of the scenario is a kill point: the child dies just before the call, or for
# writes and copies after half of the data reached the disk (a torn write). The driver holds
# one slot all along, so each next child can only work if the dead one's slot was reclaimed.
KILL_DRIVER = r"""
import json, os, random, shutil, signal, sys, threading, time, traceback
from pathlib import Path

from pytest_edgeprofiles import ProfileManager
from pytest_edgeprofiles._profiles.registry import Registry

root, registry, base, out, seed, random_kills, cap = sys.argv[1:8]
CAP = int(cap)
armed = False
kill_at = 0
tear = False
events = []
fd_kind = {}


def kind(path):
    try:
        name = os.path.basename(os.fsdecode(path))
    except TypeError:
        return "fd"
    if name.endswith(".lock"):
        return "lock"
    if "registry" in name:
        return "registry"
    if ".owner" in name:
        return "record"
    return "profile"


def wrap(module, name):
    real = getattr(module, name)

    def wrapper(*args, **kwargs):
        k = None
        # A mkdir of a folder that exists changes nothing: not a point worth a kill.
        if armed and not (name == "mkdir" and os.path.isdir(args[0])):
            by_fd = name in ("write", "pwrite", "ftruncate")
            k = fd_kind.get(args[0], "fd") if by_fd else kind(args[0])
            events.append(f"{name}:{k}")
            if len(events) == kill_at:
                if tear and name in ("write", "pwrite"):
                    real(args[0], bytes(args[1])[: max(1, len(args[1]) // 2)], *args[2:])
                os.kill(os.getpid(), signal.SIGKILL)
        result = real(*args, **kwargs)
        if name == "open" and k is not None:
            fd_kind[result] = k
        return result

    setattr(module, name, wrapper)


# The base is copied relative to open folders: pwrite is where a file's bytes reach the disk.
for n in ("open", "write", "pwrite", "ftruncate", "replace", "rename", "unlink", "rmdir", "mkdir"):
    wrap(os, n)


def scenario(tag):
    m = ProfileManager(base, root=root, registry_path=registry, max_profiles=CAP)
    m.prepare_profile("w" + tag)  # the plugin's way: cloned in the background, then taken
    m.create_profile("w" + tag)
    assert m.copy_base_profile("w" + tag)
    assert m.cleanup_profile("w" + tag, strict=True)
    m.create_profile("v" + tag)  # and a plain create, released in the background
    m.release_profile("v" + tag)
    m.drain()


def fork(k, torn, body):
    pid = os.fork()
    if pid == 0:
        global armed, kill_at, tear
        code = 0
        try:
            kill_at, tear, armed = k, torn, True
            body()
        except BaseException:
            armed = False
            Path(out + ".error").write_text(f"kill point {k}: " + traceback.format_exc())
            code = 3
        finally:
            armed = False
            if k == 0:
                Path(out + ".events").write_text(json.dumps(events))
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return status


def live():
    holders = Registry(Path(registry), [Path(root)]).holders()
    return sorted(h.worker_id for h in holders if h.owner_alive())


holder = ProfileManager(base, root=root, registry_path=registry, max_profiles=CAP)
holder.create_profile("holder")
status = fork(0, False, lambda: scenario(""))
assert status == 0, Path(out + ".error").read_text()
labels = json.loads(Path(out + ".events").read_text())
points = [(k, False) for k in range(1, len(labels) + 1)]
points += [(k, True) for k, label in enumerate(labels, 1) if label.startswith(("write", "pwrite"))]
results = []
for k, torn in points:
    status = fork(k, torn, lambda: scenario(""))
    results.append(
        {"point": k, "torn": torn, "label": labels[k - 1], "live": live(),
         "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None}
    )

rng = random.Random(int(seed))


def loop():
    def forever(t):
        for n in range(10**6):
            scenario(f"{t}x{n}")
    threads = [threading.Thread(target=forever, args=(t,), daemon=True) for t in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


randoms = []
for _ in range(int(random_kills)):
    pid = os.fork()
    if pid == 0:
        try:
            loop()
        finally:
            os._exit(3)
    # The fault itself, at a random moment: not a synchronisation.
    time.sleep(rng.uniform(0, 0.05))
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    randoms.append({"live": live(), "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None})
holder.cleanup_all_profiles()
Path(out).write_text(json.dumps({"labels": labels, "results": results, "randoms": randoms}))
"""


@posix_only("os.fork and SIGKILL")
def test_sigkill_at_every_step_of_create_copy_and_cleanup_leaks_nothing(tmp_path, registry_path):
    root = tmp_path / "root"
    base = small_base(tmp_path / "base")
    out = tmp_path / "kills.json"
    cap = 3
    driver = tmp_path / "driver.py"
    driver.write_text(KILL_DRIVER)
    args = [str(root), str(registry_path), str(base), str(out), "20260", "20", str(cap)]
    result = subprocess.run(
        [sys.executable, str(driver), *args], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert not Path(f"{out}.error").exists(), Path(f"{out}.error").read_text()
    report = json.loads(out.read_text())

    # The kill points cover the registry write, the owner record, the copy and the removal.
    labels = set(report["labels"])
    assert labels & {"write:registry", "replace:registry"}, labels
    assert {"pwrite:profile", "mkdir:profile"} <= labels, labels
    assert labels & {"replace:record", "open:record"}, labels
    assert labels & {"unlink:profile", "rmdir:profile", "rename:profile"}, labels
    assert any(r["torn"] and r["label"].endswith(":registry") for r in report["results"])
    assert len(report["results"]) >= 50

    # Each child died where it was meant to (none failed first because the last one's slot
    # or leftovers were in its way), and after each death only live owners hold slots.
    for outcome in report["results"] + report["randoms"]:
        assert outcome["signal"] == signal.SIGKILL, outcome
        assert outcome["live"] == ["holder"], outcome
    assert len(report["randoms"]) == 20

    # The registry is whole, and the cap holds: all slots can be taken, not one more.
    assert isinstance(entries_of(registry_path), dict)
    assert_all_slots_free(root, registry_path, cap)
    # The next session's sweep reclaims every leftover: no folder, record or temp file stays.
    assert names(root), "the killed children left something to sweep"
    swept = sweep.sweep(root)
    assert swept.failed == []
    assert names(root) == []
    assert entries_of(registry_path) == {}
    assert names(registry_path.parent) == ["registry.json", "registry.json.lock"]


# -- the registry: deleted, damaged or read-only mid-run --------------------------------------


def test_a_registry_deleted_while_a_slot_is_being_taken_keeps_the_cap(
    tmp_root, registry_path, sandbox_tempdir, monkeypatch
):
    """The registry is rebuilt from owner records: a slot taken but not yet backed by a record
    on disk must never be lost to a rebuild in that moment."""
    first = ProfileManager(root=tmp_root, registry_path=registry_path, max_profiles=1)
    second = ProfileManager(root=tmp_root, registry_path=registry_path, max_profiles=1)
    paused, go = threading.Event(), threading.Event()
    real_write = files.write_json_atomic

    def write_json_atomic(path: Path, data: Any, *args: Any, **kwargs: Any) -> None:
        if str(path).endswith(".owner") and Path(path).name.startswith("first-"):
            paused.set()  # the first manager's record is about to reach the disk
            assert go.wait(10)
        real_write(path, data, *args, **kwargs)

    monkeypatch.setattr(files, "write_json_atomic", write_json_atomic)
    outcomes: dict[str, object] = {}

    def create(m: ProfileManager, worker_id: str) -> None:
        try:
            outcomes[worker_id] = m.create_profile(worker_id)
        except Exception as exc:
            outcomes[worker_id] = exc

    first_thread = threading.Thread(target=create, args=(first, "first"))
    second_thread = threading.Thread(target=create, args=(second, "second"))
    first_thread.start()
    try:
        assert paused.wait(10), "the record was never written"
        # Can anyone reach the registry while the first manager is paused here?
        try:
            FileLock(f"{registry_path}.lock").acquire(timeout=0).lock.release()
            reachable = True
        except Timeout:
            reachable = False
        registry_path.unlink(missing_ok=True)
        second_thread.start()
        if reachable:
            second_thread.join(30)  # it runs to its end, against the rebuilt registry
    finally:
        go.set()
        first_thread.join(30)
        if second_thread.ident is not None:
            second_thread.join(30)
    try:
        assert isinstance(outcomes["first"], str), outcomes
        assert isinstance(outcomes["second"], ProfileLimitError), outcomes
        assert [p for p in names(tmp_root) if not p.endswith(".owner")] == [
            Path(outcomes["first"]).name
        ]
    finally:
        first.cleanup_all_profiles()
        second.cleanup_all_profiles()


@pytest.mark.parametrize(
    "damage", [b"", b"\x00garbage", b"[]", None], ids=["empty", "binary", "list", "deleted"]
)
def test_a_rebuilt_registry_counts_the_profiles_of_managers_in_other_roots(
    tmp_path, registry_path, sandbox_tempdir, damage
):
    """Managers that share a registry may keep their profiles in different roots (or one
    fell back to the fallback root): a rebuild counts them all, or the cap would lift."""
    here = ProfileManager(root=tmp_path / "here", registry_path=registry_path, max_profiles=2)
    there = ProfileManager(root=tmp_path / "there", registry_path=registry_path, max_profiles=2)
    try:
        there.create_profile("gw1")
        here.create_profile("gw0")  # sees the registry, and so the other root
        if damage is None:
            registry_path.unlink()
        else:
            registry_path.write_bytes(damage)
        with pytest.raises(ProfileLimitError) as info:
            here.create_profile("gw2")
        assert sorted(h.worker_id for h in info.value.holders) == ["gw0", "gw1"]
    finally:
        here.cleanup_all_profiles()
        there.cleanup_all_profiles()


@posix_only("a read-only file replaced in a writable folder, and its mode 0600 again")
def test_a_read_only_registry_file_is_replaced_and_the_run_goes_on(unprivileged):
    """As a user that obeys permissions: the file is read-only, its folder is not."""
    code = textwrap.dedent(
        """
        import json, logging, os, sys
        from pathlib import Path
        from pytest_edgeprofiles import ProfileLimitError, ProfileManager
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        root, registry = Path(sys.argv[1]), Path(sys.argv[2])
        first = ProfileManager(root=root, registry_path=registry, max_profiles=2)
        held = first.create_profile("gw0")
        os.chmod(registry, 0o444)
        try:
            open(registry, "r+").close()
        except PermissionError:
            pass
        else:
            sys.exit("the runner ignores permissions: this test would prove nothing")
        second = ProfileManager(root=root, registry_path=registry, max_profiles=2)
        other = second.create_profile("gw1")
        try:
            second.create_profile("gw2")
        except ProfileLimitError as exc:
            full = str(exc)
        else:
            full = None
        first.cleanup_profile("gw0")
        again = second.create_profile("gw2")
        second.cleanup_all_profiles()
        print(json.dumps({
            "full": full,
            "entries": json.loads(registry.read_text())["entries"],
            "left": sorted(os.listdir(root)),
            "mode": oct(os.stat(registry).st_mode & 0o777),
        }))
        """
    )
    root = unprivileged.folder / "root"
    registry = unprivileged.folder / "reg" / "registry.json"
    result = unprivileged.run(code, str(root), str(registry))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["full"] == "Profile limit exceeded: 2/2"
    assert report["entries"] == {}
    assert report["left"] == []
    assert report["mode"] == "0o600"
    assert f"registry {registry}" in result.stderr and "read-only" in result.stderr


@posix_only("chmod 0555 cannot make a folder read-only on Windows")
def test_a_registry_that_cannot_be_written_is_a_clear_error_and_never_lifts_the_cap(
    unprivileged,
):
    """Its folder read-only: no slot can be counted, so no profile is made; a profile made
    before is still removed, and its slot comes back once the registry can be written."""
    code = textwrap.dedent(
        """
        import json, os, sys
        from pathlib import Path
        from pytest_edgeprofiles import ProfileManager
        root, registry = Path(sys.argv[1]), Path(sys.argv[2])
        first = ProfileManager(root=root, registry_path=registry, max_profiles=2)
        held = first.create_profile("gw0")
        os.chmod(registry, 0o444)
        os.chmod(registry.parent, 0o555)
        before = sorted(os.listdir(root))
        second = ProfileManager(root=root, registry_path=registry, max_profiles=2)
        try:
            second.create_profile("gw1")
        except OSError as exc:
            error = {"type": type(exc).__name__, "errno": exc.errno, "text": str(exc)}
        else:
            error = None
        created = sorted(os.listdir(root)) != before
        removed = first.cleanup_profile("gw0")
        os.chmod(registry.parent, 0o755)
        os.chmod(registry, 0o644)
        # Cap 1: only a slot given back (or reclaimed) lets this one in.
        later = ProfileManager(root=root, registry_path=registry, max_profiles=1)
        path = later.create_profile("gw2")
        later.cleanup_all_profiles()
        print(json.dumps({"error": error, "created": created, "removed": removed,
                          "left": sorted(os.listdir(root)), "path": path}))
        """
    )
    root = unprivileged.folder / "root"
    registry = unprivileged.folder / "reg" / "registry.json"
    result = unprivileged.run(code, str(root), str(registry))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["error"] is not None, "a registry nobody can write must not let profiles in"
    assert report["error"]["type"] == "PermissionError"
    assert report["error"]["errno"] == errno.EACCES
    assert str(registry) in report["error"]["text"]
    assert "registry" in report["error"]["text"].replace(str(registry), "")
    assert report["created"] is False
    assert report["removed"] is True
    assert report["left"] == []
    assert Path(report["path"]).parent == root


def test_a_full_disk_under_the_registry_is_a_clear_error_and_creates_nothing(
    manager, tmp_root, registry_path, monkeypatch
):
    m = manager(max_profiles=1, registry_path=registry_path)
    m.create_profile("gw0")
    assert m.cleanup_profile("gw0") is True
    real_open = os.open

    def full_disk(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if os.fspath(path) == str(registry_path) and flags & os.O_WRONLY | flags & os.O_RDWR:
            raise OSError(errno.ENOSPC, "No space left on device", os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    real_atomic = files.write_json_atomic

    def full_disk_atomic(path: Path, *args: Any, **kwargs: Any) -> None:
        if Path(path) == registry_path:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_atomic(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", full_disk)
    monkeypatch.setattr(files, "write_json_atomic", full_disk_atomic)
    with pytest.raises(OSError) as info:
        m.create_profile("gw1")
    monkeypatch.undo()
    assert info.value.errno == errno.ENOSPC
    assert str(registry_path) in str(info.value)
    assert names(tmp_root) == []
    assert m.list_profiles() == {}
    assert entries_of(registry_path) == {}
    assert os.path.isdir(m.create_profile("gw1"))


# -- full disks and I/O errors during the base copy -------------------------------------------


def _failing_copy(monkeypatch: pytest.MonkeyPatch, code: int, nth: int) -> list[str]:
    """From the ``nth`` file copied on, half of the file reaches the disk, then ``code``:
    where the copy goes relative to open folders and (Windows) by path."""
    real_copy_file, real_copyfile = treecopy._copy_file, shutil.copyfile
    copied: list[str] = []

    def copy_file(name: str, src_fd: int, dst_fd: int, paths: treecopy.Paths) -> int:
        copied.append(paths[1])
        size = real_copy_file(name, src_fd, dst_fd, paths)
        if len(copied) < nth:
            return size
        os.truncate(paths[1], size // 2)
        raise OSError(code, os.strerror(code), paths[1])

    def copyfile(src: str, dst: str, *args: Any, **kwargs: Any) -> str:
        copied.append(dst)
        if len(copied) < nth:
            return real_copyfile(src, dst, *args, **kwargs)
        with open(src, "rb") as fin, open(dst, "wb") as fout:
            data = fin.read()
            fout.write(data[: len(data) // 2])
        raise OSError(code, os.strerror(code), dst)

    monkeypatch.setattr(treecopy, "_copy_file", copy_file)
    monkeypatch.setattr(shutil, "copyfile", copyfile)
    return copied


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO], ids=["ENOSPC", "EIO"])
@pytest.mark.parametrize("nth", [1, 3], ids=["first-file", "third-file"])
def test_a_full_disk_or_io_error_during_the_base_copy(
    manager, make_base, tmp_path, tmp_root, registry_path, monkeypatch, code, nth
):
    fallback = tmp_path / "fallback"
    m = manager(
        str(make_base()), max_profiles=2, registry_path=registry_path, fallback_root=fallback
    )
    m.create_profile("gw0")
    copied = _failing_copy(monkeypatch, code, nth)
    with pytest.raises(OSError) as info:
        m.create_profile("gw1")
    monkeypatch.undo()
    # A clear error: what failed, on which file.
    assert info.value.errno == code
    assert info.value.filename == copied[-1]
    assert os.strerror(code) in str(info.value)
    # A full disk is tried once more under the fallback root; an I/O error is not.
    tries = {Path(p).parents[len(Path(p).relative_to(tmp_path).parts) - 2] for p in copied}
    assert tries == (
        {tmp_root.resolve(), fallback.resolve()} if code == errno.ENOSPC else {tmp_root.resolve()}
    )
    # The partial profile is gone, and so is its slot.
    held = m.get_profile_path("gw0")
    assert [p for p in names(tmp_root) if not p.endswith(".owner")] == [Path(held).name]
    assert names(fallback) == []
    assert list(entries_of(registry_path)) == [held]
    assert m.get_profile_path("gw1") is None
    other = manager(max_profiles=2, registry_path=registry_path)
    assert os.path.isdir(other.create_profile("gw1"))


def test_a_full_disk_while_refreshing_a_profile(manager, make_base, tmp_root, monkeypatch, caplog):
    m = manager(str(make_base()), max_profiles=1)
    path = m.create_profile("gw0")
    _failing_copy(monkeypatch, errno.ENOSPC, 2)
    with caplog.at_level(logging.WARNING, logger="pytest_edgeprofiles"):
        assert m.copy_base_profile("gw0") is False
    monkeypatch.undo()
    assert "No space left on device" in caplog.text
    assert m.get_profile_path("gw0") == path  # still the worker's, slot and all
    assert m.copy_base_profile("gw0") is True
    assert m.validate_profile("gw0") is True
    assert m.cleanup_profile("gw0") is True
    assert names(tmp_root) == []


# -- entries changed behind our back ----------------------------------------------------------


def test_a_profile_removed_by_someone_else(manager, tmp_root, registry_path):
    m = manager(max_profiles=1, registry_path=registry_path)
    path = m.create_profile("gw0")
    shutil.rmtree(path)
    assert m.validate_profile("gw0") is False
    assert m.get_profile_path("gw0") is None
    assert m.cleanup_profile("gw0") is True
    assert names(tmp_root) == []
    assert entries_of(registry_path) == {}
    # The same through the background release.
    path = m.create_profile("gw0")
    shutil.rmtree(path)
    m.release_profile("gw0")
    m.drain()
    assert m.background_failures == []
    assert names(tmp_root) == []
    assert entries_of(registry_path) == {}


def test_a_file_replaced_by_a_directory_mid_cleanup(manager, tmp_root, monkeypatch):
    m = manager()
    path = Path(m.create_profile("gw0"))
    (path / "Default" / "Cookies").write_bytes(b"c")
    real_unlink = os.unlink
    swapped = []

    def unlink(name: Any, *args: Any, dir_fd: int | None = None, **kwargs: Any) -> None:
        if os.fsdecode(name).endswith("Cookies") and not swapped:
            # Someone (a browser still writing) turns the file into a folder with content.
            real_unlink(name, dir_fd=dir_fd)
            os.mkdir(name, dir_fd=dir_fd)
            # Relative to the folder rmtree holds open (dir_fd None on Windows): no /proc needed.
            journal = os.path.join(name, "journal")
            fd = os.open(journal, os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=dir_fd)
            os.write(fd, b"x")
            os.close(fd)
            swapped.append(name)
        real_unlink(name, *args, dir_fd=dir_fd, **kwargs)

    monkeypatch.setattr(os, "unlink", unlink)
    assert m.cleanup_profile("gw0") is True
    monkeypatch.undo()
    assert swapped
    assert names(tmp_root) == []


@posix_only("chmod 0555 cannot make a folder read-only on Windows")
def test_read_only_entries_in_the_base_give_a_clone_the_browser_can_write_and_remove(
    unprivileged,
):
    code = textwrap.dedent(
        """
        import json, os, stat, sys
        from pathlib import Path
        from pytest_edgeprofiles import ProfileManager
        base, root = Path(sys.argv[1]), Path(sys.argv[2])
        (base / "Default" / "Extensions" / "abc").mkdir(parents=True)
        (base / "Local State").write_text("{}")
        (base / "Default" / "Extensions" / "abc" / "manifest.json").write_text("{}")
        (base / "Default" / "Preferences").write_text("{}")
        for p in (base / "Default" / "Extensions" / "abc" / "manifest.json", base / "Default" / "Preferences"):
            os.chmod(p, 0o444)
        for p in (base / "Default" / "Extensions" / "abc", base / "Default" / "Extensions"):
            os.chmod(p, 0o555)
        m = ProfileManager(str(base), root=root)
        clone = Path(m.create_profile("gw0"))
        writable = all(
            os.access(os.path.join(d, n), os.W_OK)
            for d, dirs, files in os.walk(clone) for n in dirs + files
        )
        (clone / "Default" / "Extensions" / "abc" / "new").write_text("the browser writes")
        valid = m.validate_profile("gw0")
        removed = m.cleanup_profile("gw0")
        print(json.dumps({"writable": writable, "valid": valid, "removed": removed,
                          "left": os.listdir(root)}))
        """
    )
    base = unprivileged.folder / "base"
    result = unprivileged.run(code, str(base), str(unprivileged.folder / "root"))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "writable": True,
        "valid": True,
        "removed": True,
        "left": [],
    }


@posix_only("chmod 000 and 0500 cannot seal a folder on Windows")
def test_a_dead_owners_read_only_profile_is_swept(unprivileged):
    code = textwrap.dedent(
        """
        import os, sys
        from pathlib import Path
        from pytest_edgeprofiles import ProfileManager
        m = ProfileManager(root=sys.argv[1])
        p = Path(m.create_profile("gw0"))
        (p / "sealed" / "deep").mkdir(parents=True)
        (p / "sealed" / "deep" / "f").write_text("x")
        os.chmod(p / "sealed" / "deep" / "f", 0o400)
        os.chmod(p / "sealed" / "deep", 0o500)
        os.chmod(p / "sealed", 0o000)
        os.chmod(p, 0o500)
        os._exit(0)  # dies like a killed worker
        """
    )
    root = unprivileged.folder / "root"
    result = unprivileged.run(code, str(root))
    assert result.returncode == 0, result.stderr
    sweeper = unprivileged.run(
        "import os, sys; from pathlib import Path; from pytest_edgeprofiles import sweep; "
        "r = sweep.sweep(Path(sys.argv[1])); print(len(r.removed), len(r.failed), os.listdir(sys.argv[1]))",
        str(root),
    )
    assert sweeper.returncode == 0, sweeper.stderr
    assert sweeper.stdout.strip().split(maxsplit=2) == ["1", "0", "[]"]


# -- two pytest runs sharing one root ---------------------------------------------------------

LONG_RUN = """
import os, time
from pathlib import Path

def test_holds_a_profile(edge_profile, edge_session_profile):
    Path({report!r}).write_text(f"{{edge_profile}}\\n{{edge_session_profile}}\\n")
    deadline = time.monotonic() + 120
    # Polls with a deadline: the other run ends in another process, which signals nothing.
    while not os.path.exists({go!r}):
        assert time.monotonic() < deadline, "the outer test never said go"
        time.sleep(0.02)
    assert (edge_profile / "Local State").read_text() == "mine"
    assert edge_session_profile.is_dir()
"""


@pytest.fixture
def inner_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OUTER_XDIST:
        monkeypatch.delenv(name, raising=False)
    for name in [n for n in os.environ if n.startswith("EDGEPROFILES_")]:
        monkeypatch.delenv(name)


def _wait_for_file(path: Path, proc: subprocess.Popen[str], seconds: float = 120) -> str:
    deadline = time.monotonic() + seconds
    while not path.exists() or not path.read_text().endswith("\n"):
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the long run ended early:\n{out}\n{err}")
        assert time.monotonic() < deadline, f"timed out waiting for {path}"
        time.sleep(0.02)  # a poll with a deadline: another process writes the file
    return path.read_text()


def test_two_pytest_runs_sharing_a_root_never_remove_each_others_live_profiles(
    pytester: pytest.Pytester, inner_env: None
) -> None:
    root = pytester.path / "shared-root"
    report, go = pytester.path / "report.txt", pytester.path / "go"
    long_dir = pytester.mkdir("long")
    (long_dir / "test_long.py").write_text(LONG_RUN.format(report=str(report), go=str(go)))
    long_run = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:xdist", "-p", "no:cacheprovider", "-q",
         f"--edge-profile-root={root}", str(long_dir)],
        cwd=long_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        profile, session_profile = map(Path, _wait_for_file(report, long_run).split())
        (profile / "Local State").write_text("mine")
        runs_before = names(root / ".runs")
        # The second run: its start and end sweeps, a failing test (kept, pruned to none).
        pytester.makepyfile(
            test_short="""
            def test_ok(edge_profile):
                pass
            def test_bad(edge_profile):
                assert False
            """
        )
        result = pytester.runpytest_subprocess(
            "-n", "2", f"--edge-profile-root={root}", "-o", "edge_profile_retention_count=0",
            "-p", "no:cacheprovider", "test_short.py",
        )  # fmt: skip
        result.assert_outcomes(passed=1, failed=1)
        assert profile.is_dir() and (profile / "Local State").read_text() == "mine"
        assert session_profile.is_dir()
        assert set(runs_before) <= set(names(root / ".runs")), "the live run's folder stays"
        go.write_text("go")
        out, err = long_run.communicate(timeout=120)
    finally:
        if long_run.poll() is None:
            long_run.kill()
            long_run.communicate()
    assert long_run.returncode == 0, out + err
    assert "1 passed" in out
    assert not profile.exists() and not session_profile.exists()
    leftovers = [n for n in names(root) if n != ".runs"]
    assert leftovers == [], "the second run's kept profile is pruned (retention count 0)"
    assert names(root / ".runs") == []


# -- generated worker ids and option values ---------------------------------------------------

WORKER_CHARS = st.characters(codec="utf-8", categories=["L", "N", "P", "S", "Z", "Cc"])
NEAR_VALID = st.one_of(
    st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,66}", fullmatch=True),  # valid, or too long
    st.text(alphabet="abcXYZ019._-/\\ \x00\n:*?~é", min_size=0, max_size=70),
    st.text(WORKER_CHARS, max_size=80),
)


@pytest.fixture(scope="module")
def id_manager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ProfileManager, Path]]:
    root = tmp_path_factory.mktemp("ids") / "root"
    m = ProfileManager(root=root, registry_path=root.parent / "registry.json", max_profiles=2)
    yield m, root
    m.cleanup_all_profiles()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worker_id=NEAR_VALID)
def test_generated_worker_ids_round_trip_or_are_refused(
    id_manager: tuple[ProfileManager, Path], worker_id: str
) -> None:
    m, root = id_manager
    before = names(root)
    try:
        check_worker_id(worker_id)
    except ValueError as exc:
        event("refused")
        with pytest.raises(ValueError) as info:
            m.create_profile(worker_id)
        assert repr(worker_id) in str(info.value) == str(exc)
        assert names(root) == before, "a refused id creates nothing"
        assert m.get_profile_path(worker_id) is None
        assert m.cleanup_profile(worker_id) is True
        return
    event("accepted")
    path = Path(m.create_profile(worker_id))
    try:
        assert path.parent == root.resolve()
        assert path.name.startswith(f"{worker_id}-") and len(path.name) == len(worker_id) + 13
        assert m.get_profile_path(worker_id) == str(path)
        assert list(m.list_profiles()) == [worker_id]
        assert json.loads(Path(f"{path}.owner").read_text())["worker_id"] == worker_id
        assert m.validate_profile(worker_id) is True
    finally:
        assert m.cleanup_profile(worker_id) is True
    assert names(root) == before


@settings(max_examples=40, deadline=None)
@given(worker_id=st.one_of(st.integers(), st.none(), st.binary(max_size=8), st.floats()))
def test_worker_ids_that_are_not_text_are_refused(
    id_manager: tuple[ProfileManager, Path], worker_id: object
) -> None:
    m, root = id_manager
    before = names(root)
    with pytest.raises(TypeError, match="worker_id must be a str"):
        m.create_profile(worker_id)  # type: ignore[arg-type]
    assert names(root) == before


INT_TEXT = st.one_of(
    st.integers(-5, 30).map(str),
    st.sampled_from(["", " ", "1.5", "1e2", "0x4", "+3", " 4 ", "٣", "8\n", "nan", "inf"]),
    st.text(alphabet="0123456789 -+._eE", max_size=6),
)
SECONDS_TEXT = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.integers(-3, 1000).map(str),
    st.text(alphabet="0123456789 -+._eEinfa", max_size=8),
)
POLICY_TEXT = st.one_of(
    st.sampled_from(["all", "failed", "none", "ALL", " all", "none ", "fail", ""]),
    st.text(max_size=8),
)
FLAG_TEXT = st.one_of(
    st.sampled_from(["1", "0", "true", "False", " YES", "off", "On", "2", "y", ""]),
    st.text(max_size=6),
)


DEFAULTS: dict[str, object] = {
    "--edge-max-profiles": 8,
    "--edge-profile-size-limit": 500,
    "--edge-profile-wait": 300.0,
    "--edge-profile-retention": "failed",
    "EDGEPROFILES_HEADED": False,
}


def _expected(option: str, text: str) -> object | None:
    """What a user reading the README expects the option to accept (None: refused).

    An empty environment variable counts as not given (the default applies); an empty
    ``--flag=`` on the command line is a mistake and refused.
    """
    if text == "":
        return None if option.startswith("--") else DEFAULTS[option]
    stripped = text.strip()
    if option == "--edge-max-profiles":
        try:
            value = int(text)
        except ValueError:
            return None
        return value if 1 <= value <= 16 else None
    if option == "--edge-profile-size-limit":
        try:
            value = int(text)
        except ValueError:
            return None
        return value if value >= 1 else None
    if option == "--edge-profile-wait":
        try:
            seconds = float(text)
        except ValueError:
            return None
        return seconds if 0 <= seconds < float("inf") else None
    if option == "--edge-profile-retention":
        return text if text in ("all", "failed", "none") else None
    if option == "EDGEPROFILES_HEADED":
        lowered = stripped.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        return False if lowered in ("0", "false", "no", "off") else None
    raise AssertionError(option)


# What the inner run reports: the manager's settings, so that an accepted value can be compared
# with what the run really uses.
INNER_REPORT = """
import json
def test_report(edge_profile_manager):
    m = edge_profile_manager
    with open({out!r}, "w") as fh:
        json.dump({{"max": m.max_profiles, "size": m.profile_size_limit_mb}}, fh)
"""
# A stand-in browser: discovering the real one costs a subprocess per inner run.
FAKE_BROWSER = "#!/bin/sh\necho 'Chromium 120.0.0.1'\n"


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    data=st.one_of(
        st.tuples(st.just("--edge-max-profiles"), INT_TEXT),
        st.tuples(st.just("--edge-profile-size-limit"), INT_TEXT),
        st.tuples(st.just("--edge-profile-wait"), SECONDS_TEXT),
        st.tuples(st.just("--edge-profile-retention"), POLICY_TEXT),
        st.tuples(st.just("EDGEPROFILES_HEADED"), FLAG_TEXT),
    )
)
def test_generated_option_values_are_used_or_refused_with_a_usage_error(
    pytester: pytest.Pytester, inner_env: None, data: tuple[str, str]
) -> None:
    option, text = data
    if not option.startswith("--"):
        assume("\x00" not in text)  # the environment cannot hold it
    expected = _expected(option, text)
    browser = pytester.path / "fake-chromium"
    if not browser.exists():
        browser.write_text(FAKE_BROWSER)
        browser.chmod(0o755)
    case = Path(tempfile.mkdtemp(dir=pytester.path))
    root, out = case / "root", case / "report.json"
    test_file = case / "test_report.py"
    test_file.write_text(INNER_REPORT.format(out=str(out)))
    args = ["-p", "no:xdist", "-p", "no:cacheprovider", "-p", "no:hypothesispytest",
            f"--edge-profile-root={root}", f"--edge-browser={browser}", str(test_file)]  # fmt: skip
    if option.startswith("--"):
        args.append(f"{option}={text}")
    else:
        os.environ[option] = text
    try:
        result = pytester.runpytest_inprocess(*args)
    finally:
        os.environ.pop(option, None)
    output = result.stdout.str() + result.stderr.str()
    event("refused" if expected is None else "accepted")
    if expected is None:
        assert result.ret == pytest.ExitCode.USAGE_ERROR, output
        flag = option if option.startswith("--") else "--edge-headed"
        assert f"ERROR: {flag}: invalid value {text!r}" in output
        assert not root.exists(), "a refused value creates nothing"
        assert not out.exists()
        return
    assert result.ret == pytest.ExitCode.OK, output
    report = json.loads(out.read_text())
    if option == "--edge-max-profiles":
        assert report["max"] == expected
        assert f"edgeprofiles: max {expected} profiles" in output
    elif option == "--edge-profile-size-limit":
        assert report["size"] == expected
    elif option == "--edge-profile-retention":
        assert f"retention {expected}" in output
    assert [n for n in names(root) if n != ".runs"] == []


# -- interrupts and races inside one process ------------------------------------------------


def interrupt_first_call(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> None:
    """Make the first call of ``owner.name`` raise KeyboardInterrupt, as Ctrl+C (or
    pytest-timeout's signal method) does to whatever runs at that moment."""
    real = getattr(owner, name)
    calls = []

    def once(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, once)


def test_an_interrupt_while_releasing_a_profile_leaks_neither_folder_nor_slot(
    manager, tmp_root, monkeypatch
):
    from pytest_edgeprofiles._chromium import processes

    m = manager(max_profiles=1)
    path = m.create_profile("gw0")
    interrupt_first_call(monkeypatch, processes, "stop_browser_on")
    with pytest.raises(KeyboardInterrupt):
        m.release_profile("gw0")
    assert m.get_profile_path("gw0") == path, "still ours to clean up"
    assert m.cleanup_all_profiles() == 1
    assert names(tmp_root) == []
    assert os.path.isdir(m.create_profile("gw1")), "the slot came back"


def test_an_interrupt_while_waiting_for_the_prepared_clone_leaks_nothing(
    manager, tmp_root, tmp_path, monkeypatch
):
    from pytest_edgeprofiles._profiles.records import ProfileRecord

    m = manager(str(small_base(tmp_path / "base")))
    m.prepare_profile("gw0")
    interrupt_first_call(monkeypatch, ProfileRecord, "activated")
    with pytest.raises(KeyboardInterrupt):
        m.create_profile("gw0")
    assert m.cleanup_all_profiles() == 0
    assert names(tmp_root) == [], "the prepared clone went with the manager's profiles"


def test_a_slow_cleanup_never_forgets_the_profile_made_after_it(manager, monkeypatch):
    from pytest_edgeprofiles._chromium import processes

    m = manager()
    first = m.create_profile("gw0")
    entered, go_on = threading.Event(), threading.Event()
    real = processes.stop_browser_on

    def slow_once(path: Path, **how: Any) -> None:
        if not entered.is_set():
            entered.set()
            assert go_on.wait(30)
        real(path, **how)

    monkeypatch.setattr(processes, "stop_browser_on", slow_once)
    slow = threading.Thread(target=m.cleanup_profile, args=("gw0",))
    slow.start()
    assert entered.wait(30)
    assert m.cleanup_profile("gw0") is True  # another thread's cleanup of the same profile
    second = m.create_profile("gw0")
    go_on.set()
    slow.join(30)
    assert not os.path.exists(first)
    assert m.get_profile_path("gw0") == second
    assert m.cleanup_all_profiles() == 1 and not os.path.exists(second)


def test_an_unremovable_prepared_clone_is_left_to_the_sweep_with_its_record(
    manager, tmp_root, tmp_path, monkeypatch
):
    m = manager(str(small_base(tmp_path / "base")))
    m.prepare_profile("gw0")
    m.drain()
    real = files.remove_tree

    def busy(path: Path, *args: Any, **kwargs: Any) -> None:
        if not path.name.endswith(".owner"):
            raise OSError(errno.EBUSY, "Device or resource busy", str(path))
        real(path, *args, **kwargs)

    monkeypatch.setattr(files, "remove_tree", busy)
    m.cleanup_all_profiles()
    left = names(tmp_root)
    assert len(left) == 2 and left[1] == left[0] + ".owner", "never a folder without its record"
    monkeypatch.setattr(files, "remove_tree", real)
    assert len(sweep.sweep(tmp_root).removed) == 1, "released to the sweep, though we live"
    assert names(tmp_root) == []


def test_a_worker_named_like_garbage_is_not_swept_as_garbage(manager, tmp_root):
    m = manager()
    path = m.create_profile("garbage-collector")
    assert sweep.sweep(tmp_root).removed == []
    assert os.path.isdir(path)


def test_pruning_kept_profiles_spares_live_ones_made_not_to_be_cleaned_up(manager, tmp_root):
    m = manager(cleanup_on_exit=False, run_id="older")
    path = m.create_profile("gw0")
    assert sweep.prune_kept(tmp_root, 0).removed == []
    assert os.path.isdir(path)
    m.keep_profile("gw0")  # now given up, and kept: the pruning's to judge
    assert sweep.prune_kept(tmp_root, 0).removed == [Path(path)]


@posix_only("os.fork")
def test_a_forked_child_exiting_leaves_its_parents_profiles_alone(tmp_path):
    script = textwrap.dedent(
        f"""
        import os, sys
        from pytest_edgeprofiles import ProfileManager

        m = ProfileManager(root={str(tmp_path / "root")!r})
        path = m.create_profile("gw0")
        pid = os.fork()
        if pid == 0:
            sys.exit(0)  # a normal exit: finalizers and atexit run in the child
        os.waitpid(pid, 0)
        print(os.path.isdir(path), m.cleanup_all_profiles(), os.path.isdir(path))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.split() == ["True", "1", "False"], out.stderr


@posix_only("os.fork")
def test_a_forked_child_asking_for_a_profile_gets_a_clear_error(tmp_path):
    # filelock's own "inherited across fork" RuntimeError says nothing of what to do.
    script = textwrap.dedent(
        f"""
        import os
        from pytest_edgeprofiles import ProfileManager

        m = ProfileManager(root={str(tmp_path / "root")!r},
                           registry_path={str(tmp_path / "registry.json")!r})
        m.create_profile("gw0")
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                m.create_profile("child")
                said = "no error"
            except Exception as exc:
                said = f"{{type(exc).__name__}}: {{exc}}"
            os.write(write, said.encode())
            os._exit(0)
        os.waitpid(pid, 0)
        print(os.read(read, 4096).decode())
        print(os.getpid(), sorted(os.listdir({str(tmp_path / "root")!r})))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    said, made = out.stdout.splitlines()
    parent = made.split()[0]
    assert said.startswith(
        f"ProfileCreationError: Profile creation failed for child: this ProfileManager "
        f"belongs to process {parent}; a forked child (pid "
    ), said
    assert said.endswith("must make a ProfileManager of its own")
    assert "child-" not in made, "the child made nothing"


# -- an owner in another pid namespace ----------------------------------------------------------

IN_NAMESPACE = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from pytest_edgeprofiles import ProfileManager
    from pytest_edgeprofiles._profiles.runs import RunFolder

    root, report = Path(sys.argv[1]), Path(sys.argv[2])
    run = RunFolder.create(root, "nsrun0000001")
    m = ProfileManager(root=root, registry_path=run.registry_path, run_id="nsrun0000001")
    profile = m.create_profile("gw0")
    report.write_text(f"{os.getpid()} {profile} {run.path}\\n")
    sys.stdin.read()  # alive until the test closes our stdin
    m.cleanup_all_profiles()
    run.remove()
    """
)


def _unshare_refused() -> str | None:
    """Why a process cannot be started in a new pid namespace here, or None when it can."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return "no unshare (util-linux) on this machine"
    probe = subprocess.run(
        [unshare, "--pid", "--fork", "--mount-proc", "true"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        return f"unshare --pid is not permitted here: {probe.stderr.strip()}"
    return None


@linux_only("pid namespaces (unshare --pid)")
def test_a_live_owner_in_another_pid_namespace_is_not_swept(tmp_path: Path) -> None:
    refused = _unshare_refused()
    if refused is not None:
        pytest.skip(refused)
    root, report = tmp_path / "shared-root", tmp_path / "report.txt"
    owner = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", IN_NAMESPACE,
         str(root), str(report)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        pid, profile, run = _wait_for_file(report, owner).split()  # type: ignore[arg-type]
        assert int(pid) == 1, "the owner should run as pid 1 of a namespace of its own"
        # Our pid 1 (or whatever process holds that pid here) is not the owner.
        result = runs.sweep_leftovers(root)
        assert result.removed == []
        assert Path(profile).is_dir() and Path(run).is_dir(), "a live run was swept"
        assert Path(f"{profile}.owner").is_file() and Path(f"{run}.owner").is_file()
        out, err = owner.communicate("", timeout=60)
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.communicate()
    assert owner.returncode == 0, out + err
    assert names(root) == [".runs"] and names(root / ".runs") == []


# -- records and registry entries that make no sense ------------------------------------------


def _plant_nonsense(root: Path, pid: object) -> Path:
    """A profile folder of ours beside an owner record whose pid makes no sense."""
    profile = root / "gw0-0123456789ab"
    (profile / "Default").mkdir(parents=True)
    record = {
        "worker_id": "gw0", "path": str(profile), "pid": pid, "create_time": 1.0,
        "host": socket.gethostname(), "created_at": time.time(),
    }  # fmt: skip
    Path(f"{profile}.owner").write_text(json.dumps(record))
    return profile


@pytest.mark.parametrize("pid", [-1, 2**64, True, 1.5])
def test_a_record_with_a_pid_that_makes_no_sense_is_swept_not_a_crash(
    pytester: pytest.Pytester, inner_env: None, pid: object
) -> None:
    root = pytester.path / "profiles"
    profile = _plant_nonsense(root, pid)
    pytester.makepyfile(test_x="def test_x(edge_profile): assert edge_profile.is_dir()")
    result = pytester.runpytest_subprocess(
        "-p", "no:xdist", "-p", "no:cacheprovider", f"--edge-profile-root={root}"
    )
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    result.assert_outcomes(passed=1)
    assert result.ret == 0
    assert not os.path.lexists(profile) and not os.path.lexists(f"{profile}.owner")


@pytest.mark.parametrize("pid", [-1, 2**64, True, "12"])
def test_a_registry_entry_that_makes_no_sense_is_dropped_with_a_warning(
    tmp_path: Path, registry_path: Path, caplog: pytest.LogCaptureFixture, pid: object
) -> None:
    m = ProfileManager(root=tmp_path / "root", registry_path=registry_path, max_profiles=2)
    held = m.create_profile("gw0")
    state = json.loads(registry_path.read_text())
    nonsense = {**state["entries"][held], "path": str(tmp_path / "root" / "x"), "pid": pid}
    state["entries"][nonsense["path"]] = nonsense
    registry_path.write_text(json.dumps(state))
    try:
        with caplog.at_level(logging.WARNING, logger="pytest_edgeprofiles"):
            assert os.path.isdir(m.create_profile("gw1"))  # the cap is 2: the nonsense is no slot
        assert "registry" in caplog.text and nonsense["path"] in caplog.text
        assert sorted(entries_of(registry_path)) == sorted([held, m.get_profile_path("gw1")])
    finally:
        m.cleanup_all_profiles()
