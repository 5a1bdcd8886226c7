"""Owner records: who owns a profile, and whether that owner is taken for alive."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import socket
import time
from pathlib import Path

import pytest
from conftest import linux_only

from pytest_edgeprofiles._chromium import processes
from pytest_edgeprofiles._profiles import records, sweep
from pytest_edgeprofiles._profiles.records import (
    ProfileRecord,
    new_record,
    read_record,
    record_path,
    write_record,
)


def _record(path: Path, pid: int, create_time: float, **fields: object) -> ProfileRecord:
    values = {"host": socket.gethostname(), "created_at": time.time(), **fields}
    return ProfileRecord("gw0", str(path), pid, create_time, **values)  # type: ignore[arg-type]


def test_a_new_record_names_its_whole_owner(tmp_path: Path) -> None:
    record = new_record(worker_id="gw0", path=str(tmp_path / "p"), run="r1")
    pid, create_time = processes.own_identity()
    assert (record.pid, record.create_time, record.host) == (pid, create_time, socket.gethostname())
    assert (record.worker_id, record.run, record.keep) == ("gw0", "r1", False)
    assert abs(record.created_at - time.time()) < 60
    assert (record.pid_ns, record.boot_id) == (processes.pid_namespace(), processes.boot_id())
    assert record.owner_alive()
    assert ProfileRecord.from_dict(record.to_dict()) == record


@linux_only("pid namespaces (/proc/self/ns/pid)")
def test_an_owner_in_another_pid_namespace_is_never_taken_for_dead(
    tmp_root: Path, dead_owner: tuple[int, float]
) -> None:
    # Containers sharing a host name and a bind-mounted temp dir: its pids are not ours to see.
    tmp_root.mkdir()
    profile = tmp_root / "gw0-0123456789ab"
    profile.mkdir()
    elsewhere = processes.pid_namespace() + 1  # type: ignore[operator]
    record = _record(profile, *dead_owner, pid_ns=elsewhere, boot_id=processes.boot_id())
    write_record(record)
    assert record.owner_alive() is True
    assert sweep.sweep(tmp_root).removed == []
    assert profile.is_dir() and record_path(profile).is_file()
    # The same owner in our own namespace is dead: the new fields spare only the others.
    here = dataclasses.replace(record, pid_ns=processes.pid_namespace())
    write_record(here)
    assert here.owner_alive() is False
    assert sweep.sweep(tmp_root).removed == [profile]


@linux_only("boot ids (/proc/sys/kernel/random/boot_id)")
def test_an_owner_of_an_earlier_boot_is_dead_even_with_a_live_pid(tmp_path: Path) -> None:
    pid, create_time = processes.own_identity()
    ours = _record(tmp_path, pid, create_time, pid_ns=processes.pid_namespace())
    assert dataclasses.replace(ours, boot_id=processes.boot_id()).owner_alive() is True
    earlier_boot = dataclasses.replace(ours, boot_id="00000000-0000-0000-0000-000000000000")
    assert earlier_boot.owner_alive() is False
    # Another namespace of an earlier boot: gone with that boot.
    assert dataclasses.replace(earlier_boot, pid_ns=1).owner_alive() is False


def test_records_of_the_old_format_keep_todays_judgement(
    tmp_path: Path, dead_owner: tuple[int, float]
) -> None:
    pid, create_time = processes.own_identity()
    old = {
        "worker_id": "gw0", "path": str(tmp_path), "pid": pid, "create_time": create_time,
        "host": socket.gethostname(), "created_at": time.time(),
    }  # fmt: skip
    live = ProfileRecord.from_dict(old)
    assert (live.pid_ns, live.boot_id) == (None, None)
    assert live.owner_alive() is True
    dead = ProfileRecord.from_dict({**old, "pid": dead_owner[0], "create_time": dead_owner[1]})
    assert dead.owner_alive() is False
    assert ProfileRecord.from_dict({**old, "host": "elsewhere", "pid": 1}).owner_alive() is True


ODD_VALUES = [
    ("pid", -1), ("pid", 0), ("pid", 2**64), ("pid", True), ("pid", 1.5), ("pid", "12"),
    ("create_time", float("nan")), ("create_time", float("inf")), ("create_time", True),
    ("created_at", float("-inf")), ("created_at", "yesterday"), ("worker_id", 5),
    ("path", ""), ("path", "relative/gw0"), ("host", None), ("keep", "yes"), ("released", 1),
    ("prepared", None), ("registry", 5), ("run", []), ("downloads", 3), ("pid_ns", True),
    ("pid_ns", -1), ("boot_id", 5),
]  # fmt: skip


@pytest.mark.parametrize(("field", "value"), ODD_VALUES)
def test_a_record_that_makes_no_sense_is_unreadable_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, field: str, value: object
) -> None:
    good = new_record(worker_id="gw0", path=str(tmp_path / "gw0-0123456789ab")).to_dict()
    assert ProfileRecord.from_dict(good).path == good["path"]
    with pytest.raises(ValueError, match=f"{field} .*{re.escape(repr(value))}"):
        ProfileRecord.from_dict({**good, field: value})
    record_file = tmp_path / "gw0-0123456789ab.owner"
    record_file.write_text(json.dumps({**good, field: value}))
    with caplog.at_level(logging.WARNING, logger="pytest_edgeprofiles"):
        assert read_record(record_file) is None
    assert str(record_file) in caplog.text and field in caplog.text


def test_every_field_of_a_record_is_checked() -> None:
    assert set(records._FIELDS) == {f.name for f in dataclasses.fields(ProfileRecord)}
