"""ProfileManager against its contract: creation, cloning, cleanup, queries, limits, failures."""

from __future__ import annotations

import errno
import gc
import getpass
import json
import logging
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from browser_support import start_process
from conftest import NO_HOME, POSIX, SINGLETON_LOCK, SYMLINKS, posix_only

from pytest_edgeprofiles import (
    ProfileCleanupError,
    ProfileCreationError,
    ProfileLimitError,
    ProfileManager,
    profile_manager,
)
from pytest_edgeprofiles._profiles import ledger, roots, sweep
from pytest_edgeprofiles._profiles.registry import Registry
from pytest_edgeprofiles._profiles.roots import UnsafeDirectoryError
from pytest_edgeprofiles._system import files

MB = 1024 * 1024


def names(folder: Path | str) -> list[str]:
    """Entries of ``folder``, sorted; [] when it does not exist."""
    try:
        return sorted(os.listdir(folder))
    except FileNotFoundError:
        return []


def record(profile: str | Path) -> dict:
    return json.loads(Path(f"{profile}.owner").read_text())


def regular_file_bytes(folder: str | Path) -> int:
    """Bytes of the regular files below ``folder``, without following any symlink."""
    total = 0
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p) and os.path.isfile(p):
                total += os.path.getsize(p)
    return total


def sparse_file(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.truncate(size)


# -- constructor ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (0, ValueError, "max_profiles must be from 1 to 16, got 0"),
        (-1, ValueError, "max_profiles must be from 1 to 16, got -1"),
        (17, ValueError, "max_profiles must be from 1 to 16, got 17"),
        (True, TypeError, "max_profiles must be an int, got bool: True"),
        ("3", TypeError, "max_profiles must be an int, got str: '3'"),
        (2.0, TypeError, "max_profiles must be an int, got float: 2.0"),
    ],
)
def test_constructor_rejects_bad_max_profiles(tmp_root, value, error, message):
    with pytest.raises(error) as info:
        ProfileManager(max_profiles=value, root=tmp_root)
    assert str(info.value) == message
    assert not tmp_root.exists()


@pytest.mark.parametrize("value", [1, 16])
def test_constructor_accepts_max_profiles_bounds(manager, value):
    assert manager(max_profiles=value).max_profiles == value


def test_constructor_rejects_bad_size_limit(tmp_root):
    with pytest.raises(ValueError) as info:
        ProfileManager(profile_size_limit_mb=0, root=tmp_root)
    assert str(info.value) == "profile_size_limit_mb must be at least 1, got 0"
    assert not tmp_root.exists()


def test_constructor_missing_base(tmp_path, tmp_root):
    missing = tmp_path / "no such base"
    with pytest.raises(FileNotFoundError) as info:
        ProfileManager(str(missing), root=tmp_root)
    assert info.value.filename == str(missing)
    assert not tmp_root.exists()


@posix_only(NO_HOME)
@pytest.mark.parametrize("where", ["base_profile_path", "root", "download_root"])
def test_constructor_path_in_the_home_of_no_user(tmp_root, where):
    given = "~no-such-user-ep/folder"
    kwargs = {"root": tmp_root, where: given}
    with pytest.raises(FileNotFoundError, match="no home directory for ~no-such-user-ep") as info:
        ProfileManager(**kwargs)
    assert info.value.filename == given
    assert not tmp_root.exists()


def test_constructor_file_as_base(tmp_path, tmp_root):
    not_a_dir = tmp_path / "Local State"
    not_a_dir.write_text("{}")
    with pytest.raises(NotADirectoryError) as info:
        ProfileManager(str(not_a_dir), root=tmp_root)
    assert info.value.filename == str(not_a_dir)
    assert not tmp_root.exists()


def test_constructor_profile_folder_as_base(make_base, tmp_root):
    folder = make_base() / "Default"
    with pytest.raises(ValueError, match="is a profile folder") as info:
        ProfileManager(str(folder), root=tmp_root)
    assert str(folder) in str(info.value)
    assert "pass its parent" in str(info.value)
    assert not tmp_root.exists()


@posix_only("chmod 000 cannot make a folder unreadable on Windows")
def test_constructor_unreadable_base(unprivileged):
    base = unprivileged.folder / "base"
    (base / "Default").mkdir(parents=True)
    (base / "Local State").write_text("{}")
    os.chmod(base, 0o000)  # unreadable to the runner, whoever owns it
    code = textwrap.dedent(
        """
        import sys
        from pytest_edgeprofiles import ProfileManager
        try:
            ProfileManager(sys.argv[1], root=sys.argv[2])
        except PermissionError as exc:
            print("PermissionError", exc.filename)
        """
    )
    root = unprivileged.folder / "root"
    result = unprivileged.run(code, str(base), str(root))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["PermissionError", str(base)]
    assert not root.exists()


# -- create_profile ---------------------------------------------------------------------------


def test_create_profile_returns_private_folder_with_owner_record(manager, tmp_root):
    m = manager()
    path = m.create_profile("gw0")
    assert isinstance(path, str)
    assert os.path.isabs(path)
    p = Path(path)
    assert p.parent == tmp_root.resolve()
    assert re.fullmatch(r"gw0-[0-9a-f]{12}", p.name)
    assert p.is_dir() and not p.is_symlink()
    if POSIX:  # Windows has no mode bits: an ACL protects the folder
        assert stat.S_IMODE(p.stat().st_mode) == 0o700
    # No base profile: an empty user data dir but for the prefs naming its download folder,
    # which is made when first asked for (or by the browser, at its first download).
    assert names(p) == ["Default"]
    assert names(p / "Default") == ["Preferences"]
    owner = record(p)
    assert owner["worker_id"] == "gw0"
    assert owner["path"] == path
    assert owner["pid"] == os.getpid()
    assert owner["host"] == socket.gethostname()
    assert owner["keep"] is False and owner["released"] is False
    if POSIX:
        assert stat.S_IMODE(os.stat(f"{path}.owner").st_mode) == 0o600
    assert names(tmp_root) == sorted([p.name, f"{p.name}.owner"])


def test_create_profile_gives_each_worker_its_own_folder(manager):
    m = manager()
    paths = {m.create_profile(w) for w in ("gw0", "gw1", "master")}
    assert len(paths) == 3
    assert all(os.path.isdir(p) for p in paths)


def test_create_profile_twice_for_one_worker(manager, tmp_root):
    m = manager()
    path = m.create_profile("gw0")
    with pytest.raises(ValueError) as info:
        m.create_profile("gw0")
    assert str(info.value) == f"worker 'gw0' already has a profile at {path}"
    assert names(tmp_root) == sorted([Path(path).name, f"{Path(path).name}.owner"])


@pytest.mark.parametrize(
    ("worker_id", "error"),
    [
        ("", ValueError),
        ("..", ValueError),
        (".x", ValueError),
        ("-x", ValueError),
        ("a/b", ValueError),
        ("a\\b", ValueError),
        ("a\x00b", ValueError),
        ("a\n", ValueError),
        ("x" * 65, ValueError),
        ("gw 0", ValueError),
        (123, TypeError),
        (None, TypeError),
    ],
)
def test_create_profile_rejects_invalid_worker_id(manager, tmp_root, worker_id, error):
    m = manager()
    with pytest.raises(error) as info:
        m.create_profile(worker_id)
    assert repr(worker_id) in str(info.value)
    assert not tmp_root.exists()
    assert m.list_profiles() == {}


@pytest.mark.parametrize("worker_id", ["gw0", "master", "x" * 64, "a.b_c-d", "0", "_"])
def test_create_profile_accepts_valid_worker_id(manager, worker_id):
    path = manager().create_profile(worker_id)
    assert Path(path).name.startswith(f"{worker_id}-")
    assert os.path.isdir(path)


# -- cloning the base profile -----------------------------------------------------------------


def test_clone_keeps_user_data_and_leaves_out_caches_and_locks(manager, make_base, base_layout):
    base = make_base()
    clone = Path(manager(str(base)).create_profile("gw0"))
    for rel in base_layout.kept:
        assert (clone / rel).is_file(), rel
        if rel != "Default/Preferences":
            assert (clone / rel).read_bytes() == (base / rel).read_bytes(), rel
    for rel in base_layout.skipped:
        assert not os.path.lexists(clone / rel), rel
    assert names(clone) == ["Default", "Last Version", "Local State"]
    assert names(clone / "Default") == [
        "Collections",
        "Cookies",
        "EdgeWallet",
        "Local Storage",
        "Preferences",
        "Service Worker",
    ]
    assert names(clone / "Default" / "Service Worker") == ["Database"]
    # The base is a template: cloning leaves it exactly as it was.
    for rel in base_layout.skipped:
        assert os.path.lexists(base / rel), rel
    for name, target in base_layout.lock_links.items():
        assert os.readlink(base / name) == target


@pytest.mark.parametrize("exit_type", ["Crashed", "Normal"])
def test_clone_preferences_change_only_exit_type_and_download_folders(
    manager, make_base, exit_type
):
    base = make_base(exit_type=exit_type)
    clone = Path(manager(str(base)).create_profile("gw0"))
    prefs = json.loads((clone / "Default" / "Preferences").read_text())
    assert prefs["profile"]["exit_type"] == "Normal"
    # The base's download folder name is kept, below the clone's own download folder.
    own = str(clone / "Downloads" / "Downloads")
    expected = json.loads((base / "Default" / "Preferences").read_text())
    expected["profile"]["exit_type"] = "Normal"
    expected["download"]["default_directory"] = own
    expected["savefile"] = {"default_directory": own}
    assert prefs == expected  # prompt_for_download and tracked-pref MACs survive
    assert not os.path.lexists(clone / "Downloads"), "made when first asked for"
    base_prefs = json.loads((base / "Default" / "Preferences").read_text())
    assert base_prefs["profile"]["exit_type"] == exit_type
    assert base_prefs["download"]["default_directory"] == "/home/user/Downloads"


@posix_only(SYMLINKS)
def test_clone_copies_symlinks_as_links(manager, make_base, tmp_path):
    base = make_base()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("do not touch")
    os.symlink("Cookies", base / "Default" / "cookies-link")
    os.symlink(outside, base / "Default" / "outside-link")
    os.symlink("/nowhere/at/all", base / "Default" / "dangling")
    m = manager(str(base))
    clone = Path(m.create_profile("gw0"))
    for name, target in [
        ("cookies-link", "Cookies"),
        ("outside-link", str(outside)),
        ("dangling", "/nowhere/at/all"),
    ]:
        assert (clone / "Default" / name).is_symlink(), name
        assert os.readlink(clone / "Default" / name) == target
    assert m.cleanup_profile("gw0") is True
    assert names(outside) == ["secret"]
    assert (outside / "secret").read_text() == "do not touch"


def test_clone_is_independent_of_the_base(manager, make_base):
    base = make_base()
    clone = Path(manager(str(base)).create_profile("gw0"))
    (clone / "Default" / "Cookies").write_bytes(b"changed by the browser")
    assert (base / "Default" / "Cookies").read_bytes() != b"changed by the browser"


def test_base_caches_do_not_count_against_the_size_limit(manager, make_base):
    base = make_base()
    sparse_file(base / "Default" / "Cache" / "Cache_Data" / "huge", 3 * MB)
    clone = manager(str(base), profile_size_limit_mb=1).create_profile("gw0")
    assert not os.path.exists(os.path.join(clone, "Default", "Cache"))


# -- copy_base_profile ------------------------------------------------------------------------


def test_copy_base_profile_false_for_unknown_worker(manager, make_base):
    m = manager(str(make_base()))
    assert m.copy_base_profile("gw0") is False
    assert m.copy_base_profile(None) is False


def test_copy_base_profile_false_without_base(manager):
    m = manager()
    path = m.create_profile("gw0")
    (Path(path) / "History").write_bytes(b"kept")
    assert m.copy_base_profile("gw0") is False
    assert names(path) == ["Default", "History"]


def test_copy_base_profile_refreshes_the_clone(manager, make_base, base_layout):
    base = make_base()
    m = manager(str(base))
    path = m.create_profile("gw0")
    clone = Path(path)
    (clone / "Default" / "Cookies").write_bytes(b"written by a test")
    (clone / "Default" / "extra").write_text("left by a test")
    (clone / "Local State").unlink()
    if POSIX:  # a lock left by a POSIX browser (a Windows one holds a lockfile)
        os.symlink("host-999", clone / "SingletonLock")
    (base / "Last Version").write_text("132.0.0.0")

    assert m.copy_base_profile("gw0") is True

    assert m.get_profile_path("gw0") == path
    assert (clone / "Last Version").read_text() == "132.0.0.0"
    assert (clone / "Default" / "Cookies").read_bytes() == (
        base / "Default" / "Cookies"
    ).read_bytes()
    assert (clone / "Local State").read_bytes() == (base / "Local State").read_bytes()
    assert not os.path.lexists(clone / "Default" / "extra")
    assert not os.path.lexists(clone / "SingletonLock")
    for rel in base_layout.skipped:
        assert not os.path.lexists(clone / rel), rel
    prefs = json.loads((clone / "Default" / "Preferences").read_text())
    assert prefs["profile"]["exit_type"] == "Normal"
    assert m.get_download_dir("gw0") == str(clone / "Downloads" / "Downloads")
    assert os.path.isdir(clone / "Downloads" / "Downloads")
    assert m.get_profile_size("gw0") == regular_file_bytes(clone)


def test_copy_base_profile_false_when_the_copy_fails(manager, make_base, monkeypatch, caplog):
    m = manager(str(make_base()))
    m.create_profile("gw0")

    def broken(*args, **kwargs):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(files, "copy_tree", broken)
    with caplog.at_level(logging.WARNING, logger="pytest_edgeprofiles"):
        assert m.copy_base_profile("gw0") is False
    assert "Input/output error" in caplog.text


# -- cleanup_profile / cleanup_all_profiles ---------------------------------------------------


def test_cleanup_profile_removes_folder_and_record(manager, make_base, tmp_root):
    m = manager(str(make_base()))
    path = m.create_profile("gw0")
    assert m.cleanup_profile("gw0") is True
    assert not os.path.lexists(path)
    assert not os.path.lexists(f"{path}.owner")
    assert names(tmp_root) == []
    assert m.get_profile_path("gw0") is None
    assert m.list_profiles() == {}
    # Idempotent, and fine for a worker that never had a profile.
    assert m.cleanup_profile("gw0") is True
    assert m.cleanup_profile("never-created") is True


def test_cleanup_profile_releases_the_slot(manager):
    m = manager(max_profiles=1)
    m.create_profile("gw0")
    with pytest.raises(ProfileLimitError):
        m.create_profile("gw1")
    assert m.cleanup_profile("gw0") is True
    assert os.path.isdir(m.create_profile("gw1"))
    # The worker id is free again too.
    assert m.cleanup_profile("gw1") is True
    assert os.path.isdir(m.create_profile("gw0"))


@posix_only("chmod cannot make a folder read-only or unreadable on Windows")
def test_cleanup_profile_removes_read_only_content(unprivileged):
    """As a user that obeys permissions (root would not notice), read-only entries still go."""
    code = textwrap.dedent(
        """
        import json, os, sys
        from pathlib import Path
        from pytest_edgeprofiles import ProfileManager
        root = Path(sys.argv[1])
        m = ProfileManager(root=root)
        p = Path(m.create_profile("gw0"))
        (p / "ro").mkdir()
        (p / "ro" / "f").write_text("x")
        os.chmod(p / "ro" / "f", 0o444)
        os.chmod(p / "ro", 0o555)
        (p / "sealed" / "inner").mkdir(parents=True)
        (p / "sealed" / "inner" / "g").write_text("y")
        os.chmod(p / "sealed", 0o000)
        (p / "top").write_text("z")
        os.chmod(p / "top", 0o400)
        os.chmod(p, 0o500)
        try:
            os.unlink(p / "top")
        except PermissionError:
            pass
        else:
            sys.exit("the runner ignores permissions: this test would prove nothing")
        ok = m.cleanup_profile("gw0")
        print(json.dumps({"ok": ok, "left": sorted(os.listdir(root))}))
        """
    )
    root = unprivileged.folder / "root"
    result = unprivileged.run(code, str(root))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"ok": True, "left": []}


@posix_only(SYMLINKS)
def test_cleanup_profile_does_not_follow_a_symlink_inside(manager, tmp_path):
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "sub" / "keep.txt").write_text("precious")
    m = manager()
    path = m.create_profile("gw0")
    os.symlink(outside, os.path.join(path, "link-out"))
    os.symlink(outside / "sub" / "keep.txt", os.path.join(path, "file-link"))
    assert m.cleanup_profile("gw0") is True
    assert not os.path.lexists(path)
    assert (outside / "sub" / "keep.txt").read_text() == "precious"


@posix_only(SYMLINKS)
def test_cleanup_profile_when_the_folder_was_swapped_for_a_symlink(manager, tmp_path, tmp_root):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("precious")
    m = manager()
    path = m.create_profile("gw0")
    shutil.rmtree(path)
    os.symlink(outside, path)
    assert m.cleanup_profile("gw0") is True
    assert not os.path.lexists(path)
    assert names(tmp_root) == []
    assert names(outside) == ["keep.txt"]
    assert (outside / "keep.txt").read_text() == "precious"


@posix_only(SINGLETON_LOCK)
def test_cleanup_profile_stops_a_browser_still_running_on_it(manager):
    m = manager()
    path = m.create_profile("gw0")
    browser = start_process(
        [sys.executable, "-c", "import sys; sys.stdin.read()", f"--user-data-dir={path}"],
        stdin=subprocess.PIPE,
    )
    try:
        os.symlink(f"{socket.gethostname()}-{browser.pid}", os.path.join(path, "SingletonLock"))
        assert m.validate_profile("gw0") is False  # a live browser holds it
        assert m.cleanup_profile("gw0") is True
        # Stopped (psutil reaps it, so Popen cannot tell how); it would have read stdin forever.
        assert browser.poll() is not None
        assert not os.path.lexists(path)
    finally:
        browser.kill()
        browser.wait()


def test_cleanup_all_profiles_counts_removed(manager, tmp_root):
    m = manager()
    assert m.cleanup_all_profiles() == 0
    paths = [m.create_profile(w) for w in ("gw0", "gw1", "gw2")]
    assert m.cleanup_all_profiles() == 3
    assert not any(os.path.lexists(p) for p in paths)
    assert names(tmp_root) == []
    assert m.list_profiles() == {}
    assert m.cleanup_all_profiles() == 0


def test_cleanup_all_profiles_counts_only_successes(manager, monkeypatch):
    m = manager()
    stuck = m.create_profile("stuck")
    fine = [m.create_profile(w) for w in ("gw0", "gw1")]
    real_remove = files.remove_tree

    def remove_tree(path, *args, **kwargs):
        if str(path) == stuck:
            raise OSError(errno.EBUSY, "Device or resource busy")
        return real_remove(path, *args, **kwargs)

    monkeypatch.setattr(files, "remove_tree", remove_tree)
    assert m.cleanup_all_profiles() == 2
    assert os.path.isdir(stuck)
    assert not any(os.path.lexists(p) for p in fine)
    assert m.list_profiles() == {}


def test_strict_cleanup_raises_and_releases_the_slot(manager, tmp_root, monkeypatch):
    m = manager(max_profiles=1)
    path = m.create_profile("gw0")
    busy = OSError(errno.EBUSY, "Device or resource busy")

    def remove_tree(*args, **kwargs):
        raise busy

    monkeypatch.setattr(files, "remove_tree", remove_tree)
    with pytest.raises(ProfileCleanupError) as info:
        m.cleanup_profile("gw0", strict=True)
    assert str(info.value) == "Profile cleanup failed for gw0: [Errno 16] Device or resource busy"
    assert info.value.worker_id == "gw0"
    assert info.value.reason == "[Errno 16] Device or resource busy"
    assert info.value.__cause__ is busy
    # The folder stays, handed to the sweep; the slot and the worker id are free.
    assert os.path.isdir(path)
    assert record(path)["released"] is True
    assert m.get_profile_path("gw0") is None
    other = m.create_profile("gw0")
    monkeypatch.undo()
    result = sweep.sweep(tmp_root)
    assert result.removed == [Path(path)]
    assert os.path.isdir(other)


def test_non_strict_cleanup_returns_false_and_warns(manager, tmp_root, monkeypatch, caplog):
    m = manager(max_profiles=1)
    path = m.create_profile("gw0")

    def remove_tree(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(files, "remove_tree", remove_tree)
    with caplog.at_level(logging.WARNING, logger="pytest_edgeprofiles"):
        assert m.cleanup_profile("gw0") is False
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert path in warnings[0].getMessage()
    assert "Permission denied" in warnings[0].getMessage()
    assert os.path.isdir(path)
    assert record(path)["released"] is True
    assert os.path.isdir(m.create_profile("gw1"))  # the slot was released


# -- get_profile_path -------------------------------------------------------------------------


def test_get_profile_path(manager):
    m = manager()
    path = m.create_profile("gw0")
    assert m.get_profile_path("gw0") == path
    assert m.get_profile_path("gw1") is None
    assert m.get_profile_path(123) is None


def test_get_profile_path_none_when_removed_by_someone_else(manager):
    m = manager()
    path = m.create_profile("gw0")
    shutil.rmtree(path)
    assert m.get_profile_path("gw0") is None


# -- validate_profile -------------------------------------------------------------------------


def test_validate_profile_fresh(manager, make_base):
    m = manager(str(make_base()))
    m.create_profile("gw0")
    assert m.validate_profile("gw0") is True
    assert manager().validate_profile("gw0") is False  # unknown worker


def test_validate_profile_without_base(manager):
    m = manager()
    m.create_profile("gw0")
    assert m.validate_profile("gw0") is True


@pytest.mark.parametrize("rel", ["Default/Preferences", "Local State"])
@pytest.mark.parametrize("content", [b'{"profile": {"exit_type": ', b"[1, 2]", b"\xff\xfe"])
def test_validate_profile_corrupt_json(manager, make_base, rel, content):
    m = manager(str(make_base()))
    path = m.create_profile("gw0")
    Path(path, rel).write_bytes(content)
    assert m.validate_profile("gw0") is False


@posix_only(SINGLETON_LOCK)
def test_validate_profile_lock_of_another_host(manager, make_base):
    m = manager(str(make_base()))
    path = m.create_profile("gw0")
    os.symlink(f"not-{socket.gethostname()}-{os.getpid()}", os.path.join(path, "SingletonLock"))
    assert m.validate_profile("gw0") is False


@posix_only(SINGLETON_LOCK)
def test_validate_profile_stale_lock_of_this_host(manager, make_base, dead_owner):
    m = manager(str(make_base()))
    path = m.create_profile("gw0")
    os.symlink(f"{socket.gethostname()}-{dead_owner[0]}", os.path.join(path, "SingletonLock"))
    assert m.validate_profile("gw0") is True


@posix_only("a SingletonLock that is no symlink, which POSIX browsers refuse")
def test_validate_profile_lock_that_is_a_regular_file(manager):
    m = manager()
    path = m.create_profile("gw0")
    Path(path, "SingletonLock").write_text("not a link")
    assert m.validate_profile("gw0") is False


@posix_only(SINGLETON_LOCK)
def test_validate_profile_live_browser_then_dead(manager):
    m = manager()
    path = m.create_profile("gw0")
    browser = start_process(
        [sys.executable, "-c", "import sys; sys.stdin.read()", "--user-data-dir", path],
        stdin=subprocess.PIPE,
    )
    try:
        os.symlink(f"{socket.gethostname()}-{browser.pid}", os.path.join(path, "SingletonLock"))
        assert m.validate_profile("gw0") is False
    finally:
        browser.kill()
        browser.wait()
    assert m.validate_profile("gw0") is True


def test_validate_profile_false_when_gone_or_replaced(manager, tmp_path):
    m = manager()
    path = m.create_profile("gw0")
    shutil.rmtree(path)
    assert m.validate_profile("gw0") is False
    if POSIX:  # a symlink: making one needs a privilege on Windows
        (tmp_path / "elsewhere").mkdir()
        os.symlink(tmp_path / "elsewhere", path)
        assert m.validate_profile("gw0") is False


# -- get_profile_size -------------------------------------------------------------------------


def test_get_profile_size_unknown_worker(manager):
    assert manager().get_profile_size("gw0") == 0


def test_get_profile_size_is_the_bytes_of_regular_files(manager, make_base):
    m = manager(str(make_base()))
    path = m.create_profile("gw0")
    size = m.get_profile_size("gw0")
    assert size == regular_file_bytes(path)
    assert size > 0


@posix_only(SYMLINKS)
def test_get_profile_size_does_not_follow_symlinks(manager, make_base, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "big.bin").write_bytes(b"b" * 300_000)
    base = make_base()
    os.symlink(outside / "big.bin", base / "Default" / "big-link")
    os.symlink(outside, base / "Default" / "dir-link")
    m = manager(str(base))
    path = m.create_profile("gw0")
    size = m.get_profile_size("gw0")
    assert size == regular_file_bytes(path)
    assert size < 300_000


@posix_only("symlinks and FIFOs (os.mkfifo)")
@pytest.mark.parametrize("stat_at", [True, False], ids=["fstatat", "entry-stat"])
def test_a_walked_size_counts_regular_files_only(tmp_path, stat_at):
    # The walk get_profile_size makes for a tree it did not write, on both of its paths.
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "big.bin").write_bytes(b"b" * 300_000)
    tree = tmp_path / "tree"
    (tree / "Default" / "IndexedDB" / "db").mkdir(parents=True)
    (tree / "Local State").write_bytes(b"s" * 10)
    (tree / "Default" / "Cookies").write_bytes(b"c" * 2_000)
    (tree / "Default" / "IndexedDB" / "db" / "000003.log").write_bytes(b"l" * 40_000)
    (tree / "Default" / "empty").touch()
    os.symlink(outside / "big.bin", tree / "Default" / "big-link")
    os.symlink(outside, tree / "Default" / "dir-link")
    os.mkfifo(tree / "Default" / "fifo")
    assert files.tree_size(tree, by_fd=stat_at) == 42_010 == regular_file_bytes(tree)
    os.symlink(tree, tmp_path / "tree-link")
    assert files.tree_size(tmp_path / "tree-link", by_fd=stat_at) == 0, (
        "a symlinked top is not followed"
    )
    assert files.tree_size(tmp_path / "missing", by_fd=stat_at) == 0


def test_get_profile_size_after_writes_is_the_size_on_disk_now(manager, make_base):
    # Measured right after the clone (whose size the copy knew) and after each write.
    m = manager(str(make_base()))
    path = m.create_profile("gw0")
    Path(path, "Default", "History").write_bytes(b"h" * 100_000)
    assert m.get_profile_size("gw0") == regular_file_bytes(path)
    Path(path, "Default", "History").write_bytes(b"h" * 300_000)
    assert m.get_profile_size("gw0") == regular_file_bytes(path)


def test_get_profile_size_zero_when_removed_by_someone_else(manager):
    m = manager()
    path = m.create_profile("gw0")
    shutil.rmtree(path)
    assert m.get_profile_size("gw0") == 0


# -- list_profiles ----------------------------------------------------------------------------


def test_list_profiles_shape(manager, make_base):
    m = manager(str(make_base()))
    assert m.list_profiles() == {}
    before = datetime.now()
    path = m.create_profile("gw0")
    after = datetime.now()
    listing = m.list_profiles()
    assert list(listing) == ["gw0"]
    info = listing["gw0"]
    assert set(info) == {"path", "size_mb", "created_at", "last_accessed", "is_valid"}
    assert info["path"] == path and isinstance(info["path"], str)
    assert type(info["size_mb"]) is float
    assert info["size_mb"] == pytest.approx(regular_file_bytes(path) / MB)
    assert type(info["created_at"]) is datetime
    assert before - timedelta(seconds=1) <= info["created_at"] <= after + timedelta(seconds=1)
    assert type(info["last_accessed"]) is datetime
    # File system clocks tick coarser than time.time(): allow a second.
    assert info["last_accessed"] >= info["created_at"] - timedelta(seconds=1)
    assert info["is_valid"] is True


def listed_bytes(m: ProfileManager, worker_id: str) -> int:
    return round(m.list_profiles()[worker_id]["size_mb"] * MB)


def test_a_listed_size_is_at_most_listed_size_max_age_old(manager, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(ledger, "monotonic", lambda: clock[0])
    m = manager()
    path = m.create_profile("gw0")
    made = regular_file_bytes(path)
    Path(path, "History").write_bytes(b"h" * 100_000)
    clock[0] += profile_manager.LISTED_SIZE_MAX_AGE
    # Within the bound the size known from the copy may be listed: a listing need not walk.
    assert listed_bytes(m, "gw0") == made
    clock[0] += 0.01
    assert listed_bytes(m, "gw0") == made + 100_000
    Path(path, "History").write_bytes(b"h" * 200_000)
    clock[0] += profile_manager.LISTED_SIZE_MAX_AGE + 0.01
    assert listed_bytes(m, "gw0") == made + 200_000


def test_a_listing_shows_the_size_just_measured(manager):
    m = manager()
    path = m.create_profile("gw0")
    Path(path, "History").write_bytes(b"h" * 100_000)
    measured = m.get_profile_size("gw0")
    assert listed_bytes(m, "gw0") == measured == regular_file_bytes(path)


def test_list_profiles_tracks_state(manager):
    m = manager()
    paths = {w: m.create_profile(w) for w in ("gw0", "gw1")}
    Path(paths["gw1"], "Local State").write_text("{broken")
    listing = m.list_profiles()
    assert {w: i["path"] for w, i in listing.items()} == paths
    assert listing["gw0"]["is_valid"] is True
    assert listing["gw1"]["is_valid"] is False
    m.cleanup_profile("gw0")
    assert list(m.list_profiles()) == ["gw1"]


# -- download folders -------------------------------------------------------------------------


def test_each_profile_downloads_into_a_folder_of_its_own(manager):
    m = manager()
    folders = {}
    for worker_id in ("gw0", "gw1"):
        path = Path(m.create_profile(worker_id))
        assert not os.path.lexists(path / "Downloads")
        folder = m.get_download_dir(worker_id)
        assert folder == str(path / "Downloads")
        assert os.path.isdir(folder), "made when asked for"
        if POSIX:  # Windows has no mode bits: an ACL protects the folder
            assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
        prefs = json.loads((path / "Default" / "Preferences").read_text())
        assert prefs["download"]["default_directory"] == folder
        assert prefs["savefile"]["default_directory"] == folder
        folders[worker_id] = folder
    assert folders["gw0"] != folders["gw1"]
    assert m.get_download_dir("gw2") is None


def test_download_root_outside_the_profiles(manager, make_base, tmp_path, tmp_root):
    download_root = tmp_path / "downloads"
    m = manager(str(make_base()), download_root=download_root)
    path = Path(m.create_profile("gw0"))
    folder = download_root.resolve() / path.name / "Downloads"
    assert names(download_root) == []
    assert m.get_download_dir("gw0") == str(folder)
    assert folder.is_dir()
    if POSIX:  # Windows has no mode bits: an ACL protects the folder
        assert stat.S_IMODE(folder.parent.stat().st_mode) == 0o700
    assert record(path)["downloads"] == str(download_root.resolve() / path.name)
    (folder / "report.pdf").write_bytes(b"%PDF")
    assert m.cleanup_profile("gw0") is True
    assert names(download_root) == []
    assert names(tmp_root) == []


def test_sweep_removes_the_download_folder_of_a_dead_owner(tmp_path, tmp_root):
    download_root = tmp_path / "downloads"
    code = textwrap.dedent(
        """
        import os, sys
        from pytest_edgeprofiles import ProfileManager
        m = ProfileManager(root=sys.argv[1], download_root=sys.argv[2])
        print(m.create_profile("gw0"), flush=True)
        m.get_download_dir("gw0")  # made, as a download would make it
        os._exit(0)  # die like a killed worker: no cleanup at all
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_root), str(download_root)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.strip())
    assert (download_root / path.name).is_dir()
    assert sweep.sweep(tmp_root).removed == [path]
    assert names(download_root) == []
    assert names(tmp_root) == []


def test_base_with_corrupt_preferences_still_clones(manager, make_base, caplog):
    base = make_base()
    (base / "Default" / "Preferences").write_bytes(b'{"profile": {"exit_type": ')
    m = manager(str(base))
    with caplog.at_level(logging.WARNING, logger="pytest_edgeprofiles"):
        path = m.create_profile("gw0")
    assert (Path(path) / "Default" / "Preferences").read_bytes() == b'{"profile": {"exit_type": '
    assert "cannot set the download folder" in caplog.text
    assert m.validate_profile("gw0") is False  # the browser would drop these settings
    assert m.copy_base_profile("gw0") is True
    (base / "Default" / "Preferences").write_bytes(b"[1, 2]")
    assert m.copy_base_profile("gw0") is True
    assert m.validate_profile("gw0") is False


# -- keep_profile -----------------------------------------------------------------------------


def test_keep_profile_leaves_it_on_disk_for_good(manager, tmp_root):
    m = manager(max_profiles=1)
    path = m.create_profile("gw0")
    assert m.keep_profile("gw0") == path
    assert m.keep_profile("gw0") is None
    assert m.keep_profile("unknown") is None
    assert m.get_profile_path("gw0") is None
    assert m.cleanup_all_profiles() == 0
    assert os.path.isdir(path)
    assert record(path)["keep"] is True
    other = m.create_profile("gw0")  # slot and worker id are free
    assert other != path
    assert sweep.sweep(tmp_root).removed == []
    assert os.path.isdir(path)


@posix_only("the Singleton* symlinks a POSIX browser killed on a profile leaves")
def test_a_kept_profile_loses_the_lock_of_a_browser_that_was_killed_on_it(manager, dead_owner):
    # Opening the kept profile later, by hand, must not meet a lock of a browser long gone.
    m = manager()
    path = Path(m.create_profile("gw0"))
    host = socket.gethostname()
    os.symlink(f"{host}-{dead_owner[0]}", path / "SingletonLock")
    os.symlink("/nonexistent/SingletonSocket", path / "SingletonSocket")
    os.symlink("12345", path / "SingletonCookie")
    assert m.keep_profile("gw0") == str(path)
    links = ("SingletonLock", "SingletonSocket", "SingletonCookie")
    assert not any(os.path.lexists(path / name) for name in links)
    assert path.is_dir(), "kept: only the lock links went"


@posix_only(SINGLETON_LOCK)
def test_a_lock_of_another_host_is_left_alone(manager):
    # A container whose hostname changed: not ours to judge, so not ours to remove.
    m = manager()
    path = Path(m.create_profile("gw0"))
    os.symlink("another-host-1", path / "SingletonLock")
    assert m.keep_profile("gw0") == str(path)
    assert os.readlink(path / "SingletonLock") == "another-host-1"


# -- exceptions -------------------------------------------------------------------------------


def test_exception_messages():
    creation = ProfileCreationError("gw0", "disk full")
    assert str(creation) == "Profile creation failed for gw0: disk full"
    assert (creation.worker_id, creation.reason) == ("gw0", "disk full")
    limit = ProfileLimitError(3, 4)
    assert str(limit) == "Profile limit exceeded: 3/4"
    assert (limit.current_count, limit.max_allowed) == (3, 4)
    assert limit.holders == []
    cleanup = ProfileCleanupError("gw1", "busy")
    assert str(cleanup) == "Profile cleanup failed for gw1: busy"
    assert (cleanup.worker_id, cleanup.reason) == ("gw1", "busy")


def test_limit_error_from_create_profile(manager):
    m = manager(max_profiles=2)
    paths = [m.create_profile(w) for w in ("gw0", "gw1")]
    with pytest.raises(ProfileLimitError) as info:
        m.create_profile("gw2")
    assert str(info.value) == "Profile limit exceeded: 2/2"
    assert (info.value.current_count, info.value.max_allowed) == (2, 2)
    assert sorted(h.path for h in info.value.holders) == sorted(paths)
    assert m.get_profile_path("gw2") is None


# -- size limit -------------------------------------------------------------------------------


def test_base_over_the_size_limit(manager, make_base, base_layout, tmp_path, tmp_root):
    base = make_base()
    sparse_file(base / "Default" / "IndexedDB" / "big.blob", 2 * MB)
    clone_bytes = 2 * MB + sum((base / rel).stat().st_size for rel in base_layout.kept)
    registry_path = tmp_path / "registry.json"
    m = manager(str(base), profile_size_limit_mb=1, max_profiles=1, registry_path=registry_path)
    with pytest.raises(ProfileCreationError) as info:
        m.create_profile("gw0")
    assert str(info.value) == (
        f"Profile creation failed for gw0: a clone of {base.resolve()} is "
        f"{clone_bytes / MB:.1f} MB, over the profile_size_limit_mb of 1 MB"
    )
    assert info.value.worker_id == "gw0"
    assert names(tmp_root) == []
    assert Registry(registry_path).holders() == []
    assert m.list_profiles() == {}
    # The slot is free: another manager sharing the cap gets it.
    assert os.path.isdir(manager(max_profiles=1, registry_path=registry_path).create_profile("x"))


# -- cleanup on exit --------------------------------------------------------------------------


def test_profiles_removed_when_the_manager_is_collected(tmp_root, sandbox_tempdir):
    m = ProfileManager(root=tmp_root)
    paths = [m.create_profile(w) for w in ("gw0", "gw1")]
    assert all(os.path.isdir(p) for p in paths)
    del m
    gc.collect()
    assert names(tmp_root) == []


def test_profiles_kept_when_collected_without_cleanup_on_exit(tmp_root, sandbox_tempdir):
    m = ProfileManager(root=tmp_root, cleanup_on_exit=False)
    path = m.create_profile("gw0")
    del m
    gc.collect()
    assert os.path.isdir(path)
    assert record(path)["keep"] is True


EXIT_SCRIPT = textwrap.dedent(
    """
    import sys
    from pytest_edgeprofiles import ProfileManager
    m = ProfileManager(root=sys.argv[1], cleanup_on_exit=sys.argv[2] == "1")
    print(m.create_profile("gw0"))
    print(m.create_profile("gw1"))
    """
)


def test_profiles_removed_at_interpreter_exit(tmp_root):
    result = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT, str(tmp_root), "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    paths = result.stdout.split()
    assert len(paths) == 2
    assert all(Path(p).parent == tmp_root.resolve() for p in paths)
    assert names(tmp_root) == []


def test_profiles_survive_exit_without_cleanup_on_exit(tmp_root):
    result = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT, str(tmp_root), "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    paths = result.stdout.split()
    assert all(os.path.isdir(p) for p in paths)
    assert all(record(p)["keep"] is True for p in paths)
    # Their owner is dead, but they are kept: no sweep removes them.
    assert sweep.sweep(tmp_root).removed == []
    assert all(os.path.isdir(p) for p in paths)


# -- failures half-way ------------------------------------------------------------------------


def test_copy_failure_leaves_nothing_behind(manager, make_base, tmp_path, tmp_root, monkeypatch):
    registry_path = tmp_path / "registry.json"
    m = manager(
        str(make_base()), max_profiles=1, registry_path=registry_path,
        fallback_root=tmp_path / "fallback",
    )  # fmt: skip
    calls = []

    def broken(src, dst, *args, **kwargs):
        calls.append(dst)
        os.mkdir(os.path.join(dst, "Default"))  # half a copy
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(files, "copy_tree", broken)
    with pytest.raises(OSError) as info:
        m.create_profile("gw0")
    assert info.value.errno == errno.EIO
    assert len(calls) == 1  # an error of the source: not retried elsewhere
    assert names(tmp_root) == []
    assert not (tmp_path / "fallback").exists()
    assert Registry(registry_path).holders() == []
    assert m.list_profiles() == {}
    monkeypatch.undo()
    assert os.path.isdir(m.create_profile("gw0"))  # worker id and slot are free


def test_no_space_retries_once_in_the_fallback_root(
    manager, make_base, tmp_path, tmp_root, monkeypatch, caplog
):
    fallback = tmp_path / "fallback"
    base = make_base()
    m = manager(str(base), max_profiles=1, fallback_root=fallback)
    real_copy = files.copy_tree
    calls = []

    def full_disk(src, dst, *args, **kwargs):
        calls.append(Path(dst).parent)
        if Path(dst).parent == tmp_root.resolve():
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_copy(src, dst, *args, **kwargs)

    monkeypatch.setattr(files, "copy_tree", full_disk)
    with caplog.at_level(logging.WARNING, logger="pytest_edgeprofiles"):
        path = m.create_profile("gw0")
    assert calls == [tmp_root.resolve(), fallback.resolve()]
    assert Path(path).parent == fallback.resolve()
    assert (Path(path) / "Default" / "Cookies").read_bytes() == (
        base / "Default" / "Cookies"
    ).read_bytes()
    assert os.path.isfile(f"{path}.owner")
    assert names(tmp_root) == []
    assert "No space left on device" in caplog.text
    assert m.get_profile_path("gw0") == path
    assert m.cleanup_profile("gw0") is True
    assert names(fallback) == []


def test_no_space_anywhere_raises_and_leaves_nothing(
    manager, make_base, tmp_path, tmp_root, monkeypatch
):
    fallback = tmp_path / "fallback"
    m = manager(str(make_base()), max_profiles=1, fallback_root=fallback)
    calls = []

    def full_disk(src, dst, *args, **kwargs):
        calls.append(dst)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files, "copy_tree", full_disk)
    with pytest.raises(OSError) as info:
        m.create_profile("gw0")
    assert info.value.errno == errno.ENOSPC
    assert len(calls) == 2
    assert names(tmp_root) == []
    assert names(fallback) == []
    monkeypatch.undo()
    assert Path(m.create_profile("gw0")).parent == tmp_root.resolve()


# -- the default root -------------------------------------------------------------------------


def test_default_root_is_private_under_the_system_temp(sandbox_tempdir):
    expected = roots.default_root()
    assert expected.parent == sandbox_tempdir.resolve()
    assert expected.name.startswith("edgeprofiles-of-")
    m = ProfileManager()
    try:
        path = m.create_profile("gw0")
        assert Path(path).parent == expected
        if POSIX:  # Windows has no mode bits: an ACL protects the folder
            assert stat.S_IMODE(expected.lstat().st_mode) == 0o700
    finally:
        m.cleanup_all_profiles()


@pytest.mark.parametrize(
    "environment",
    [{"USER": "ci runner"}, pytest.param({}, marks=posix_only("an account database, pwd"))],
)
def test_default_root_names_the_user_as_getpass_does(sandbox_tempdir, monkeypatch, environment):
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    user = getpass.getuser()  # the account's name when the environment names none
    assert roots.default_root().name == "edgeprofiles-of-" + re.sub(r"[^A-Za-z0-9_.-]", "_", user)


@posix_only("group and other mode bits, which Windows folders do not have")
def test_default_root_mode_is_tightened(sandbox_tempdir):
    root = roots.default_root()
    root.mkdir()
    os.chmod(root, 0o777)
    m = ProfileManager()
    try:
        m.create_profile("gw0")
        assert stat.S_IMODE(root.lstat().st_mode) == 0o700
    finally:
        m.cleanup_all_profiles()


@posix_only(SYMLINKS)
@pytest.mark.parametrize("dangling", [False, True], ids=["to-a-folder", "dangling"])
def test_default_root_planted_symlink_is_refused(sandbox_tempdir, tmp_path, dangling):
    attacker = tmp_path / "attacker"
    if not dangling:
        attacker.mkdir()
        os.chmod(attacker, 0o777)
    root = roots.default_root()
    os.symlink(attacker, root)
    m = ProfileManager()
    with pytest.raises(PermissionError) as info:
        m.create_profile("gw0")
    assert isinstance(info.value, UnsafeDirectoryError)
    assert "symlink" in str(info.value)
    assert root.is_symlink()
    assert names(attacker) == []
    assert not (tmp_path / "cache").exists()  # no silent detour to the fallback either
    assert m.list_profiles() == {}


@posix_only("chown and uids")
def test_default_root_of_another_user_is_refused(sandbox_tempdir):
    if os.geteuid() != 0:
        pytest.skip("only root can give a folder to another user")
    root = roots.default_root()
    root.mkdir(mode=0o700)
    os.chown(root, 65534, 65534)
    m = ProfileManager()
    with pytest.raises(UnsafeDirectoryError, match="owned by uid 65534"):
        m.create_profile("gw0")
    assert names(root) == []


@pytest.mark.parametrize("bad", [123, None, b"gw0"])
def test_a_worker_id_that_is_no_string_is_both_type_and_value_error(manager, bad):
    m = manager()
    for kind in (TypeError, ValueError):
        with pytest.raises(kind, match="worker_id must be a str"):
            m.create_profile(bad)
    assert m.cleanup_profile(bad) is True
    assert m.cleanup_profile([]) is True  # unhashable: still just "no such profile"


def test_a_refresh_racing_a_removal_never_brings_the_folder_back(manager, make_base, monkeypatch):
    m = manager(str(make_base()))
    path = Path(m.create_profile("gw0"))

    def removed_meanwhile(src, dst, skip=None):
        shutil.rmtree(dst)  # as a cleanup in another thread would
        return 0

    monkeypatch.setattr(files, "copy_tree", removed_meanwhile)
    assert m.copy_base_profile("gw0") is False
    assert not path.exists()
