"""The ``edgeprofiles`` command line: look at, clean up and check profiles outside a test run.

Each subcommand builds one dict, printed as JSON (``--json``) or as text, so both say the same.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import __version__
from .._options import env_of
from .._profiles import removal, sweep
from .._profiles.records import ProfileRecord, iter_records, profile_of
from .._profiles.roots import RUNS, default_root, refuse_planted_root
from .._system import files
from .._system.platform import expand_user
from ._common import (
    EPILOG,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    add_command,
    count,
    error_text,
    human_size,
    named,
    output,
    progress,
)
from ._doctor import add_doctor

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> float:
    """Seconds in ``90s``, ``30m``, ``2h`` or ``7d``; a unit is required, so ``30`` is never
    read as seconds when minutes were meant (``argparse.ArgumentTypeError`` otherwise)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: expected a number and a unit, as in 90s, 30m, 2h or 7d"
        )
    return float(match[1]) * _UNITS[match[2]]


def _age(seconds: float) -> str:
    for unit in ("d", "h", "m"):
        if seconds >= _UNITS[unit]:
            return f"{int(seconds // _UNITS[unit])}{unit}"
    return f"{max(int(seconds), 0)}s"


def _root(args: argparse.Namespace) -> Path:
    """The root named (an empty ``--root`` is a mistake, an empty variable is unset), which
    must be a folder we may list: one we cannot read is an error, not "nothing there"."""
    source, text = named(args.root, "--root", "profile_root")
    try:
        root = expand_user(text).resolve() if text else default_root()
    except OSError as exc:
        raise UsageError(f"{source}: {error_text(exc)}") from None
    refuse_planted_root(root)  # never read or remove through a planted default root
    if root.exists():
        if not root.is_dir():
            raise UsageError(f"{source}: {root} is not a directory")
        os.scandir(root).close()  # PermissionError: exit 1, naming the root
    return root


Entry = tuple[str, Path, ProfileRecord | None]


def _entries(root: Path) -> list[Entry]:
    """Profiles and run folders under ``root`` with their records, then garbage (no record):
    ``garbage-*`` folders and records that make no sense, each after its folder."""
    found: list[Entry] = [
        (kind, profile_of(record_file), record)
        for kind, folder in (("profile", root), ("run", root / RUNS))
        for record_file, record in sorted(iter_records(folder), key=lambda item: item[0])
    ]
    garbage = sweep.garbage_folders(root) + sweep.unreadable_records(root, time.time())
    return found + [("garbage", path, None) for path in garbage]


def _owner(record: ProfileRecord | None) -> str:
    """``alive``, ``dead``, ``other-host`` (never removed) or ``none`` (garbage)."""
    if record is None:
        return "none"
    return {"unseen": "other-host", "dead": "dead"}.get(record.owner(), "alive")


def _created(path: Path, record: ProfileRecord | None) -> float:
    """When the profile was made; for garbage, which has no record, its last change."""
    if record is not None:
        return record.created_at
    try:
        return path.lstat().st_mtime
    except OSError:
        return time.time()


def cmd_list(args: argparse.Namespace) -> int:
    """``edgeprofiles list``: the profiles, run folders and garbage under a root."""
    root = _root(args)
    now = time.time()
    entries = _entries(root)
    profiles = [
        _describe(entry, root, now)
        for entry in progress(entries, args, "measuring", "profile", len(entries))
    ]
    doc = {"root": str(root), "root_exists": root.is_dir(), "profiles": profiles}
    output(args, doc, _print_list)
    return EXIT_OK


#: Fields of an owner record that ``list`` shows; null for garbage, which has no record.
_RECORD_FIELDS = ("worker_id", "pid", "host", "keep", "released", "run")


def _describe(entry: Entry, root: Path, now: float) -> dict[str, Any]:
    kind, path, record = entry
    created = _created(path, record)
    known = {name: getattr(record, name, None) for name in _RECORD_FIELDS}  # None: garbage
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
            (p["name"], owner, human_size(p["size_bytes"]), _age(p["age_seconds"]),
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
    entries = count(len(profiles), "entry", "entries")
    print(f"{entries}, {human_size(total)}; {dead} with a dead owner")


def _doomed(record: ProfileRecord | None) -> bool:
    """Garbage, or a dead owner's profile. Stricter than ``sweep.sweep``: ``clean`` next to a
    test run must never take a live owner's released one."""
    return record is None or record.owner() == "dead"


def _spared(path: Path, record: ProfileRecord | None, include_kept: bool) -> bool:
    """A kept profile, unless asked for (or only its record is left)."""
    return record is not None and record.keep and not include_kept and os.path.lexists(path)


def cmd_clean(args: argparse.Namespace) -> int:
    """``edgeprofiles clean``: remove what dead owners left; ``EXIT_FAILED`` if any stayed."""
    root = _root(args)
    now = time.time()
    old_enough = [
        (path, record)
        for _, path, record in _entries(root)
        if now - _created(path, record) >= args.older_than
    ]
    dead = [(path, rec) for path, rec in old_enough if _doomed(rec)]  # each owner judged once
    doomed = [(path, rec) for path, rec in dead if not _spared(path, rec, args.include_kept)]
    kept_left = len(dead) - len(doomed)
    verb = "checking" if args.dry_run else "removing"
    result = removal.remove_many(progress(doomed, args, verb, "profile", len(doomed)), args.dry_run)
    failed = [
        {"path": str(path), "error": error_text(exc)}
        for path, exc in zip(result.failed, result.errors, strict=True)
    ]
    doc = {
        "root": str(root),
        "root_exists": root.is_dir(),
        "dry_run": args.dry_run,
        "removed": [str(path) for path in result.removed],
        "failed": failed,
        "freed_bytes": result.freed_bytes,
        "kept_left": kept_left,
    }
    output(args, doc, _print_clean)
    return EXIT_FAILED if failed else EXIT_OK


def _print_clean(doc: dict[str, Any]) -> None:
    kept = doc["kept_left"]
    hint = f" ({count(kept, 'kept profile')} of dead owners left: --include-kept removes them)"
    if not doc["removed"] and not doc["failed"]:
        missing = _MISSING * (not doc["root_exists"])
        print(f"nothing to remove under {doc['root']}{missing}{hint * bool(kept)}")
        return
    would = "would remove" if doc["dry_run"] else "removed"
    for path in doc["removed"]:
        print(f"{would} {path}")
    for failure in doc["failed"]:
        print(f"could not remove {failure['path']}: {failure['error']}", file=sys.stderr)
    freed = "would free" if doc["dry_run"] else "freed"
    size = human_size(doc["freed_bytes"])
    print(
        f"{would} {_what(doc['removed'])} under {doc['root']}, {freed} {size}"
        + (f"; {len(doc['failed'])} could not be removed" if doc["failed"] else "")
        + hint * bool(kept)
    )


def _what(paths: list[str]) -> str:
    """``2 profiles, 1 run folder``: what the paths are, told by where they lie."""
    kinds = [
        "run folder" if p.parent.name == RUNS
        else "garbage folder" if p.name.startswith(files.GARBAGE_PREFIX)
        else "profile"
        for p in map(Path, paths)
    ]  # fmt: skip
    counts = [count(kinds.count(k), k) for k in ("profile", "run folder", "garbage folder")]
    return ", ".join(n for n in counts if not n.startswith("0 ")) or "nothing"


def build_parser() -> argparse.ArgumentParser:
    """The ``edgeprofiles`` parser: one subparser a subcommand."""
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
        help=f"profile root; default: ${env_of('profile_root')}, else "
        f"<system temp>/edgeprofiles-of-<user> (here {default_root()}). Run folders under "
        "DIR/.runs are included",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_command(
        commands,
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
    clean = add_command(
        commands,
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
    add_doctor(commands, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return the exit code (``--help`` and usage errors too); an
    error is one line on stderr, never a traceback."""
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
        print(f"edgeprofiles: error: {error_text(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
