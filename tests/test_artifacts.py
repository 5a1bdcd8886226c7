"""What a failed test's browser showed: screenshot, page, console and URL, in its own folder,
named in the summary, the JUnit XML and pytest-html's report; with a real headless browser."""

from __future__ import annotations

import json
import os
import re
import textwrap
import zipfile
import zlib
from pathlib import Path

import pytest

from pytest_edgeprofiles._browser import artifacts, launch
from pytest_edgeprofiles.chromium import Browser

REAL_HOME = os.environ.get("HOME", "")
PAGE = (
    "data:text/html,<title>the page</title><h1 style='color:%23c03'>hello from the page</h1>"
    "<script>console.log('logged by the page')</script>"
)
FAILING = textwrap.dedent(
    f"""
    PAGE = {PAGE!r}

    def test_driver_fails(edge_driver):
        edge_driver.get(PAGE)
        assert edge_driver.title == "another page"

    def test_page_fails(edge_page):
        edge_page.goto(PAGE)
        assert edge_page.title() == "another page"

    def test_driver_passes(edge_driver):
        edge_driver.get(PAGE)
    """
)


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, browser: Browser) -> Path:
    """An inner run's environment; its profile root."""
    monkeypatch.setenv("HOME", REAL_HOME)
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_TESTRUNUID", "PYTEST_XDIST_WORKER_COUNT"):
        monkeypatch.delenv(name, raising=False)
    return pytester.path / "profiles"


def drawn(png: bytes) -> bool:
    """A valid PNG whose pixels are not all of a few values (a blank page's are)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    data, at = b"", 8
    while at < len(png):
        size, kind = int.from_bytes(png[at : at + 4], "big"), png[at + 4 : at + 8]
        data += png[at + 8 : at + 8 + size] if kind == b"IDAT" else b""
        at += 12 + size
    return len(set(zlib.decompress(data))) > 16


def folder_of(pytester: pytest.Pytester, test: str) -> Path:
    return artifacts.folder_for(pytester.path / "test-results" / "edgeprofiles", test)


@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_failed_browser_test_leaves_what_its_browser_showed(
    pytester: pytest.Pytester, inner: Path, workers: str, browser: Browser
) -> None:
    pytester.makepyfile(test_inner=FAILING)
    result = pytester.runpytest_subprocess(
        "-n", workers, "-p", "no:randomly", f"--edge-profile-root={inner}",
        "--junitxml=junit.xml", "--html=report.html", "--self-contained-html",
    )  # fmt: skip
    result.assert_outcomes(failed=2, passed=1)
    for test in ("test_inner.py::test_driver_fails", "test_inner.py::test_page_fails"):
        folder = folder_of(pytester, test)
        assert drawn((folder / "screenshot.png").read_bytes()), test
        assert "hello from the page" in (folder / "page.html").read_text(), test
        assert "logged by the page" in (folder / "console.txt").read_text(), test
        assert (folder / "url.txt").read_text().startswith("data:text/html"), test
        result.stdout.fnmatch_lines([f"what the browser showed: {folder} ({test})"])
        xml = (pytester.path / "junit.xml").read_text()
        assert f'name="edgeprofiles_artifacts" value="{folder}"' in xml, test
    assert not folder_of(pytester, "test_inner.py::test_driver_passes").exists()
    report = (pytester.path / "report.html").read_text()
    assert len(re.findall(r"data:image/png;base64,", report)) >= 2, "no screenshot embedded"
    if workers == "0":
        row = show_row(pytester.path / "report.html", "test_inner.py::test_page_fails", browser)
        if os.environ.get("EDGEPROFILES_WRITE_DOCS") == "1":  # the README's picture, made here
            (Path(__file__).parent.parent / "docs" / DOCS_PICTURE).write_bytes(row)


#: A conftest's own report hook, as users write them to attach what a failed test left.
READER_CONFTEST = """
import json, pytest

@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        seen = {"sections": [name for name, _ in report.sections],
                "properties": [name for name, _ in item.user_properties]}
        with open("seen.json", "w") as f:
            json.dump(seen, f)
"""


def test_a_conftest_report_hook_sees_what_the_browser_showed(
    pytester: pytest.Pytester, inner: Path
) -> None:
    # Ours runs inside a conftest's tryfirst wrapper, as plugins loaded first do.
    pytester.makeconftest(READER_CONFTEST)
    pytester.makepyfile(test_inner=FAILING)
    result = pytester.runpytest_subprocess(
        "-p", "no:xdist", "-p", "no:randomly", f"--edge-profile-root={inner}",
        "-k", "test_driver_fails",
    )  # fmt: skip
    result.assert_outcomes(failed=1)
    seen = json.loads((pytester.path / "seen.json").read_text())
    assert "edgeprofiles: what the browser showed" in seen["sections"]
    assert "edgeprofiles_artifacts" in seen["properties"]


#: The README's picture of a failed test's row in pytest-html's report.
DOCS_PICTURE = "failed-test-in-pytest-html.png"


def show_row(report: Path, test: str, browser: Browser) -> bytes:
    """pytest-html's row of ``test``, as a browser shows it: a PNG, its screenshot visible."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        shown = playwright.chromium.launch(
            executable_path=browser.path,
            args=["--no-sandbox"],
            env={**os.environ, **(launch.browser_env() or {})},  # a socket path short enough
        )
        page = shown.new_page(viewport={"width": 1000, "height": 900})
        page.goto(report.as_uri())
        row = page.locator("tbody.results-table-row", has_text=test)
        image = row.locator("img[src^='data:image/png']")
        image.wait_for()
        assert image.evaluate("img => img.naturalWidth > 0"), "the screenshot does not load"
        picture = bytes(row.screenshot())
        shown.close()
    assert drawn(picture)
    return picture


@pytest.mark.parametrize("workers", ["0", "2"])
def test_screenshot_off_writes_none_and_the_page_still(
    pytester: pytest.Pytester, inner: Path, workers: str
) -> None:
    pytester.makepyfile(test_inner=FAILING)
    result = pytester.runpytest_subprocess(
        "-n", workers, "-p", "no:randomly", f"--edge-profile-root={inner}",
        "--edge-screenshot=off", "-k", "driver_fails",
    )  # fmt: skip
    outcomes = result.parseoutcomes()  # xdist counts no deselected tests
    assert outcomes.get("failed") == 1 and not outcomes.get("passed"), outcomes
    folder = folder_of(pytester, "test_inner.py::test_driver_fails")
    assert not list(folder.glob("*.png"))
    assert "hello from the page" in (folder / "page.html").read_text()


def test_a_passing_tests_capture_leaves_the_console_to_the_tests_own_check(
    pytester: pytest.Pytester, inner: Path
) -> None:
    # Reading chromedriver's log empties it: with every test captured, a fixture that fails a
    # test whose page logged an error must still see the error.
    pytester.makepyfile(
        test_inner="""
        import pytest

        @pytest.fixture
        def no_console_errors(edge_driver):
            yield edge_driver
            severe = [e for e in edge_driver.get_log("browser") if e["level"] == "SEVERE"]
            assert not severe, f"console errors: {severe}"

        def test_page_logs_an_error(no_console_errors):
            no_console_errors.get(
                "data:text/html,<h1 style='color:%23c03'>hi</h1><script>console.error('boom')</script>"
            )
        """
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:randomly", f"--edge-profile-root={inner}", "--edge-screenshot=on",
    )  # fmt: skip
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*AssertionError: console errors: *boom*"])
    folder = folder_of(pytester, "test_inner.py::test_page_logs_an_error")
    assert drawn((folder / "screenshot.png").read_bytes())


@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_browser_killed_mid_test_still_fails_cleanly_with_a_line_on_the_capture(
    pytester: pytest.Pytester, inner: Path, workers: str
) -> None:
    pytester.makepyfile(
        test_inner="""
        def test_browser_dies(edge_driver, edge_browser_session):
            edge_browser_session.process.kill()
            edge_browser_session.process.wait()
            assert False, "the test's own failure"
        """
    )
    result = pytester.runpytest_subprocess(
        "-n", workers, "-p", "no:randomly", f"--edge-profile-root={inner}"
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*the test's own failure*", "*could not capture screenshot.png*"])


@pytest.mark.parametrize(
    ("test_id", "other"),
    [
        ("t.py::test_x[a:b/c]", "t.py::test_x[a-b-c]"),
        ("t.py::test_x[x/y]", "t.py::test_x[x?y]"),
        ("t.py::test_x[A]", "t.py::test_x[a]"),  # one folder where case is ignored
        ("t.py::test_x[" + "x" * 200 + "]", "t.py::test_x[" + "x" * 199 + "y]"),
    ],
)
def test_a_test_folder_is_safe_on_windows_short_and_its_own(test_id: str, other: str) -> None:
    folder = artifacts.folder_for(Path("out"), test_id)
    assert not set(folder.name) & set(':[]/\\*?"<>|')
    assert len(folder.name) <= 80
    assert folder.name.startswith("t.py-test_x-")  # the id, as far as a name can say it
    assert folder.name.lower() != artifacts.folder_for(Path("out"), other).name.lower()


def a_trace(path: Path) -> bool:
    """A zip as Playwright writes a trace, with the entries ``show-trace`` opens."""
    with zipfile.ZipFile(path) as trace:
        names = set(trace.namelist())
        assert {"trace.trace", "trace.network"} <= names, sorted(names)[:10]
        events = [json.loads(line) for line in trace.read("trace.trace").splitlines() if line]
    return events[0].get("type") == "context-options" and any(
        e.get("type") == "before" for e in events
    )


@pytest.mark.parametrize(
    "options",
    [
        ["--edge-tracing=retain-on-failure"],
        ["--tracing", "retain-on-failure", "--output", "theirs"],  # pytest-playwright's own
    ],
    ids=["ours", "pytest-playwright's"],
)
def test_a_failed_page_test_leaves_a_trace_when_asked(
    pytester: pytest.Pytester, inner: Path, options: list[str]
) -> None:
    pytester.makepyfile(test_inner=FAILING)
    result = pytester.runpytest_subprocess(
        "-n", "2", "-p", "no:randomly", f"--edge-profile-root={inner}", "-k", "page", *options
    )
    outcomes = result.parseoutcomes()  # xdist counts no deselected tests
    assert outcomes.get("failed") == 1 and not outcomes.get("passed"), outcomes
    output = pytester.path / ("theirs" if "theirs" in options else "test-results/edgeprofiles")
    folder = artifacts.folder_for(output, "test_inner.py::test_page_fails")
    assert a_trace(folder / "trace.zip")
    assert drawn((folder / "screenshot.png").read_bytes()), "the other artifacts go with it"
    result.stdout.fnmatch_lines([f"what the browser showed: {folder} (*test_page_fails)"])


def test_pytest_playwrights_video_is_named_as_what_cannot_apply(
    pytester: pytest.Pytester, inner: Path
) -> None:
    pytester.makepyfile(test_inner=FAILING)
    result = pytester.runpytest_subprocess(
        "-p", "no:randomly", f"--edge-profile-root={inner}", "-k", "page", "--video", "on"
    )
    result.assert_outcomes(failed=1, deselected=2)
    result.stdout.fnmatch_lines(
        ["warning: pytest-playwright's --video cannot record edge_context*"]
    )


def test_browser_context_args_apply_to_edge_page_as_far_as_chromium_allows(
    pytester: pytest.Pytester, inner: Path
) -> None:
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture(scope="session")
        def browser_context_args():
            return {"viewport": {"width": 555, "height": 444}, "locale": "de-DE",
                    "timezone_id": "Asia/Tokyo", "color_scheme": "dark",
                    "extra_http_headers": {"X-From": "the conftest"}}
        """
    )
    pytester.makepyfile(
        test_inner="""
        import json

        SEEN = '''() => [innerWidth, innerHeight,
            Intl.DateTimeFormat().resolvedOptions().timeZone,
            Intl.DateTimeFormat().resolvedOptions().locale,
            matchMedia("(prefers-color-scheme: dark)").matches]'''
        WANTED = [555, 444, "Asia/Tokyo", "de-DE", True]

        def test_emulated(edge_page, edge_context):
            assert edge_page.evaluate(SEEN) == WANTED  # open before the test: set up already
            later = edge_context.new_page()
            # Set up once Playwright reports it: poll, with a deadline.
            wanted = json.dumps(json.dumps(WANTED, separators=(",", ":")))  # a JS string
            later.wait_for_function(f"JSON.stringify(({SEEN})()) === {wanted}", timeout=10_000)
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly", f"--edge-profile-root={inner}")
    result.assert_outcomes(passed=1)


def test_browser_context_args_that_cannot_apply_are_named_in_one_error(
    pytester: pytest.Pytester, inner: Path
) -> None:
    pytester.makepyfile(test_inner="def test_x(edge_page): pass")
    result = pytester.runpytest_subprocess(
        "-p", "no:randomly", f"--edge-profile-root={inner}", "--base-url", "http://example.test",
        "-p", "no:selenium_safety",  # pytest-selenium's: it skips tests on a "sensitive" URL
    )  # fmt: skip
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*edgeprofiles: browser_context_args base_url cannot apply to edge_context or edge_page*"]
    )
    assert "Traceback" not in result.stdout.str()


def test_a_page_that_hangs_gives_its_line_and_the_test_its_own_failure(
    pytester: pytest.Pytester, inner: Path
) -> None:
    # A script that never yields: the capture must not wait for the page. (Under Selenium a
    # hung page hangs chromedriver's next command of the test itself, whatever starts it;
    # the capture there is bounded by a thread.)
    pytester.makepyfile(
        test_inner="""
        def test_page_hangs(edge_page):
            edge_page.goto("data:text/html,<p>stuck</p>")
            edge_page.evaluate("setTimeout(() => { while (true) {} }, 0)")
            assert False, "the test's own failure"
        """
    )
    result = pytester.runpytest_subprocess(
        "-n", "2", "-p", "no:randomly", f"--edge-profile-root={inner}", "--timeout=120"
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*could not capture screenshot.png: not captured: TimeoutError*",
            "FAILED *test_page_hangs - AssertionError: the test's own failure",
        ]
    )
    assert "+ Timeout +" not in result.stdout.str(), "something waited for the page"


def test_each_open_page_of_edge_context_is_shown(pytester: pytest.Pytester, inner: Path) -> None:
    pytester.makepyfile(
        test_inner=f"""
        PAGE = {PAGE!r}

        def test_two_pages(edge_context):
            edge_context.pages[0].goto(PAGE)
            edge_context.new_page().goto("data:text/html,<p>the second page</p>")
            assert False
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly", f"--edge-profile-root={inner}")
    result.assert_outcomes(failed=1)
    folder = folder_of(pytester, "test_inner.py::test_two_pages")
    assert "hello from the page" in (folder / "page-1-page.html").read_text()
    assert "the second page" in (folder / "page-2-page.html").read_text()
    assert drawn((folder / "page-2-screenshot.png").read_bytes())


def test_each_try_of_a_rerun_test_keeps_what_its_browser_showed(
    pytester: pytest.Pytester, inner: Path
) -> None:
    pytester.makepyfile(test_inner=FAILING)
    result = pytester.runpytest_subprocess(
        "-p", "no:randomly", f"--edge-profile-root={inner}", "-k", "driver_fails", "--reruns=1"
    )
    outcomes = result.parseoutcomes()
    assert (outcomes.get("failed"), outcomes.get("rerun")) == (1, 1), outcomes
    for test in ("test_inner.py::test_driver_fails", "test_inner.py::test_driver_fails-retry1"):
        assert drawn((folder_of(pytester, test) / "screenshot.png").read_bytes()), test
