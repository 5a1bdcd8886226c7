"""Work off a test's critical path: prepared clones and background removal."""

from __future__ import annotations

import errno
import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from browser_support import wait_for
from conftest import linux_only

from pytest_edgeprofiles import ProfileLimitError
from pytest_edgeprofiles._profiles import sweep
from pytest_edgeprofiles._profiles.records import ProfileRecord, record_path
from pytest_edgeprofiles._profiles.registry import Registry
from pytest_edgeprofiles._system import files


def _record(path: str | Path) -> dict[str, object]:
    return json.loads(record_path(path).read_text())  # type: ignore[no-any-return]


def test_a_prepared_profile_is_what_the_next_create_hands_out(manager, make_base, tmp_path):
    m = manager(str(make_base()), registry_path=tmp_path / "registry.json")
    m.prepare_profile("gw0")
    m.drain()
    [prepared] = [p for p in m.root.iterdir() if p.is_dir()]
    assert _record(prepared)["prepared"] is True
    assert Registry(tmp_path / "registry.json").holders() == [], "a prepared clone holds no slot"

    path = m.create_profile("gw0")
    assert Path(path) == prepared
    assert _record(path)["prepared"] is False
    assert [h.path for h in Registry(tmp_path / "registry.json").holders()] == [path]
    assert (prepared / "Default" / "Cookies").is_file()
    assert m.validate_profile("gw0")


def test_a_prepared_profile_waits_for_a_slot_and_is_kept_meanwhile(manager, tmp_path):
    m = manager(max_profiles=1, registry_path=tmp_path / "registry.json")
    m.create_profile("gw0")
    m.prepare_profile("gw1")
    with pytest.raises(ProfileLimitError, match=r"^Profile limit exceeded: 1/1$"):
        m.create_profile("gw1")
    m.cleanup_profile("gw0")
    second = m.create_profile("gw1")
    assert _record(second)["prepared"] is False
    assert len([p for p in m.root.iterdir() if p.is_dir()]) == 1


def test_a_failed_preparation_falls_back_to_a_plain_create(manager, make_base, monkeypatch):
    m = manager(str(make_base()))
    real_copy = files.copy_tree
    calls = []

    def flaky_copy(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OSError(errno.EIO, "injected I/O error")
        return real_copy(*args, **kwargs)

    monkeypatch.setattr(files, "copy_tree", flaky_copy)
    m.prepare_profile("gw0")
    path = Path(m.create_profile("gw0"))
    assert (path / "Default" / "Cookies").is_file()
    assert sorted(p.name for p in m.root.iterdir()) == sorted([path.name, path.name + ".owner"])


def test_release_frees_the_slot_at_once_and_deletes_in_the_background(manager, tmp_path):
    m = manager(max_profiles=1, registry_path=tmp_path / "registry.json")
    first = Path(m.create_profile("gw0"))
    (first / "data").write_bytes(b"x" * 10_000)
    m.release_profile("gw0")
    assert not first.exists(), "the profile's path is gone at once (moved aside)"
    assert not record_path(first).exists()
    assert m.get_profile_path("gw0") is None
    m.create_profile("gw1")  # the only slot is free again
    m.drain()
    assert [p.name for p in m.root.iterdir() if p.name.startswith("garbage-")] == []
    assert m.background_failures == []


def test_a_failed_background_removal_is_reported_and_left_to_the_sweep(
    manager, monkeypatch, caplog
):
    m = manager()
    path = Path(m.create_profile("gw0"))
    monkeypatch.setattr(files, "remove_tree", _fail_on_garbage(files.remove_tree))
    m.release_profile("gw0")
    m.drain()
    [(failed, error)] = m.background_failures
    assert Path(failed).name == "garbage-" + path.name
    assert "injected" in error
    monkeypatch.undo()
    assert sweep.sweep(m.root).removed == [Path(failed)]
    assert list(m.root.iterdir()) == []


def _fail_on_garbage(real):
    def remove_tree(path, *args, **kwargs):
        if Path(path).name.startswith("garbage-"):
            raise OSError(errno.EBUSY, "injected busy")
        return real(path, *args, **kwargs)

    return remove_tree


def test_cleanup_all_profiles_discards_prepared_ones(manager, make_base):
    m = manager(str(make_base()))
    m.create_profile("gw0")
    m.prepare_profile("gw0")
    m.prepare_profile("gw1")
    assert m.cleanup_all_profiles() == 1
    assert list(m.root.iterdir()) == []


def _waits_for_the_lock_of(path: Path) -> bool:
    """Whether a process or thread waits in ``flock`` for ``path`` (``/proc/locks``: "->")."""
    inode = f":{path.stat().st_ino} "
    with open("/proc/locks", encoding="ascii") as locks:
        return any("->" in line and inode in line for line in locks)


@linux_only("/proc/locks shows who waits for a flock")
def test_a_clone_made_ahead_given_back_when_another_was_asked_for_is_removed(
    manager, make_base, tmp_path
):
    # A browser started ahead takes the worker's clone made ahead and finds the cap full, while
    # the tests' thread asks for the worker's next clone: the one given back is nobody's.
    registry = tmp_path / "registry.json"
    holder = manager(max_profiles=1, registry_path=registry)
    holder.create_profile("holder")
    m = manager(str(make_base()), max_profiles=1, registry_path=registry)
    m.prepare_profile("gw0")
    m.drain()
    full: list[Exception] = []

    def start_ahead() -> None:
        with pytest.raises(ProfileLimitError) as info:
            m.create_profile("gw0.1", spare=True, prepared_as="gw0")
        full.append(info.value)

    import fcntl

    lock = Path(f"{registry}.lock")
    with lock.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as another worker would, while it frees a slot
        ahead = threading.Thread(target=start_ahead)
        ahead.start()
        wait_for(lambda: _waits_for_the_lock_of(lock), "the clone taken, its slot asked for")
        m.prepare_profile("gw0")
        m.drain()
    ahead.join(30)
    assert full, "the cap was full"
    m.cleanup_all_profiles()
    holder.cleanup_all_profiles()
    assert [p.name for p in m.root.iterdir() if not p.name.startswith(".")] == []


def test_sweep_spares_a_live_owners_prepared_profile_but_not_a_dead_ones(
    manager, tmp_root, dead_owner
):
    m = manager()
    m.prepare_profile("gw0")
    m.drain()
    [live] = [p for p in tmp_root.iterdir() if p.is_dir()]
    dead = tmp_root / "gw9-0123456789ab"
    dead.mkdir()
    pid, create_time = dead_owner
    files.write_json_atomic(
        record_path(dead),
        ProfileRecord("gw9", str(dead), pid, create_time, socket.gethostname(), 0.0, prepared=True)
        .to_dict(),
    )  # fmt: skip
    assert sweep.sweep(tmp_root).removed == [dead]
    assert live.is_dir()


def test_sweep_removes_garbage_folders_but_nothing_merely_named_alike(tmp_root):
    tmp_root.mkdir()
    garbage = tmp_root / "garbage-gw0-0123456789ab"
    (garbage / "Default").mkdir(parents=True)
    mine = tmp_root / "garbage-collection"
    mine.mkdir()
    assert sweep.sweep(tmp_root).removed == [garbage]
    assert mine.is_dir()


def test_a_released_profiles_outside_downloads_keep_its_record_until_gone(
    manager, tmp_path, monkeypatch
):
    downloads = tmp_path / "downloads"
    m = manager(download_root=downloads)
    path = Path(m.create_profile("gw0"))
    m.get_download_dir("gw0")  # made, as a download would make it
    monkeypatch.setattr(files, "remove_tree", _fail_on(files.remove_tree, downloads))
    m.release_profile("gw0")
    m.drain()
    assert (downloads / path.name).is_dir()
    assert _record(path)["released"] is True, "the sweep must still find the download folder"
    monkeypatch.undo()
    sweep.sweep(m.root)
    assert not (downloads / path.name).exists()
    assert list(m.root.iterdir()) == []


def _fail_on(real, parent):
    def remove_tree(path, *args, **kwargs):
        if Path(path).parent == parent:
            raise OSError(errno.EBUSY, "injected busy")
        return real(path, *args, **kwargs)

    return remove_tree


def test_a_lane_waiting_for_its_own_lanes_fails_loudly_instead_of_hanging() -> None:
    from pytest_edgeprofiles._system.lanes import Lanes

    lanes = Lanes()
    try:
        waited = lanes.submit("one", lanes.drain)
        with pytest.raises(RuntimeError, match="would wait for itself"):
            waited.result(timeout=10)
    finally:
        lanes.close()


def test_a_lane_busy_at_a_ctrl_c_never_keeps_the_process_alive() -> None:
    # Ctrl-C while a lane works (its first thread just started): the process ends, as pytest
    # does after its summary; an executor's threads would be joined at exit, for ever here.
    script = (
        "import threading\n"
        "from pytest_edgeprofiles._system.lanes import Lanes\n"
        "lanes = Lanes()\n"
        "lanes.submit('ready', threading.Event().wait)\n"
        "raise KeyboardInterrupt\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert "KeyboardInterrupt" in result.stderr
