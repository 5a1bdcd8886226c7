"""The ``edgeprofiles`` command line: look at, clean up and check profiles outside a test run.

A run killed outright (SIGKILL, a CI timeout, a closed laptop) leaves profiles whose owners
are gone; the next run on the same root sweeps them, but a person wants to see them, free the
space now, or find out why a base profile misbehaves. One function a subcommand; each builds
one dict, printed as JSON with ``--json`` or as text, so both always say the same.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar, cast

from . import __version__, files, processes, removal, sweep
from .chromium import (
    DEFAULT_SKIP_RULES,
    JSON_FILES,
    Browser,
    SkipRules,
    compare_versions,
    find_browser,
    last_version,
    this_host,
)
from .clone import check_base_profile
from .records import ProfileRecord, iter_records, profile_of
from .roots import default_root, refuse_planted_root
from .runs import RUNS

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
T = TypeVar("T")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

EPILOG = """\
exit codes: 0 done (doctor: the report was made, whatever it found), 1 something failed
(clean could not remove a profile, doctor --require-browser found no browser, an OS error),
2 usage error (a bad option or value, a missing base profile)."""


class UsageError(Exception):
    """A bad value found after parsing (a root that is a file, a missing base): exit 2."""


# -- small helpers --------------------------------------------------------------------------


def duration(text: str) -> float:
    """Seconds in ``90s``, ``30m``, ``2h`` or ``7d``; a unit is required, so ``30`` is
    never silently read as seconds when minutes were meant."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: expected a number and a unit, as in 90s, 30m, 2h or 7d"
        )
    return float(match[1]) * _UNITS[match[2]]


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _age(seconds: float) -> str:
    for unit in ("d", "h", "m"):
        if seconds >= _UNITS[unit]:
            return f"{int(seconds // _UNITS[unit])}{unit}"
    return f"{max(int(seconds), 0)}s"


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}{'' if n == 1 else 's'}"


def _message(exc: Exception) -> str:
    """``base profile not found: x`` rather than ``[Errno 2] base profile not found: 'x'``."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        return f"{exc.strerror}: {exc.filename}"
    return str(exc)


def _interactive(args: argparse.Namespace) -> bool:
    """Progress only for a person: never with ``--json``, and only when both stdout and
    stderr (where the bar goes) are terminals, so no log or pipe gets bar fragments."""
    return not args.json and sys.stdout.isatty() and sys.stderr.isatty()


def _progress(
    items: Iterable[T], args: argparse.Namespace, what: str, unit: str, total: int | None = None
) -> Iterable[T]:
    """``items`` behind a progress bar when :func:`_interactive` and tqdm (the ``progress``
    extra) is installed; otherwise ``items`` as they are, and nothing extra printed.

    The bar shows up only after half a second, so quick work does not flicker.
    """
    if not _interactive(args):
        return items
    try:
        # Imported by name: tqdm is optional and ships no type hints.
        tqdm = importlib.import_module("tqdm").tqdm
    except ImportError:
        return items
    bar = tqdm(items, total=total, desc=what, unit=unit, leave=False, file=sys.stderr, delay=0.5)
    return cast(Iterable[T], bar)


def _root(args: argparse.Namespace) -> Path:
    if args.root:
        text, source = args.root, "--root"
    else:
        text, source = os.environ.get("EDGEPROFILES_ROOT", ""), "EDGEPROFILES_ROOT"
    root = Path(text).expanduser().resolve() if text else default_root()
    refuse_planted_root(root)  # never read or remove through a planted default root
    if root.exists() and not root.is_dir():
        raise UsageError(f"{source}: {root} is not a directory")
    return root


Entry = tuple[str, Path, ProfileRecord | None]


def _entries(root: Path) -> list[Entry]:
    """What a killed run leaves under ``root``: profiles and run folders (``root/.runs``)
    with their records, and ``garbage-*`` folders, moved aside to be deleted, which have none.
    """
    found: list[Entry] = [
        (kind, profile_of(record_file), record)
        for kind, folder in (("profile", root), ("run", root / RUNS))
        for record_file, record in sorted(iter_records(folder), key=lambda item: item[0])
    ]
    return found + [("garbage", path, None) for path in sweep.garbage_folders(root)]


def _owner(record: ProfileRecord | None) -> str:
    """``alive``, ``dead``, ``other-host`` (whose processes we cannot see: never removed) or
    ``none`` (garbage: nobody's)."""
    if record is None:
        return "none"
    if record.host != this_host():
        return "other-host"
    return "alive" if record.owner_alive() else "dead"


def _created(path: Path, record: ProfileRecord | None) -> float:
    """When the profile was made; for garbage, which has no record, its last change."""
    if record is not None:
        return record.created_at
    try:
        return path.lstat().st_mtime
    except OSError:
        return time.time()


def _output(
    args: argparse.Namespace, doc: dict[str, Any], as_text: Callable[[dict[str, Any]], None]
) -> None:
    """One JSON document for scripts with ``--json``, else text for a person."""
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        as_text(doc)


# -- list -------------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    root = _root(args)
    now = time.time()
    entries = _entries(root)
    profiles = [
        _describe(entry, root, now)
        for entry in _progress(entries, args, "measuring", "profile", len(entries))
    ]
    doc = {"root": str(root), "root_exists": root.is_dir(), "profiles": profiles}
    _output(args, doc, _print_list)
    return EXIT_OK


#: Fields of an owner record that ``list`` shows; null for garbage, which has no record.
_RECORD_FIELDS = ("worker_id", "pid", "host", "keep", "released", "run")


def _describe(entry: Entry, root: Path, now: float) -> dict[str, Any]:
    kind, path, record = entry
    created = _created(path, record)
    known = dict.fromkeys(_RECORD_FIELDS)
    if record is not None:
        known = {name: getattr(record, name) for name in _RECORD_FIELDS}
    return {
        "name": path.relative_to(root).as_posix(),
        "path": str(path),
        "kind": kind,
        "owner": _owner(record),
        "size_bytes": files.tree_size(path),
        "created_at": created,
        "age_seconds": round(now - created, 3),
        "exists": path.is_dir(),
        **known,
    }


#: Said of a root that does not exist: a typo, or a root no run has used yet.
_MISSING = " (no such folder)"


def _print_list(doc: dict[str, Any]) -> None:
    profiles = doc["profiles"]
    if not profiles:
        print(f"no profiles under {doc['root']}{_MISSING * (not doc['root_exists'])}")
        return
    rows = [("NAME", "OWNER", "SIZE", "AGE", "FLAGS", "RUN")]
    for p in profiles:
        flags = [name for name, on in (("kept", p["keep"]), ("released", p["released"]),
                                        ("missing", not p["exists"])) if on]  # fmt: skip
        owner = f"{p['pid'] or '-'} {p['owner']}"
        rows.append(
            (p["name"], owner, _size(p["size_bytes"]), _age(p["age_seconds"]),
             ",".join(flags) or "-", p["run"] or "-")
        )  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    print(f"root {doc['root']}")
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    dead = sum(p["owner"] == "dead" for p in profiles)
    total = sum(p["size_bytes"] for p in profiles)
    print(f"{len(profiles)} entries, {_size(total)}; {dead} with a dead owner")


# -- clean ------------------------------------------------------------------------------------


def _doomed(record: ProfileRecord | None, include_kept: bool) -> bool:
    """Only a dead owner's profile (same host, pid gone or reused), kept ones only when asked,
    and garbage, which its owner gave up already.

    Stricter than ``sweep.sweep``, which also takes profiles a live owner released after a
    failed removal: a person running ``clean`` next to a test run must never pull a folder
    from under it; that run's own sweep takes those.
    """
    if record is None:
        return True
    if record.keep and not include_kept:
        return False
    return record.host == this_host() and not record.owner_alive()


def cmd_clean(args: argparse.Namespace) -> int:
    root = _root(args)
    now = time.time()
    doomed = [
        (path, record)
        for _, path, record in _entries(root)
        if _doomed(record, args.include_kept) and now - _created(path, record) >= args.older_than
    ]
    verb = "checking" if args.dry_run else "removing"
    result = removal.remove_many(
        _progress(doomed, args, verb, "profile", len(doomed)), args.dry_run
    )
    removed = [str(path) for path in result.removed]
    failed = [
        {"path": str(path), "error": _message(exc)}
        for path, exc in zip(result.failed, result.errors, strict=True)
    ]
    freed = result.freed_bytes
    doc = {
        "root": str(root),
        "root_exists": root.is_dir(),
        "dry_run": args.dry_run,
        "removed": removed,
        "failed": failed,
        "freed_bytes": freed,
    }
    _output(args, doc, _print_clean)
    return EXIT_FAILED if failed else EXIT_OK


def _print_clean(doc: dict[str, Any]) -> None:
    if not doc["removed"] and not doc["failed"]:
        print(f"nothing to remove under {doc['root']}{_MISSING * (not doc['root_exists'])}")
        return
    would = "would remove" if doc["dry_run"] else "removed"
    for path in doc["removed"]:
        print(f"{would} {path}")
    for failure in doc["failed"]:
        print(f"could not remove {failure['path']}: {failure['error']}", file=sys.stderr)
    freed = "would free" if doc["dry_run"] else "freed"
    print(
        f"{would} {_what(doc['removed'])} under {doc['root']}, {freed} {_size(doc['freed_bytes'])}"
        + (f"; {len(doc['failed'])} could not be removed" if doc["failed"] else "")
    )


def _what(paths: list[str]) -> str:
    """``2 profiles, 1 run folder``: what the paths are, told by where they lie."""
    kinds = [
        "run folder" if p.parent.name == RUNS
        else "garbage folder" if p.name.startswith(files.GARBAGE_PREFIX)
        else "profile"
        for p in map(Path, paths)
    ]  # fmt: skip
    named = [_count(kinds.count(k), k) for k in ("profile", "run folder", "garbage folder")]
    return ", ".join(n for n in named if not n.startswith("0 ")) or "nothing"


# -- doctor -----------------------------------------------------------------------------------


def _browser(args: argparse.Namespace) -> Browser | None:
    override = args.browser or os.environ.get("EDGEPROFILES_BROWSER") or None
    browser = find_browser(override)
    if override and browser is None:
        source = "--browser" if args.browser else "EDGEPROFILES_BROWSER"
        raise UsageError(f"{source}: no such browser {override!r} (not a file, not on PATH)")
    return browser


def _base(args: argparse.Namespace) -> Path | None:
    text = args.base_profile or os.environ.get("EDGEPROFILES_BASE_PROFILE") or None
    if text is None:
        return None
    try:
        return check_base_profile(text)
    except (OSError, ValueError) as exc:
        source = "--base-profile" if args.base_profile else "EDGEPROFILES_BASE_PROFILE"
        raise UsageError(f"{source}: {_message(exc)}") from None


def _measure(base: Path, rules: SkipRules, args: argparse.Namespace) -> tuple[int, dict[str, int]]:
    """Bytes of the whole base, and each entry a clone skips with its bytes, in one walk.

    A real base holds GBs of cache, so it is walked once, with progress. An entry below a
    skipped folder counts towards that folder: a clone never looks inside it.
    """
    total = 0
    skipped: dict[tuple[str, ...], int] = {}
    for entry, rel in _progress(files.walk(base, tolerant=True), args, "measuring", "file"):
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
    """The base's ``SingletonLock`` (see ``processes.lock_state``). Clones never copy it."""
    state, owner = processes.lock_state(base)
    return {
        "state": state,
        "host": owner.host or None if owner else None,
        "pid": owner.pid if owner else None,
    }


def _json_state(path: Path) -> str:
    """``ok``, ``missing`` or ``corrupt`` (not a JSON object), for one file: where
    ``chromium.json_files_ok`` answers yes or no for all, a person needs to know which."""
    try:
        data = files.read_json(path)
    except FileNotFoundError:
        return "missing"
    except (OSError, ValueError):
        return "corrupt"
    return "ok" if isinstance(data, dict) else "corrupt"


def _version_check(base_version: str | None, browser: Browser | None) -> str:
    return compare_versions(base_version, browser.version if browser else None)


def _base_report(base: Path, browser: Browser | None, args: argparse.Namespace) -> dict[str, Any]:
    size, skipped = _measure(base, DEFAULT_SKIP_RULES, args)
    version = last_version(base)
    return {
        "path": str(base),
        "size_bytes": size,
        "clone_bytes": size - sum(skipped.values()),
        "lock": _lock(base),
        "last_version": version,
        "version_check": _version_check(version, browser),
        "json_files": {name: _json_state(base / name) for name in JSON_FILES},
        "skipped": [{"path": rel, "bytes": n} for rel, n in skipped.items()],
    }


def _problems(browser: Browser | None, base: dict[str, Any] | None) -> list[str]:
    """What would break or slow the tests, in words a person can act on."""
    problems = []
    if browser is None:
        problems.append("no Edge, Chrome or Chromium found; name one with --browser")
    if base is None:
        return problems
    if base["lock"]["state"] == "live":
        problems.append(
            f"a browser (pid {base['lock']['pid']}) runs on the base profile: clones may copy "
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
    browser = _browser(args)
    base = _base(args)
    report = None if base is None else _base_report(base, browser, args)
    doc = {
        "browser": None if browser is None else asdict(browser),
        "base_profile": report,
        "problems": _problems(browser, report),
    }
    _output(args, doc, _print_doctor)
    return EXIT_FAILED if browser is None and args.require_browser else EXIT_OK


_LOCK_TEXT = {
    "none": "none",
    "live": "live: pid {pid} of this host runs on it",
    "stale": "stale: pid {pid} is gone (harmless)",
    "foreign-host": "held by another host, {host} (pid {pid}): a browser refuses the base "
    "itself; clones skip the lock",
    "invalid": "not a <host>-<pid> link: a browser refuses the base itself; clones skip it",
}


def _print_doctor(doc: dict[str, Any]) -> None:
    browser = doc["browser"]
    print(f"browser: {Browser(**browser).describe() if browser else 'none found'}")
    if doc["base_profile"] is not None:
        _print_base(doc["base_profile"], browser and browser["version"])
    for problem in doc["problems"]:
        print(f"problem: {problem}")
    if not doc["problems"]:
        print("no problems found")


def _print_base(base: dict[str, Any], browser_version: str | None) -> None:
    skipped = base["size_bytes"] - base["clone_bytes"]
    print(f"base profile: {base['path']}")
    print(
        f"  size: {_size(base['size_bytes'])}; a clone copies {_size(base['clone_bytes'])} "
        f"and skips {_size(skipped)} (caches and lock state)"
    )
    print(f"  SingletonLock: {_LOCK_TEXT[base['lock']['state']].format(**base['lock'])}")
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
        print(f"    {s['path'].ljust(width)}  {_size(s['bytes'])}")


# -- the parser -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgeprofiles",
        description="Look at, clean up and check the temporary Edge/Chromium profiles of "
        "pytest-edgeprofiles. Also run as 'python -m pytest_edgeprofiles'.",
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print one JSON document, no text")
    rooted = argparse.ArgumentParser(add_help=False, parents=[common])
    rooted.add_argument(
        "--root",
        metavar="DIR",
        help="profile root; default: $EDGEPROFILES_ROOT, else "
        f"<system temp>/edgeprofiles-of-<user> (here {default_root()}). Run folders under "
        "DIR/.runs are included",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, run: Callable[[argparse.Namespace], int], **kw: Any) -> Any:
        sub = commands.add_parser(name, epilog=EPILOG, **kw)
        sub.set_defaults(run=run, parser=sub)
        return sub

    command(
        "list",
        cmd_list,
        parents=[rooted],
        help="profiles under a root, their owners, sizes and ages",
        description="List the profiles and run folders under a root: the owner's pid and "
        "whether it is alive, dead or on another host (never judged from here), size, age "
        "(since creation), flags (kept: kept after a failure, no sweep removes it; released: "
        "holds no slot any more; missing: an owner record without its folder) and the run id. "
        "Also garbage-* folders: profiles moved aside to be deleted, owned by nobody.",
    )
    clean = command(
        "clean",
        cmd_clean,
        parents=[rooted],
        help="remove the profiles of dead owners",
        description="Remove the profiles and run folders under a root whose owner process is "
        "dead (pid gone, or reused by another process), with a count and the bytes freed. "
        "Never a live owner's, never one of another host; kept profiles only with "
        "--include-kept. Also garbage-* folders (profiles moved aside to be deleted). A "
        "browser left running on a removed profile is stopped first.",
    )
    clean.add_argument("--dry-run", action="store_true", help="say what would go, remove nothing")
    clean.add_argument(
        "--older-than",
        metavar="DURATION",
        type=duration,
        default=0.0,
        help="only profiles created at least this long ago: 90s, 30m, 2h, 7d",
    )
    clean.add_argument(
        "--include-kept",
        action="store_true",
        help="also remove profiles kept after a failure (still only those of dead owners)",
    )
    doctor = command(
        "doctor",
        cmd_doctor,
        parents=[common],
        help="the browser that would be used, and the health of a base profile",
        description="Report the browser that would be used and its version; for a base "
        "profile, its size with and without caches, its lock state (none, live, stale, "
        "foreign-host, invalid), its 'Last Version' against the browser's, whether 'Local "
        "State' and 'Default/Preferences' parse, and what a clone would skip. A report: "
        "exit 0 whatever it finds, except with --require-browser.",
    )
    doctor.add_argument(
        "--base-profile",
        metavar="DIR",
        help="a base profile (user data dir) to check; default: $EDGEPROFILES_BASE_PROFILE. "
        "A missing one is a usage error",
    )
    doctor.add_argument(
        "--browser",
        metavar="PATH",
        help="browser path or command; default: $EDGEPROFILES_BROWSER, else Edge, Chrome, "
        "Chromium as the plugin finds them",
    )
    doctor.add_argument(
        "--require-browser", action="store_true", help="exit 1 when no browser is found"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code, for ``--help`` and usage errors too:
    an error is one line on stderr, never a traceback."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        try:
            return int(args.run(args))
        except UsageError as exc:
            sub: argparse.ArgumentParser = args.parser
            sub.error(str(exc))
    except SystemExit as exc:  # argparse's way out: --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except BrokenPipeError:
        # The reader left (``| head``): nothing to report, and Python must not complain at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except OSError as exc:
        print(f"edgeprofiles: error: {_message(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
