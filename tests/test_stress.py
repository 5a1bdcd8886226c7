"""Stress: processes of threads creating and removing profiles at random on one registry.

The cap is checked from the outside: by a watcher counting profile folders on disk, and by
the intervals during which each thread held a profile in its hands (taken from one clock
shared by all processes), never from the registry alone. At the end nothing is left.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from conftest import posix_only

from pytest_edgeprofiles._profiles.registry import Registry

# One process: THREADS threads, each holding at most two profiles, doing random operations
# until it has made OPS creates and removals; writes counts, hold intervals and errors.
WORKER = r"""
import json, logging, os, random, sys, threading, time, traceback
from pathlib import Path
from pytest_edgeprofiles import ProfileLimitError, ProfileManager

root, registry, base, out, seed, threads_n, ops_n, cap, prepare = sys.argv[1:10]
threads_n, ops_n, cap, prepare = int(threads_n), int(ops_n), int(cap), prepare == "1"


class Count(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


warnings = Count()
logging.getLogger("pytest_edgeprofiles").addHandler(warnings)
m = ProfileManager(base, root=root, registry_path=registry, max_profiles=cap)
lock = threading.Lock()
counts = {"create": 0, "cleanup": 0, "release": 0, "copy": 0, "full": 0}
holds, errors = [], []


def count(what):
    with lock:
        counts[what] += 1


def work(t):
    rng = random.Random(f"{seed}-{t}")
    held = {}
    done = 0
    try:
        while done < ops_n or held:
            if held and (done >= ops_n or len(held) == 2 or rng.random() < 0.5):
                worker_id = rng.choice(sorted(held))
                if rng.random() < 0.2:
                    assert m.copy_base_profile(worker_id)
                    count("copy")
                assert m.validate_profile(worker_id)
                start = held.pop(worker_id)
                end = time.monotonic()
                if rng.random() < 0.5:
                    assert m.cleanup_profile(worker_id, strict=True)
                    count("cleanup")
                else:
                    m.release_profile(worker_id)
                    count("release")
                with lock:
                    holds.append((start, end))
            else:
                worker_id = next(w for w in (f"t{t}a", f"t{t}b") if w not in held)
                try:
                    # Holding one already: never wait (two threads could wait on each other).
                    path = m.create_profile(worker_id, timeout=0 if held else 60)
                except ProfileLimitError:
                    count("full")
                    continue
                held[worker_id] = time.monotonic()
                assert os.path.isdir(path)
                count("create")
                if prepare:
                    m.prepare_profile(worker_id)  # the plugin's way: the next clone in advance
            done += 1
    except BaseException:
        errors.append(traceback.format_exc())


threads = [threading.Thread(target=work, args=(t,)) for t in range(threads_n)]
for t in threads:
    t.start()
for t in threads:
    t.join()
m.cleanup_all_profiles()  # waits for background deletions and drops prepared clones
failures = m.background_failures
Path(out).write_text(json.dumps(
    {"counts": counts, "holds": holds, "errors": errors, "warnings": warnings.messages,
     "background_failures": failures}
))
"""

CORRUPTIONS = [
    b"",
    b'{"version": 1, "entries": {"/x": {"worker_id": "gw',
    b"\x00\xff\xfe\x80garbage\x01",
    b"[]",
    b'{"entries": 5}',
    b'{"entries": {"x": 5}, "stats": {"created": 0, "peak": 0}}',
    None,  # deleted
]


def small_base(folder: Path) -> Path:
    (folder / "Default").mkdir(parents=True)
    (folder / "Local State").write_text("{}")
    (folder / "Default" / "Preferences").write_text('{"profile": {"exit_type": "Normal"}}')
    (folder / "Default" / "Cookies").write_bytes(b"c" * 4096)
    return folder


def max_overlap(holds: list[tuple[float, float]]) -> int:
    # Ends sort before starts at one instant: touching intervals do not overlap.
    events = sorted([(s, 1) for s, _ in holds] + [(e, -1) for _, e in holds])
    alive = peak = 0
    for _, step in events:
        alive += step
        peak = max(peak, alive)
    return peak


class Watcher:
    """Counts live profile folders under ``root`` about every millisecond, from outside."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.done = threading.Event()
        self.peak = 0
        self.samples = 0
        self.thread = threading.Thread(target=self._watch)

    def _watch(self) -> None:
        while not self.done.wait(0.001):
            try:
                with os.scandir(self.root) as it:
                    # garbage-* folders were released (renamed, then deleted in the background).
                    live = sum(
                        e.is_dir(follow_symlinks=False) and not e.name.startswith("garbage-")
                        for e in it
                    )
            except FileNotFoundError:
                continue
            self.peak = max(self.peak, live)
            self.samples += 1

    def __enter__(self) -> Watcher:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(timeout=30)


def run_workers(
    tmp_path: Path,
    roots: list[Path],
    registry: Path,
    cap: int,
    threads: int,
    ops: int,
    prepare: list[bool],
) -> list[subprocess.Popen[str]]:
    base = small_base(tmp_path / "base")
    procs = []
    for i, root in enumerate(roots):
        args = [str(root), str(registry), str(base), str(tmp_path / f"out{i}.json"), str(i)]
        args += [str(threads), str(ops), str(cap), "1" if prepare[i] else "0"]
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", WORKER, *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    return procs


def collect(tmp_path: Path, procs: list[subprocess.Popen[str]]) -> list[dict[str, Any]]:
    reports = []
    for i, proc in enumerate(procs):
        try:
            _, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 0, err
        reports.append(json.loads((tmp_path / f"out{i}.json").read_text()))
    return reports


def assert_nothing_left(roots: list[Path], registry: Path) -> None:
    for root in roots:
        assert sorted(os.listdir(root)) == [], root
    # Loaded as any manager loads it: whole, or rebuilt from the (absent) records.
    assert Registry(registry.resolve(), roots).holders() == []
    assert json.loads(registry.read_text())["entries"] == {}


def test_four_processes_of_four_threads_never_exceed_the_cap(tmp_path: Path) -> None:
    cap, threads, ops = 4, 4, 126  # 4 x 4 x 126 = 2016 creates and removals
    main_root, prepared_root = tmp_path / "root", tmp_path / "prepared-root"
    registry = tmp_path / "shared" / "registry.json"
    main_root.mkdir()
    # Three processes in one root, counted on disk; the fourth prepares its next clone ahead
    # (prepared clones hold no slot, so they live in a root of their own, not counted there).
    roots = [main_root, main_root, main_root, prepared_root]
    with Watcher(main_root) as watcher:
        procs = run_workers(tmp_path, roots, registry, cap, threads, ops, [False] * 3 + [True])
        reports = collect(tmp_path, procs)

    for report in reports:
        assert report["errors"] == []
        assert report["background_failures"] == []
        assert report["warnings"] == []
    counts = {k: sum(r["counts"][k] for r in reports) for k in reports[0]["counts"]}
    assert counts["create"] + counts["cleanup"] + counts["release"] >= 2000
    assert counts["create"] == counts["cleanup"] + counts["release"]
    assert counts["release"] > 100 and counts["cleanup"] > 100 and counts["copy"] > 100
    assert counts["full"] > 0, "the cap was never even reached: a stress that proves nothing"

    holds = [tuple(h) for r in reports for h in r["holds"]]
    assert len(holds) == counts["create"]
    assert 1 <= max_overlap(holds) <= cap  # never passed
    assert watcher.samples > 100
    assert 1 <= watcher.peak <= cap
    stats = json.loads(registry.read_text())["stats"]
    assert stats["created"] == counts["create"]
    assert stats["peak"] == cap
    assert_nothing_left([main_root, prepared_root], registry)


@posix_only("deleting the registry while other processes have it open (Windows refuses)")
def test_the_cap_holds_while_the_registry_is_damaged_mid_run(tmp_path: Path) -> None:
    cap, threads, ops = 3, 3, 60
    root = tmp_path / "root"
    registry = tmp_path / "shared" / "registry.json"
    root.mkdir()
    registry.parent.mkdir()
    damaged = 0
    with Watcher(root) as watcher:
        procs = run_workers(tmp_path, [root, root], registry, cap, threads, ops, [False, False])
        # Someone damages the registry again and again while the run goes on, without the lock.
        while any(p.poll() is None for p in procs):
            content = CORRUPTIONS[damaged % len(CORRUPTIONS)]
            if content is None:
                registry.unlink(missing_ok=True)
            else:
                registry.write_bytes(content)
            damaged += 1
            if watcher.done.wait(0.003):  # the pace of the damage, not a synchronisation
                break
        reports = collect(tmp_path, procs)

    assert damaged > 20
    for report in reports:
        assert report["errors"] == []
        assert report["background_failures"] == []
    warnings = [w for r in reports for w in r["warnings"]]
    assert warnings, "a damaged registry is worth a warning"
    assert all("rebuilding it from owner records" in w for w in warnings), warnings
    holds = [tuple(h) for r in reports for h in r["holds"]]
    assert len(holds) >= 2 * threads * ops // 2
    assert max_overlap(holds) <= cap
    assert watcher.peak <= cap
    assert_nothing_left([root], registry)
