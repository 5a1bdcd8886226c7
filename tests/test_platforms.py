"""What differs on Windows and macOS: long paths, files a browser holds, stopping a browser
tree, Edge's ``lockfile``, what keeps the root private, and the key in ``Local State``.

Each behaviour has a unit test of its logic, run on every platform with the platform's
switch set by hand, and a test on the real OS call that runs in every job of the CI matrix,
asserting what that platform does.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import posix_only

from pytest_edgeprofiles._browser import launch
from pytest_edgeprofiles._chromium import processes, userdata
from pytest_edgeprofiles._chromium.userdata import SkipRules
from pytest_edgeprofiles._profiles import roots, sweep
from pytest_edgeprofiles._system import files, platform, waiting

WINDOWS = sys.platform == "win32"

# -- paths past 260 characters on Windows ----------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (r"C:\Users\me\AppData\Local\Temp\p", r"\\?\C:\Users\me\AppData\Local\Temp\p"),
        ("C:/Users/me/Temp/../p", r"\\?\C:\Users\me\p"),  # the prefix turns off this clean-up
        (r"\\server\share\profiles\p", r"\\?\UNC\server\share\profiles\p"),
        (r"\\?\C:\already\long", r"\\?\C:\already\long"),
    ],
)
def test_a_windows_path_is_given_the_form_that_passes_260_characters(
    path: str, expected: str
) -> None:
    assert files.long_path(path, windows=True) == expected


def test_a_posix_path_is_left_as_it_is() -> None:
    assert files.long_path("/tmp/a/../b", windows=False) == "/tmp/a/../b"


def test_a_tree_deeper_than_260_characters_is_cloned_measured_and_removed(manager, tmp_path):
    base = tmp_path / "base"
    deep = base / "Default" / "Extensions" / Path(*["x" * 60] * 5)
    # The folders are made one by one through the long form where the OS needs it.
    os.makedirs(files.long_path(deep))
    with open(files.long_path(deep / "manifest.json"), "wb") as fh:
        fh.write(b"{}")
    (base / "Local State").write_text("{}", encoding="utf-8")
    m = manager(str(base))
    profile = Path(m.create_profile("gw0"))
    copied = profile / deep.relative_to(base) / "manifest.json"
    assert len(str(copied)) > 300
    assert os.path.isfile(files.long_path(copied))
    assert m.get_profile_size("gw0") >= 2
    assert m.cleanup_profile("gw0", strict=True)
    assert not os.path.lexists(profile)


# -- files a running browser holds (Windows sharing violations) -----------------------------


def sharing_violation(name: Path) -> PermissionError:
    """What Windows raises when another process holds ``name`` open without sharing it."""
    exc = PermissionError(
        errno.EACCES,
        "The process cannot access the file because it is being used by another process",
        str(name),
    )
    exc.winerror = 32  # type: ignore[attr-defined]
    return exc


class HeldFile:
    """Removal fails with a sharing violation on ``name`` until ``let_go`` (by itself after
    ``let_go_after`` pauses of the backoff, if given)."""

    def __init__(
        self, monkeypatch: pytest.MonkeyPatch, name: Path, let_go_after: int | None = None
    ) -> None:
        self.name, self.held, self.let_go_after = name, True, let_go_after
        self.pauses: list[float] = []
        real = shutil.rmtree

        def rmtree(path: Path, **how: Any) -> None:
            if self.held and Path(files.long_path(name)).is_relative_to(path):
                raise sharing_violation(name)
            real(path, **how)

        monkeypatch.setattr(shutil, "rmtree", rmtree)
        # The backoff is observed, not waited for.
        monkeypatch.setattr(waiting, "sleep", self.pause)

    def pause(self, seconds: float) -> None:
        self.pauses.append(seconds)
        if len(self.pauses) == self.let_go_after:
            self.let_go()

    def let_go(self) -> None:
        self.held = False


def test_a_held_file_is_retried_with_growing_pauses_until_it_is_let_go(monkeypatch, tmp_path):
    folder = tmp_path / "profile"
    (folder / "Default").mkdir(parents=True)
    held = HeldFile(monkeypatch, folder / "Default" / "Cookies", let_go_after=2)
    held.name.write_bytes(b"x")
    files.remove_tree(folder)
    assert not folder.exists()
    assert held.pauses == [0.05, 0.1], "retried twice, each pause twice the last"


def test_a_file_never_let_go_is_named_in_the_error_after_about_a_second_and_a_half(
    monkeypatch, tmp_path
):
    folder = tmp_path / "profile"
    folder.mkdir()
    held = HeldFile(monkeypatch, folder / "lockfile")
    held.name.write_bytes(b"")
    with pytest.raises(PermissionError) as caught:
        files.remove_tree(folder)
    assert caught.value.filename == str(held.name)
    assert 1.0 < sum(held.pauses) < 2.0
    assert folder.exists()


def test_a_profile_whose_file_stays_held_is_left_to_the_sweep_and_named(
    manager, monkeypatch, tmp_root, caplog
):
    m = manager(max_profiles=1)
    profile = Path(m.create_profile("gw0"))
    held = HeldFile(monkeypatch, profile / "Default" / "Cookies")
    with caplog.at_level(logging.WARNING, logger="pytest_edgeprofiles"):
        assert m.cleanup_profile("gw0") is False
    assert str(held.name) in caplog.text and "left to the sweep" in caplog.text
    assert profile.is_dir()
    m.create_profile("gw1")  # the slot came back, though the folder stays
    held.let_go()
    assert sweep.sweep(tmp_root).removed == [profile]


def test_a_file_held_open_stops_removal_only_on_windows(manager, tmp_root, caplog):
    m = manager()
    profile = Path(m.create_profile("gw0"))
    (profile / "Default").mkdir(exist_ok=True)
    with open(profile / "Default" / "Cookies", "wb") as handle:
        handle.write(b"SQLite format 3\x00")
        handle.flush()
        with caplog.at_level(logging.WARNING, logger="pytest_edgeprofiles"):
            removed = m.cleanup_profile("gw0")
    if WINDOWS:  # no FILE_SHARE_DELETE on Python's handles: a sharing violation, retried
        assert removed is False
        assert "Cookies" in caplog.text and "left to the sweep" in caplog.text
        assert sweep.sweep(tmp_root).removed == [profile]
    else:  # POSIX unlinks a file that is open
        assert removed is True
    assert not os.path.lexists(profile)


# -- stopping a browser tree ----------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def terminate(self) -> None:
        self.calls.append(("terminate", None))

    def send_signal(self, sig: int, /) -> None:
        self.calls.append(("send_signal", sig))


SIGHUP = posix_only("SIGHUP does not exist on Windows")


@SIGHUP
def test_a_browser_is_asked_to_stop_with_sighup_on_posix() -> None:
    proc = Recorder()
    processes.ask_to_stop(proc, windows=False)
    # SIGHUP, not SIGTERM, lets headless Chromium remove its Singleton* links.
    assert proc.calls == [("send_signal", signal.SIGHUP)]


def test_a_browser_is_terminated_on_windows_which_has_no_signal_to_ask_with() -> None:
    proc = Recorder()
    processes.ask_to_stop(proc, windows=True)
    assert proc.calls == [("terminate", None)]


#: A "browser process" that writes down the signal that stops it (none when killed).
FAKE_BROWSER = """
import pathlib, signal, sys, time
said = pathlib.Path(sys.argv[1])
def stop(number, frame):
    said.write_text(signal.Signals(number).name)
    sys.exit(0)
for name in ("SIGTERM", "SIGHUP"):
    if hasattr(signal, name):
        signal.signal(getattr(signal, name), stop)
print("up", flush=True)
time.sleep(60)
"""


def fake_browser(profile: Path, said: Path, *flags: str) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-c", FAKE_BROWSER, str(said), *flags, f"--user-data-dir={profile}"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"up"  # \r\n on Windows
    return proc


@pytest.mark.parametrize(
    "windows", [pytest.param(False, marks=SIGHUP, id="posix"), pytest.param(True, id="windows")]
)
def test_stopping_a_browser_tree(monkeypatch, tmp_path, windows):
    monkeypatch.setattr(platform, "WINDOWS", windows)
    profile = tmp_path / "profile"
    main = fake_browser(profile, tmp_path / "main")
    renderer = fake_browser(profile, tmp_path / "renderer", "--type=renderer")
    try:
        procs = processes.browsers_using(str(profile))
        assert sorted(p.pid for p in procs) == sorted([main.pid, renderer.pid])
        processes.stop_browsers(procs, grace=2)
        assert not [p for p in (main, renderer) if psutil.pid_exists(p.pid) and p.poll() is None]
    finally:
        for proc in (main, renderer):
            proc.kill()
            proc.wait()
    said = {name: (tmp_path / name).read_text() if (tmp_path / name).exists() else "killed"
            for name in ("main", "renderer")}  # fmt: skip
    if WINDOWS:  # TerminateProcess runs no handler
        assert said == {"main": "killed", "renderer": "killed"}
    elif windows:  # every process of the tree is stopped at once: none is left to kill
        assert said == {"main": "SIGTERM", "renderer": "SIGTERM"}
    else:  # the browser is asked; a helper that outlives it is killed after the grace
        assert said == {"main": "SIGHUP", "renderer": "killed"}


# -- Edge's lockfile on Windows -------------------------------------------------------------


def hold_lockfile(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Make opening ``folder/lockfile`` for writing fail as it does while Edge runs: the C
    runtime under ``os.open`` turns the sharing violation into a plain EACCES."""
    real = os.open

    def opener(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if Path(path) == folder / "lockfile" and flags & os.O_WRONLY:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", opener)


def test_a_lockfile_a_running_edge_holds_is_live_and_a_leftover_one_is_not(monkeypatch, tmp_path):
    folder = tmp_path / "User Data"
    folder.mkdir()
    assert userdata.lockfile_held(folder, windows=True) is False, "no lockfile"
    (folder / "lockfile").write_bytes(b"")
    assert userdata.lockfile_held(folder, windows=True) is False, "a leftover opens"
    hold_lockfile(monkeypatch, folder)
    assert userdata.lockfile_held(folder, windows=True) is True
    assert userdata.lockfile_held(folder, windows=False) is False, "POSIX locks differently"


def test_a_base_a_running_edge_holds_is_reported_live_without_a_pid(monkeypatch, tmp_path):
    base = tmp_path / "User Data"
    base.mkdir()
    (base / "lockfile").write_bytes(b"")
    monkeypatch.setattr(platform, "WINDOWS", True)
    assert processes.lock_state(base) == ("none", None)
    hold_lockfile(monkeypatch, base)
    assert processes.lock_state(base) == ("live", None)
    assert processes.a_browser(None) == "a browser"


# -- what keeps the root private ------------------------------------------------------------


def test_the_default_root_is_private_by_what_protects_it_here(request):
    if WINDOWS:
        # Mode bits mean nothing here. The default root lies in the user's own %TEMP%, below
        # their profile folder, whose ACL admits only them, SYSTEM and administrators; the
        # root inherits that ACL.
        assert Path.home().resolve() in roots.default_root().parents
    else:
        request.getfixturevalue("sandbox_tempdir")
        root = roots.default_root()
        root.mkdir()
        root.chmod(0o755)  # made by an older version, or by hand
        roots.prepare_root(root)
        st = root.lstat()
        assert stat.S_IMODE(st.st_mode) == 0o700
        assert st.st_uid == os.getuid()


# -- Local State travels with Default/ ------------------------------------------------------


def test_skip_rules_cannot_leave_out_the_key_that_decrypts_default() -> None:
    with pytest.raises(ValueError, match=r"'Local State'.*encrypted_key"):
        SkipRules(top_level=frozenset({"Local State", "Crashpad"}))
    assert not SkipRules().skips(("Local State",), False)


# -- replacing a file another process reads -------------------------------------------------


@pytest.mark.parametrize("windows", [False, True], ids=["posix", "windows"])
def test_a_record_open_elsewhere_is_replaced_once_the_reader_lets_go(
    monkeypatch, tmp_path, windows
):
    monkeypatch.setattr(platform, "WINDOWS", windows)
    record = tmp_path / "p.owner"
    files.write_json_atomic(record, {"pid": 1})
    refusals = [PermissionError(errno.EACCES, "Access is denied", str(record))] * 2
    real = os.replace

    def replace(src: Any, dst: Any) -> None:
        if refusals:  # Windows: the destination is open in a reader
            raise refusals.pop()
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    if windows:
        files.write_json_atomic(record, {"pid": 2})
        assert files.read_json(record) == {"pid": 2}
    else:  # POSIX never refuses for a reader: a refusal there is real, and raised at once
        with pytest.raises(PermissionError):
            files.write_json_atomic(record, {"pid": 2})
        assert files.read_json(record) == {"pid": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.owner"], "no temp file left"


# -- browser sockets: POSIX only ------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "environ", "expected"),
    [
        ("TMPDIR", {"TMPDIR": "/deep"}, "/deep"),
        ("TMPDIR", {}, "/tmp"),
        # macOS: Chromium ignores TMPDIR; without its own variable, the short per-user folder.
        ("MAC_CHROMIUM_TMPDIR", {"TMPDIR": "/deep"}, None),
        ("MAC_CHROMIUM_TMPDIR", {"MAC_CHROMIUM_TMPDIR": "/deep"}, "/deep"),
        # Windows browsers find each other through a window and the lockfile: no socket.
        (None, {"TMPDIR": "/deep", "TEMP": "/deep"}, None),
    ],
    ids=["linux", "linux-default", "macos-tmpdir", "macos", "windows"],
)
def test_the_folder_a_browser_puts_its_socket_in(monkeypatch, variable, environ, expected):
    monkeypatch.setattr(userdata, "SOCKET_TMPDIR_VAR", variable)
    assert userdata.socket_tmpdir(environ) == expected


@posix_only("a short 0700 folder for sockets under /tmp; Windows browsers have no socket")
def test_a_deep_folder_for_the_socket_gets_the_browser_a_short_one_in_its_variable(
    monkeypatch, tmp_path
):
    monkeypatch.setattr(launch, "SOCKET_TMPDIR_VAR", "MAC_CHROMIUM_TMPDIR")
    monkeypatch.setattr(userdata, "SOCKET_TMPDIR_VAR", "MAC_CHROMIUM_TMPDIR")
    deep = str(tmp_path / ("d" * 100))
    assert launch.browser_env({"TMPDIR": deep}) is None, "macOS's Chromium never reads it"
    env = launch.browser_env({"MAC_CHROMIUM_TMPDIR": deep, "TMPDIR": deep})
    assert env is not None and env["TMPDIR"] == deep
    assert not userdata.socket_path_too_long(env["MAC_CHROMIUM_TMPDIR"])


# -- a real browser's lock, as this platform's browser takes it -----------------------------


def test_a_real_browser_on_a_profile_is_seen_through_this_platforms_lock(browser, manager):
    from browser_support import start_browser, stop_browser

    m = manager()
    profile = Path(m.create_profile("gw0"))
    proc = start_browser(profile, browser)
    try:
        state, owner = processes.lock_state(profile)
        assert state == "live"
        if WINDOWS:  # the lockfile it holds names nobody
            assert owner is None
        else:  # the SingletonLock link names the browser process
            assert owner is not None and owner.pid == proc.pid
        assert not m.validate_profile("gw0"), "no second browser may start on it now"
    finally:
        stop_browser(proc)
    # Stopped the way this platform stops it, the browser takes its lock along.
    assert processes.lock_state(profile) == ("none", None)
    assert m.validate_profile("gw0")


def test_a_session_stopped_the_windows_way_leaves_none_of_its_helpers(
    browser, monkeypatch, tmp_path
):
    from pytest_edgeprofiles._browser import sessions

    monkeypatch.setattr(platform, "WINDOWS", True)
    # On Windows the lockfile goes with the browser: nothing leads stop_browser_on to helpers.
    monkeypatch.setattr(processes, "stop_browser_on", lambda profile: None)
    session = sessions.start_session(tmp_path / "profile", browser)
    tree = psutil.Process(session.process.pid).children(recursive=True)
    assert tree, "a browser runs helpers"
    session.stop()
    assert [p.pid for p in tree if alive(p)] == []


def alive(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
