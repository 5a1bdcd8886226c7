"""Cloning: the run's snapshot of a base a browser may still be writing."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pytest_edgeprofiles._profiles import clone

#: Rewrites a database of the base in large transactions until told to stop, as a browser
#: running on the user's real profile does (rollback journal, as Chromium's stores use: kept
#: between transactions, or with DELETE, there only during one).
WRITER = textwrap.dedent(
    """
    import sqlite3, sys, os
    db = sqlite3.connect(sys.argv[1], isolation_level=None)
    db.execute(f"PRAGMA journal_mode={sys.argv[3]}")
    db.execute("CREATE TABLE IF NOT EXISTS visits (id INTEGER PRIMARY KEY, url TEXT)")
    print("ready", flush=True)
    n = 0
    while not os.path.exists(sys.argv[2]):
        n += 1
        db.execute("BEGIN")
        db.execute("DELETE FROM visits")
        db.executemany("INSERT INTO visits (url) VALUES (?)",
                       ((f"https://example.test/{n}/{i}" * 20,) for i in range(2000)))
        db.execute("COMMIT")
    """
)


def integrity(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    except sqlite3.DatabaseError as exc:
        return f"unreadable: {exc}"
    finally:
        conn.close()


@pytest.mark.parametrize("journal", ["TRUNCATE", "DELETE"])
def test_a_snapshot_of_a_base_being_written_has_whole_databases(
    tmp_path: Path, journal: str
) -> None:
    base = tmp_path / "base"
    (base / "Default").mkdir(parents=True)
    (base / "Local State").write_text("{}")
    history = base / "Default" / "History"
    stop = tmp_path / "stop"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(history), str(stop), journal],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline() == "ready\n"
        verdicts = []
        for i in range(60):
            target = tmp_path / f"snapshot{i}"
            target.mkdir()
            clone.snapshot(base, target)
            verdicts.append(integrity(target / "Default" / "History"))
    finally:
        stop.touch()
        writer.wait(timeout=30)
    assert verdicts == ["ok"] * 60
    assert integrity(history) == "ok", "the base itself was only read"


def test_a_snapshot_writes_nothing_into_the_base(tmp_path: Path) -> None:
    # A database in WAL mode, closed by its browser: read-only SQLite would make its -wal
    # and -shm files beside it, in the user's real profile.
    base = tmp_path / "base"
    (base / "Default").mkdir(parents=True)
    (base / "Local State").write_text("{}")
    db = sqlite3.connect(base / "Default" / "Cookies")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE cookies (name TEXT)")
    db.execute("INSERT INTO cookies VALUES ('session')")
    db.commit()
    db.close()
    before = sorted(p.name for p in (base / "Default").iterdir())
    target = tmp_path / "snapshot"
    target.mkdir()
    clone.snapshot(base, target)
    assert sorted(p.name for p in (base / "Default").iterdir()) == before == ["Cookies"]
    copy = sqlite3.connect(target / "Default" / "Cookies")
    try:
        assert copy.execute("SELECT name FROM cookies").fetchall() == [("session",)]
    finally:
        copy.close()
