"""Sweeping a root: what crashed or finished owners left goes; anything else stays."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import POSIX, SYMLINKS, linux_only, posix_only

from pytest_edgeprofiles import ProfileManager
from pytest_edgeprofiles._chromium import processes
from pytest_edgeprofiles._profiles import roots, sweep
from pytest_edgeprofiles._profiles import runs as run_folders
from pytest_edgeprofiles._profiles.records import ProfileRecord, record_path
from pytest_edgeprofiles._system import files

CONTENT = b"x" * 1000


@pytest.fixture
def plant(tmp_root: Path, dead_owner: tuple[int, float]):
    """Plant a profile folder (1000 bytes of content) and its owner record under ``tmp_root``.

    By default the owner is this live process on this host; ``owner="dead"`` makes it a
    finished process, and keyword arguments override any record field.
    """
    tmp_root.mkdir(exist_ok=True)
    counter = iter(range(1000))

    def make(owner: str = "live", *, folder: bool = True, **fields) -> Path:
        path = tmp_root / f"gw{next(counter)}-0123456789ab"
        if folder:
            (path / "Default").mkdir(parents=True)
            (path / "Default" / "Cookies").write_bytes(CONTENT)
        if owner == "dead":
            pid, create_time = dead_owner
        else:
            pid, create_time = processes.own_identity()
        values = {
            "worker_id": path.name.split("-")[0],
            "path": str(path),
            "pid": pid,
            "create_time": create_time,
            "host": socket.gethostname(),
            "created_at": time.time(),
            **fields,
        }
        # Written beside ``path`` whatever the record says its path is.
        files.write_json_atomic(record_path(path), ProfileRecord(**values).to_dict())
        return path

    return make


def gone(path: Path) -> bool:
    return not os.path.lexists(path) and not os.path.lexists(f"{path}.owner")


def intact(path: Path) -> bool:
    return (path / "Default" / "Cookies").read_bytes() == CONTENT and os.path.isfile(
        f"{path}.owner"
    )


def test_sweep_removes_profiles_of_a_dead_owner(plant, tmp_root):
    dead = [plant("dead"), plant("dead")]
    result = sweep.sweep(tmp_root)
    assert sorted(result.removed) == sorted(dead)
    assert result.failed == []
    assert result.freed_bytes == 2 * len(CONTENT)
    assert all(gone(p) for p in dead)
    assert os.listdir(tmp_root) == []


def test_sweep_removes_profiles_of_a_reused_pid(plant, tmp_root):
    # Our pid, but a create time that is not ours: the owner died and the pid was reused.
    reused = plant(pid=os.getpid(), create_time=processes.own_identity()[1] - 1000)
    assert sweep.sweep(tmp_root).removed == [reused]
    assert gone(reused)


def test_sweep_never_removes_profiles_of_a_live_owner(plant, tmp_root):
    live = plant("live")
    result = sweep.sweep(tmp_root)
    assert result.removed == [] and result.freed_bytes == 0
    assert intact(live)


def test_sweep_never_removes_kept_profiles(plant, tmp_root):
    kept = [plant("dead", keep=True), plant("dead", keep=True, released=True)]
    assert sweep.sweep(tmp_root).removed == []
    assert all(intact(p) for p in kept)


def test_sweep_never_removes_profiles_of_another_host(plant, tmp_root):
    foreign = plant("dead", host=f"not-{socket.gethostname()}")
    assert sweep.sweep(tmp_root).removed == []
    assert intact(foreign)


def test_sweep_removes_released_profiles_of_a_live_owner(plant, tmp_root):
    released = plant("live", released=True)
    live = plant("live")
    assert sweep.sweep(tmp_root).removed == [released]
    assert gone(released)
    assert intact(live)


def test_sweep_never_trusts_the_path_written_in_a_record(plant, tmp_root, tmp_path):
    outside = tmp_path / "outside"
    (outside / "Default").mkdir(parents=True)
    (outside / "Default" / "Cookies").write_bytes(b"someone else's cookies")
    beside = plant("dead", path=str(outside))
    assert sweep.sweep(tmp_root).removed == [beside]
    assert gone(beside)
    assert (outside / "Default" / "Cookies").read_bytes() == b"someone else's cookies"


@posix_only(SYMLINKS)
def test_sweep_does_not_follow_a_profile_swapped_for_a_symlink(plant, tmp_root, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_bytes(b"precious")
    swapped = plant("dead", folder=False)
    os.symlink(outside, swapped)
    result = sweep.sweep(tmp_root)
    assert result.removed == [swapped]
    assert result.freed_bytes == 0
    assert gone(swapped)
    assert (outside / "keep.txt").read_bytes() == b"precious"


def test_sweep_leaves_folders_without_a_record(plant, tmp_root):
    stranger = tmp_root / "not-ours"
    stranger.mkdir(parents=True)
    (stranger / "file").write_bytes(b"mine")
    plant("dead")
    sweep.sweep(tmp_root)
    assert os.listdir(tmp_root) == ["not-ours"]
    assert (stranger / "file").read_bytes() == b"mine"


def test_sweep_warns_of_unreadable_records_and_removes_them_as_garbage(tmp_root, caplog):
    # Records are written whole (renamed into place): one that does not parse names no
    # owner, and a folder of ours beside it is garbage (issue 13, B6).
    tmp_root.mkdir()
    (tmp_root / "gw0-0123456789ab").mkdir()
    (tmp_root / "gw0-0123456789ab.owner").write_bytes(b"{not json")
    with caplog.at_level(logging.WARNING, logger="pytest_edgeprofiles"):
        assert sweep.sweep(tmp_root).removed == [
            tmp_root / "gw0-0123456789ab",
            tmp_root / "gw0-0123456789ab.owner",
        ]
    assert os.listdir(tmp_root) == []
    assert "unreadable owner record" in caplog.text


def test_sweep_of_a_missing_root(tmp_path):
    result = sweep.sweep(tmp_path / "missing")
    assert (result.removed, result.failed, result.freed_bytes) == ([], [], 0)


def test_sweep_reports_what_it_could_not_remove(plant, tmp_root, monkeypatch):
    dead = plant("dead")

    def remove_tree(*args, **kwargs):
        raise OSError(errno.EBUSY, "Device or resource busy")

    monkeypatch.setattr(files, "remove_tree", remove_tree)
    result = sweep.sweep(tmp_root)
    assert result.removed == []
    assert result.failed == [dead]
    assert intact(dead)


def test_dry_run_removes_nothing_but_reports(plant, tmp_root):
    dead = [plant("dead"), plant("dead", released=True)]
    live = plant("live")
    before = sorted(os.listdir(tmp_root))
    result = sweep.sweep(tmp_root, dry_run=True)
    assert sorted(result.removed) == sorted(dead)
    assert result.freed_bytes == 2 * len(CONTENT)
    assert sorted(os.listdir(tmp_root)) == before
    assert all(intact(p) for p in [*dead, live])
    # The real sweep then does what the dry run said.
    assert sorted(sweep.sweep(tmp_root).removed) == sorted(dead)


def test_older_than_spares_young_profiles(plant, tmp_root):
    old = plant("dead", created_at=time.time() - 3600)
    young = plant("dead", created_at=time.time() - 60)
    assert sweep.sweep(tmp_root, older_than=600).removed == [old]
    assert gone(old)
    assert intact(young)
    assert sweep.sweep(tmp_root).removed == [young]


def test_sweep_leaves_a_live_managers_profiles(manager, tmp_root, plant):
    m = manager()
    path = Path(m.create_profile("gw0"))
    dead = plant("dead")
    assert sweep.sweep(tmp_root).removed == [dead]
    assert m.validate_profile("gw0") is True
    assert os.path.isdir(path)


# -- prune_kept -------------------------------------------------------------------------------


@pytest.fixture
def kept_runs(plant):
    """Two kept profiles for each of the runs r1 (oldest) to r4 (newest), plus bystanders."""
    now = time.time()
    runs = {
        run: [
            plant("dead", keep=True, released=True, run=run, created_at=now - age - i)
            for i in range(2)
        ]
        for run, age in (("r1", 4000), ("r2", 3000), ("r3", 2000), ("r4", 1000))
    }
    bystanders = [
        plant("dead", keep=True, released=True, created_at=now - 9000),  # kept, no run
        plant("live", run="r0", created_at=now - 9000),  # a run's live, unkept profile
    ]
    return runs, bystanders


def test_prune_kept_keeps_the_newest_runs(kept_runs, tmp_root):
    runs, bystanders = kept_runs
    result = sweep.prune_kept(tmp_root, 2)
    assert sorted(result.removed) == sorted(runs["r1"] + runs["r2"])
    assert result.freed_bytes == 4 * len(CONTENT)
    assert all(gone(p) for p in runs["r1"] + runs["r2"])
    assert all(intact(p) for p in runs["r3"] + runs["r4"] + bystanders)


def test_prune_kept_to_zero_runs(kept_runs, tmp_root):
    runs, bystanders = kept_runs
    every = [p for paths in runs.values() for p in paths]
    assert sorted(sweep.prune_kept(tmp_root, 0).removed) == sorted(every)
    assert all(intact(p) for p in bystanders)


def test_prune_kept_with_room_for_every_run(kept_runs, tmp_root):
    runs, _ = kept_runs
    assert sweep.prune_kept(tmp_root, 4).removed == []
    assert sweep.prune_kept(tmp_root, 10).removed == []
    assert all(intact(p) for paths in runs.values() for p in paths)


def test_prune_kept_dry_run(kept_runs, tmp_root):
    runs, _ = kept_runs
    result = sweep.prune_kept(tmp_root, 3, dry_run=True)
    assert sorted(result.removed) == sorted(runs["r1"])
    assert all(intact(p) for paths in runs.values() for p in paths)


def test_prune_kept_takes_the_runs_profiles_that_fell_back_and_no_other_roots(
    tmp_path, sandbox_tempdir
):
    # Profiles go to the fallback root when the root cannot take them (a full disk): their
    # runs are this root's (their registry is in its run folders), and so is their pruning.
    root = tmp_path / "root"
    fallback = roots.fallback_root(root)
    kept = {}
    for run, runs_of in (("r0", tmp_path / "another-root"), ("r1", root), ("r2", root)):
        registry = runs_of / roots.RUNS / run / "registry.json"
        m = ProfileManager(root=fallback, registry_path=registry, run_id=run)
        m.create_profile("gw0")
        kept[run] = Path(m.keep_profile("gw0"))
    assert sweep.prune_kept(root, 1).removed == [kept["r1"]]
    assert gone(kept["r1"])
    for spared in (kept["r2"], kept["r0"]):  # the newest run's, and another root's
        assert spared.is_dir() and record_path(spared).is_file()


def test_a_killed_runs_folder_under_the_fallback_root_is_swept(tmp_path, sandbox_tempdir):
    # A run killed after its snapshot of the base went to the fallback root (it did not fit).
    root = tmp_path / "root"
    killed = textwrap.dedent(
        """
        import os, signal, sys
        from pathlib import Path
        from pytest_edgeprofiles._profiles.roots import fallback_root
        from pytest_edgeprofiles._profiles.runs import RunFolder

        root = Path(sys.argv[1])
        RunFolder.create(root, "deadrun00001")
        spare = RunFolder.create(fallback_root(root), "deadrun00001")
        spare.clone_source.mkdir()
        (spare.clone_source / "Local State").write_text("{}")
        os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))
        """
    )
    subprocess.run([sys.executable, "-c", killed, str(root)], timeout=60)
    runs = [
        root / roots.RUNS / "deadrun00001",
        roots.fallback_root(root) / roots.RUNS / "deadrun00001",
    ]
    assert all(run.is_dir() for run in runs)
    run_folders.sweep_leftovers(root)
    assert all(not os.path.lexists(run) for run in runs)
    assert all(not os.path.lexists(record_path(run)) for run in runs)


def test_prune_kept_refuses_a_negative_count(kept_runs, tmp_root):
    with pytest.raises(ValueError, match="keep_runs must be >= 0, got -1"):
        sweep.prune_kept(tmp_root, -1)


def test_a_record_file_named_just_owner_is_ignored(plant, tmp_root):
    path = plant("dead")
    (tmp_root / ".owner").write_text("{}")
    assert sweep.sweep(tmp_root).removed == [path]
    assert (tmp_root / ".owner").exists()


def test_a_download_folder_outside_goes_only_when_it_is_the_profiles(plant, tmp_root, tmp_path):
    downloads = tmp_path / "downloads"
    mine = plant("dead", downloads=str(downloads / "gw0-0123456789ab"))
    (downloads / mine.name).mkdir(parents=True)
    stranger = plant("dead", downloads=str(tmp_path / "elsewhere"))
    (tmp_path / "elsewhere").mkdir()
    sweep.sweep(tmp_root)
    assert gone(mine) and gone(stranger)
    assert not (downloads / mine.name).exists()
    assert (tmp_path / "elsewhere").is_dir(), "a folder not named like the profile is not ours"


@linux_only("start times counted from boot in /proc/<pid>/stat; psutil._pslinux's boot time")
def test_a_wall_clock_step_does_not_make_a_live_owner_look_dead(plant, tmp_root, monkeypatch):
    """NTP steps and resumes move the boot time psutil adds to start times; ours is boot-relative."""
    import psutil._pslinux

    live = plant()
    real_boot_time = psutil._pslinux.boot_time
    monkeypatch.setattr(psutil._pslinux, "boot_time", lambda: real_boot_time() + 3600)
    assert sweep.sweep(tmp_root).removed == []
    assert intact(live)


def test_sweep_removes_a_dead_writers_temp_file_but_not_another_hosts(tmp_root, dead_owner):
    tmp_root.mkdir()
    pid = dead_owner[0]
    ours = tmp_root / f".gw0-0123456789ab.owner.{socket.gethostname()}.{pid}.1.tmp"
    theirs = tmp_root / f".gw1-0123456789ab.owner.elsewhere.{pid}.1.tmp"
    unrelated = tmp_root / f".notes.{pid}.1.tmp"
    for path in (ours, theirs, unrelated):
        path.write_text("{}")
    sweep.sweep(tmp_root)
    assert not ours.exists()
    assert theirs.exists() and unrelated.exists()


def test_prune_kept_spares_a_run_whose_owner_still_runs(plant, tmp_root):
    # Run r0 failed a test (its profile kept) and goes on running; three shorter runs end.
    now = time.time()
    ended = {
        run: plant("dead", keep=True, released=True, run=run, created_at=now - age)
        for run, age in (("r2", 3000), ("r3", 2000), ("r4", 1000))
    }
    with running_owner() as (pid, create_time):
        live = plant(keep=True, released=True, run="r0", pid=pid, create_time=create_time,
                     created_at=now - 5000)  # fmt: skip
        assert sweep.prune_kept(tmp_root, 2).removed == [ended["r2"]]
        assert intact(live), "its summary still names it"
    assert intact(ended["r3"]) and intact(ended["r4"])


def test_prune_kept_takes_the_pruning_runs_own_kept_profiles(plant, tmp_root):
    # At its end a run prunes with everything else: with a count of 0, its own go too.
    own = plant(keep=True, released=True, run="r1")
    assert sweep.prune_kept(tmp_root, 0).removed == [own]


def test_prune_kept_never_touches_another_hosts_kept_profiles(plant, tmp_root):
    now = time.time()
    foreign = plant(
        "dead", keep=True, released=True, run="r1", host="elsewhere", created_at=now - 9000
    )
    plant("dead", keep=True, released=True, run="r2", created_at=now)
    assert sweep.prune_kept(tmp_root, 0).removed != []
    assert intact(foreign)


@contextlib.contextmanager
def running_owner() -> Iterator[tuple[int, float]]:
    """A live process other than this one, as the owner of a record."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1000)"])
    try:
        yield proc.pid, processes.start_time(proc.pid)
    finally:
        proc.kill()
        proc.wait()


def test_records_that_make_no_sense_go_with_a_folder_of_ours_only(
    tmp_root: Path, tmp_path: Path
) -> None:
    # A record of nonsense (pid -1) names no owner: garbage, but only a real folder of this
    # user goes with it; what a symlink or another user's folder stands for is not ours.
    tmp_root.mkdir()
    ours, linked, alone, theirs = (tmp_root / f"gw{i}-0123456789ab" for i in range(4))
    (ours / "Default").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    if POSIX:  # making a symlink needs a privilege on Windows
        linked.symlink_to(tmp_path / "elsewhere")
    theirs.mkdir()
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if is_root:
        os.chown(theirs, 65534, 65534)
    for profile in (ours, linked, alone, theirs) if POSIX else (ours, alone, theirs):
        record_path(profile).write_text('{"worker_id": "gw0", "pid": -1}')
    assert sorted(sweep.sweep(tmp_root, dry_run=True).removed) == sorted(
        [ours, record_path(ours), record_path(alone)]
        + ([] if is_root else [theirs, record_path(theirs)])
    )
    assert ours.is_dir()  # a dry run
    sweep.sweep(tmp_root)
    assert not os.path.lexists(ours) and not os.path.lexists(record_path(ours))
    assert not os.path.lexists(record_path(alone))
    if POSIX:
        assert linked.is_symlink() and record_path(linked).is_file()
    assert (tmp_path / "elsewhere").is_dir()
    if is_root:
        assert theirs.is_dir() and record_path(theirs).is_file()
