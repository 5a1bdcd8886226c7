"""Benchmarks of pytest-edgeprofiles, each figure a ratio against an anchor measured beside it.

    python benchmarks/bench.py                 # the full run (30-40 minutes on 2 cores)
    python benchmarks/bench.py --quick         # small data, one round: a smoke test for CI
    python benchmarks/bench.py --only suites   # some parts alone (see --help)

Our machines are shared and noisy, so absolute times say little: every figure is measured in
the same run as its anchor, alternating, on the same (warm) page cache, and reported as the
ratio of the medians. The script builds all its data itself under a temporary folder.

Every pytest run measures the plugin alone: the other plugins of the environment are left
out of both sides (``-p no:<name>``), or their imports would dilute its cost; and Python
writes its bytecode caches, as an installed package has them.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_edgeprofiles import ProfileManager
from pytest_edgeprofiles._profiles import manager as manager_module
from pytest_edgeprofiles._profiles.records import ProfileRecord
from pytest_edgeprofiles._profiles.registry import Registry
from pytest_edgeprofiles._system import files

MB = 1024 * 1024


@dataclass
class Figure:
    name: str
    ours: float  # seconds, or operations per second when `higher_is_better`
    anchor: float | None
    anchor_name: str
    goal: str
    met: bool | None  # None: a row that shows where time goes, with no goal of its own

    def row(self) -> str:
        if self.anchor is None and "per second" in self.goal:
            ratio = f"{self.ours:.0f}/s"
        elif self.anchor is None:
            ratio = f"{self.ours * 1000:.2f} ms"
        else:
            ours, anchor = self.ours * 1000, self.anchor * 1000
            digits = 2 if anchor < 10 else 0
            ratio = f"{self.ours / self.anchor:.2f}x ({ours:.{digits}f} vs {anchor:.{digits}f} ms)"
        mark = "-" if self.met is None else "yes" if self.met else "NO"
        return f"| {self.name} | {self.anchor_name} | {ratio} | {self.goal} | {mark} |"


# -- data --------------------------------------------------------------------------------


def write_files(folder: Path, count: int, size: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    chunk = os.urandom(size)
    for i in range(count):
        (folder / f"f_{i:06d}").write_bytes(chunk)


def make_profile(
    root: Path, data_files: int, data_bytes: int, cache_files: int, cache_bytes: int
) -> Path:
    """A user data dir: real data in a few stores, and caches in the usual cache folders."""
    base = root / "User Data"
    default = base / "Default"
    default.mkdir(parents=True)
    (base / "Local State").write_text('{"browser": {}}')
    (default / "Preferences").write_text('{"profile": {"exit_type": "Normal"}}')
    stores = [
        "IndexedDB/https_site_0.indexeddb.leveldb",
        "Local Storage/leveldb",
        "Extensions/abc/1.0",
        "Session Storage",
    ]
    for store in stores:
        write_files(default / store, data_files // len(stores), data_bytes // data_files)
    caches = ["Cache/Cache_Data", "Code Cache/js", "GPUCache", "Service Worker/CacheStorage/x"]
    for cache in caches:
        write_files(default / cache, cache_files // len(caches), cache_bytes // cache_files)
    return base


def median_of(fn: Callable[[], float], rounds: int) -> float:
    return statistics.median(fn() for _ in range(rounds))


def alternate(
    ours: Callable[[], float], anchor: Callable[[], float], rounds: int
) -> tuple[float, float]:
    """Medians of both, measured turn about so that both see the same machine."""
    a, b = in_turn([ours, anchor], rounds)
    return a, b


def in_turn(sides: list[Callable[[], float]], rounds: int) -> list[float]:
    """The median of each side, the sides measured turn about in every round."""
    times: list[list[float]] = [[] for _ in sides]
    for _ in range(rounds):
        for side, seen in zip(sides, times, strict=True):
            seen.append(side())
    return [statistics.median(seen) for seen in times]


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measured_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default ours) for a measured run: bytecode cached, as an install has it."""
    env = dict(os.environ if env is None else env)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # else every run compiles every module again
    return env


def run(*cmd: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
    subprocess.run(
        [str(c) for c in cmd], check=True, cwd=cwd, stdout=subprocess.DEVNULL, env=measured_env(env)
    )


def others(keep: tuple[str, ...] = ()) -> list[str]:
    """``-p no:<name>`` for each pytest plugin installed here but ours, xdist and ``keep``."""
    from importlib.metadata import entry_points

    ours = {"edgeprofiles", "xdist", "xdist.looponfail", *keep}
    names = sorted({ep.name for ep in entry_points(group="pytest11")} - ours)
    return [arg for name in names for arg in ("-p", f"no:{name}")]


# -- figures -----------------------------------------------------------------------------


def bench_clone(work: Path, base: Path, rounds: int) -> list[Figure]:
    manager = ProfileManager(str(base), root=work / "clones", profile_size_limit_mb=10_000)
    lean = work / "lean"  # what a perfect copier writes: the tree without its caches
    shutil.copytree(base, lean, symlinks=True)
    for cache in lean.rglob("*"):
        if cache.is_dir() and (cache.name.endswith("Cache") or cache.name == "CacheStorage"):
            shutil.rmtree(cache)
    copies = work / "copies"
    copies.mkdir()
    counter = iter(range(10**6))

    def ours() -> float:
        t = timed(lambda: manager.create_profile("w"))
        manager.cleanup_profile("w")
        return t

    def cp(tree: Path) -> Callable[[], float]:
        def anchor() -> float:
            target = copies / str(next(counter))
            t = timed(lambda: run("cp", "-a", tree, target))
            shutil.rmtree(target)
            return t

        return anchor

    ours(), cp(base)(), cp(lean)()  # warm the page cache for all three
    full = alternate(ours, cp(base), rounds)
    perfect = alternate(ours, cp(lean), rounds)
    return [
        Figure(
            "clone of a cache-heavy profile",
            *full,
            "`cp -a` of the whole tree",
            "<= 0.25x",
            full[0] / full[1] <= 0.25,
        ),
        Figure(
            "the same clone",
            *perfect,
            "`cp -a` of the tree without caches",
            "<= 1.3x",
            perfect[0] / perfect[1] <= 1.3,
        ),
    ]


def bench_cleanup_and_size(work: Path, base: Path, rounds: int) -> list[Figure]:
    manager = ProfileManager(root=work / "full")
    counter = iter(range(10**6))

    def filled() -> Path:
        path = Path(manager.create_profile(f"w{next(counter)}"))
        run("cp", "-a", f"{base}/.", path)
        return path

    def plain_copy() -> Path:
        target = work / f"plain{next(counter)}"
        run("cp", "-a", base, target)
        return target

    def ours_cleanup() -> float:
        path = filled()
        worker = path.name.rsplit("-", 1)[0]
        return timed(lambda: manager.cleanup_profile(worker))

    def rm_rf() -> float:
        target = plain_copy()
        return timed(lambda: run("rm", "-rf", target))

    cleanup = alternate(ours_cleanup, rm_rf, rounds)

    def ours_size() -> float:
        # get_profile_size walks every time: a size must be what is on disk now.
        path = filled()
        worker = path.name.rsplit("-", 1)[0]
        t = timed(lambda: manager.get_profile_size(worker))
        manager.cleanup_profile(worker)
        return t

    def du() -> float:
        target = plain_copy()
        t = timed(lambda: run("du", "-sb", target))
        shutil.rmtree(target)
        return t

    size = alternate(ours_size, du, rounds)
    return [
        Figure(
            "cleanup of a full profile",
            *cleanup,
            "`rm -rf`",
            "<= 1.2x",
            cleanup[0] / cleanup[1] <= 1.2,
        ),
        Figure(
            "`get_profile_size` of a full profile (a walk, every time)",
            *size,
            "`du -sb`",
            "<= 1.5x",
            size[0] / size[1] <= 1.5,
        ),
    ]


def bench_small_ops(work: Path) -> list[Figure]:
    manager = ProfileManager(
        root=work / "small", max_profiles=16, registry_path=work / "small.json"
    )
    times = []
    for _ in range(200):
        times.append(timed(lambda: manager.create_profile("w")))
        manager.cleanup_profile("w")
    create = statistics.median(times)
    return [
        Figure(
            "`create_profile` without a base", create, None, "", "<= 2 ms median", create <= 0.002
        )
    ]


def bench_profile_floor(work: Path, cycles: int) -> list[Figure]:
    """Where a profile's cost to a test goes: what ``edge_profile`` asks of the manager for
    each test (made, given back, deleted in the background), against the same file
    operations written by hand (``BY_HAND``, as the suites' floor), nothing checked."""
    manager = ProfileManager(root=work / "floor", max_profiles=8, registry_path=work / "f.json")

    def ours() -> float:
        def cycles_of_ours() -> None:
            for i in range(cycles):
                manager.create_profile(f"gw0.{i}", prepared_as="gw0")
                manager.release_profile(f"gw0.{i}", free_slot_later=True)  # the next asks
            manager.drain()

        return timed(cycles_of_ours) / cycles

    (work / "floor-by-hand").mkdir()
    hand: dict[str, Any] = {"__file__": str(work / "floor-by-hand" / "conftest.py")}
    exec(BY_HAND, hand)  # the suites' conftest, its fixture's two halves called in turn

    def by_hand() -> float:
        def cycles_by_hand() -> None:
            for _ in range(cycles):
                hand["give_back"](*hand["make"]())
            hand["REMOVALS"].submit(int).result()  # drained, as the manager is

        return timed(cycles_by_hand) / cycles

    result = alternate(ours, by_hand, 3)
    return [
        Figure(
            "a profile made and given back, as `edge_profile` asks for each test",
            *result,
            "the same file operations by hand (2 folders, 2 files, 2 registry writes, a rename,"
            " a removal), nothing checked: the floor",
            "where the time goes",
            None,
        )
    ]


def bench_listing(work: Path, mb: int, rounds: int) -> list[Figure]:
    """``list_profiles`` over 16 profiles of ``mb`` MB (36 files a MB, as a real profile).

    The 16 share their files through hard links: a size is a walk of metadata (one
    ``fstatat`` a file), which costs the same either way, and 16 real copies would need
    16 x ``mb`` MB of disk and minutes to write.
    """
    tree = work / "listed"
    for j in range(max(mb // 10, 1)):  # folders of 360 files, as a profile's stores hold them
        write_files(tree / "Default" / "IndexedDB" / f"db{j}", 360, MB // 36)
    manager = ProfileManager(root=work / "listing", max_profiles=16)
    paths = [Path(manager.create_profile(f"w{i}")) for i in range(16)]
    for path in paths:
        run("cp", "-al", f"{tree}/.", path)

    def fresh() -> float:
        for i in range(16):  # what a listing may reuse: sizes measured in the last 5 s
            manager.get_profile_size(f"w{i}")
        return median_of(lambda: timed(manager.list_profiles), 20)

    def expired() -> float:
        # Every size older than LISTED_SIZE_MAX_AGE: the listing walks all 16.
        saved, manager_module.LISTED_SIZE_MAX_AGE = manager_module.LISTED_SIZE_MAX_AGE, -1.0
        try:
            return timed(manager.list_profiles)
        finally:
            manager_module.LISTED_SIZE_MAX_AGE = saved

    def du() -> float:  # -l: count every link of a file, as 16 real copies would be counted
        return timed(lambda: run("du", "-sbl", *paths))

    def walks_alone() -> float:  # the listing's floor: the 16 walks and nothing else
        return timed(lambda: [files.tree_size(path) for path in paths])

    listing = median_of(fresh, rounds)
    stale, floor, by_du = in_turn([expired, walks_alone, du], rounds)
    walks = stale, by_du
    manager.cleanup_all_profiles()
    return [
        Figure(
            f"`list_profiles`, 16 profiles of {mb} MB, sizes under 5 s old",
            listing,
            None,
            "contract: 100 ms",
            "<= 100 ms",
            listing <= 0.1,
        ),
        Figure(
            "the same listing, every size older than 5 s (a walk each)",
            *walks,
            "`du -sbl` of the 16",
            "<= 1.5x",
            walks[0] / walks[1] <= 1.5,
        ),
        Figure(
            "the 16 walks alone, as the listing makes them: its floor",
            floor,
            by_du,
            "`du -sbl` of the 16",
            "where the time goes",
            None,
        ),
    ]


def _cycle(registry_path: str, root: str, seconds: float, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    manager = ProfileManager(root=root, registry_path=registry_path, max_profiles=8)
    ops = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        key = f"p{os.getpid()}-{ops}"
        manager.create_profile(key, timeout=60)
        manager.cleanup_profile(key)
        ops += 1
    queue.put(ops)


def _contend(registry_path: str, root: str, seconds: float, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    registry = Registry(Path(registry_path), [Path(root)])
    pid = os.getpid()
    from pytest_edgeprofiles._chromium.processes import own_identity

    _, create_time = own_identity()
    ops = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        record = ProfileRecord(
            f"p{pid}", f"{root}/p{pid}-{ops}", pid, create_time, "bench", time.time(), registry_path
        )
        registry.claim(record, 4, timeout=60)
        registry.free(record.path)
        ops += 1
    queue.put(ops)


def _in_8_processes(target: Callable[..., None], path: Path, root: Path, seconds: float) -> float:
    """Operations a second of ``target`` run by 8 processes at once on one registry."""
    queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    args = (str(path), str(root), seconds, queue)
    procs = [multiprocessing.Process(target=target, args=args) for _ in range(8)]
    start = time.perf_counter()
    for p in procs:
        p.start()
    total: int = sum(queue.get() for _ in procs)
    for p in procs:
        p.join()
    return total / (time.perf_counter() - start)


def bench_registry(work: Path, seconds: float) -> list[Figure]:
    path = work / "contended.json"
    rate = _in_8_processes(_contend, path, work, seconds)
    peak = Registry(path).stats()["peak"]
    cycles_root = work / "cycles"
    cycles = _in_8_processes(_cycle, cycles_root / "registry.json", cycles_root, seconds)
    return [
        Figure(
            "registry slot acquire + release, 8 processes",
            rate,
            None,
            f"peak {peak} of cap 4",
            ">= 1000 per second, never over the cap",
            rate >= 1000 and peak <= 4,
        ),
        Figure(
            "`create_profile` + `cleanup_profile`, 8 processes on one registry",
            cycles,
            None,
            "",
            ">= 500 per second",
            cycles >= 500,
        ),
    ]


# Each test writes a file into its folder, as a user's test would.
SUITE = """
import time
from pathlib import Path
import pytest

@pytest.mark.parametrize("i", range({n}))
def test_x({fixture}, i):
    (Path({fixture}) / "note.txt").write_text("hello")
    time.sleep({work})
"""


# The floor of a trivial suite on edge_profile: the same file operations as a profile's (2
# folders, Preferences, an owner record put in place, a slot taken and freed in a registry
# every worker shares under a lock, the folder renamed aside and removed in a thread, off the
# test's path), written by hand with nothing checked, as a fixture of a conftest every side
# of the figure loads. BY_HAND_WITHOUT (a variable) leaves some out, to show what each costs.
BY_HAND = """
import fcntl, json, os, shutil, uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import pytest

ROOT = Path(__file__).parent / "by-hand"
WITHOUT = set(os.environ.get("BY_HAND_WITHOUT", "").split(","))
REMOVALS = ThreadPoolExecutor(1)  # done before the process exits


def _remove(garbage, record):
    if "removal" not in WITHOUT:
        shutil.rmtree(garbage)
    if record is not None:
        os.unlink(record)


_lock = []  # the lock file, kept open, as the plugin keeps its own


def _slot(path, take):
    if "registry" in WITHOUT:
        return
    if not _lock:
        _lock.append(os.open(ROOT / "registry.lock", os.O_RDWR | os.O_CREAT))
    lock = _lock[0]
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        fd = os.open(ROOT / "registry.json", os.O_RDWR | os.O_CREAT)
        data = os.read(fd, 1 << 20)
        state = json.loads(data) if data else {"entries": {}}
        if take:
            state["entries"][str(path)] = {"pid": os.getpid(), "path": str(path)}
        else:
            state["entries"].pop(str(path))
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(state).encode())
        os.close(fd)
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)


def make():
    ROOT.mkdir(exist_ok=True)
    path = ROOT / f"p{os.getpid()}-{uuid.uuid4().hex[:12]}"
    _slot(path, take=True)
    os.mkdir(path)
    os.mkdir(path / "Default")
    (path / "Default" / "Preferences").write_text('{"download": {}}')
    record = None
    if "record" not in WITHOUT:
        record = Path(f"{path}.owner")
        Path(f"{path}.tmp").write_text(json.dumps({"pid": os.getpid()}))
        os.replace(f"{path}.tmp", record)
    return path, record


def give_back(path, record):
    garbage = path.with_name(f"garbage-{path.name}")
    os.rename(path, garbage)
    _slot(path, take=False)
    REMOVALS.submit(_remove, garbage, record)


@pytest.fixture
def by_hand():
    path, record = make()
    yield path
    give_back(path, record)
"""


def _suite(cmd: list[str], folder: Path, env: dict[str, str] | None = None) -> Callable[[], float]:
    return lambda: timed(lambda: run(*cmd, cwd=folder, env=env))


def _pytest(folder: Path, *args: str, keep: tuple[str, ...] = ()) -> list[str]:
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *others(keep),
            f"--basetemp={folder / 'bt'}", *args]  # fmt: skip


def bench_unused(work: Path, rounds: int) -> list[Figure]:
    """A suite that asks for no profile: the plugin loaded against the plugin left out."""
    folder = work / "unused"
    folder.mkdir()
    (folder / "test_plain.py").write_text(
        textwrap.dedent(SUITE.format(n=50, fixture="tmp_path", work=0.0))
    )
    # Anything the plugin makes goes under the bench's folder, not the user's default root.
    env = {**os.environ, "EDGEPROFILES_ROOT": str(folder / "root")}
    figures = []
    for name, mode in (("without xdist", ["-p", "no:xdist"]), ("under -n 2", ["-n", "2"])):
        sides = [
            _suite(_pytest(folder, *mode), folder, env),
            _suite(_pytest(folder, *mode, "-p", "no:edgeprofiles"), folder, env),
        ]
        # What a well-kept plugin of one module costs such a suite, measured the same way.
        neighbour = importlib.util.find_spec("pytest_timeout") is not None
        if neighbour:
            timeout = _pytest(folder, *mode, "-p", "no:edgeprofiles", keep=("timeout",))
            sides.append(_suite(timeout, folder, env))
        if rounds > 1:  # compile the test file and warm the page cache for every side
            for side in sides:
                side()
        loaded, left_out, *theirs = in_turn(sides, rounds)
        figures.append(
            Figure(
                f"50 tests that use no edge fixture, {name}",
                loaded,
                left_out,
                "the same with `-p no:edgeprofiles`",
                "<= 1.03x",
                loaded / left_out <= 1.03,
            )
        )
        if theirs:
            figures.append(
                Figure(
                    f"the same 50 tests with pytest-timeout loaded instead, {name}",
                    theirs[0],
                    left_out,
                    "the same with neither plugin",
                    "where the time goes",
                    None,
                )
            )
    # Where the difference goes: the plugin's import, which every such run pays (as Python
    # itself times it: whole processes differ by more than it on a shared machine).
    pytest_own = "import _pytest.config; _pytest.config.get_config()"  # pytest's own plugins
    code = f"{pytest_own}; import pytest_edgeprofiles.plugin"
    imports = []
    for _ in range(rounds):
        timed_import = [sys.executable, "-X", "importtime", "-c", code]
        out = subprocess.run(timed_import, env=measured_env(env), capture_output=True, text=True)
        line = next(x for x in out.stderr.splitlines() if x.endswith("pytest_edgeprofiles.plugin"))
        imports.append(int(line.split("|")[1]) / 1e6)
    figures.append(
        Figure(
            "importing the plugin, beside pytest's own (`-X importtime`)",
            statistics.median(imports),
            None,
            "",
            "where the time goes",
            None,
        )
    )
    return figures


#: What the by-hand floor of the -n 2 suite leaves out, one at a time: each one's share of it.
FLOOR_SHARES = (
    ("registry", "the registry slot"),
    ("record", "the owner record"),
    ("removal", "the removal (folders left, renamed aside)"),
)


def _then(side: Callable[[], float], tidy: Callable[[], object]) -> Callable[[], float]:
    """``side``, then ``tidy`` outside its time."""

    def measured() -> float:
        seconds = side()
        tidy()
        return seconds

    return measured


def bench_suites(work: Path, base: Path, rounds: int, quick: bool) -> list[Figure]:
    figures = []
    trivial = 40 if quick else 300
    cases = [  # name, tests, seconds a test, on a base clone, xdist, goal: ratio or +s a test
        ("40 tests of 0.25 s under -n 2 on a base clone", 8 if quick else 40, 0.25, True,
         ("-n", "2"), 1.1, None),
        (f"{trivial} trivial tests on `edge_profile` under -n 2", trivial, 0.0, False,
         ("-n", "2"), 1.3, None),
        (f"{trivial} trivial tests on `edge_profile` without xdist", trivial, 0.0, False,
         ("-p", "no:xdist"), None, 0.001),
    ]  # fmt: skip
    for name, n, work_s, with_base, mode, limit, per_test in cases:
        folder = work / f"suite{n}-{mode[-1]}"
        folder.mkdir()
        (folder / "conftest.py").write_text(BY_HAND)
        for test_file, fixture in (
            ("edge", "edge_profile"),
            ("tmp", "tmp_path"),
            ("hand", "by_hand"),
        ):
            (folder / f"test_{test_file}.py").write_text(
                textwrap.dedent(SUITE.format(n=n, fixture=fixture, work=work_s))
            )
        common = _pytest(folder, *mode)
        edge = [*common, "test_edge.py", f"--edge-profile-root={folder / 'root'}"]
        if with_base:
            edge.append(f"--edge-base-profile={base}")
        sides = [_suite(edge, folder), _suite([*common, "test_tmp.py"], folder)]
        if not with_base:
            sides.append(_suite([*common, "test_hand.py"], folder))
        shares = FLOOR_SHARES if limit is not None and not with_base else ()
        for left_out, _ in shares:
            hand = _suite(
                [*common, "test_hand.py"], folder, dict(os.environ, BY_HAND_WITHOUT=left_out)
            )
            sides.append(_then(hand, functools.partial(shutil.rmtree, folder / "by-hand")))
        ours, anchor, *floor = in_turn(sides, rounds)
        if per_test is None:
            goal, met = f"<= {limit}x", ours / anchor <= (limit or 0)
        else:
            extra = (ours - anchor) / n
            goal, met = (
                f"<= +{per_test * 1000:g} ms a test (+{extra * 1000:.2f} ms)",
                extra <= per_test,
            )
        figures.append(Figure(name, ours, anchor, "the same tests on `tmp_path`", goal, met))
        if floor:
            figures.append(
                Figure(
                    f"the same {n} tests on a profile's file operations by hand: the floor",
                    floor[0],
                    anchor,
                    "the same tests on `tmp_path`",
                    "where the time goes",
                    None,
                )
            )
        for (_, label), without in zip(shares, floor[1:], strict=True):
            figures.append(
                Figure(
                    f"the same by hand without {label}",
                    without,
                    anchor,
                    "the same tests on `tmp_path`",
                    "its share: the floor's ratio less this one",
                    None,
                )
            )
    return figures


#: The parts of the run, in order; ``--only`` picks some (the figures named in the docs come
#: from a whole run: parts run alone see a different machine).
PARTS = (
    "clone",
    "cleanup",
    "small",
    "floor",
    "listing",
    "registry",
    "unused",
    "suites",
    "browsers",
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small data, one round: a smoke test")
    parser.add_argument(
        "--only",
        type=lambda text: text.split(","),
        default=list(PARTS),
        metavar="PART[,PART]",
        help=f"run only these parts, of: {', '.join(PARTS)}",
    )
    args = parser.parse_args()
    unknown = sorted(set(args.only) - set(PARTS))
    if unknown:
        parser.error(f"--only: no part {', '.join(unknown)}; the parts are {', '.join(PARTS)}")
    import bench_browsers  # the browser figures, beside this script (it imports this one)

    rounds = 1 if args.quick else 5
    scale = 10 if args.quick else 1
    with tempfile.TemporaryDirectory(prefix="edgeprofiles-bench-") as tmp:
        work = Path(tmp)
        heavy = make_profile(
            work / "heavy", 2000 // scale, 12 * MB // scale, 8000 // scale, 48 * MB // scale
        )
        suite_base = make_profile(
            work / "suite", 300 // scale, 12 * MB // scale, 400 // scale, 40 * MB // scale
        )
        parts: dict[str, Callable[[], list[Figure]]] = {
            "clone": lambda: bench_clone(work, heavy, rounds),
            "cleanup": lambda: bench_cleanup_and_size(work, heavy, rounds),
            "small": lambda: bench_small_ops(work),
            "floor": lambda: bench_profile_floor(work, 100 if args.quick else 1000),
            "listing": lambda: bench_listing(work, 300 // scale, rounds),
            "registry": lambda: bench_registry(work, 1.0 if args.quick else 5.0),
            "unused": lambda: bench_unused(work, 1 if args.quick else 30),
            "suites": lambda: bench_suites(work, suite_base, 1 if args.quick else 5, args.quick),
            "browsers": lambda: bench_browsers.bench_browsers(
                work, 1 if args.quick else 3, args.quick
            ),
        }
        figures = [figure for part in PARTS if part in args.only for figure in parts[part]()]
    print("| figure | anchor | ours (ratio) | goal | met |")
    print("|---|---|---|---|---|")
    for figure in figures:
        print(figure.row())
    if args.quick:
        print("quick mode: small data, one round; the ratios are a smoke test, not the figures")


if __name__ == "__main__":
    main()
