"""``edgeprofiles doctor``: the browser that would be used, and the health of a base profile.

A report: it exits 0 whatever it finds (except ``--require-browser`` without a browser).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .._chromium import processes, userdata
from .._chromium.installs import Browser, compare_versions, find_browser
from .._chromium.processes import a_browser
from .._chromium.userdata import DEFAULT_SKIP_RULES, JSON_FILES, LOCK_NAME, SkipRules, last_version
from .._options import env_of
from .._profiles.clone import check_base_profile
from .._system import files
from ._common import (
    EXIT_FAILED,
    EXIT_OK,
    Subcommands,
    UsageError,
    add_command,
    error_text,
    human_size,
    named,
    output,
    progress,
)


def _browser(args: argparse.Namespace) -> Browser | None:
    source, override = named(args.browser, "--browser", "browser")
    browser = find_browser(override)
    if override and browser is None:
        raise UsageError(f"{source}: no such browser {override!r} (not a file, not on PATH)")
    return browser


def _base(args: argparse.Namespace) -> Path | None:
    source, text = named(args.base_profile, "--base-profile", "base_profile")
    if text is None:
        return None
    try:
        return check_base_profile(text)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{source}: {error_text(exc)}") from None


def _measure(base: Path, rules: SkipRules, args: argparse.Namespace) -> tuple[int, dict[str, int]]:
    """Bytes of the whole base, and of each entry a clone skips, in one walk with progress (a
    real base holds GBs of cache); what lies below a skipped folder counts towards it."""
    total = 0
    skipped: dict[tuple[str, ...], int] = {}
    for entry, rel in progress(files.walk(base, tolerant=True), args, "measuring", "file"):
        top = next((rel[:i] for i in range(1, len(rel)) if rel[:i] in skipped), None)
        if top is None and rules.skips(rel, entry.is_dir(follow_symlinks=False)):
            top = rel
            skipped[top] = 0
        size = files.file_size(entry)
        total += size
        if top is not None:
            skipped[top] += size
    return total, {"/".join(rel): size for rel, size in sorted(skipped.items())}


def _lock(base: Path) -> dict[str, Any]:
    """The base's ``SingletonLock`` or Windows ``lockfile`` (``processes.lock_state``)."""
    state, owner = processes.lock_state(base)
    host, pid = (owner.host or None, owner.pid) if owner else (None, None)
    return {"state": state, "host": host, "pid": pid}


def _base_report(base: Path, browser: Browser | None, args: argparse.Namespace) -> dict[str, Any]:
    size, skipped = _measure(base, DEFAULT_SKIP_RULES, args)
    version = last_version(base)
    return {
        "path": str(base),
        "size_bytes": size,
        "clone_bytes": size - sum(skipped.values()),
        "lock": _lock(base),
        "last_version": version,
        "version_check": compare_versions(version, browser.version if browser else None),
        "json_files": {name: userdata.json_state(base / name) for name in JSON_FILES},
        "skipped": [{"path": rel, "bytes": n} for rel, n in skipped.items()],
    }


def _start(browser: Browser) -> dict[str, Any]:
    """Start ``browser`` headless once, on a profile of its own, as the fixtures would."""
    from .._browser.sessions import BrowserStartError, start_session

    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="edgeprofiles-doctor-") as folder:
        try:
            start_session(Path(folder) / "profile", browser).stop()
        except (BrowserStartError, OSError) as exc:
            return {"ok": False, "seconds": None, "error": str(exc)}
    return {"ok": True, "seconds": round(time.monotonic() - began, 2), "error": None}


def _driver(browser: Browser) -> dict[str, Any]:
    name = "msedgedriver" if browser.is_edge else "chromedriver"
    return {"name": name, "path": shutil.which(name)}


def _problems(doc: dict[str, Any], base: dict[str, Any] | None) -> list[str]:
    """What would break or slow the tests, in words a person can act on."""
    problems = []
    browser = None if doc["browser"] is None else Browser(**doc["browser"])
    if browser is None:
        problems.append("no Edge, Chrome or Chromium found; name one with --browser")
    elif not doc["start"]["ok"]:
        problems.append(f"the browser does not start: {doc['start']['error']}")
    if doc["driver"] is not None and doc["driver"]["path"] is None:
        problems.append(
            f"no {doc['driver']['name']} on PATH: edge_driver needs one (edge_page and "
            "edge_context do not); install the one that matches the browser's version"
        )
    if base is None:
        return problems
    if base["lock"]["state"] == "live":
        problems.append(
            f"{a_browser(base['lock']['pid'])} runs on the base profile: clones may copy "
            "half-written files; close it first"
        )
    if base["version_check"] == "newer" and browser is not None:
        problems.append(
            f"the base profile was last opened by version {base['last_version']}, newer than "
            f"{browser.describe()}: the browser may refuse its databases ('Your profile can "
            "not be used because it is from a newer version'); make the base with this browser"
        )
    for name, state in base["json_files"].items():
        if state == "corrupt":
            problems.append(
                f"{name} of the base profile is not a JSON object: the browser sets it aside "
                "and starts on defaults, chromedriver refuses to start"
            )
    return problems


def cmd_doctor(args: argparse.Namespace) -> int:
    """``edgeprofiles doctor``: report the browser and, if one is named, the base profile."""
    browser = _browser(args)
    base = _base(args)
    report = None if base is None else _base_report(base, browser, args)
    doc: dict[str, Any] = {
        "browser": None if browser is None else asdict(browser),
        "start": None if browser is None else _start(browser),
        "driver": None if browser is None else _driver(browser),
        "base_profile": report,
    }
    doc["problems"] = _problems(doc, report)
    output(args, doc, _print_doctor)
    usable = browser is not None and doc["start"]["ok"]
    return EXIT_FAILED if args.require_browser and not usable else EXIT_OK


_LOCK_TEXT = {
    "none": "none",
    "live": "live: {browser} of this host runs on it",
    "stale": "stale: pid {pid} is gone (harmless)",
    "foreign-host": "held by another host, {host} (pid {pid}): a browser refuses the base "
    "itself; clones skip the lock",
    "invalid": "not a <host>-<pid> link: a browser refuses the base itself; clones skip it",
}


def _print_doctor(doc: dict[str, Any]) -> None:
    browser = doc["browser"]
    print(f"browser: {Browser(**browser).describe() if browser else 'none found'}")
    if browser:
        start, driver = doc["start"], doc["driver"]
        started = f"yes, in {start['seconds']} s" if start["ok"] else "no"
        print(f"  starts headless: {started}")
        print(f"  {driver['name']}: {driver['path'] or 'not on PATH'}")
    if doc["base_profile"] is not None:
        _print_base(doc["base_profile"], browser and browser["version"])
    for problem in doc["problems"]:
        print(f"problem: {problem}")
    if not doc["problems"]:
        print("no problems found")


def _print_base(base: dict[str, Any], browser_version: str | None) -> None:
    skipped = base["size_bytes"] - base["clone_bytes"]
    print(f"base profile: {base['path']}")
    size, copied = human_size(base["size_bytes"]), human_size(base["clone_bytes"])
    print(
        f"  size: {size}; a clone copies {copied} "
        f"and skips {human_size(skipped)} (caches and lock state)"
    )
    lock = base["lock"]
    text = _LOCK_TEXT[lock["state"]].format(browser=a_browser(lock["pid"]), **lock)
    print(f"  {LOCK_NAME}: {text}")
    relation = {
        "same": "the browser's",
        "older": f"older than {browser_version}: fine, the browser upgrades a clone",
        "newer": f"newer than {browser_version}",
        "unknown": "not compared",
    }[base["version_check"]]
    print(f"  Last Version: {base['last_version'] or 'none'} ({relation})")
    for name, state in base["json_files"].items():
        print(f"  {name}: {state}")
    print("  a clone skips:" if base["skipped"] else "  a clone skips nothing")
    width = max((len(s["path"]) for s in base["skipped"]), default=0)
    for s in base["skipped"]:
        print(f"    {s['path'].ljust(width)}  {human_size(s['bytes'])}")


def add_doctor(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    """Declare ``doctor`` and its arguments; ``common`` carries ``--json``."""
    doctor = add_command(
        commands,
        "doctor",
        cmd_doctor,
        parents=[common],
        help="the browser that would be used, and the health of a base profile",
        description="Report the browser that would be used and its version, whether it "
        "starts headless (started once, on a profile of its own) and whether the driver "
        "edge_driver needs is on PATH; for a base "
        "profile, its size with and without caches, its lock state (none, live, stale, "
        "foreign-host, invalid), its 'Last Version' against the browser's, whether 'Local "
        "State' and 'Default/Preferences' parse, and what a clone would skip. A report: "
        "exit 0 whatever it finds, except with --require-browser.",
    )
    doctor.add_argument(
        "--base-profile",
        metavar="DIR",
        help=f"a base profile (user data dir) to check; default: ${env_of('base_profile')}. "
        "A missing one is a usage error",
    )
    doctor.add_argument(
        "--browser",
        metavar="PATH",
        help=f"browser path or command; default: ${env_of('browser')}, else Edge, Chrome, "
        "Chromium as the plugin finds them",
    )
    doctor.add_argument(
        "--require-browser",
        action="store_true",
        help="exit 1 when no browser is found, or it does not start",
    )
