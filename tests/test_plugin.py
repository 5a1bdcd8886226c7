"""The plugin as users run it: pytester runs with and without xdist."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import textwrap
from pathlib import Path

import pytest
from browser_support import start_process
from conftest import A_MOUNT, POSIX, SINGLETON_LOCK, linux_only, posix_only, run_in_a_mount

pytest_plugins = ["pytester"]

# Each inner test appends one JSON line to this file: a worker's stdout goes nowhere under xdist.
RECORDER = """
import json, os, time
from pathlib import Path

LOG = Path({log!r})
ROOT = Path({root!r})

def live_profiles():
    # Counted from the outside: owner records on disk that still hold a slot.
    count = 0
    for rec in ROOT.glob("*.owner"):
        try:
            data = json.loads(rec.read_text())
        except (OSError, ValueError):
            continue
        # Prepared clones (made ahead for the next test) hold no slot: no browser can use them.
        if not data.get("released") and not data.get("keep") and not data.get("prepared"):
            count += 1
    return count

def record(profile, **extra):
    entry = dict(
        worker=os.environ.get("PYTEST_XDIST_WORKER", "master"),
        profile=str(profile),
        live=live_profiles(),
        start=time.monotonic(),
        **extra,
    )
    # Real work of a browser test takes a while; this is the workload, not a synchronisation.
    time.sleep({work})
    entry["end"] = time.monotonic()
    with open(LOG, "a") as fh:
        fh.write(json.dumps(entry) + "\\n")
"""


def _records(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def _max_overlap(records: list[dict[str, object]]) -> int:
    events = sorted(
        [(float(r["start"]), 1) for r in records] + [(float(r["end"]), -1) for r in records]  # type: ignore[arg-type]
    )
    alive = peak = 0
    for _, step in events:
        alive += step
        peak = max(peak, alive)
    return peak


@pytest.fixture
def root(pytester: pytest.Pytester) -> Path:
    return pytester.path / "profiles"


def _leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name != ".runs") if root.exists() else []


def _kept(root: Path) -> list[Path]:
    """The profiles left under ``root``: what retention kept."""
    return [p for p in root.iterdir() if p.is_dir() and p.name != ".runs"]


def _write_recorder(pytester: pytest.Pytester, root: Path, work: float = 0.0) -> Path:
    log = pytester.path / "log.jsonl"
    pytester.makepyfile(recorder=RECORDER.format(log=str(log), root=str(root), work=work))
    return log


XDIST_MODES = [
    pytest.param(["-p", "no:xdist"], id="no-xdist"),
    pytest.param(["-n", "0"], id="n0"),
    pytest.param(["-n", "2"], id="n2"),
]


@pytest.mark.parametrize("mode", XDIST_MODES)
def test_every_test_gets_its_own_profile_and_nothing_stays(
    pytester: pytest.Pytester, root: Path, mode: list[str]
) -> None:
    log = _write_recorder(pytester, root)
    pytester.makepyfile(
        test_inner="""
        import os
        import pytest
        from recorder import record

        @pytest.mark.parametrize("i", range(6))
        def test_profile(edge_profile, i):
            assert edge_profile.is_absolute() and edge_profile.is_dir()
            if os.name == "posix":  # Windows has no mode bits: an ACL protects the folder
                assert oct(edge_profile.stat().st_mode & 0o777) == "0o700"
            assert not (edge_profile / "mine").exists()
            (edge_profile / "mine").write_text(str(i))
            record(edge_profile)
        """
    )
    result = pytester.runpytest_subprocess(*mode, f"--edge-profile-root={root}")
    result.assert_outcomes(passed=6)
    records = _records(log)
    assert len({r["profile"] for r in records}) == 6
    workers = {r["worker"] for r in records}
    assert workers <= ({"gw0", "gw1"} if mode == ["-n", "2"] else {"master"})
    assert all(Path(str(r["profile"])).name.startswith(f"{r['worker']}.") for r in records)
    assert _leftovers(root) == []
    assert not (root / ".runs").exists() or list((root / ".runs").iterdir()) == []
    result.stdout.fnmatch_lines(
        ["edgeprofiles: max 8 profiles, root *", "*= edgeprofiles =*", "6 profiles created*"]
    )


def test_cap_holds_across_four_workers(pytester: pytest.Pytester, root: Path) -> None:
    log = _write_recorder(pytester, root, work=0.3)
    pytester.makepyfile(
        test_inner="""
        import pytest
        from recorder import record

        @pytest.mark.parametrize("i", range(8))
        def test_profile(edge_profile, i):
            record(edge_profile)
        """
    )
    result = pytester.runpytest_subprocess(
        "-n", "4", f"--edge-profile-root={root}", "--edge-max-profiles=2"
    )
    result.assert_outcomes(passed=8)
    records = _records(log)
    assert len({r["worker"] for r in records}) >= 3, "the run should have used 4 workers"
    assert max(int(r["live"]) for r in records) <= 2  # type: ignore[call-overload]
    assert 1 <= _max_overlap(records) <= 2
    result.stdout.re_match_lines([r"8 profiles created, at most [12] alive at once.*"])
    assert _leftovers(root) == []


def test_a_slot_given_back_goes_with_the_next_tests_claim(
    pytester: pytest.Pytester, root: Path
) -> None:
    writes = pytester.path / "writes.txt"
    pytester.makeconftest(
        f"""
        import atexit
        from pytest_edgeprofiles._profiles import registry

        count = []
        real = registry._write

        def counted(*args):
            count.append(1)
            real(*args)

        registry._write = counted
        atexit.register(lambda: open({str(writes)!r}, "w").write(str(len(count))))
        """
    )
    pytester.makepyfile(
        test_inner="""
        import pytest

        @pytest.mark.parametrize("i", range(3))
        def test_profile(edge_profile, i):
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:xdist", f"--edge-profile-root={root}")
    result.assert_outcomes(passed=3)
    # The registry made (1), a claim a test (3), the last test's slot freed alone (1): a slot
    # freed by a write of its own, then claimed by another, would make 7.
    assert writes.read_text() == "5"
    assert _leftovers(root) == []


def test_a_slot_left_for_a_claim_that_never_came_is_freed_before_the_next_test(
    pytester: pytest.Pytester, root: Path
) -> None:
    pytester.makepyfile(
        test_inner=f"""
        import json
        from pathlib import Path
        import pytest

        def test_first(edge_profile):
            pass

        @pytest.mark.skipif(True, reason="skipped at setup: asks for a profile, claims none")
        def test_skipped(edge_profile):
            pass

        def test_after():
            registries = list(Path({str(root)!r}).glob(".runs/*/registry.json"))
            assert len(registries) == 1
            assert json.loads(registries[0].read_text())["entries"] == {{}}
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:xdist", f"--edge-profile-root={root}")
    result.assert_outcomes(passed=2, skipped=1)


def test_session_and_function_profiles_differ(pytester: pytest.Pytester, root: Path) -> None:
    pytester.makepyfile(
        test_inner="""
        seen = []
        def test_a(edge_profile, edge_session_profile):
            assert edge_profile != edge_session_profile
            seen.append(edge_session_profile)
        def test_b(edge_session_profile):
            assert seen == [edge_session_profile]
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:xdist", f"--edge-profile-root={root}")
    result.assert_outcomes(passed=2)
    assert _leftovers(root) == []


def _make_base(path: Path) -> Path:
    (path / "Default" / "Cache" / "Cache_Data").mkdir(parents=True)
    (path / "Local State").write_text('{"browser": {}}')
    (path / "Default" / "Preferences").write_text('{"profile": {"exit_type": "Crashed"}}')
    (path / "Default" / "Cookies").write_bytes(b"cookie-jar")
    (path / "Default" / "Cache" / "Cache_Data" / "f_000001").write_bytes(b"x" * 4096)
    if POSIX:  # a lock a POSIX browser left (a Windows one holds a lockfile, and no symlink)
        os.symlink("otherhost-1", path / "SingletonLock")
    return path


BASE_CHECK = """
import json
def test_clone(edge_profile):
    assert (edge_profile / "Default" / "Cookies").read_bytes() == b"cookie-jar"
    assert not (edge_profile / "Default" / "Cache").exists()
    assert not (edge_profile / "SingletonLock").exists()
    prefs = json.loads((edge_profile / "Default" / "Preferences").read_text())
    assert prefs["profile"]["exit_type"] == "Normal"
"""


def test_base_profile_from_the_command_line(pytester: pytest.Pytester, root: Path) -> None:
    base = _make_base(pytester.mkdir("base"))
    pytester.makepyfile(test_inner=BASE_CHECK)
    result = pytester.runpytest_subprocess(
        "-n", "2", f"--edge-profile-root={root}", f"--edge-base-profile={base}"
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"edgeprofiles: *base profile {base}*"])


def test_a_base_too_large_for_the_limit_fails_the_tests_that_need_it_naming_it(
    pytester: pytest.Pytester, root: Path
) -> None:
    # Checked when a test first needs the base, once for the run: a run that needs no
    # profile does not walk the base at all.
    base = _make_base(pytester.mkdir("base"))
    (base / "Default" / "IndexedDB").mkdir()
    (base / "Default" / "IndexedDB" / "big.ldb").write_bytes(b"d" * (2 * 1024 * 1024))
    # 40 MB of cache is left out of a clone: it does not count.
    (base / "Default" / "Cache" / "Cache_Data" / "huge").write_bytes(b"c" * (40 * 1024 * 1024))
    pytester.makepyfile(
        test_inner="""
        def test_x(edge_profile): pass
        def test_y(edge_profile): pass
        def test_plain(): pass
        """
    )
    args = (f"--edge-profile-root={root}", f"--edge-base-profile={base}")
    result = pytester.runpytest_subprocess("-n", "2", *args, "--edge-profile-size-limit=1")
    result.assert_outcomes(passed=1, errors=2)
    message = (
        f"--edge-profile-size-limit: a clone of the base profile {base} takes 2.0 MiB "
        "(caches left out), over the limit of 1 MiB; raise the limit *"
    )
    result.stdout.fnmatch_lines([message, message])  # once for each test that needs it
    assert "During handling" not in result.stdout.str()
    assert _leftovers(root) == [] and list((root / ".runs").iterdir()) == []
    result = pytester.runpytest_subprocess("-n", "2", *args, "--edge-profile-size-limit=3")
    result.assert_outcomes(passed=3)


def test_base_profile_from_the_ini_file_is_relative_to_it(
    pytester: pytest.Pytester, root: Path
) -> None:
    _make_base(pytester.mkdir("conf") / "base")
    pytester.path.joinpath("conf", "pytest.ini").write_text(
        f"[pytest]\nedge_base_profile = base\nedge_profile_root = {root}\n"
    )
    pytester.makepyfile(test_inner=BASE_CHECK)
    result = pytester.runpytest_subprocess("-c", "conf/pytest.ini", "--rootdir", str(pytester.path))
    result.assert_outcomes(passed=1)


RETENTION_TESTS = """
def test_passes(edge_profile):
    (edge_profile / "passed").write_text("")
def test_fails(edge_profile):
    (edge_profile / "failed").write_text("")
    assert False
"""


@pytest.mark.parametrize(
    ("policy", "kept"),
    [("all", ["failed", "passed"]), ("failed", ["failed"]), ("none", [])],
)
def test_retention_policies(
    pytester: pytest.Pytester, root: Path, policy: str, kept: list[str]
) -> None:
    pytester.makepyfile(test_inner=RETENTION_TESTS)
    result = pytester.runpytest_subprocess(
        "-p", "no:xdist", f"--edge-profile-root={root}", f"--edge-profile-retention={policy}"
    )
    result.assert_outcomes(passed=1, failed=1)
    profiles = _kept(root)
    markers = [name for p in profiles for name in os.listdir(p) if name in ("passed", "failed")]
    assert sorted(markers) == kept
    for profile in profiles:
        result.stdout.fnmatch_lines([f"kept {profile} (*)"])


def test_retention_judges_a_profile_asked_for_on_the_fly_by_its_test(
    pytester: pytest.Pytester, root: Path
) -> None:
    # ``getfixturevalue`` adds no fixture name to the test: the outcome must count all the same.
    pytester.makepyfile(
        test_inner=RETENTION_TESTS.replace(
            "(edge_profile):",
            "(request):\n    edge_profile = request.getfixturevalue('edge_profile')",
        )
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:xdist", f"--edge-profile-root={root}", "--edge-profile-retention=failed"
    )
    result.assert_outcomes(passed=1, failed=1)
    profiles = _kept(root)
    assert [sorted(os.listdir(p)) for p in profiles] == [["Default", "failed"]]


def test_a_session_profile_is_kept_when_a_test_using_it_fails(
    pytester: pytest.Pytester, root: Path
) -> None:
    pytester.makepyfile(
        test_inner="""
        def test_ok(edge_session_profile):
            (edge_session_profile / "marker").write_text("")
        def test_bad(edge_session_profile):
            assert False
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:xdist", f"--edge-profile-root={root}")
    result.assert_outcomes(passed=1, failed=1)
    kept = _kept(root)
    assert [p.name.split("-")[0] for p in kept] == ["master.session"]
    assert (kept[0] / "marker").exists()


def test_a_session_profile_asked_for_on_the_fly_is_kept_when_its_test_fails(
    pytester: pytest.Pytester, root: Path
) -> None:
    pytester.makepyfile(
        test_inner="""
        def test_bad(request):
            profile = request.getfixturevalue("edge_session_profile")
            (profile / "marker").write_text("")
            assert False
        """
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:xdist", f"--edge-profile-root={root}", "--edge-profile-retention=failed"
    )  # fmt: skip
    result.assert_outcomes(failed=1)
    kept = _kept(root)
    assert [p.name.split("-")[0] for p in kept] == ["master.session"]


@pytest.mark.skipif(pytest.version_tuple < (9,), reason="subtests are built in from pytest 9")
def test_a_test_whose_subtest_failed_keeps_its_profile_as_failed(
    pytester: pytest.Pytester, root: Path
) -> None:
    # pytest reports the failed subtest, then the test's own passing call: the test failed.
    pytester.makepyfile(
        test_inner="""
        def test_sub(edge_profile, subtests):
            (edge_profile / "marker").write_text("")
            with subtests.test("bad"):
                assert False
        """
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:xdist", f"--edge-profile-root={root}", "--edge-profile-retention=failed"
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    kept = _kept(root)
    assert len(kept) == 1 and (kept[0] / "marker").exists()


def test_kept_profiles_of_the_last_runs_only_stay(pytester: pytest.Pytester, root: Path) -> None:
    pytester.makepyfile(test_inner="def test_bad(edge_profile):\n    assert False\n")
    for _ in range(3):
        pytester.runpytest_subprocess(
            "-p", "no:xdist", f"--edge-profile-root={root}",
            "-o", "edge_profile_retention_count=2",
        ).assert_outcomes(failed=1)  # fmt: skip
    kept = _kept(root)
    assert len(kept) == 2


def test_waiting_for_a_slot_times_out_with_who_holds_it(
    pytester: pytest.Pytester, root: Path
) -> None:
    # Another process holds the only slot of the run's registry while the test waits for it.
    pytester.makepyfile(
        test_inner="""
        import subprocess, sys

        HOLD = (
            "import sys; from pytest_edgeprofiles import ProfileManager;"
            "m = ProfileManager(max_profiles=1, root=sys.argv[1], registry_path=sys.argv[2]);"
            "m.create_profile('holder'); print('held', flush=True); sys.stdin.read()"
        )

        def test_waits(request, edge_profile_manager):
            m = edge_profile_manager
            args = [sys.executable, "-c", HOLD, str(m.root), str(m.registry_path)]
            holder = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            try:
                assert holder.stdout.readline() == b"held\\n"
                request.getfixturevalue("edge_profile")
            finally:
                holder.stdin.close()
                holder.wait()
        """
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:xdist", f"--edge-profile-root={root}",
        "--edge-max-profiles=1", "--edge-profile-wait=0.2",
    )  # fmt: skip
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*no free profile slot after waiting 0.2 s: Profile limit exceeded: 1/1; held by "
            "holder (pid *, since *). Raise the cap with --edge-max-profiles*"
        ]
    )


def test_a_test_holding_every_slot_itself_fails_at_once_naming_its_fixtures(
    pytester: pytest.Pytester, root: Path
) -> None:
    # No slot this process holds for this very test can come free while it waits: waiting
    # the full --edge-profile-wait would only fail later.
    pytester.makepyfile(
        test_inner="""
        def test_both(edge_session_profile, edge_profile):
            pass
        """
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:xdist", f"--edge-profile-root={root}",
        "--edge-max-profiles=1", "--edge-profile-wait=300", timeout=120,
    )  # fmt: skip
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*edgeprofiles: this test needs more profiles (edge_profile, edge_session_profile) "
            "than --edge-max-profiles 1 allows: this process holds every slot for this test, so "
            "none can come free while it waits. Raise the cap with --edge-max-profiles*"
        ]
    )
    # The session profile was used by a test that erred, so retention "failed" keeps it.
    assert [name.split("-")[0] for name in _leftovers(root)] == ["master.session"] * 2


@posix_only("SIGKILL kills the worker")
def test_a_worker_killed_holding_the_only_slot_does_not_leak_it(
    pytester: pytest.Pytester, root: Path
) -> None:
    log = _write_recorder(pytester, root)
    pytester.makepyfile(
        test_inner="""
        import os, signal
        import pytest
        from recorder import record

        def test_killed(edge_profile):
            os.kill(os.getpid(), signal.SIGKILL)

        @pytest.mark.parametrize("i", range(4))
        def test_after(edge_profile, i):
            record(edge_profile)
        """
    )
    result = pytester.runpytest_subprocess(
        "-n", "2", f"--edge-profile-root={root}", "--edge-max-profiles=1",
        "--edge-profile-wait=60",
    )  # fmt: skip
    result.assert_outcomes(passed=4, failed=1)
    assert len(_records(log)) == 4
    assert _leftovers(root) == [], "nothing of the killed worker stays"
    # Its profile went when its slot was reclaimed; a clone it may have prepared for its next
    # test (holding no slot) goes in the sweep at the end of the run.
    result.stdout.re_match_lines([r".* (0 leftovers|1 leftover) swept"])


@posix_only("SIGKILL kills the run")
def test_leftovers_of_a_killed_run_are_swept_by_the_next(
    pytester: pytest.Pytester, root: Path
) -> None:
    pytester.makepyfile(
        test_killed="""
        import os, signal
        def test_die(edge_profile):
            (edge_profile / "data").write_text("x")
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:xdist", f"--edge-profile-root={root}")
    assert result.ret == -signal.SIGKILL
    assert len(_kept(root)) == 1
    assert len(list((root / ".runs").iterdir())) == 2, "the killed run's folder and its record"
    pytester.path.joinpath("test_killed.py").unlink()
    pytester.makepyfile(test_ok="def test_ok(edge_profile): pass")
    result = pytester.runpytest_subprocess("-p", "no:xdist", f"--edge-profile-root={root}")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*1 leftover swept*"])
    assert _leftovers(root) == []
    assert list((root / ".runs").iterdir()) == []


def test_live_profiles_of_another_run_are_never_swept(
    pytester: pytest.Pytester, root: Path
) -> None:
    from pytest_edgeprofiles import ProfileManager

    other = ProfileManager(root=root)
    alive = Path(other.create_profile("other"))
    pytester.makepyfile(test_ok="def test_ok(edge_profile): pass")
    result = pytester.runpytest_subprocess("-n", "2", f"--edge-profile-root={root}")
    result.assert_outcomes(passed=1)
    assert alive.is_dir()
    other.cleanup_all_profiles()


def test_inner_run_without_profiles_says_so_in_the_header_only(
    pytester: pytest.Pytester, root: Path
) -> None:
    pytester.makepyfile(test_plain="def test_plain(): pass")
    result = pytester.runpytest_subprocess("-p", "no:xdist", f"--edge-profile-root={root}")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["edgeprofiles: max 8 profiles, root *"])
    assert "profiles created" not in result.stdout.str()


def test_fixtures_are_listed(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("-p", "no:xdist", "--fixtures")
    result.stdout.fnmatch_lines(
        [
            "edge_profile_manager [[]session scope[]]*",
            "edge_profile -- *",
            "*A fresh profile*",
            "edge_session_profile [[]session scope[]]*",
        ]
    )


def test_plugin_module_is_registered_through_the_entry_point(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("-p", "no:xdist", "--trace-config", "--co")
    result.stdout.fnmatch_lines(["*pytest_edgeprofiles.plugin*"])


def test_worker_ids_are_keys_of_the_profiles(pytester: pytest.Pytester, root: Path) -> None:
    # One key per profile: <worker>.<n> for each test's, <worker>.session for the session's.
    pytester.makepyfile(
        test_inner=textwrap.dedent(
            """
            import os, re
            def test_name(edge_profile, edge_session_profile):
                worker = os.environ.get("PYTEST_XDIST_WORKER", "master")
                assert re.fullmatch(worker + r"[.][0-9]+-[0-9a-f]{12}", edge_profile.name)
                assert edge_session_profile.name.startswith(worker + ".session-")
            """
        )
    )
    pytester.runpytest_subprocess("-n", "2", f"--edge-profile-root={root}").assert_outcomes(
        passed=1
    )


def test_a_profile_that_cannot_be_valid_is_never_handed_out(
    pytester: pytest.Pytester, root: Path
) -> None:
    base = _make_base(pytester.mkdir("base"))
    (base / "Local State").write_text("{not json")
    pytester.makepyfile(test_inner="def test_x(edge_profile):\n    raise AssertionError('ran')\n")
    result = pytester.runpytest_subprocess(
        "-p", "no:xdist", f"--edge-profile-root={root}", f"--edge-base-profile={base}"
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*edgeprofiles: could not make a valid profile for master*"])
    assert "ran" not in result.stdout.str()
    assert _leftovers(root) == []


@posix_only("the browser's unix socket under TMPDIR, whose path length is limited")
def test_the_header_warns_about_a_temp_dir_too_deep_for_browser_sockets(
    pytester: pytest.Pytester, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_edgeprofiles._chromium.userdata import SOCKET_TMPDIR_VAR as variable

    assert variable is not None
    deep = pytester.mkdir("t" * 90)
    monkeypatch.setenv(variable, str(deep))
    result = pytester.runpytest_subprocess("-p", "no:xdist", f"--edge-profile-root={root}")
    result.stdout.fnmatch_lines(
        [f"edgeprofiles: warning: {variable} * is too deep for a browser's socket*"]
    )


def test_every_clone_of_a_run_is_made_from_one_snapshot_of_the_base(
    pytester: pytest.Pytester, root: Path
) -> None:
    base = _make_base(pytester.mkdir("base"))
    pytester.makepyfile(
        test_inner=f"""
        from pathlib import Path
        BASE = Path({str(base)!r})

        def test_first(edge_profile):
            (BASE / "Default" / "Cookies").write_bytes(b"changed by the user's browser")

        def test_second(edge_profile):
            assert (edge_profile / "Default" / "Cookies").read_bytes() == b"cookie-jar"
        """
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:xdist", f"--edge-profile-root={root}", f"--edge-base-profile={base}"
    )
    result.assert_outcomes(passed=2)
    assert list((root / ".runs").iterdir()) == [], "the snapshot goes with the run"


@pytest.mark.parametrize("collect_only", [True, False], ids=["--co", "run"])
def test_the_base_is_copied_only_when_tests_run(
    pytester: pytest.Pytester, root: Path, collect_only: bool
) -> None:
    # Listing the tests of a suite with a large base must not copy it.
    base = _make_base(pytester.mkdir("base"))
    copies = pytester.path / "copies.log"
    pytester.makeconftest(
        f"""
        from pytest_edgeprofiles._profiles import runs

        real = runs.RunFolder.make_clone_source

        def spy(self, base, *args):
            with open({str(copies)!r}, "a") as log:
                log.write(str(base) + "\\n")
            return real(self, base, *args)

        runs.RunFolder.make_clone_source = spy
        """
    )
    pytester.makepyfile(test_inner="def test_x(edge_profile): pass")
    args = ["-p", "no:xdist", f"--edge-profile-root={root}", f"--edge-base-profile={base}"]
    result = pytester.runpytest_subprocess(*args, *(["--co"] if collect_only else []))
    assert result.ret == 0
    copied = set(copies.read_text().splitlines()) if copies.exists() else set()
    assert copied == (set() if collect_only else {str(base)})


def test_what_setup_errors_skips_and_xfails_count_as(pytester: pytest.Pytester, root: Path) -> None:
    pytester.makepyfile(
        test_inner="""
        import pytest

        @pytest.fixture
        def broken(edge_profile):
            (edge_profile / "setup-error").touch()
            raise RuntimeError("another fixture broke after the profile was made")

        @pytest.fixture
        def skipper(edge_profile):
            (edge_profile / "setup-skip").touch()
            pytest.skip("not today")

        def test_setup_error(broken):
            pass

        def test_setup_skip(skipper):
            pass

        @pytest.mark.xfail
        def test_expected_failure(edge_profile):
            (edge_profile / "xfail").touch()
            assert False
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:xdist", f"--edge-profile-root={root}")
    result.assert_outcomes(errors=1, skipped=1, xfailed=1)
    profiles = _kept(root)
    markers = [
        n for p in profiles for n in os.listdir(p) if n in ("setup-error", "setup-skip", "xfail")
    ]
    assert markers == ["setup-error"], "only the setup error counts as a failure"


@pytest.mark.parametrize("workers", [["-p", "no:xdist"], ["-n", "2"]], ids=["no-xdist", "n2"])
def test_profiles_in_the_test_folder_are_never_collected(
    pytester: pytest.Pytester, root: Path, workers: list[str]
) -> None:
    # The root lies in the test folder; a profile in it (kept from an earlier run, or a
    # clone of a base that holds a .py file) must not be taken for tests.
    kept = root / "gw0-0123456789ab" / "Default"
    kept.mkdir(parents=True)
    (kept / "test_in_a_profile.py").write_text("def test_not_mine(): assert False\n")
    downloads = pytester.path / "downloads" / "gw1-0123456789ab"
    downloads.mkdir(parents=True)
    (downloads / "test_downloaded.py").write_text("def test_not_mine_either(): assert False\n")
    pytester.makepyfile(test_real="def test_real(edge_profile): pass")
    result = pytester.runpytest_subprocess(
        *workers,
        f"--edge-profile-root={root}",
        f"--edge-download-root={pytester.path / 'downloads'}",
    )
    result.assert_outcomes(passed=1)
    assert "not_mine" not in result.stdout.str()


@posix_only(SINGLETON_LOCK)
def test_a_browser_running_on_the_base_is_named_at_start(
    pytester: pytest.Pytester, root: Path
) -> None:
    base = _make_base(pytester.mkdir("base"))
    (base / "SingletonLock").unlink()
    # A browser of this host on the base: here a sleeper naming it as its user data dir.
    sleeper = start_process(
        [sys.executable, "-c", "import time; time.sleep(60)", f"--user-data-dir={base}"]
    )
    try:
        os.symlink(f"{socket.gethostname()}-{sleeper.pid}", base / "SingletonLock")
        pytester.makepyfile(test_inner=BASE_CHECK)
        result = pytester.runpytest_subprocess(
            "-p", "no:xdist", f"--edge-profile-root={root}", f"--edge-base-profile={base}"
        )
    finally:
        sleeper.kill()
        sleeper.wait()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*= edgeprofiles =*",
            f"warning: a browser (pid {sleeper.pid}) is running on the base profile {base};*",
        ]
    )


@linux_only(A_MOUNT)
def test_a_snapshot_that_does_not_fit_under_the_root_goes_to_the_fallback_root(
    pytester: pytest.Pytester, sandbox_tempdir: Path
) -> None:
    # The root's disk (1 MB) cannot hold the run's snapshot of a 2 MB base: the snapshot,
    # like each clone, goes to the fallback root (the default root, in the sandboxed temp).
    base = _make_base(pytester.mkdir("base"))
    (base / "Default" / "IndexedDB").mkdir()
    (base / "Default" / "IndexedDB" / "data").write_bytes(os.urandom(2 * 1024 * 1024))
    pytester.makepyfile(test_inner=BASE_CHECK)
    result = run_in_a_mount(
        pytester, "size=1m", "-p", "no:cacheprovider", "-n", "2",
        "--edge-profile-root={mnt}/profiles", f"--edge-base-profile={base}",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    assert "cannot copy the base profile" not in result.stdout
    spare_runs = list(sandbox_tempdir.glob("edgeprofiles-of-*/.runs/*"))
    assert spare_runs == [], "the fallback root's run folder went with the run"


# -- pay only when used -------------------------------------------------------------------

#: A stand-in browser that notes every run of it: nothing may start it unasked.
FAKE_BROWSER = """#!/bin/sh
echo "$@" >> "$(dirname "$0")/browser-runs.log"
echo "Microsoft Edge 131.0.2903.70"
"""
#: Writes, at the end of each process, which heavy modules it imported (the per-test hooks'
#: too: a run whose tests ask for no edge fixture must not pay them on every test).
MODULES_CONFTEST = """
import json, os, sys
def pytest_sessionfinish(session):
    heavy = ("psutil", "filelock", "sqlite3", "pytest_edgeprofiles.profile_manager",
             "pytest_edgeprofiles.plugin._test_hooks")
    with open(os.path.join(os.path.dirname(__file__), f"modules-{os.getpid()}.json"), "w") as f:
        json.dump([m for m in heavy if m in sys.modules], f)
"""
#: A base-profile hook that notes each call in a file, then makes a base or fails.
BASE_HOOK_CONFTEST = """
import os
from pathlib import Path
def pytest_edgeprofiles_base_profile(config, browser, folder):
    with open(Path(__file__).parent / "hook-calls.log", "a") as f:
        f.write(f"{os.getpid()}\\n")
    if os.environ.get("HOOK_FAILS"):
        raise RuntimeError("cannot log in")
    (folder / "Default").mkdir()
    (folder / "Local State").write_text("{}")
    (folder / "Default" / "Cookies").write_text("logged in")
    return folder
"""


def _fake_browser(pytester: pytest.Pytester) -> Path:
    script = pytester.path / "fake-edge"
    script.write_text(FAKE_BROWSER)
    script.chmod(0o755)
    return script


@pytest.mark.parametrize("workers", [["-p", "no:xdist"], ["-n", "2"]], ids=["no-xdist", "n2"])
def test_a_run_without_edge_fixtures_makes_nothing_and_starts_nothing(
    pytester: pytest.Pytester, root: Path, sandbox_tempdir: Path, workers: list[str]
) -> None:
    browser = _fake_browser(pytester)
    pytester.makeconftest(MODULES_CONFTEST)
    pytester.makepyfile(test_plain="def test_a(): pass\ndef test_b(): pass")
    result = pytester.runpytest_subprocess(
        *workers, f"--edge-profile-root={root}", f"--edge-browser={browser}"
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([f"edgeprofiles: max 8 profiles, root {root}, *"])
    assert "= edgeprofiles =" not in result.stdout.str(), "nothing to report"
    assert not root.exists(), "no root, run folder, registry or owner record"
    assert list(sandbox_tempdir.glob("edgeprofiles-*")) == [], "nor a default root"
    assert not (pytester.path / "browser-runs.log").exists(), "the browser was never started"
    reports = list(pytester.path.glob("modules-*.json"))
    assert len(reports) == (3 if workers[0] == "-n" else 1)
    assert all(json.loads(r.read_text()) == [] for r in reports), "no import it can defer"


@pytest.mark.parametrize(
    "args",
    [["--collect-only", "-n", "2"], ["--collect-only", "-p", "no:xdist"], ["--fixtures"],
     ["--markers"]],
    ids=["collect-only-n2", "collect-only", "fixtures", "markers"],
)  # fmt: skip
def test_listing_the_tests_never_calls_the_base_hook_nor_makes_anything(
    pytester: pytest.Pytester, root: Path, args: list[str]
) -> None:
    browser = _fake_browser(pytester)
    pytester.makeconftest(BASE_HOOK_CONFTEST)
    pytester.makepyfile(test_inner="def test_x(edge_profile, edge_browser): pass")
    result = pytester.runpytest_subprocess(
        *args, f"--edge-profile-root={root}", f"--edge-browser={browser}"
    )
    assert result.ret == pytest.ExitCode.OK
    assert not (pytester.path / "hook-calls.log").exists(), "the base hook was called"
    assert not (pytester.path / "browser-runs.log").exists(), "the browser was started"
    assert not root.exists()


def test_the_base_hook_runs_once_for_the_whole_run(pytester: pytest.Pytester, root: Path) -> None:
    pytester.makeconftest(BASE_HOOK_CONFTEST)
    pytester.makepyfile(
        test_inner="""
        import pytest
        @pytest.mark.parametrize("n", range(6))
        def test_logged_in(edge_profile, n):
            assert (edge_profile / "Default" / "Cookies").read_text() == "logged in"
        def test_plain(): pass
        """
    )
    result = pytester.runpytest_subprocess("-n", "2", f"--edge-profile-root={root}")
    result.assert_outcomes(passed=7)
    result.stdout.fnmatch_lines(
        ["edgeprofiles: * base profile from the pytest_edgeprofiles_base_profile hook, *"]
    )
    calls = (pytester.path / "hook-calls.log").read_text().split()
    assert len(calls) == 1, f"called in {calls}"


def test_a_failing_base_hook_fails_each_test_that_needs_the_base_and_is_called_once(
    pytester: pytest.Pytester, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_FAILS", "1")
    pytester.makeconftest(BASE_HOOK_CONFTEST)
    pytester.makepyfile(
        test_inner="""
        import pytest
        @pytest.mark.parametrize("n", range(4))
        def test_needs_base(edge_profile, n): pass
        def test_plain(): pass
        """
    )
    result = pytester.runpytest_subprocess("-n", "2", f"--edge-profile-root={root}")
    result.assert_outcomes(passed=1, errors=4)
    assert len((pytester.path / "hook-calls.log").read_text().split()) == 1
    message = (
        "edgeprofiles: the pytest_edgeprofiles_base_profile hook failed (RuntimeError: cannot "
        "log in); every test that needs a profile fails with it"
    )
    result.stdout.fnmatch_lines([message] * 4)
    assert "INTERNALERROR" not in result.stdout.str()


def test_native_toml_config_takes_typed_values(pytester: pytest.Pytester, root: Path) -> None:
    if int(pytest.__version__.split(".")[0]) < 9:
        pytest.skip("[tool.pytest] is pytest 9's native TOML configuration")
    pytester.makepyprojecttoml(
        f"""
        [tool.pytest]
        edge_max_profiles = 1
        edge_profile_wait = 1.5
        edge_headed = true
        edge_profile_retention_count = 0
        edge_profile_root = "{root}"
        """
    )
    pytester.makepyfile(
        test_inner="""
        def test_waits(edge_session_profile, request):
            request.getfixturevalue("edge_profile")  # a second slot, at a cap of 1
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:xdist")
    result.assert_outcomes(failed=1)
    assert "During handling" not in result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            f"edgeprofiles: max 1 profiles, root {root}, *",
            "*needs more profiles (edge_session_profile) than --edge-max-profiles 1 allows*",
        ]
    )


def test_native_toml_config_of_the_wrong_type_is_a_usage_error(pytester: pytest.Pytester) -> None:
    if int(pytest.__version__.split(".")[0]) < 9:
        pytest.skip("[tool.pytest] is pytest 9's native TOML configuration")
    pytester.makepyprojecttoml('[tool.pytest]\nedge_max_profiles = "lots"\n')
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest_subprocess("-p", "no:xdist")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --edge-max-profiles: invalid value 'lots' in *pyproject.toml (edge_max_profiles): "
         "expected a whole number from 1 to 16"]
    )  # fmt: skip


def test_quiet_runs_say_nothing_unless_something_is_worth_saying(
    pytester: pytest.Pytester, root: Path
) -> None:
    pytester.makepyfile(test_ok="def test_ok(edge_profile): pass")
    quiet = pytester.runpytest_subprocess("-q", "-p", "no:xdist", f"--edge-profile-root={root}")
    quiet.assert_outcomes(passed=1)
    assert "edgeprofiles" not in quiet.stdout.str()
    loud = pytester.runpytest_subprocess("-p", "no:xdist", f"--edge-profile-root={root}")
    loud.stdout.fnmatch_lines(
        [
            "*= edgeprofiles =*",
            "1 profile created, at most 1 alive at once (cap 8), 0 leftovers swept",
        ]
    )
    pytester.makepyfile(test_ok="def test_ok(edge_profile): assert False")
    kept = pytester.runpytest_subprocess("-q", "-p", "no:xdist", f"--edge-profile-root={root}")
    kept.stdout.fnmatch_lines(["*= edgeprofiles =*", "kept * (test_ok.py::test_ok)"])


@pytest.mark.parametrize(
    ("how", "outcome"),
    [([], "skipped"), (["--edge-require-browser"], "errors"), (["-o", "edge_require_browser=true"], "errors")],
    ids=["skip", "option", "ini"],
)  # fmt: skip
def test_a_missing_browser_skips_unless_one_is_required(
    pytester: pytest.Pytester,
    root: Path,
    monkeypatch: pytest.MonkeyPatch,
    how: list[str],
    outcome: str,
) -> None:
    monkeypatch.delenv("EDGEPROFILES_REQUIRE_BROWSER", raising=False)
    empty = pytester.mkdir("empty-path")
    monkeypatch.setenv("PATH", f"{empty}{os.pathsep}{Path(sys.executable).parent}")
    # Nor at the standard install paths, where CI's images put Edge.
    pytester.makeconftest(
        "from pytest_edgeprofiles._chromium import installs\ninstalls._install_paths = lambda kind: []\n"
    )
    pytester.makepyfile("def test_x(edge_browser): pass")
    result = pytester.runpytest_subprocess("-p", "no:xdist", f"--edge-profile-root={root}", *how)
    result.assert_outcomes(**{outcome: 1})
    if outcome == "errors":
        result.stdout.fnmatch_lines(
            [
                "*no Edge, Chrome or Chromium found*(--edge-require-browser, EDGEPROFILES_REQUIRE_BROWSER)"
            ]
        )


def test_skipped_tests_on_edge_fixtures_make_nothing(pytester: pytest.Pytester, root: Path) -> None:
    # They ask for a profile, but never run: nothing is readied for them either.
    pytester.makepyfile(
        test_inner="""
        import pytest
        def test_plain(): pass
        @pytest.mark.skip(reason="not on this platform")
        def test_edge(edge_profile): pass
        def test_plain_again(): pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:xdist", f"--edge-profile-root={root}")
    result.assert_outcomes(passed=2, skipped=1)
    assert not root.exists()


@pytest.mark.parametrize("xdist", [["-p", "no:xdist"], ["-n", "2"]])
def test_a_rerun_keeps_what_the_last_try_asks_for(
    pytester: pytest.Pytester, root: Path, xdist: list[str]
) -> None:
    mark = pytester.path / "failed-once"
    pytester.makepyfile(
        f"""
        import pathlib

        def test_flaky(edge_profile):
            mark = pathlib.Path({str(mark)!r})
            if not mark.exists():
                mark.write_text("")
                assert False, "the first try fails"

        def test_broken(edge_profile):
            assert False
        """
    )
    result = pytester.runpytest_subprocess(*xdist, "--reruns=1", f"--edge-profile-root={root}")
    assert result.parseoutcomes() == {"passed": 1, "failed": 1, "rerun": 2}
    kept = [line for line in result.outlines if line.startswith("kept ")]
    assert len(kept) == 1 and kept[0].endswith(
        "(test_a_rerun_keeps_what_the_last_try_asks_for.py::test_broken)"
    )
    result.stdout.fnmatch_lines_random(
        ["rerun *::test_flaky: the profile of its failed try went",
         "rerun *::test_broken: the profile of its failed try went"]
    )  # fmt: skip
    profiles = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert profiles == [kept[0].split()[1].rsplit("/", 1)[1]], "only the last failed try's"


@pytest.mark.parametrize("switch", ["--headed", "--edge-headed"])
def test_one_switch_shows_the_browser_for_every_launch_fixture(
    pytester: pytest.Pytester, root: Path, switch: str
) -> None:
    # pytest-playwright's --headed is ours too: a browser the test starts itself from our
    # launch fixtures gets a window, as edge_driver's and edge_page's do.
    pytester.makepyfile(
        test_inner="""
        def test_args(edge_launch_args, edge_selenium_options, edge_playwright_kwargs):
            assert not [a for a in edge_launch_args if a.startswith("--headless")]
            assert not [a for a in edge_selenium_options.arguments if a.startswith("--headless")]
            assert edge_playwright_kwargs["headless"] is False
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:xdist", switch, f"--edge-profile-root={root}")
    result.assert_outcomes(passed=1)
