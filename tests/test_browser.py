"""Profiles opened by a real headless browser (Debian's Chromium in CI).

Without a browser these tests skip, unless EDGEPROFILES_REQUIRE_BROWSER=1 (as in CI) turns
that into a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import psutil
import pytest
from browser_support import serve, start_browser, stop_browser
from conftest import POSIX, posix_only

from pytest_edgeprofiles import ProfileManager
from pytest_edgeprofiles._browser import launch
from pytest_edgeprofiles._chromium import userdata
from pytest_edgeprofiles.chromium import Browser

pytest_plugins = ["pytester"]
# pytester points HOME at its own folder, which confuses Chromium: inner runs get the real one.
REAL_HOME = os.environ.get("HOME", "")

LOGIN_PAGE = b"""<!doctype html><title>loading</title><body><script>
localStorage.setItem("k", "v");
const req = indexedDB.open("db", 1);
req.onupgradeneeded = () => req.result.createObjectStore("s");
req.onsuccess = () => {
  const tx = req.result.transaction("s", "readwrite");
  tx.objectStore("s").put("v", "k");
  tx.oncomplete = () => { document.title = "ready"; };
};
</script><img src="/big.png"></body>"""

CHECK_PAGE = b"""<!doctype html><title>checking</title><body><pre id="out"></pre><script>
const out = {cookie: document.cookie, local: localStorage.getItem("k")};
const req = indexedDB.open("db", 1);
req.onupgradeneeded = () => req.result.createObjectStore("s");
req.onsuccess = () => {
  const get = req.result.transaction("s").objectStore("s").get("k");
  get.onsuccess = () => {
    out.idb = get.result === undefined ? null : get.result;
    document.getElementById("out").textContent = JSON.stringify(out);
    document.title = "done";
  };
};
</script></body>"""


class _Site(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        headers = {"Content-Type": "text/html"}
        if self.path == "/":
            body = LOGIN_PAGE
            # A persistent cookie: session cookies are not written to disk.
            headers["Set-Cookie"] = "session=logged-in; Max-Age=86400; Path=/"
        elif self.path == "/check":
            body = CHECK_PAGE
        elif self.path == "/big.png":
            body = b"\x89PNG" + os.urandom(200_000)
            headers = {"Content-Type": "image/png", "Cache-Control": "max-age=86400"}
        elif self.path == "/download":
            body = b'<!doctype html><a id="dl" href="/report.txt">report</a>'
        elif self.path == "/report.txt":
            body = b"report"
            headers = {
                "Content-Type": "text/plain",
                "Content-Disposition": "attachment; filename=report.txt",
            }
        else:
            self.send_error(404)
            return
        self.send_response(200)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    with serve(_Site) as address:
        yield address


def _driver(profile: Path, browser: Browser, prefs: dict[str, str] | None = None) -> object:
    from selenium import webdriver

    options = launch.selenium_options(profile, browser, extra=launch.QUIET_FLAGS)
    if prefs:
        options.add_experimental_option("prefs", prefs)
    return webdriver.Chrome(options=options, service=launch.selenium_service(browser))


def _wait_title(driver: object, title: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 20).until(lambda d: d.title == title)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def base_profile(browser: Browser, site: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user data dir made by really browsing the site: cookie, localStorage, IndexedDB,
    a download folder preference and a disk cache."""
    base = tmp_path_factory.mktemp("base") / "User Data"
    base.mkdir()
    reports = tmp_path_factory.mktemp("downloads") / "reports"
    driver = _driver(base, browser, {"download.default_directory": str(reports)})
    try:
        driver.get(site + "/")  # type: ignore[attr-defined]
        _wait_title(driver, "ready")
    finally:
        driver.quit()  # type: ignore[attr-defined]
    caches = [p for p in (base / "Default").iterdir() if p.name.endswith("Cache")]
    assert caches, "browsing should have left a disk cache in the base"
    assert (base / "Local State").is_file()
    return base


def _inner_env(monkeypatch: pytest.MonkeyPatch, site: str) -> None:
    monkeypatch.setenv("HOME", REAL_HOME)
    monkeypatch.setenv("SITE", site)
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_TESTRUNUID", "PYTEST_XDIST_WORKER_COUNT"):
        monkeypatch.delenv(name, raising=False)


def test_clones_keep_the_login_and_hold_no_cache_under_xdist(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    base_profile: Path,
    site: str,
) -> None:
    _inner_env(monkeypatch, site)
    log = pytester.path / "log.jsonl"
    pytester.makepyfile(
        test_inner=f"""
        import json, os
        import pytest
        from selenium.webdriver.support.ui import WebDriverWait

        SITE = os.environ["SITE"]

        @pytest.mark.parametrize("i", range(4))
        def test_state(edge_profile, edge_driver, i):
            edge_driver.get(SITE + "/check")
            WebDriverWait(edge_driver, 20).until(lambda d: d.title == "done")
            state = json.loads(edge_driver.find_element("id", "out").text)
            edge_driver.get("chrome://version")
            with open({str(log)!r}, "a") as fh:
                fh.write(json.dumps(dict(
                    state=state,
                    profile=str(edge_profile),
                    version_page_names_it=str(edge_profile) in edge_driver.page_source,
                    worker=os.environ.get("PYTEST_XDIST_WORKER"),
                )) + "\\n")

        def test_clone_has_no_cache_nor_lock(edge_profile):
            default = edge_profile / "Default"
            assert (default / "Cookies").is_file()
            assert not [p for p in default.iterdir() if p.name.endswith("Cache")]
            assert not (edge_profile / "SingletonLock").exists()
        """
    )
    result = pytester.runpytest_subprocess(
        "-n",
        "2",
        f"--edge-base-profile={base_profile}",
        f"--edge-profile-root={pytester.path / 'p'}",
    )
    result.assert_outcomes(passed=5)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["state"] for r in records] == [
        {"cookie": "session=logged-in", "local": "v", "idb": "v"}
    ] * 4
    assert all(r["version_page_names_it"] for r in records)
    assert len({r["profile"] for r in records}) == 4
    assert {r["worker"] for r in records} == {"gw0", "gw1"}


def test_downloads_of_parallel_workers_land_in_separate_folders(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    base_profile: Path,
    site: str,
) -> None:
    _inner_env(monkeypatch, site)
    log = pytester.path / "log.jsonl"
    downloads = pytester.path / "downloads"
    pytester.makepyfile(
        test_inner=f"""
        import json, os, time
        from pathlib import Path
        import pytest

        @pytest.mark.parametrize("i", range(4))
        def test_download(edge_driver, edge_download_dir, i):
            folder = edge_download_dir
            edge_driver.get(os.environ["SITE"] + "/download")
            edge_driver.find_element("id", "dl").click()
            deadline = time.monotonic() + 20
            report = folder / "report.txt"
            # Chromium reserves the name with an empty file and renames the finished
            # download over it: only a non-empty file is the download.
            while not (report.is_file() and report.stat().st_size > 0):
                assert time.monotonic() < deadline, "no download"
                time.sleep(0.05)  # polling a folder with a deadline: no event tells us
            with open({str(log)!r}, "a") as fh:
                fh.write(json.dumps(dict(folder=str(folder), files=os.listdir(folder))) + "\\n")
        """
    )
    result = pytester.runpytest_subprocess(
        "-n",
        "2",
        f"--edge-base-profile={base_profile}",
        f"--edge-profile-root={pytester.path / 'p'}",
        f"--edge-download-root={downloads}",
    )
    result.assert_outcomes(passed=4)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    folders = [Path(r["folder"]) for r in records]
    assert len(set(folders)) == 4
    # The base saved into ".../reports": each clone keeps that organisation in a folder of its own.
    assert all(f.name == "reports" and f.parent.parent == downloads for f in folders)
    assert all(r["files"] == ["report.txt"] for r in records)
    assert list(downloads.iterdir()) == [], "download folders go with their passing tests"


def test_a_download_makes_the_download_folder_nobody_asked_for(
    browser: Browser, base_profile: Path, site: str, tmp_path: Path
) -> None:
    """A profile's download folder is made when first asked for: a browser that downloads
    before anyone asked makes it itself, the base's folder name below it, and saves there."""
    manager = ProfileManager(str(base_profile), root=tmp_path / "root")
    clone = Path(manager.create_profile("w"))
    assert not os.path.lexists(clone / "Downloads")
    driver = _driver(clone, browser)
    try:
        driver.get(site + "/download")  # type: ignore[attr-defined]
        driver.find_element("id", "dl").click()  # type: ignore[attr-defined]
        report = clone / "Downloads" / "reports" / "report.txt"
        deadline = time.monotonic() + 20
        # Chromium reserves the name with an empty file and renames the finished download
        # over it: only a non-empty file is the download.
        while not (report.is_file() and report.stat().st_size > 0):
            assert time.monotonic() < deadline, f"no download in {clone}: {sorted(clone.iterdir())}"
            time.sleep(0.05)  # polling a folder with a deadline: no event tells us
    finally:
        driver.quit()  # type: ignore[attr-defined]
    assert manager.get_download_dir("w") == str(report.parent)
    if POSIX:  # Windows has no mode bits: an ACL protects the folder
        assert stat.S_IMODE((clone / "Downloads").stat().st_mode) == 0o700
    assert manager.cleanup_profile("w")


@posix_only("the browser's SingletonSocket symlink, into a socket folder under TMPDIR")
def test_a_browser_left_running_is_stopped_and_its_profile_removed(
    browser: Browser, tmp_path: Path
) -> None:
    manager = ProfileManager(root=tmp_path / "root")
    profile = Path(manager.create_profile("w"))
    neighbour = Path(str(profile) + "-neighbour")  # a path that starts with ours
    neighbour.mkdir()
    proc = start_browser(profile, browser)
    other = start_browser(neighbour, browser)
    try:
        socket_dir = Path(os.readlink(profile / "SingletonSocket")).parent
        assert manager.cleanup_profile("w") is True
        assert proc.wait(timeout=10) is not None
        assert not profile.exists()
        assert not socket_dir.exists(), "the socket dir under TMPDIR is not leaked"
        assert not launch_processes(profile)
        assert other.poll() is None, "a browser on another profile is never touched"
    finally:
        stop_browser(other)
        shutil.rmtree(neighbour, ignore_errors=True)


def launch_processes(profile: Path) -> list[int]:
    wanted = f"--user-data-dir={profile}"
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        if wanted in (proc.info["cmdline"] or []) and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(proc.pid)
    return found


@posix_only("the browser's SingletonSocket symlink, into a socket folder under TMPDIR")
def test_a_test_that_forgets_its_browser_does_not_break_the_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, site: str
) -> None:
    _inner_env(monkeypatch, site)
    log = pytester.path / "log.jsonl"
    pytester.makepyfile(
        test_inner=f"""
        import json, os, subprocess, time
        import psutil
        from pytest_edgeprofiles._browser import launch

        def test_forgets(edge_profile, edge_browser, edge_launch_args):
            proc = subprocess.Popen(
                [edge_browser.path, *edge_launch_args, "about:blank"],
                env=launch.browser_env(),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 20
            while not os.path.lexists(edge_profile / "SingletonSocket"):
                assert time.monotonic() < deadline
                time.sleep(0.05)  # a poll with a deadline
            socket_dir = os.path.dirname(os.readlink(edge_profile / "SingletonSocket"))
            with open({str(log)!r}, "w") as fh:
                born = psutil.Process(proc.pid).create_time()
                json.dump(dict(pid=proc.pid, born=born, profile=str(edge_profile),
                               sockets=socket_dir), fh)

        def test_next(edge_profile):
            assert edge_profile.is_dir()
        """
    )
    result = pytester.runpytest_subprocess(
        "-n", "2", f"--edge-profile-root={pytester.path / 'p'}", "--edge-max-profiles=1"
    )
    result.assert_outcomes(passed=2)
    left = json.loads(log.read_text())
    assert _running(left["pid"], left["born"]) is None, "the forgotten browser was stopped"
    assert not Path(left["profile"]).exists()
    assert not Path(left["sockets"]).exists()


@posix_only("SIGKILL kills the worker")
def test_a_worker_killed_mid_test_leaves_no_driver_or_browser_running(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, site: str
) -> None:
    _inner_env(monkeypatch, site)
    log = pytester.path / "log.json"
    pytester.makepyfile(
        test_inner=f"""
        import json, os, signal
        import psutil

        def test_killed(edge_driver, edge_profile):
            edge_driver.get(os.environ["SITE"])
            driver = psutil.Process(edge_driver.service.process.pid)
            with open({str(log)!r}, "w") as fh:
                json.dump(dict(driver=driver.pid, born=driver.create_time(),
                               profile=str(edge_profile)), fh)
            os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer or a CI timeout would

        def test_next(edge_profile):
            pass
        """
    )
    result = pytester.runpytest_subprocess("-n", "2", f"--edge-profile-root={pytester.path / 'p'}")
    result.assert_outcomes(passed=1, failed=1)
    left = json.loads(log.read_text())
    driver = _running(left["driver"], left["born"])
    try:
        assert driver is None, "the killed worker's chromedriver was stopped with its profile"
        assert not launch_processes(Path(left["profile"]))
        assert not Path(left["profile"]).exists()
    finally:
        if driver is not None and driver.is_running():
            driver.kill()


def test_a_clone_of_a_base_in_use_starts(
    browser: Browser, base_profile: Path, tmp_path: Path
) -> None:
    base = tmp_path / "live base"
    shutil.copytree(base_profile, base, symlinks=True)
    running = start_browser(base, browser)
    try:
        manager = ProfileManager(str(base), root=tmp_path / "root")
        clone = Path(manager.create_profile("w"))
        assert not any(os.path.lexists(clone / n) for n in ("SingletonLock", "SingletonSocket"))
        driver = _driver(clone, browser)
        try:
            driver.get("chrome://version")  # type: ignore[attr-defined]
            assert str(clone) in driver.page_source  # type: ignore[attr-defined]
        finally:
            driver.quit()  # type: ignore[attr-defined]
        assert manager.cleanup_profile("w")
    finally:
        stop_browser(running)


def test_the_summary_names_the_browser_once_a_test_used_it(
    pytester: pytest.Pytester, browser: Browser
) -> None:
    # The header starts no process to ask the version: the summary says what was used.
    pytester.makepyfile("def test_x(edge_browser): pass")
    result = pytester.runpytest_subprocess(
        "-p", "no:xdist", f"--edge-profile-root={pytester.path / 'p'}"
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "edgeprofiles: browser Edge, else Chrome, else Chromium, found when a test needs one",
            "*= edgeprofiles =*",
            f"browser: * {browser.version} at {browser.path}",
        ]
    )


def test_a_base_from_a_newer_browser_is_warned_about(
    pytester: pytest.Pytester, browser: Browser
) -> None:
    base = pytester.mkdir("base")
    (base / "Local State").write_text("{}")
    (base / "Last Version").write_text("999.0.0.0")
    pytester.makepyfile("def test_x(edge_browser, edge_profile): pass")
    result = pytester.runpytest_subprocess(
        "-p",
        "no:xdist",
        f"--edge-profile-root={pytester.path / 'p'}",
        f"--edge-base-profile={base}",
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*= edgeprofiles =*",
            "warning: the base profile * was last opened by version 999.0.0.0, newer than*",
        ]
    )


@posix_only("the browser's unix socket under TMPDIR, whose path length is limited")
def test_a_browser_starts_under_a_temp_dir_too_deep_for_its_socket(
    browser: Browser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deep = tmp_path / ("d" * 100)
    deep.mkdir()
    variable = userdata.SOCKET_TMPDIR_VAR
    assert variable is not None
    monkeypatch.setenv(variable, str(deep))
    env = launch.browser_env()
    assert env is not None and len(env[variable]) < 40
    manager = ProfileManager(root=tmp_path / "root")
    profile = Path(manager.create_profile("w"))
    proc = start_browser(profile, browser)  # aborts with "Socket path too long" otherwise
    try:
        assert Path(os.readlink(profile / "SingletonSocket")).parent.parent == Path(env[variable])
    finally:
        assert manager.cleanup_profile("w")
        proc.wait(timeout=10)


def test_keeping_a_profile_stops_the_browser_left_on_it(browser: Browser, tmp_path: Path) -> None:
    manager = ProfileManager(root=tmp_path / "root")
    profile = Path(manager.create_profile("w"))
    proc = start_browser(profile, browser)
    assert manager.keep_profile("w") == str(profile)
    assert proc.wait(timeout=10) is not None
    assert profile.is_dir(), "kept, for the failure's evidence"
    assert not os.path.lexists(profile / "SingletonLock"), "stopped gracefully: no stale lock"


def test_a_driver_whose_port_was_taken_meanwhile_starts_on_another(browser: Browser) -> None:
    # Selenium picks a free port, then starts the driver on it: another process may bind it
    # in between, and the driver exits at once ("IPv4 port not available").
    service = launch.selenium_service(browser)
    with socket.create_server(("127.0.0.1", service.port)) as taken:
        try:
            service.start()
            assert service.port != taken.getsockname()[1]
            assert service.is_connectable(), "the driver answers on its new port"
        finally:
            service.stop()


def _running(pid: int, born: float) -> psutil.Process | None:
    """The process ``pid`` started at ``born``, if it still runs: its number alone may have
    been reused since, by a process no test may judge (or kill). A second apart, as the
    clock the start time is counted from moves when the wall clock is stepped."""
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - born) < 1 and proc.status() != psutil.STATUS_ZOMBIE:
            return proc
    except psutil.NoSuchProcess:
        pass
    return None
