"""Finding an installed Edge, Chrome or Chromium, and comparing browser versions."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass

COMMANDS = {
    "edge": ("msedge", "microsoft-edge", "microsoft-edge-stable", "microsoft-edge-beta",
             "microsoft-edge-dev"),
    "chrome": ("google-chrome", "google-chrome-stable", "chrome"),
    "chromium": ("chromium", "chromium-browser"),
}  # fmt: skip


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:4])


def compare_versions(base_version: str | None, browser_version: str | None) -> str:
    """How a profile's ``Last Version`` compares with the browser's: ``same``, ``older`` (the
    browser upgrades it), ``newer`` (the browser may refuse its databases) or ``unknown``."""
    base = version_tuple(base_version or "")
    ours = version_tuple(browser_version or "")
    if not base or not ours:
        return "unknown"
    return "same" if base == ours else "newer" if base > ours else "older"


@dataclass(frozen=True)
class Browser:
    """An installed Chromium-family browser."""

    path: str
    kind: str  # "edge", "chrome" or "chromium"
    version: str | None = None
    #: Playwright's channel name, for an Edge found at its standard install path.
    channel: str | None = None

    @property
    def is_edge(self) -> bool:
        return self.kind == "edge"

    def describe(self) -> str:
        name = {"edge": "Microsoft Edge", "chrome": "Google Chrome"}.get(self.kind, "Chromium")
        return f"{name} {self.version or '(version unknown)'} at {self.path}"


def _install_paths(kind: str) -> list[str]:
    """Standard install locations, stable channel first."""
    if sys.platform == "win32":
        tails = {
            "edge": [
                rf"Microsoft\Edge{c}\Application\msedge.exe" for c in ("", " Beta", " Dev", " SxS")
            ],
            "chrome": [r"Google\Chrome\Application\chrome.exe"],
            "chromium": [r"Chromium\Application\chrome.exe"],
        }[kind]
        roots = [os.environ.get(v) for v in ("PROGRAMFILES(X86)", "PROGRAMFILES", "LOCALAPPDATA")]
        return [os.path.join(r, t) for r in roots if r for t in tails]
    if sys.platform == "darwin":
        apps = {
            "edge": [f"Microsoft Edge{c}" for c in ("", " Beta", " Dev", " Canary")],
            "chrome": ["Google Chrome"],
            "chromium": ["Chromium"],
        }[kind]
        return [f"/Applications/{a}.app/Contents/MacOS/{a}" for a in apps]
    return {
        "edge": [f"/opt/microsoft/msedge{c}/msedge" for c in ("", "-beta", "-dev")],
        "chrome": ["/opt/google/chrome/chrome"],
        "chromium": [],
    }[kind]


def _channel(path: str) -> str | None:
    lowered = path.lower()
    if "edge" not in lowered:
        return None
    for suffix in ("beta", "dev", "canary"):
        if suffix in lowered or (suffix == "canary" and "sxs" in lowered):
            return f"msedge-{suffix}"
    return "msedge"


def kind_of(path: str) -> str:
    name = os.path.basename(path).lower()
    if "edge" in name:
        return "edge"
    if "chrome" in name and "chromium" not in name and "google" in path.lower():
        return "chrome"
    return "chromium"


def browser_version(path: str) -> str | None:
    """The browser's version (``--version``), or on Windows, where that prints nothing (and may
    start the browser), the newest ``<version>`` folder beside the executable."""
    if sys.platform == "win32":
        folder = os.path.dirname(path)
        names = [n for n in os.listdir(folder) if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", n)]
        return max(names, key=version_tuple) if names else None
    from .processes import OWN_GROUP, kill_tree

    try:
        probe = subprocess.Popen(
            [path, "--version"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            **OWN_GROUP,
        )
    except OSError:
        return None
    try:
        out = probe.communicate(timeout=30)[0]
    except subprocess.TimeoutExpired:
        out = ""
    finally:
        kill_tree(probe)  # and whatever it started, which may hold its output open
    match = re.search(r"\d+\.\d+\.\d+\.\d+", out)
    return match.group(0) if match else None


def kind_of_channel(channel: str) -> str:
    """The kind of browser a Playwright channel names (``msedge-beta``: Edge)."""
    for prefix, kind in (("msedge", "edge"), ("chromium", "chromium"), ("chrome", "chrome")):
        if channel.startswith(prefix):
            return kind
    raise ValueError(
        f"unknown browser channel {channel!r}: expected msedge[-beta|-dev|-canary], "
        "chrome[-beta|-dev|-canary] or chromium"
    )


def find_browser(override: str | None = None, channel: str | None = None) -> Browser | None:
    """``override`` (a path or command) if given; else Edge (stable first; install paths, then
    PATH), Chrome, Chromium, or only a Playwright ``channel``'s kind, its own path first."""
    if override:
        path = shutil.which(override) or (override if os.path.isfile(override) else None)
        return None if path is None else Browser(path, kind_of(path), browser_version(path))
    kinds = (kind_of_channel(channel),) if channel else ("edge", "chrome", "chromium")
    for kind in kinds:
        paths = sorted(_install_paths(kind), key=lambda p: bool(channel) and _channel(p) != channel)
        for candidate in paths:
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return Browser(candidate, kind, browser_version(candidate), _channel(candidate))
        for command in COMMANDS[kind]:
            if found := shutil.which(command):
                return Browser(found, kind, browser_version(found))
    return None
