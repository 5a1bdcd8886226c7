"""Downloads land in a folder of the test's own, never in one shared by parallel workers."""

import time
from pathlib import Path

from playwright.sync_api import sync_playwright


def wait_for_download(path: Path, seconds: float = 20) -> None:
    """Poll until ``path`` holds the finished download.

    Chromium first reserves the name with an empty file, writes into ``<name>.crdownload``
    and renames that over the reservation when done: a file that merely exists may be empty.
    """
    deadline = time.monotonic() + seconds
    while not (path.is_file() and path.stat().st_size > 0):
        assert time.monotonic() < deadline, f"{path} never arrived"
        time.sleep(0.05)


def test_selenium_download(edge_driver, edge_download_dir, site):
    edge_driver.get(site)
    edge_driver.find_element("id", "report").click()
    wait_for_download(edge_download_dir / "report.csv")
    assert (edge_download_dir / "report.csv").read_text() == "id,value\n1,42\n"


def test_playwright_download(edge_playwright_kwargs, edge_download_dir, site):
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(**edge_playwright_kwargs)
        page = context.new_page()
        page.goto(site)
        with page.expect_download() as info:
            page.click("#report")
        saved = Path(info.value.path())
        # Playwright ignores the download pref and saves (under a generated name) here:
        assert saved.parent == edge_download_dir
        context.close()
