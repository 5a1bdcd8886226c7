"""Downloads land in a folder of the test's own, never in one shared by parallel workers."""

import time
from pathlib import Path


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


def test_playwright_download(edge_page, edge_download_dir, site):
    edge_page.goto(site)
    with edge_page.expect_download() as info:
        edge_page.click("#report")
    # Playwright keeps a download under a generated name of its own until it is saved:
    info.value.save_as(edge_download_dir / "report.csv")
    assert (edge_download_dir / "report.csv").read_text() == "id,value\n1,42\n"
