"""What a test's browser showed, written before it stops: a full-page screenshot, the page's
HTML as the browser has it, its console and its URL, in one folder per test.

A capture never takes the place of the test's own failure: it is bounded in time, and what it
could not write is returned as a line, never raised.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._system.waiting import returned_within

#: How long one capture may take in all: a page that hangs must not hold the run.
CAPTURE_SECONDS = 5.0
_TALLEST = 16384  # px: a taller page is cut there, as Chromium's own texture limit would
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_LONGEST = 80  # characters of a test's folder name: Windows paths stop at 260
#: What to write: a file's name, and the bytes, made only when it is written.
Steps = list[tuple[str, Callable[[], bytes]]]


def wanted(mode: str, failed: bool) -> bool:
    """Whether ``--edge-screenshot`` or ``--edge-page-source`` set to ``mode`` asks for its
    file now."""
    return mode == "on" or (failed and mode == "only-on-failure")


def folder_for(output: Path, test_id: str) -> Path:
    """The folder of test ``test_id`` under ``output``: safe on Windows (no ``:``, ``[``, ``/``)
    and short, ending in a hash of the id: ids that make the same name (``[x/y]`` and ``[x?y]``,
    or ``[A]`` and ``[a]`` where case is ignored) never share, nor empty, one folder."""
    name = _UNSAFE.sub("-", test_id).strip("-.") or "test"
    return output / f"{name[: _LONGEST - 9]}-{hashlib.sha1(test_id.encode()).hexdigest()[:8]}"


def capture_driver(
    driver: Any, folder: Path, screenshot: bool, source: bool, failed: bool
) -> list[str]:
    """Write what a Selenium ``driver``'s window shows; in a thread, as a command to a page
    that hangs may never return. The console only if the test ``failed``: reading
    chromedriver's log empties it, and a passing test's fixtures may still check it. The
    problems, one line each."""
    steps: Steps = [("url.txt", lambda: str(driver.current_url).encode())]
    if screenshot:
        steps.append(("screenshot.png", lambda: _full_page_png(driver)))
    if source:
        steps.append(("page.html", lambda: str(driver.page_source).encode()))
    if failed:
        steps.append(("console.txt", lambda: _driver_console(driver)))
    problems: list[str] = []
    deadline = time.monotonic() + CAPTURE_SECONDS
    write = lambda: problems.extend(_write(folder, steps, deadline))  # noqa: E731
    if not returned_within(CAPTURE_SECONDS + 1, write, "edgeprofiles-capture"):
        return [f"the browser did not answer in {CAPTURE_SECONDS:g} s (the page may hang)"]
    return problems


class ConsoleLog:
    """The console messages and page errors of a Playwright context, from its start."""

    def __init__(self, context: Any) -> None:
        self.lines: list[str] = []
        context.on("console", self._message)
        context.on("weberror", lambda error: self.lines.append(f"[pageerror] {error.error}"))

    def _message(self, message: Any) -> None:
        where = message.location or {}
        at = f" ({where.get('url')}:{where.get('lineNumber')})" if where.get("url") else ""
        self.lines.append(f"[{message.type}] {message.text}{at}")


def capture_pages(
    context: Any, console: ConsoleLog, folder: Path, screenshot: bool, source: bool, failed: bool
) -> list[str]:
    """Write what each open page of a Playwright ``context`` shows (``page-2-...`` for the
    second); on this thread, which Playwright's sync API requires, each step with a timeout.
    The console whether the test ``failed`` or not: it is our own copy, taken from nobody."""
    deadline = time.monotonic() + CAPTURE_SECONDS
    pages = context.pages
    # First what asks nothing of the pages: a page that hangs takes the time of the rest.
    steps: Steps = [("console.txt", lambda: "".join(f"{x}\n" for x in console.lines).encode())]
    for number, page in enumerate(pages, 1):
        prefix = f"page-{number}-" if len(pages) > 1 else ""
        steps += _page_steps(page, prefix, screenshot, source, deadline)
    return _write(folder, steps, deadline)


def _page_steps(page: Any, prefix: str, screenshot: bool, source: bool, deadline: float) -> Steps:
    def left() -> float:
        return max(deadline - time.monotonic(), 0.1) * 1000

    def shot() -> bytes:
        page.bring_to_front()  # a tab behind another draws nothing, and its shot never comes
        return bytes(page.screenshot(full_page=True, timeout=left()))

    def html() -> bytes:
        # ``content`` has no timeout, and a page whose script never yields never answers it:
        # ask first what does time out.
        page.wait_for_function("() => true", timeout=left())
        return str(page.content()).encode()

    steps: Steps = [(f"{prefix}url.txt", lambda: str(page.url).encode())]
    if screenshot:
        steps.append((f"{prefix}screenshot.png", shot))
    if source:
        steps.append((f"{prefix}page.html", html))
    return steps


def _write(folder: Path, steps: Steps, deadline: float) -> list[str]:
    """Write each step's file into ``folder`` (what an earlier run left there goes first)."""
    shutil.rmtree(folder, ignore_errors=True)
    problems = []
    for name, make in steps:
        if time.monotonic() > deadline:
            problems.append(f"{name}: not captured, out of time ({CAPTURE_SECONDS:g} s)")
            continue
        try:
            data = make()
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
        except Exception as exc:  # whatever the browser or the disk says
            problems.append(f"{name}: not captured: {type(exc).__name__}: {exc}".strip())
    return problems


def _full_page_png(driver: Any) -> bytes:
    """The whole page, not only its viewport, as Chromium renders it (Selenium shows the
    viewport only)."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], _TALLEST)}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {"format": "png", "captureBeyondViewport": True, "clip": {**clip, "scale": 1}},
    )
    return base64.b64decode(shot["data"])


def _driver_console(driver: Any) -> bytes:
    """The browser log ``edge_driver`` asks chromedriver to keep (``goog:loggingPrefs``)."""
    entries = driver.get_log("browser")
    return "".join(f"[{e.get('level')}] {e.get('message')}\n" for e in entries).encode()
