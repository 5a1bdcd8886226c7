"""Shared set-up for the examples: a small local site with a login, and a base profile that
logs in once per run so that every worker's clone starts logged in.

Copy what you need: the hook ``pytest_edgeprofiles_base_profile`` is the part most suites want.
"""

from __future__ import annotations

import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from pytest_edgeprofiles import launch
from pytest_edgeprofiles.chromium import Browser

SITE_ENV = "EDGEPROFILES_EXAMPLE_SITE"


class Site(BaseHTTPRequestHandler):
    """``/login?user=NAME`` sets a cookie; ``/`` greets whoever the cookie names."""

    def do_GET(self) -> None:
        url = urlparse(self.path)
        headers = {"Content-Type": "text/html; charset=utf-8"}
        if url.path == "/login":
            user = parse_qs(url.query).get("user", ["nobody"])[0]
            headers["Set-Cookie"] = f"user={user}; Max-Age=86400; Path=/"
            body = f"<title>logged in</title><p>Logged in as {user}</p>"
        elif url.path == "/":
            cookies = dict(
                part.strip().split("=", 1)
                for part in self.headers.get("Cookie", "").split(";")
                if "=" in part
            )
            user = cookies.get("user")
            body = f"<title>home</title><p id='greeting'>Welcome {user or 'stranger'}</p>"
            body += "<a id='report' href='/report.csv'>report</a>"
        elif url.path == "/report.csv":
            headers = {
                "Content-Type": "text/csv",
                "Content-Disposition": "attachment; filename=report.csv",
            }
            body = "id,value\n1,42\n"
        else:
            self.send_error(404)
            return
        data = body.encode()
        self.send_response(200)
        for name, value in {**headers, "Content-Length": str(len(data))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def _start_site() -> str:
    """Serve the site from this (the controlling) process for the whole run; xdist workers,
    started later, inherit its address through the environment."""
    if SITE_ENV not in os.environ:
        server = ThreadingHTTPServer(("127.0.0.1", 0), Site)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        os.environ[SITE_ENV] = f"http://127.0.0.1:{server.server_port}"
    return os.environ[SITE_ENV]


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):
        _start_site()


def pytest_edgeprofiles_base_profile(
    config: pytest.Config, browser: Browser | None, folder: Path
) -> Path | None:
    """Log in once, as a person would, into the base profile every test clones."""
    if browser is None:
        return None
    from selenium import webdriver

    options = launch.selenium_options(folder, browser, extra=launch.QUIET_FLAGS)
    service = launch.selenium_service(browser)
    driver = (
        webdriver.Edge(options, service) if browser.is_edge else webdriver.Chrome(options, service)
    )
    try:
        driver.get(_start_site() + "/login?user=alice")
    finally:
        driver.quit()  # a clean exit writes the cookie to disk
    return folder


@pytest.fixture(scope="session")
def site() -> str:
    return os.environ[SITE_ENV]
