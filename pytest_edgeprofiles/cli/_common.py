"""What the ``edgeprofiles`` subcommands share: exit codes, output, progress, units, counts."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast

from .._options import env_of

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
T = TypeVar("T")

EPILOG = """\
exit codes: 0 done (doctor: the report was made, whatever it found), 1 something failed
(clean could not remove a profile, doctor --require-browser found no browser, an OS error),
2 usage error (a bad option or value, a missing base profile)."""

#: What a subcommand's parser does: read the parsed arguments, return the exit code.
Command = Callable[[argparse.Namespace], int]
#: What ``add_subparsers`` returns, whose ``add_parser`` declares one subcommand.
Subcommands = Any


class UsageError(Exception):
    """A bad value found after parsing (a root that is a file, a missing base): exit 2."""


def named(value: str | None, flag: str, key: str) -> tuple[str, str | None]:
    """``flag``'s ``value``, else the variable of option ``key`` (empty: unset), and where it
    came from; None when neither is set. An empty or blank value is a ``UsageError``."""
    source = flag if value is not None else env_of(key)
    text = value if value is not None else (os.environ.get(source) or None)
    if text is not None and not text.strip():
        raise UsageError(f"{source}: the value is {'blank' if text else 'empty'}")
    return source, text


def add_command(
    commands: Subcommands, name: str, run: Command, **kw: Any
) -> argparse.ArgumentParser:
    """Declare the subcommand ``name``, run by ``run``, and return its parser.

    The parser is kept in the defaults: a usage error found after parsing is reported by it.
    """
    sub: argparse.ArgumentParser = commands.add_parser(name, epilog=EPILOG, **kw)
    sub.set_defaults(run=run, parser=sub)
    return sub


def output(
    args: argparse.Namespace, doc: dict[str, Any], as_text: Callable[[dict[str, Any]], None]
) -> None:
    """One JSON document for scripts with ``--json``, else text for a person."""
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        as_text(doc)


def interactive(args: argparse.Namespace) -> bool:
    """Progress only without ``--json`` and when stdout and stderr (the bar's) are terminals."""
    return not args.json and sys.stdout.isatty() and sys.stderr.isatty()


def progress(
    items: Iterable[T], args: argparse.Namespace, what: str, unit: str, total: int | None = None
) -> Iterable[T]:
    """``items`` behind a tqdm bar (shown after 0.5 s, so quick work does not flicker) when
    :func:`interactive` and tqdm (the ``progress`` extra) is installed; else ``items``."""
    if not interactive(args):
        return items
    try:
        # Imported by name: tqdm is optional and ships no type hints.
        tqdm = importlib.import_module("tqdm").tqdm
    except ImportError:
        return items
    bar = tqdm(items, total=total, desc=what, unit=unit, leave=False, file=sys.stderr, delay=0.5)
    return cast(Iterable[T], bar)


def human_size(n: int) -> str:
    """``512 B``, ``1.5 KiB``, ... up to TiB: powers of 1024, named as such."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def count(n: int, singular: str, plural: str | None = None) -> str:
    """``1 entry``, ``2 entries``, ``0 profiles``: ``plural`` defaults to ``singular`` + s."""
    return f"{n} {singular if n == 1 else plural or singular + 's'}"


def error_text(exc: Exception) -> str:
    """``base profile not found: x`` rather than ``[Errno 2] base profile not found: 'x'``."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        return f"{exc.strerror}: {exc.filename}"
    return str(exc)
