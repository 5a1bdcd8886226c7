"""The ``edgeprofiles`` command line on what a killed run leaves, as a person and a script use it.

Most tests call ``_commands.main`` in-process (fast, capsys); the ones about what a shell sees (exit
codes, no traceback, the ``-m`` entry) run ``python -m pytest_edgeprofiles`` in a subprocess.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from importlib import metadata
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from browser_support import start_process
from conftest import NO_HOME, POSIX, SH_BROWSER, SINGLETON_LOCK, SYMLINKS, posix_only

from pytest_edgeprofiles._chromium import processes
from pytest_edgeprofiles._profiles import sweep
from pytest_edgeprofiles._profiles.records import (
    ProfileRecord,
    read_record,
    record_path,
    write_record,
)
from pytest_edgeprofiles._system import files
from pytest_edgeprofiles.chromium import DEFAULT_SKIP_RULES, find_browser, this_host
from pytest_edgeprofiles.cli import _commands, _common, _doctor

COOKIES = b"x" * 1000

# A test run killed outright: a run folder, two profiles in use and one kept after a failure.
KILLED_RUN = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from pytest_edgeprofiles import ProfileManager
    from pytest_edgeprofiles._profiles.runs import RunFolder

    root = Path(sys.argv[1])
    run = RunFolder.create(root, "deadrun00001")
    manager = ProfileManager(root=root, registry_path=run.registry_path, run_id="deadrun00001")
    for worker in ("gw0", "gw1"):
        Path(manager.create_profile(worker), "Default", "Cookies").write_bytes(b"x" * 1000)
    manager.create_profile("gw2")
    print(manager.keep_profile("gw2"), flush=True)
    # Killed outright: SIGKILL; Windows, without it, terminates the process (exit status 15).
    os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))
    """
)
#: The exit status of the run above, as ``subprocess`` reports it.
KILLED = -signal.SIGKILL if POSIX else signal.SIGTERM


@pytest.fixture
def leftovers(tmp_root: Path, manager: Any) -> SimpleNamespace:
    """What a SIGKILLed run left under ``tmp_root``, beside a live profile of this process."""
    child = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, str(tmp_root)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == KILLED, child.stderr
    kept = Path(child.stdout.strip())
    dead = sorted(p for p in tmp_root.glob("gw[01]-*") if p.is_dir())
    live = Path(manager(root=tmp_root).create_profile("live"))
    assert len(dead) == 2 and kept.is_dir() and live.is_dir()
    return SimpleNamespace(
        root=tmp_root, dead=dead, kept=kept, live=live, run=tmp_root / ".runs" / "deadrun00001"
    )


def gone(path: Path) -> bool:
    return not os.path.lexists(path) and not os.path.lexists(record_path(path))


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_edgeprofiles", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )


def main_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any]:
    """``_commands.main`` with ``--json``: its exit code and its one JSON document."""
    code = _commands.main([*args, "--json"])
    return code, json.loads(capsys.readouterr().out)


# -- list ---------------------------------------------------------------------------------------


def test_list_shows_a_killed_runs_leftovers(leftovers: SimpleNamespace) -> None:
    result = run_cli("list", "--root", str(leftovers.root))
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[2:-1]}
    for path in leftovers.dead:
        assert f"{path.name} " in lines[path.name] and " dead " in lines[path.name]
    assert "kept,released" in lines[leftovers.kept.name]
    assert " alive " in lines[leftovers.live.name]
    assert " dead " in lines[".runs/deadrun00001"]
    assert "deadrun00001" in lines[leftovers.dead[0].name]
    total = sum(files.tree_size(p) for p in [*leftovers.dead, leftovers.kept, leftovers.live])
    total += files.tree_size(leftovers.run)
    last = result.stdout.splitlines()[-1]
    assert last == f"5 entries, {_common.human_size(total)}; 4 with a dead owner"


def test_list_of_one_profile_says_1_entry(
    manager: Any, tmp_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = Path(manager(root=tmp_root).create_profile("gw0"))
    Path(path, "History").write_bytes(b"h" * 3 * 1024 * 1024)
    assert _commands.main(["list", "--root", str(tmp_root)]) == 0
    size = files.tree_size(path)
    assert 3 * 1024 * 1024 < size < 3.05 * 1024 * 1024
    last = capsys.readouterr().out.splitlines()[-1]
    assert last == "1 entry, 3.0 MiB; 0 with a dead owner"


@pytest.mark.parametrize(
    ("n", "counted"),
    [(0, "0 entries"), (1, "1 entry"), (2, "2 entries")],
)
def test_counts_agree_in_number(n: int, counted: str) -> None:
    assert _common.count(n, "entry", "entries") == counted
    assert _common.count(n, "profile") == counted.replace("entry", "profile").replace(
        "entries", "profiles"
    )


@pytest.mark.parametrize(
    ("n", "shown"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (1000 * 1000, "976.6 KiB"),
        (5 * 1024**2, "5.0 MiB"),
        (3 * 1024**3 + 1024**3 // 2, "3.5 GiB"),
        (2 * 1024**4, "2.0 TiB"),
    ],
)
def test_sizes_are_labelled_as_powers_of_1024(n: int, shown: str) -> None:
    assert _common.human_size(n) == shown


def test_list_json(leftovers: SimpleNamespace, capsys: pytest.CaptureFixture[str]) -> None:
    code, doc = main_json(capsys, "list", "--root", str(leftovers.root))
    assert code == 0
    assert doc["root"] == str(leftovers.root)
    by_path = {Path(p["path"]): p for p in doc["profiles"]}
    assert set(by_path) == {*leftovers.dead, leftovers.kept, leftovers.live, leftovers.run}
    first = by_path[leftovers.dead[0]]
    assert set(first) == {
        "name", "path", "kind", "worker_id", "pid", "host", "owner", "size_bytes",
        "created_at", "age_seconds", "keep", "released", "run", "exists",
    }  # fmt: skip
    assert first["size_bytes"] == files.tree_size(leftovers.dead[0]) > len(COOKIES)
    assert (first["kind"], first["worker_id"], first["run"]) == ("profile", "gw0", "deadrun00001")
    assert first["owner"] == "dead" and first["exists"] and 0 <= first["age_seconds"] < 60
    assert by_path[leftovers.kept]["keep"] and by_path[leftovers.kept]["released"]
    assert (
        by_path[leftovers.live]["owner"] == "alive"
        and by_path[leftovers.live]["pid"] == os.getpid()
    )
    assert by_path[leftovers.run]["kind"] == "run"
    assert by_path[leftovers.run]["name"] == ".runs/deadrun00001"


def test_list_of_a_root_that_does_not_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Not an error (a root no run has used yet), but said: it may be a typo.
    assert _commands.main(["list", "--root", str(tmp_path / "nowhere")]) == 0
    assert capsys.readouterr().out == f"no profiles under {tmp_path / 'nowhere'} (no such folder)\n"
    assert _commands.main(["clean", "--root", str(tmp_path / "nowhere")]) == 0
    assert capsys.readouterr().out == (
        f"nothing to remove under {tmp_path / 'nowhere'} (no such folder)\n"
    )
    assert _commands.main(["list", "--json", "--root", str(tmp_path / "nowhere")]) == 0
    assert json.loads(capsys.readouterr().out)["root_exists"] is False


@pytest.mark.parametrize(
    ("args", "env", "error"),
    [
        (["clean", "--root", ""], {}, "clean: error: --root: the value is empty"),
        (["list"], {"EDGEPROFILES_ROOT": " "}, "list: error: EDGEPROFILES_ROOT: the value is blank"),
        (["doctor", "--base-profile", ""], {}, "doctor: error: --base-profile: the value is empty"),
        (["doctor", "--browser", " "], {}, "doctor: error: --browser: the value is blank"),
    ],
)  # fmt: skip
def test_an_empty_value_is_a_usage_error_not_the_default(
    leftovers: SimpleNamespace, args: list[str], env: dict[str, str], error: str
) -> None:
    # `--root "$UNSET"` must not clean the root of the environment, or the default one.
    result = run_cli(*args, **{"EDGEPROFILES_ROOT": str(leftovers.root), **env})
    assert result.returncode == 2, result.stdout
    assert result.stderr.endswith(f"edgeprofiles {error}\n")
    assert all(p.exists() for p in leftovers.dead), "nothing was cleaned"


@posix_only("a folder's mode that denies listing it")
def test_a_root_it_cannot_read_is_an_error_not_an_empty_root(
    leftovers: SimpleNamespace, unprivileged: Any
) -> None:
    leftovers.root.chmod(0o300)  # a root we may not list (as another user's would be)
    try:
        code = "from pytest_edgeprofiles.cli._commands import main; import sys; sys.exit(main(sys.argv[1:]))"
        for command in (["list"], ["clean"]):
            result = unprivileged.run(code, *command, "--root", str(leftovers.root))
            assert result.returncode == 1, result.stdout
            assert result.stderr == f"edgeprofiles: error: Permission denied: {leftovers.root}\n"
    finally:
        leftovers.root.chmod(0o700)
    assert all(p.exists() for p in leftovers.dead)


@posix_only(NO_HOME)
def test_a_root_in_the_home_of_no_user_is_a_usage_error() -> None:
    result = run_cli("list", "--root", "~no-such-user-ep/profiles")
    assert result.returncode == 2
    assert result.stderr.endswith(
        "error: --root: no home directory for ~no-such-user-ep: ~no-such-user-ep/profiles\n"
    )
    assert "Traceback" not in result.stderr


def test_root_from_the_environment(leftovers: SimpleNamespace) -> None:
    result = run_cli("list", "--json", EDGEPROFILES_ROOT=str(leftovers.root))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["root"] == str(leftovers.root)


def test_default_root(
    manager: Any,
    sandbox_tempdir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("EDGEPROFILES_ROOT", raising=False)
    profile = manager(root=None).create_profile("gw0")
    code, doc = main_json(capsys, "list")
    assert code == 0
    assert Path(doc["root"]).parent == sandbox_tempdir.resolve()
    assert [p["path"] for p in doc["profiles"]] == [profile]


@posix_only(SYMLINKS)
@pytest.mark.parametrize("command", ["list", "clean"])
def test_a_planted_default_root_is_neither_read_nor_cleaned(
    sandbox_tempdir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: str,
) -> None:
    monkeypatch.delenv("EDGEPROFILES_ROOT", raising=False)
    attacker = tmp_path / "attacker"
    (attacker / "gw0-0123456789ab").mkdir(parents=True)
    root = _commands.default_root()
    root.symlink_to(attacker)
    assert _commands.main([command]) == 1
    assert f"refusing {root}: it is a symlink" in capsys.readouterr().err
    assert (attacker / "gw0-0123456789ab").is_dir()


# -- clean --------------------------------------------------------------------------------------


def test_clean_removes_only_dead_owners_profiles(leftovers: SimpleNamespace) -> None:
    sizes = sum(files.tree_size(p) for p in [*leftovers.dead, leftovers.run])
    result = run_cli("clean", "--root", str(leftovers.root))
    assert result.returncode == 0, result.stderr
    assert all(gone(p) for p in [*leftovers.dead, leftovers.run])
    assert leftovers.kept.is_dir() and leftovers.live.is_dir()
    assert read_record(record_path(leftovers.live)) is not None
    summary = result.stdout.splitlines()[-1]
    assert summary.startswith("removed 2 profiles, 1 run folder under ")
    assert summary.endswith(
        f"freed {_common.human_size(sizes)} "
        "(1 kept profile of dead owners left: --include-kept removes them)"
    )
    again = run_cli("clean", "--root", str(leftovers.root))
    assert again.stdout.strip() == (
        f"nothing to remove under {leftovers.root} "
        "(1 kept profile of dead owners left: --include-kept removes them)"
    )


def test_plain_clean_removes_a_kept_record_whose_folder_is_gone(
    leftovers: SimpleNamespace, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.rmtree(leftovers.kept)  # removed by hand: its record lists it as missing
    code, doc = main_json(capsys, "clean", "--root", str(leftovers.root))
    assert code == 0 and str(leftovers.kept) in doc["removed"]
    assert not record_path(leftovers.kept).exists()
    assert doc["kept_left"] == 0


def test_clean_json_and_dry_run(
    leftovers: SimpleNamespace, capsys: pytest.CaptureFixture[str]
) -> None:
    doomed = [*leftovers.dead, leftovers.run]
    sizes = sum(files.tree_size(p) for p in doomed)
    code, doc = main_json(capsys, "clean", "--root", str(leftovers.root), "--dry-run")
    assert code == 0
    assert doc == {
        "root": str(leftovers.root),
        "root_exists": True,
        "dry_run": True,
        "removed": [str(p) for p in doomed],
        "failed": [],
        "freed_bytes": sizes,
        "kept_left": 1,
    }
    assert all(p.is_dir() for p in doomed)
    code, doc = main_json(capsys, "clean", "--root", str(leftovers.root))
    assert (code, doc["dry_run"], doc["freed_bytes"]) == (0, False, sizes)
    assert all(gone(p) for p in doomed)
    code, doc = main_json(capsys, "clean", "--root", str(leftovers.root))
    assert (code, doc["removed"], doc["freed_bytes"]) == (0, [], 0)


def test_clean_include_kept_takes_only_dead_owners_kept_profiles(
    leftovers: SimpleNamespace, manager: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ours = manager(root=leftovers.root)
    ours.create_profile("mine")
    kept_live = Path(ours.keep_profile("mine"))
    code, doc = main_json(capsys, "clean", "--root", str(leftovers.root), "--include-kept")
    assert code == 0
    assert str(leftovers.kept) in doc["removed"] and gone(leftovers.kept)
    assert kept_live.is_dir() and leftovers.live.is_dir()


def test_clean_older_than(leftovers: SimpleNamespace, capsys: pytest.CaptureFixture[str]) -> None:
    old = leftovers.dead[0]
    record = read_record(record_path(old))
    assert record is not None
    write_record(replace(record, created_at=time.time() - 3600))
    code, doc = main_json(capsys, "clean", "--root", str(leftovers.root), "--older-than", "30m")
    assert (code, doc["removed"]) == (0, [str(old)])
    assert gone(old) and leftovers.dead[1].is_dir()


def test_clean_spares_other_hosts_and_released_profiles_of_live_owners(
    tmp_root: Path, dead_owner: tuple[int, float], capsys: pytest.CaptureFixture[str]
) -> None:
    tmp_root.mkdir()

    def plant(name: str, pid: int, create_time: float, **fields: Any) -> Path:
        path = tmp_root / f"{name}-0123456789ab"
        path.mkdir()
        values = {"host": this_host(), "created_at": time.time(), **fields}
        write_record(ProfileRecord(name, str(path), pid, create_time, **values))
        return path

    remote = plant("gw0", *dead_owner, host="elsewhere")
    # Released after a failed removal; its owner, this process, lives: its own sweep takes it.
    released = plant("gw1", os.getpid(), processes.start_time(os.getpid()), released=True)
    dead = plant("gw2", *dead_owner)
    _, listing = main_json(capsys, "list", "--root", str(tmp_root))
    assert [p["owner"] for p in listing["profiles"]] == ["other-host", "alive", "dead"]
    code, doc = main_json(capsys, "clean", "--root", str(tmp_root))
    assert (code, doc["removed"]) == (0, [str(dead)])
    assert remote.is_dir() and released.is_dir()
    # The library's sweep, by design, does take the released one.
    assert sweep.sweep(tmp_root, dry_run=True).removed == [released]


def test_garbage_folders_are_listed_and_cleaned(
    leftovers: SimpleNamespace, capsys: pytest.CaptureFixture[str]
) -> None:
    # A profile moved aside for deletion by a process killed before it finished: no record.
    garbage = files.move_aside(leftovers.dead[0])
    files.remove_tree(record_path(leftovers.dead[0]))
    _, listing = main_json(capsys, "list", "--root", str(leftovers.root))
    [row] = [p for p in listing["profiles"] if p["kind"] == "garbage"]
    assert row["path"] == str(garbage) and row["owner"] == "none"
    assert row["pid"] is None and row["keep"] is None and row["size_bytes"] > len(COOKIES)
    code, doc = main_json(capsys, "clean", "--root", str(leftovers.root), "--older-than", "1h")
    assert (code, doc["removed"]) == (0, [])
    assert _commands.main(["clean", "--root", str(leftovers.root)]) == 0
    assert "removed 1 profile, 1 run folder, 1 garbage folder under" in capsys.readouterr().out
    assert not garbage.exists() and leftovers.live.is_dir()


def test_clean_that_cannot_remove_exits_1(
    leftovers: SimpleNamespace, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    stuck = leftovers.dead[0]
    real_remove_tree = files.remove_tree

    def remove_tree(path: Path, *args: Any, **kwargs: Any) -> None:
        if path == stuck:
            raise PermissionError(13, "Permission denied", str(path))
        real_remove_tree(path, *args, **kwargs)

    monkeypatch.setattr(files, "remove_tree", remove_tree)
    code = _commands.main(["clean", "--root", str(leftovers.root)])
    out, err = capsys.readouterr()
    assert code == 1
    assert f"could not remove {stuck}: " in err and "Traceback" not in err
    assert "; 1 could not be removed (1 kept profile" in out.splitlines()[-1]
    assert stuck.is_dir() and gone(leftovers.dead[1])
    code, doc = main_json(capsys, "clean", "--root", str(leftovers.root))
    assert code == 1 and [f["path"] for f in doc["failed"]] == [str(stuck)]


# -- doctor -------------------------------------------------------------------------------------


@pytest.fixture
def fake_browser(tmp_path: Path) -> Path:
    """A 'chromium' that only tells its version: doctor never needs more, and it is quick."""
    path = tmp_path / "bin" / "chromium"
    path.parent.mkdir()
    path.write_text("#!/bin/sh\necho 'Chromium 120.0.6099.71 built on Debian'\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def base(tmp_path: Path) -> Path:
    """A base user data dir last opened by a newer browser on another host (a container)."""
    base = tmp_path / "base" / "User Data"
    for rel, data in {
        "Local State": b'{"os_crypt": {"encrypted_key": "RFBBUEkBAAAA"}}',
        "Last Version": b"131.0.2903.112",
        "Default/Preferences": b'{"profile": {"exit_type": "Crashed"}}',
        "Default/Cookies": b"SQLite format 3\x00" + b"c" * 100,
        "Default/Cache/Cache_Data/x": b"c" * 4096,
        "Default/Code Cache/js/x": b"j" * 2048,
    }.items():
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_bytes(data)
    if POSIX:  # a lock a POSIX browser left (a Windows one holds a lockfile, and no symlink)
        os.symlink("otherhost-123", base / "SingletonLock")
    return base


@posix_only(f"{SH_BROWSER}; {SINGLETON_LOCK}")
def test_doctor_on_a_base(
    base: Path, fake_browser: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, doc = main_json(
        capsys, "doctor", "--base-profile", str(base), "--browser", str(fake_browser)
    )
    assert code == 0
    assert doc["browser"] == {
        "path": str(fake_browser), "kind": "chromium", "version": "120.0.6099.71", "channel": None
    }  # fmt: skip
    report = doc["base_profile"]
    assert report["path"] == str(base)
    assert report["size_bytes"] == files.tree_size(base)
    assert report["clone_bytes"] == files.tree_size(base, DEFAULT_SKIP_RULES.skips)
    assert report["size_bytes"] - report["clone_bytes"] == 4096 + 2048
    assert report["skipped"] == [
        {"path": "Default/Cache", "bytes": 4096},
        {"path": "Default/Code Cache", "bytes": 2048},
        {"path": "SingletonLock", "bytes": 0},
    ]
    assert report["lock"] == {"state": "foreign-host", "host": "otherhost", "pid": 123}
    assert (report["last_version"], report["version_check"]) == ("131.0.2903.112", "newer")
    assert report["json_files"] == {"Local State": "ok", "Default/Preferences": "ok"}
    assert doc["start"]["ok"] is False, "a browser that only tells its version does not start"
    [start, problem] = doc["problems"]
    assert start.startswith("the browser does not start: the browser exited while starting")
    assert "131.0.2903.112" in problem and "120.0.6099.71" in problem


@posix_only(f"{SH_BROWSER}; {SINGLETON_LOCK}")
def test_doctor_text(base: Path, fake_browser: Path) -> None:
    result = run_cli("doctor", "--base-profile", str(base), "--browser", str(fake_browser))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"browser: Chromium 120.0.6099.71 at {fake_browser}\n" in out
    assert (
        "  size: 6.2 KiB; a clone copies 214 B and skips 6.0 KiB (caches and lock state)\n" in out
    )
    assert "SingletonLock: held by another host, otherhost (pid 123)" in out
    assert "Last Version: 131.0.2903.112 (newer than 120.0.6099.71)" in out
    assert "  Default/Preferences: ok\n" in out
    assert "    Default/Code Cache  2.0 KiB\n" in out
    assert "problem: the base profile was last opened by version 131.0.2903.112" in out


@posix_only(f"{SH_BROWSER}; {SINGLETON_LOCK}")
def test_doctor_lock_and_json_states(
    base: Path,
    fake_browser: Path,
    dead_owner: tuple[int, float],
    capsys: pytest.CaptureFixture[str],
) -> None:
    def doctor() -> dict[str, Any]:
        code, doc = main_json(
            capsys, "doctor", "--base-profile", str(base), "--browser", str(fake_browser)
        )
        assert code == 0
        return doc  # type: ignore[no-any-return]

    (base / "Default" / "Preferences").write_text("{not json")
    (base / "Last Version").write_text("120.0.6099.71")
    (base / "SingletonLock").unlink()
    doc = doctor()
    assert doc["base_profile"]["lock"]["state"] == "none"
    assert doc["base_profile"]["json_files"]["Default/Preferences"] == "corrupt"
    assert doc["base_profile"]["version_check"] == "same"
    assert ["Preferences" in p for p in doc["problems"]] == [False, True]

    os.symlink(f"{this_host()}-{dead_owner[0]}", base / "SingletonLock")
    assert doctor()["base_profile"]["lock"]["state"] == "stale"

    # A browser of this host on the base: here a sleeper naming it as its user data dir.
    sleeper = start_process(
        [sys.executable, "-c", "import time; time.sleep(60)", f"--user-data-dir={base}"]
    )
    try:
        (base / "SingletonLock").unlink()
        os.symlink(f"{this_host()}-{sleeper.pid}", base / "SingletonLock")
        doc = doctor()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert doc["base_profile"]["lock"] == {"state": "live", "host": this_host(), "pid": sleeper.pid}
    assert any(f"pid {sleeper.pid}" in p for p in doc["problems"])


def test_doctor_without_a_browser(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EDGEPROFILES_BROWSER", raising=False)
    monkeypatch.delenv("EDGEPROFILES_BASE_PROFILE", raising=False)
    monkeypatch.setattr(_doctor, "find_browser", lambda override=None: None)
    assert _commands.main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("browser: none found\nproblem: no Edge, Chrome or Chromium found")
    code, doc = main_json(capsys, "doctor", "--require-browser")
    assert code == 1
    assert doc["browser"] is None and doc["base_profile"] is None


def test_doctor_with_a_real_browser(capsys: pytest.CaptureFixture[str]) -> None:
    browser = find_browser()
    if browser is None:
        if os.environ.get("EDGEPROFILES_REQUIRE_BROWSER") == "1":
            pytest.fail("no browser found and EDGEPROFILES_REQUIRE_BROWSER=1")
        pytest.skip("no Edge, Chrome or Chromium installed")
    code, doc = main_json(capsys, "doctor", "--browser", browser.path, "--require-browser")
    assert code == 0
    assert doc["browser"]["version"].count(".") == 3
    assert doc["start"]["ok"] is True and doc["start"]["seconds"] > 0
    assert doc["driver"]["path"] is not None and doc["problems"] == []


def test_doctor_finds_that_a_browser_does_not_start_and_that_no_driver_is_on_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no chromedriver here
    false = shutil.which("false", path=os.defpath) or "false"
    code, doc = main_json(capsys, "doctor", "--browser", false, "--require-browser")
    assert code == 1, "a browser that cannot start is no browser for --require-browser"
    assert [p.split(":")[0] for p in doc["problems"]] == [
        "the browser does not start",
        "no chromedriver on PATH",
    ]
    assert _commands.main(["doctor", "--browser", false]) == 0, "without it, a report"
    out = capsys.readouterr().out
    assert "  starts headless: no\n  chromedriver: not on PATH\n" in out
    assert "no problems found" not in out


# -- usage errors, exit codes, the entry points ------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["clean", "--older-than", "3x"], "argument --older-than: invalid duration '3x'"),
        (["clean", "--older-than", "90"], "invalid duration '90': expected a number and a unit"),
        (
            ["doctor", "--base-profile", "{tmp}{sep}missing"],
            "--base-profile: base profile not found: {tmp}{sep}missing",
        ),
        (
            ["doctor", "--base-profile", "{tmp}{sep}base{sep}User Data{sep}Default"],
            "is a profile folder",
        ),
        (["doctor", "--browser", "{tmp}{sep}no-browser"], "--browser: no such browser"),
        (
            ["list", "--root", "{tmp}{sep}base{sep}User Data{sep}Last Version"],
            "--root: {tmp}{sep}base{sep}User Data{sep}Last Version is not a directory",
        ),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        ([], "the following arguments are required: COMMAND"),
    ],
)
def test_usage_errors(
    args: list[str], message: str, base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Paths as the OS spells them: the error names the path the user gave, and Windows
    # prints a path with its own separator.
    assert _commands.main([a.format(tmp=tmp_path, sep=os.sep) for a in args]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("usage: edgeprofiles")
    assert message.format(tmp=tmp_path, sep=os.sep) in err


def test_usage_error_from_the_environment_in_a_shell(tmp_path: Path) -> None:
    result = run_cli("doctor", EDGEPROFILES_BASE_PROFILE=str(tmp_path / "missing"))
    assert result.returncode == 2
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert result.stderr.endswith(
        f"edgeprofiles doctor: error: EDGEPROFILES_BASE_PROFILE: base profile not found: "
        f"{tmp_path / 'missing'}\n"
    )


def test_os_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def broken(root: Path) -> list[Any]:
        raise PermissionError(13, "Permission denied", str(root))

    monkeypatch.setattr(_commands, "_entries", broken)
    assert _commands.main(["list", "--root", str(tmp_path)]) == 1
    assert capsys.readouterr().err == f"edgeprofiles: error: Permission denied: {tmp_path}\n"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("30m", 1800), ("2h", 7200), ("7d", 604800), ("1.5h", 5400), ("0s", 0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert _commands.duration(text) == seconds


def test_help_and_version(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "1000")  # one line a paragraph
    assert _commands.main(["clean", "--help"]) == 0
    out = capsys.readouterr().out
    assert "EDGEPROFILES_ROOT" in out and "90s, 30m, 2h, 7d" in out and "exit codes: 0" in out
    assert _commands.main(["--version"]) == 0
    from pytest_edgeprofiles import __version__

    assert capsys.readouterr().out.strip() == f"edgeprofiles {__version__}"


def test_one_version_in_the_package_the_metadata_and_the_report_header(
    pytester: pytest.Pytester,
) -> None:
    from pytest_edgeprofiles import __version__

    assert metadata.version("pytest-edgeprofiles") == __version__
    changelog = Path(__file__).parent.parent / "CHANGELOG.md"
    assert f"\n## [{__version__}] - " in changelog.read_text(encoding="utf-8"), "no release section"
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest_subprocess(f"--edge-profile-root={pytester.path / 'p'}")
    result.stdout.fnmatch_lines([f"plugins: *edgeprofiles-{__version__}*"])


def test_installed_as_edgeprofiles() -> None:
    [script] = [
        e for e in metadata.entry_points(group="console_scripts") if e.name == "edgeprofiles"
    ]
    assert script.value == "pytest_edgeprofiles.cli:main"


# -- progress -----------------------------------------------------------------------------------


@pytest.fixture
def fake_tqdm(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """A stand-in ``tqdm`` module that records how it was called and passes items through."""
    calls: list[dict[str, Any]] = []

    def tqdm(items: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return items

    module = ModuleType("tqdm")
    module.tqdm = tqdm  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tqdm", module)
    return calls


def test_progress_only_in_a_terminal(
    leftovers: SimpleNamespace,
    fake_tqdm: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert _commands.main(["clean", "--root", str(leftovers.root), "--dry-run"]) == 0
    assert fake_tqdm == []  # captured output is no terminal
    monkeypatch.setattr(_common, "interactive", lambda args: not args.json)
    assert _commands.main(["clean", "--root", str(leftovers.root)]) == 0
    [call] = fake_tqdm
    assert (call["total"], call["unit"], call["file"]) == (3, "profile", sys.stderr)
    assert capsys.readouterr().err == ""
    assert _commands.main(["list", "--root", str(leftovers.root), "--json"]) == 0
    assert len(fake_tqdm) == 1


def test_no_progress_library_no_progress(
    leftovers: SimpleNamespace, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import fails: the extra is not installed
    monkeypatch.setattr(_common, "interactive", lambda args: True)
    assert _commands.main(["clean", "--root", str(leftovers.root)]) == 0
    out, err = capsys.readouterr()
    assert err == "" and out.splitlines()[-1].startswith("removed 2 profiles, 1 run folder")


@posix_only(SH_BROWSER)
def test_progress_with_the_real_tqdm(
    base: Path,
    fake_browser: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_common, "interactive", lambda args: True)
    assert (
        _commands.main(["doctor", "--base-profile", str(base), "--browser", str(fake_browser)]) == 0
    )
    assert "a clone copies 214 B" in capsys.readouterr().out


@pytest.mark.parametrize("pid", [-1, 2**64, True])
def test_list_and_clean_take_a_record_that_makes_no_sense_for_garbage(
    tmp_root: Path, pid: object
) -> None:
    profile = tmp_root / "gw0-0123456789ab"
    (profile / "Default").mkdir(parents=True)
    record = {
        "worker_id": "gw0", "path": str(profile), "pid": pid, "create_time": 1.0,
        "host": this_host(), "created_at": time.time(),
    }  # fmt: skip
    record_path(profile).write_text(json.dumps(record))
    listed = run_cli("list", "--root", str(tmp_root))
    assert "Traceback" not in listed.stderr and listed.returncode == 0, listed.stderr
    assert "unreadable owner record" in listed.stderr
    cleaned = run_cli("clean", "--root", str(tmp_root))
    assert "Traceback" not in cleaned.stderr and cleaned.returncode == 0, cleaned.stderr
    assert "unreadable owner record" in cleaned.stderr
    # Garbage beside a folder of ours: clean takes both, the record last.
    assert not profile.exists() and not record_path(profile).exists()
    assert f"removed {profile}\nremoved {record_path(profile)}\n" in cleaned.stdout
