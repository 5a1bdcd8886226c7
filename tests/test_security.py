"""Security: private files, planted roots and records, symlinks in and around profiles,
unreadable bases, and browsers that are not ours to stop.

As root (CI), "another user" is uid 65534 (nobody), reached through ``setpriv``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from browser_support import start_browser, start_process, stop_browser, wait_for
from conftest import SINGLETON_LOCK, SYMLINKS, linux_only, posix_only

from pytest_edgeprofiles import ProfileManager
from pytest_edgeprofiles._browser import bridge, sessions
from pytest_edgeprofiles._profiles import roots, sweep
from pytest_edgeprofiles._profiles.records import ProfileRecord, write_record
from pytest_edgeprofiles._profiles.registry import Registry
from pytest_edgeprofiles.chromium import Browser

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
NOBODY = 65534


def _open_temp() -> str:
    """A temp dir every user can traverse, so that a check as another user means something."""
    for candidate in (tempfile.gettempdir(), "/tmp", "/var/tmp"):
        path = Path(candidate).resolve()
        if path.is_dir() and all(os.stat(p).st_mode & 0o001 for p in [path, *path.parents]):
            return str(path)
    return tempfile.gettempdir()


OPEN_TMP = _open_temp()


def needs_root(what: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not IS_ROOT, reason=f"only root can {what}")


def names(folder: Path | str) -> list[str]:
    try:
        return sorted(os.listdir(folder))
    except FileNotFoundError:
        return []


def mode(path: Path | str) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def snapshot(folder: Path) -> dict[str, tuple[int, int, int, bytes | str | None]]:
    """Everything below ``folder`` (links not followed): mode, owner, mtime, content."""
    seen: dict[str, tuple[int, int, int, bytes | str | None]] = {}
    for path in [folder, *sorted(folder.rglob("*"))]:
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            content: bytes | str | None = os.readlink(path)
        elif stat.S_ISREG(st.st_mode):
            content = path.read_bytes()
        else:
            content = None
        seen[str(path.relative_to(folder))] = (st.st_mode, st.st_uid, st.st_mtime_ns, content)
    return seen


def as_nobody(*command: str) -> subprocess.CompletedProcess[str]:
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to act as another user"
    return subprocess.run(
        [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *command],
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.fixture
def open_folder() -> Iterator[Path]:
    """A folder any user may traverse (0755) in the real temp dir; pytest's own tmp_path sits
    in a 0700 folder, behind which every file would look private."""
    folder = Path(tempfile.mkdtemp(prefix="edgeprofiles-sec-", dir=OPEN_TMP))
    os.chmod(folder, 0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# -- private files ----------------------------------------------------------------------------

UMASK_ZERO = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    from pytest_edgeprofiles import ProfileManager
    from pytest_edgeprofiles._profiles.runs import RunFolder
    os.umask(0)  # the most permissive a user can set: only explicit modes protect anything
    top = Path(sys.argv[1])
    base = top / "base"
    (base / "Default").mkdir(parents=True)
    (base / "Local State").write_text("{}")
    (base / "Default" / "Preferences").write_text('{"download": {"default_directory": "/x/reports"}}')
    # Roots with missing parents: every folder made on the way must be private too.
    m = ProfileManager(str(base), root=top / "new" / "root",
                       registry_path=top / "reg" / "deeper" / "registry.json",
                       download_root=top / "dl" / "downloads")
    path = m.create_profile("gw0")
    run = RunFolder.create(top / "runs" / "runroot", "run0001")
    run.add_event("kept", path=path, test="t")
    print(json.dumps({"profile": path, "downloads": m.get_download_dir("gw0"),
                      "run": str(run.path)}))
    os._exit(0)  # leave it all on disk for the checks
    """
)


@posix_only("umask and the modes 0700 and 0600: Windows protects files by ACLs, not modes")
def test_everything_made_is_private_even_under_umask_zero(open_folder: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", UMASK_ZERO, str(open_folder)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    made = json.loads(result.stdout)
    profile, downloads, run = Path(made["profile"]), Path(made["downloads"]), Path(made["run"])
    registry = open_folder / "reg" / "deeper" / "registry.json"
    private_dirs = [
        open_folder / "new",  # a missing parent of the root
        open_folder / "new" / "root",  # created by the manager
        profile,
        open_folder / "reg",
        open_folder / "reg" / "deeper",
        open_folder / "dl",
        open_folder / "dl" / "downloads",
        downloads.parent,  # <download root>/<profile name>, outside the profile
        downloads,
        open_folder / "runs",
        open_folder / "runs" / "runroot",
        open_folder / "runs" / "runroot" / ".runs",
        run,
    ]
    private_files = [
        Path(f"{profile}.owner"),
        registry,
        Path(f"{registry}.lock"),
        Path(f"{run}.owner"),
        run / "events.jsonl",
    ]
    assert downloads.parent.parent == open_folder / "dl" / "downloads"
    for folder in private_dirs:
        assert mode(folder) == 0o700, folder
    for file in private_files:
        assert mode(file) == 0o600, file
    if IS_ROOT:
        # Checked as another user too: nothing of it can be listed or read.
        control = open_folder / "public.txt"
        control.write_text("anyone may read this")
        control.chmod(0o644)
        assert as_nobody("cat", str(control)).returncode == 0, "the check itself works"
        for target in private_dirs:
            assert as_nobody("ls", str(target)).returncode != 0, target
        for target in private_files:
            assert as_nobody("cat", str(target)).returncode != 0, target


# -- planted roots and records ----------------------------------------------------------------

PLANTED = {"note.txt": b"the attacker's own file"}


def _plant(
    folder: Path,
    victim: Path,
    dead: tuple[int, float],
    owner: int | None,
    registry: Path | None = None,
) -> None:
    """What another local user leaves in a folder we might trust: a record naming a dead
    process of this host, whose download folder is one of the victim's folders."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in PLANTED.items():
        (folder / name).write_bytes(data)
    (folder / victim.name).mkdir()
    write_record(
        ProfileRecord(
            worker_id="x",
            path=str(folder / victim.name),
            pid=dead[0],
            create_time=dead[1],
            host=socket.gethostname(),
            created_at=time.time() - 3600,
            downloads=str(victim),
            registry=None if registry is None else str(registry),
        )
    )
    (folder / f"garbage-x-{'0' * 12}").mkdir()
    (folder / f".{victim.name}.owner.{socket.gethostname()}.{dead[0]}.1.tmp").write_text("{}")
    if owner is not None:
        for path in [folder, *folder.iterdir()]:
            os.chown(path, owner, owner, follow_symlinks=False)
        os.chmod(folder, 0o777)


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A folder of ours that a planted record names as its download folder."""
    folder = tmp_path / "home" / "Documents"
    folder.mkdir(parents=True)
    (folder / "thesis.tex").write_text("years of work")
    return folder


@posix_only("a root planted as a symlink, or as a folder given to another uid (chown)")
@pytest.mark.parametrize(
    "planted",
    [
        pytest.param("symlink", id="symlink"),
        pytest.param("dangling-symlink", id="dangling-symlink"),
        pytest.param("other-user", id="other-user", marks=needs_root("give a folder away")),
    ],
)
def test_a_planted_default_root_is_refused_by_a_test_run(
    pytester: pytest.Pytester,
    sandbox_tempdir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    victim: Path,
    dead_owner: tuple[int, float],
    planted: str,
) -> None:
    monkeypatch.delenv("EDGEPROFILES_ROOT", raising=False)
    root = roots.default_root()
    attacker = tmp_path / "attacker"
    if planted == "other-user":
        _plant(root, victim, dead_owner, NOBODY)
        watched = root
    else:
        if planted == "symlink":
            # A link to a folder of ours (records of ours, a dead owner): only the refusal
            # of the link itself keeps the sweep out of it.
            _plant(attacker, victim, dead_owner, None)
        os.symlink(attacker, root)
        watched = attacker
    before = snapshot(watched) if watched.exists() else None
    victim_before = snapshot(victim)
    pytester.makepyfile(test_x="def test_x(edge_profile): pass")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    output = result.stdout.str() + result.stderr.str()
    reason = "it is owned by uid 65534" if planted == "other-user" else "it is a symlink"
    assert f"ERROR: edgeprofiles: refusing {root}: {reason}" in output
    assert "Traceback" not in output and "INTERNALERROR" not in output
    assert "1 passed" not in output
    # Nothing was created, read through or removed: the attacker's folder is as planted.
    if before is None:
        assert not watched.exists()
    else:
        assert snapshot(watched) == before
    assert snapshot(victim) == victim_before
    assert not (tmp_path / "cache" / "edgeprofiles" / ".runs").exists()


@posix_only("a shared root of mode 1777, and a .runs planted as a symlink or another uid's")
@pytest.mark.parametrize(
    "planted",
    [
        pytest.param("symlink", id="symlink"),
        pytest.param("other-user", id="other-user", marks=needs_root("give a folder away")),
    ],
)
def test_a_runs_folder_planted_in_a_shared_root_is_refused(
    pytester: pytest.Pytester,
    open_folder: Path,
    monkeypatch: pytest.MonkeyPatch,
    planted: str,
) -> None:
    # A root shared like /tmp (sticky, writable by all): another user makes .runs first, to
    # swap each new run folder for one of theirs and read what the run writes into it.
    shared = open_folder / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    runs = shared / ".runs"
    attacker = open_folder / "attacker"
    attacker.mkdir()
    (attacker / "note.txt").write_text("the attacker's own file")
    if planted == "symlink":
        os.symlink(attacker, runs)
        reason = "it is a symlink"
    else:
        runs.mkdir()
        os.chown(runs, NOBODY, NOBODY)
        os.chmod(runs, 0o777)
        reason = f"it is owned by uid {NOBODY}"
    before = snapshot(attacker)
    pytester.makepyfile(test_x="def test_x(edge_profile): pass")
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--edge-profile-root={shared}"
    )
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, output
    assert f"ERROR: edgeprofiles: refusing {runs}: {reason}" in output
    assert "Traceback" not in output and "INTERNALERROR" not in output
    assert snapshot(attacker) == before, "nothing was written through the planted folder"
    if planted == "other-user":
        assert names(runs) == [], "nothing was made inside another user's folder"


@posix_only("chown: files of another uid")
@needs_root("give files to another user")
def test_records_garbage_and_temp_files_of_another_user_are_left_alone(
    tmp_root: Path, victim: Path, dead_owner: tuple[int, float], sandbox_tempdir: Path
) -> None:
    """A shared root (say /tmp/profiles): another user's entries are never acted on."""
    tmp_root.mkdir()
    registry = (tmp_root.parent / "registry.json").resolve()
    _plant(tmp_root, victim, dead_owner, NOBODY, registry)
    before, victim_before = snapshot(tmp_root), snapshot(victim)
    result = sweep.sweep(tmp_root)
    assert (result.removed, result.failed) == ([], [])
    assert snapshot(tmp_root) == before
    assert snapshot(victim) == victim_before
    # Nor do they count against the cap when the registry is rebuilt from records.
    m = ProfileManager(root=tmp_root, registry_path=registry, max_profiles=1)
    try:
        path = m.create_profile("gw0")
        registry.write_bytes(b"garbage")
        assert [h.path for h in Registry(registry, [tmp_root]).holders()] == [path]
    finally:
        m.cleanup_all_profiles()
    assert snapshot(victim) == victim_before


# -- symlinks in a base profile and in profiles ------------------------------------------------


@pytest.fixture
def outside(tmp_path: Path) -> Iterator[Path]:
    """Folders and files that no profile owns, some read-only, one big."""
    folder = tmp_path / "outside"
    (folder / "docs" / "deep").mkdir(parents=True)
    (folder / "docs" / "deep" / "secret.txt").write_text("do not copy, do not touch")
    (folder / "docs" / "ro.txt").write_text("read-only")
    (folder / "docs" / "ro.txt").chmod(0o444)
    (folder / "sealed").mkdir()
    (folder / "sealed" / "x").write_text("x")
    (folder / "sealed").chmod(0o555)
    with open(folder / "huge.bin", "wb") as fh:
        fh.truncate(64 * 1024 * 1024)  # sparse: 64 MB that take no room
    yield folder
    (folder / "sealed").chmod(0o755)


LINKS = {
    "Default/docs-link": "{outside}/docs",  # a folder outside, absolute
    "Default/huge-link": "../../../outside/huge.bin",  # a file outside, relative
    "Default/root-link": "/",  # everything
    "Default/self": ".",  # a loop onto its own folder
    "Default/up": "..",  # a loop onto the user data dir
    "Default/a": "b",  # a two-link loop
    "Default/b": "a",
    "Default/chain1": "chain2",  # a chain that ends outside
    "Default/chain2": "{outside}/sealed",
    "Default/dangling": "/nowhere/at/all",
}


@posix_only(SYMLINKS)
def test_base_symlinks_are_copied_as_links_never_their_targets(
    manager: Callable[..., ProfileManager], make_base: Callable[..., Path], outside: Path
) -> None:
    base = make_base()
    assert base.parent.parent == outside.parent
    for rel, target in LINKS.items():
        os.symlink(target.format(outside=outside), base / rel)
    outside_before = snapshot(outside)
    # 64 MB behind a link against a 1 MB limit: only what is copied counts, and it is a link.
    m = manager(str(base), profile_size_limit_mb=1)
    clone = Path(m.create_profile("gw0"))
    for rel, target in LINKS.items():
        assert (clone / rel).is_symlink(), rel
        assert os.readlink(clone / rel) == target.format(outside=outside), rel
    assert not any(p.name == "secret.txt" for p in clone.rglob("*"))
    assert m.get_profile_size("gw0") < 1024 * 1024
    assert m.copy_base_profile("gw0") is True  # a refresh goes through the same links
    assert m.cleanup_profile("gw0") is True
    assert not clone.exists()
    assert snapshot(outside) == outside_before


@posix_only("FIFOs (os.mkfifo) and unix sockets (AF_UNIX)")
def test_special_files_in_a_base_are_left_out_without_hanging(
    tmp_path: Path, make_base: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    base = make_base()
    os.mkfifo(base / "Default" / "pipe")  # copying it would block on open for ever
    monkeypatch.chdir(base / "Default")  # a relative name: socket paths are short
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind("sock")
        code = textwrap.dedent(
            """
            import os, sys
            from pytest_edgeprofiles import ProfileManager
            m = ProfileManager(sys.argv[1], root=sys.argv[2])
            path = m.create_profile("gw0")
            print(sorted(os.listdir(os.path.join(path, "Default"))))
            m.cleanup_all_profiles()
            """
        )
        result = subprocess.run(
            [sys.executable, "-c", code, str(base), str(tmp_path / "root")],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 0, result.stderr
    listed = result.stdout.strip()
    assert "'Cookies'" in listed
    assert "pipe" not in listed and "sock" not in listed
    assert names(tmp_path / "root") == []


@posix_only(f"{SYMLINKS}, in a folder chmod 0500 made read-only")
def test_cleanup_and_sweep_of_profiles_full_of_links_leave_the_targets_untouched(
    tmp_root: Path, outside: Path, sandbox_tempdir: Path
) -> None:
    code = textwrap.dedent(
        """
        import os, sys
        from pathlib import Path
        from pytest_edgeprofiles import ProfileManager
        m = ProfileManager(root=sys.argv[1])
        links = {"docs": sys.argv[2] + "/docs", "ro": sys.argv[2] + "/docs/ro.txt",
                 "sealed": sys.argv[2] + "/sealed", "root": "/"}
        for worker in ("alive", "killed"):
            p = Path(m.create_profile(worker))
            for name, target in links.items():
                os.symlink(target, p / name)
                os.symlink(target, p / "Default" / name)
            os.chmod(p / "Default", 0o500)  # read-only folder holding links
        print(m.get_profile_path("alive"), flush=True)
        assert m.cleanup_profile("alive") is True
        os._exit(0)  # the other one is left as a killed worker leaves it
        """
    )
    before = snapshot(outside)
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_root), str(outside)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert len(sweep.sweep(tmp_root).removed) == 1
    assert names(tmp_root) == []
    assert snapshot(outside) == before


@posix_only(SYMLINKS)
def test_a_profile_swapped_for_a_symlink_is_never_followed(
    manager: Callable[..., ProfileManager],
    make_base: Callable[..., Path],
    outside: Path,
    tmp_root: Path,
) -> None:
    m = manager(str(make_base()))
    before = snapshot(outside)

    def swap(worker_id: str) -> str:
        path = m.get_profile_path(worker_id)
        assert path is not None
        shutil.rmtree(path)
        os.symlink(outside / "docs", path)
        return path

    m.create_profile("gw0")
    path = swap("gw0")
    assert m.validate_profile("gw0") is False
    assert m.get_profile_size("gw0") == 0
    # A refresh would empty the folder and copy the base into it: refused, not followed.
    assert m.copy_base_profile("gw0") is False
    assert snapshot(outside) == before
    assert m.cleanup_profile("gw0") is True
    assert not os.path.lexists(path)
    m.create_profile("gw1")
    swap("gw1")
    m.release_profile("gw1")
    m.drain()
    assert m.background_failures == []
    assert names(tmp_root) == []
    assert snapshot(outside) == before


@linux_only("/proc/self/fd, through which the swap names the folder rmtree holds open")
def test_a_folder_swapped_for_a_symlink_mid_cleanup_is_not_followed(
    manager: Callable[..., ProfileManager],
    outside: Path,
    tmp_root: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    m = manager()
    path = Path(m.create_profile("gw0"))
    (path / "Default" / "Cache" / "sub").mkdir(parents=True)
    (path / "Default" / "Cache" / "sub" / "f").write_text("ours")
    before = snapshot(outside)
    real_open = os.open
    swapped: list[str] = []

    def open_(name: Any, flags: int, *args: Any, dir_fd: int | None = None, **kwargs: Any) -> int:
        if os.fsdecode(name) == "Cache" and dir_fd is not None and not swapped:
            # Between the listing and the descent, someone swaps the folder for a link out.
            here = f"/proc/self/fd/{dir_fd}"
            os.rename(f"{here}/Cache", f"{here}/Cache-moved")
            os.symlink(outside / "docs", f"{here}/Cache")
            swapped.append(here)
        return real_open(name, flags, *args, dir_fd=dir_fd, **kwargs)

    monkeypatch.setattr(os, "open", open_)
    assert m.cleanup_profile("gw0") is True
    monkeypatch.undo()
    assert swapped, "the swap never happened: this test proved nothing"
    assert names(tmp_root) == []
    assert snapshot(outside) == before


# -- an unreadable base -----------------------------------------------------------------------

UNREADABLE = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    from pytest_edgeprofiles import ProfileManager
    case, top = sys.argv[1], Path(sys.argv[2])
    base, root, registry = top / "base", top / "root", top / "reg" / "registry.json"
    (base / "Default" / "Local Storage").mkdir(parents=True)
    (base / "Local State").write_text("{}")
    (base / "Default" / "Cookies").write_text("c")
    (base / "Default" / "Local Storage" / "x").write_text("x")
    m = ProfileManager(str(base), root=root, registry_path=registry, max_profiles=1)
    held = m.create_profile("held")
    unreadable = {
        "file": base / "Default" / "Cookies",
        "folder": base / "Default" / "Local Storage",
        "base": base,
    }[case]
    os.chmod(unreadable, 0o000)
    try:
        open(base / "Default" / "Cookies").close()
        os.listdir(base / "Default" / "Local Storage")
    except PermissionError:
        pass
    else:
        sys.exit("the runner ignores permissions: this test would prove nothing")
    refreshed = m.copy_base_profile("held")
    m.cleanup_profile("held")
    report = {"refreshed": refreshed}
    try:
        m.create_profile("gw0")
    except PermissionError as exc:
        report["error"] = [type(exc).__name__, exc.filename]
    report["left"] = sorted(os.listdir(root))
    report["entries"] = json.loads(registry.read_text())["entries"]
    report["listed"] = list(m.list_profiles())
    os.chmod(unreadable, 0o700)
    report["after"] = os.path.isdir(m.create_profile("gw0"))  # slot and worker id free
    m.cleanup_all_profiles()
    print(json.dumps(report))
    """
)


@posix_only("chmod 000 cannot make a file or folder unreadable on Windows")
@pytest.mark.parametrize("case", ["file", "folder", "base"])
def test_an_unreadable_base_gives_permission_error_and_leaves_nothing(unprivileged, case):
    result = unprivileged.run(UNREADABLE, case, str(unprivileged.folder))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    base = unprivileged.folder / "base"
    unreadable = {
        "file": base / "Default" / "Cookies",
        "folder": base / "Default" / "Local Storage",
        "base": base,
    }[case]
    assert report["refreshed"] is False
    assert report["error"] == ["PermissionError", str(unreadable)]
    assert report["left"] == []
    assert report["entries"] == {}
    assert report["listed"] == []
    assert report["after"] is True


# -- stopping browsers: only ours, only on the exact profile ----------------------------------


def _is_sh(pid: int) -> bool:
    """Whether ``pid`` runs ``sh`` yet (after ``setpriv`` or the fork before exec)."""
    try:
        return psutil.Process(pid).cmdline()[:1] == ["sh"]
    except psutil.Error:
        return False


def _bystander(*args: str, user: int | None = None) -> subprocess.Popen[bytes]:
    """A process whose command line carries ``args``: ``sh`` waits on a child and keeps them."""
    prefix: list[str] = []
    if user is not None:
        prefix = [shutil.which("setpriv") or "setpriv", f"--reuid={user}", f"--regid={user}"]
        prefix.append("--clear-groups")
    command = ["sh", "-c", "sleep 600; :", "sh", *args]
    return start_process([*prefix, *command], shown=command, start_new_session=True)


@posix_only(f"{SINGLETON_LOCK}; bystanders in sh, stopped with killpg and SIGKILL")
def test_cleanup_stops_only_this_users_browser_on_the_exact_profile(
    browser: Browser, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    m = ProfileManager(root=root)
    profile = Path(m.create_profile("w"))
    sibling = Path(f"{profile}-other")  # a path that starts with ours
    sibling.mkdir()
    ours = start_browser(profile, browser)
    shells = {
        "a flag naming a folder inside": _bystander(f"--user-data-dir={profile}/Default"),
        "another flag naming it": _bystander(f"--disk-cache-dir={profile}"),
    }
    if IS_ROOT:
        shells["another user's process"] = _bystander(f"--user-data-dir={profile}", user=NOBODY)
    bystanders = {"sibling browser": start_browser(sibling, browser), **shells}
    try:
        for name, proc in shells.items():
            wait_for(lambda p=proc: _is_sh(p.pid), name)
        if IS_ROOT:
            other = bystanders["another user's process"]
            wait_for(lambda: psutil.Process(other.pid).uids().real == NOBODY, "setpriv")
        assert m.cleanup_profile("w") is True
        assert ours.wait(timeout=10) is not None
        assert not profile.exists()
        for name, proc in bystanders.items():
            assert proc.poll() is None, f"{name} was stopped"
        assert sibling.is_dir() and (sibling / "SingletonLock").is_symlink()
    finally:
        for proc in shells.values():  # the shell and its sleep
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        bystanders["sibling browser"].send_signal(signal.SIGHUP)
        for proc in bystanders.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if ours.poll() is None:
            ours.kill()
            ours.wait()
        m.cleanup_all_profiles()
        shutil.rmtree(sibling, ignore_errors=True)


@posix_only(SINGLETON_LOCK)
@pytest.mark.parametrize("owner_record", ["none", "another owner"])
def test_a_planted_registry_entry_never_removes_or_stops_what_it_names(
    tmp_path: Path, dead_owner: tuple[int, float], owner_record: str
) -> None:
    # Anyone who can write a shared registry can name any folder in an entry "of a dead
    # owner": reclaiming its slot must not make that folder, or a browser on it, ours.
    registry_path = tmp_path / "shared" / "registry.json"
    m = ProfileManager(root=tmp_path / "root", registry_path=registry_path, max_profiles=1)
    m.create_profile("w")
    m.cleanup_profile("w")  # the registry file exists now
    victim = tmp_path / "home" / "microsoft-edge"
    (victim / "Default").mkdir(parents=True)
    (victim / "Default" / "Cookies").write_bytes(b"the user's real cookies")
    users_browser = start_process(
        [sys.executable, "-c", "import time; time.sleep(120)", f"--user-data-dir={victim}"]
    )
    os.symlink(f"{socket.gethostname()}-{users_browser.pid}", victim / "SingletonLock")
    planted = ProfileRecord(
        "w", str(victim), dead_owner[0], dead_owner[1], socket.gethostname(), time.time(),
        str(registry_path.resolve()),
    )  # fmt: skip
    if owner_record == "another owner":
        write_record(ProfileRecord(**{**planted.to_dict(), "pid": users_browser.pid}))
    state = json.loads(registry_path.read_text())
    state["entries"] = {str(victim): planted.to_dict()}
    registry_path.write_text(json.dumps(state))
    try:
        m.create_profile("w")  # reclaims the planted slot
        m.drain()
        assert users_browser.poll() is None, "the user's browser was stopped"
        assert (victim / "Default" / "Cookies").read_bytes() == b"the user's real cookies"
    finally:
        users_browser.kill()
        users_browser.wait()
        m.cleanup_all_profiles()


@posix_only(f"{SYMLINKS}: a profile swapped for one, the browser's SingletonLock")
@pytest.mark.parametrize("removed_by", ["cleanup_profile", "sweep of a dead owner"])
def test_a_profile_swapped_for_a_link_to_a_running_browsers_folder_never_stops_it(
    browser: Browser, tmp_path: Path, dead_owner: tuple[int, float], removed_by: str
) -> None:
    # A profile is only ever the folder we made: a browser on the link's target is not "on" it.
    theirs = tmp_path / "their browser"
    theirs.mkdir()
    m = ProfileManager(root=tmp_path / "root")
    profile = Path(m.create_profile("w"))
    their_browser = start_browser(theirs, browser)
    try:
        shutil.rmtree(profile)
        profile.symlink_to(theirs)
        if removed_by == "cleanup_profile":
            assert m.cleanup_profile("w") is True
        else:
            record = json.loads(Path(f"{profile}.owner").read_text())
            pid, create_time = dead_owner
            write_record(ProfileRecord(**{**record, "pid": pid, "create_time": create_time}))
            assert sweep.sweep(tmp_path / "root").removed == [profile]
        assert not os.path.lexists(profile)
        assert their_browser.poll() is None, "a browser on the link's target was stopped"
        assert (theirs / "SingletonLock").is_symlink(), "its lock was removed"
    finally:
        stop_browser(their_browser)
        m.cleanup_all_profiles()


# -- the DevTools endpoint of a browser we start -----------------------------------------------

ASK_FOR_VERSION = (
    'exec 3<>"/dev/tcp/127.0.0.1/$0" || exit 9; '
    "printf 'GET /json/version HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nConnection: close\\r\\n\\r\\n' >&3; "
    "timeout 5 cat <&3"  # a browser's own port keeps the connection open: read what it sent
)


def listening_ports(pid: int) -> list[int]:
    tree = psutil.Process(pid)
    found = []
    for proc in [tree, *tree.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            found += [c.laddr[1] for c in proc.net_connections("inet") if c.status == "LISTEN"]
    return found


def test_a_browser_we_start_listens_on_no_port_of_its_own(browser: Browser, tmp_path: Path) -> None:
    session = sessions.start_session(tmp_path, browser)
    try:
        assert listening_ports(session.process.pid) == [], "the browser serves DevTools itself"
        assert session.has_page(timeout=30)
    finally:
        session.stop()


@posix_only("another user's socket is told from ours by its uid")
@needs_root("act as another user")
@pytest.mark.parametrize("told_by", ["tcp table", "processes"])  # Linux; elsewhere (macOS)
def test_another_local_user_cannot_reach_the_browser_we_start(
    browser: Browser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, told_by: str
) -> None:
    # What any local user could do to a browser on --remote-debugging-port: find the port,
    # read /json/version, attach to the WebSocket it names, read every cookie.
    if told_by == "processes":
        monkeypatch.setattr(bridge, "TCP_TABLE", str(tmp_path / "no such table"))
    session = sessions.start_session(tmp_path, browser)
    try:
        theirs = as_nobody("bash", "-c", ASK_FOR_VERSION, str(session.port))
        ours = subprocess.run(
            ["bash", "-c", ASK_FOR_VERSION, str(session.port)], capture_output=True, text=True
        )
        # They connect (the port is on 127.0.0.1), and are cut off unanswered.
        assert theirs.stdout == "", "another user read the browser's DevTools endpoint"
        assert session.browser_target in ours.stdout, "this user's own client was refused"
        assert session.has_page(timeout=30), "the refused client broke the bridge"
    finally:
        session.stop()
