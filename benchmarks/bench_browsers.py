"""The browser figures of bench.py: whole suites on a real browser, ours against the usual way.

Run through bench.py, which prints them with the others.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import statistics
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench import Figure, _pytest, _suite, alternate, measured_env, others

from pytest_edgeprofiles._browser import launch

BROWSER_SITE = b'<!doctype html><title>bench</title><p id="greeting">hello</p>'

BROWSER_TESTS = {
    "test_driver.py": """
        import os, pytest

        @pytest.mark.parametrize("i", range({n}))
        def test_x(edge_driver, i):
            edge_driver.get(os.environ["BENCH_SITE"])
            assert edge_driver.find_element("id", "greeting").text == "hello"
    """,
    # What a Selenium user writes without our session fixtures: a cold chromedriver launch.
    "test_by_hand.py": """
        import os, shutil, pytest
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
        from pytest_edgeprofiles._browser import launch

        @pytest.mark.parametrize("i", range({n}))
        def test_x(edge_profile, edge_browser, i):
            options = Options()
            options.binary_location = edge_browser.path
            for arg in launch.browser_args(edge_profile, edge_browser, extra=launch.QUIET_FLAGS):
                options.add_argument(arg)
            service = Service(shutil.which("chromedriver"), env=launch.browser_env())
            driver = webdriver.Chrome(options=options, service=service)
            try:
                driver.get(os.environ["BENCH_SITE"])
                assert driver.find_element("id", "greeting").text == "hello"
            finally:
                driver.quit()
    """,
    # Where an edge_driver test's time goes: our browser's start and stop alone (the floor),
    # then with chromedriver attached and nothing done.
    "test_floor.py": """
        import pytest

        @pytest.mark.parametrize("i", range({n}))
        def test_x(edge_browser_session, i):
            assert edge_browser_session.has_page()
    """,
    "test_attached.py": """
        import pytest

        @pytest.mark.parametrize("i", range({n}))
        def test_x(edge_driver, i):
            pass
    """,
    # Tests that work with their browser a while: the next one's starts meanwhile.
    "test_held.py": """
        import os, time, pytest

        @pytest.mark.parametrize("i", range({n}))
        def test_x(edge_driver, i):
            edge_driver.get(os.environ["BENCH_SITE"])
            time.sleep(1)
    """,
    "test_page.py": """
        import os, pytest

        @pytest.mark.parametrize("i", range({n}))
        def test_x(edge_page, i):
            edge_page.goto(os.environ["BENCH_SITE"])
            assert edge_page.inner_text("#greeting") == "hello"
    """,
    # The same tests failing, for the cost of what their browser showed (a plugin that
    # makes the run's exit status 0: the benchmark runs suites that must pass).
    "test_driver_fails.py": """
        import os, pytest

        @pytest.mark.parametrize("i", range({n}))
        def test_x(edge_driver, i):
            edge_driver.get(os.environ["BENCH_SITE"])
            assert edge_driver.find_element("id", "greeting").text == "goodbye"
    """,
    "zero_exit.py": """
        def pytest_sessionfinish(session):
            session.exitstatus = 0
    """,
    # pytest-playwright's page: a new context per test in one browser per worker, no profile.
    "test_their_page.py": """
        import os, pytest

        @pytest.fixture(scope="session")
        def browser_type_launch_args():
            return {{"executable_path": os.environ["BENCH_BROWSER"], "args": ["--no-sandbox"]}}

        @pytest.mark.parametrize("i", range({n}))
        def test_x(page, i):
            page.goto(os.environ["BENCH_SITE"])
            assert page.inner_text("#greeting") == "hello"
    """,
}


class _BenchSite(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(BROWSER_SITE)))
        self.end_headers()
        # A browser may give up on a connection it opened ahead (a preconnect).
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(BROWSER_SITE)

    def log_message(self, *args: object) -> None:
        pass


def bench_browsers(work: Path, rounds: int, quick: bool) -> list[Figure]:
    """Suites of 24 tests on a real browser, under -n 2, against the usual way, and with
    browsers started ahead against started by their test."""
    from pytest_edgeprofiles._chromium.installs import find_browser

    browser = find_browser()
    if browser is None:
        print("no Edge, Chrome or Chromium found: the browser figures are left out")
        return []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BenchSite)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    folder = work / "browsers"
    folder.mkdir()
    n = 4 if quick else 24
    for name, text in BROWSER_TESTS.items():
        (folder / name).write_text(textwrap.dedent(text.format(n=n)))
    env = {
        **os.environ,
        "BENCH_SITE": f"http://127.0.0.1:{server.server_port}/",
        "BENCH_BROWSER": browser.path,
        "EDGEPROFILES_ROOT": str(folder / "root"),
    }
    env.update(launch.browser_env(env) or {})  # the pages' sockets, under a deep TMPDIR

    def suite(args: tuple[str, ...], keep: tuple[str, ...] = ()) -> Callable[[], float]:
        return _suite(_pytest(folder, "-n", "2", *args, keep=keep), folder, env)

    cold = "--edge-prelaunch=0"
    nothing = ("--edge-screenshot=off", "--edge-page-source=off")
    Row = tuple[str, tuple[str, ...], tuple[str, ...], str, float | None, tuple[str, ...]]
    rows: list[Row] = [  # what, ours, anchor, the anchor's name, goal, plugins both sides keep
        ("passing `edge_driver`, what the browser showed written on failure", ("test_driver.py",),
         ("test_driver.py", *nothing), "the same with nothing written on failure", 1.02, ()),
        ("`edge_driver` opening a local page", ("test_driver.py",), ("test_by_hand.py",),
         "the same on `webdriver.Chrome` by hand", 0.5, ()),
        ("`edge_browser_session` only: a browser started and stopped, the floor",
         ("test_floor.py",), ("test_by_hand.py",), "the `webdriver.Chrome` tests by hand",
         None, ()),
        ("`edge_driver` attached, no page opened", ("test_attached.py",),
         ("test_by_hand.py",), "the `webdriver.Chrome` tests by hand", None, ()),
        ("`edge_driver` that use their browser for 1 s", ("test_held.py",),
         ("test_held.py", cold), "the same, started by the test (`--edge-prelaunch=0`)", 1.0, ()),
        ("`edge_driver` opening a local page", ("test_driver.py",), ("test_driver.py", cold),
         "the same, started by the test: no core is free to start one ahead", 1.05, ()),
    ]  # fmt: skip
    if importlib.util.find_spec("pytest_playwright") is not None:
        theirs = "the same on pytest-playwright's `page`"
        rows.append(("`edge_page` opening a local page", ("test_page.py",),
                     ("test_their_page.py",), theirs, 1.6, ("playwright", "base_url")))  # fmt: skip
        # Where its time goes: a browser a test, started and stopped, against their context.
        rows.append(("`edge_browser_session` only, the floor of a browser a test",
                     ("test_floor.py",), ("test_their_page.py",), theirs, None,
                     ("playwright", "base_url")))  # fmt: skip
    else:
        print("pytest-playwright is not installed: the edge_page figure is left out")
    figures = []
    for what, ours, anchor, anchor_name, limit, keep in rows:
        result = alternate(suite(ours, keep), suite(anchor, keep), rounds)
        figures.append(
            Figure(
                f"{n} tests on {what}, -n 2, {os.cpu_count()} cores",
                *result,
                anchor_name,
                "where the time goes" if limit is None else f"<= {limit}x",
                None if limit is None else result[0] / result[1] <= limit,
            )
        )
    figures.append(_capture_figure(suite, n, rounds))
    figures.append(_setup_figure(folder, env, rounds))
    server.shutdown()
    return figures


def _capture_figure(suite: Callable[[tuple[str, ...]], Callable[[], float]], n: int,
                    rounds: int) -> Figure:  # fmt: skip
    """What writing what a failed test's browser showed costs the failing test."""
    off = ("--edge-screenshot=off", "--edge-page-source=off")
    failing = ("test_driver_fails.py", "-p", "zero_exit")
    ours, anchor = alternate(suite(failing), suite((*failing, *off)), rounds)
    return Figure(
        f"{n} failing `edge_driver` tests, what the browser showed written, -n 2",
        ours,
        anchor,
        "the same with nothing written (`--edge-screenshot=off --edge-page-source=off`)",
        "<= +0.5 s a test",
        (ours - anchor) / n <= 0.5,
    )


def _median_setup(folder: Path, env: dict[str, str], *args: str) -> float:
    """The median setup of the tests of ``test_held.py``, as ``--durations`` gives it."""
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", *others(),
         "--durations=0", "--durations-min=0", f"--basetemp={folder / 'bt'}", *args,
         "test_held.py"],
        cwd=folder, env=measured_env(env),
        capture_output=True, text=True,
    )  # fmt: skip
    if out.returncode:
        raise RuntimeError(f"{' '.join(out.args)} failed:\n{out.stdout}{out.stderr}")
    setups = [float(m[1]) for m in re.finditer(r"^([\d.]+)s setup ", out.stdout, re.MULTILINE)]
    return statistics.median(setups)


def _setup_figure(folder: Path, env: dict[str, str], rounds: int) -> Figure:
    """With a core to spare: tests that use their browser for 1 s, no xdist."""
    ours, anchor = alternate(
        lambda: _median_setup(folder, env),
        lambda: _median_setup(folder, env, "--edge-prelaunch=0"),
        rounds,
    )
    return Figure(
        "median setup of `edge_driver` started ahead (`--durations`), tests of 1 s, no xdist",
        ours,
        anchor,
        "the same started by the test (`--edge-prelaunch=0`)",
        "<= 0.15 s",
        ours <= 0.15,
    )
