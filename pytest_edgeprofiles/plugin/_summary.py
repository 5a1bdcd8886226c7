"""The run's terminal summary: the registry's counts and the events every process wrote."""

from __future__ import annotations

from collections import Counter

from .._browser.owner import STARTS
from .._profiles.registry import Registry
from .._profiles.runs import RunFolder
from .._system.logs import log


def summarize(run: RunFolder, max_profiles: int) -> tuple[list[str], bool]:
    """The lines, and whether any is worth saying under ``-q`` (warning, kept, swept, failed)."""
    try:
        stats = Registry(run.registry_path).stats() if run.registry_path.exists() else {}
    except OSError as exc:
        log.warning("edgeprofiles: could not read the registry: %s", exc)
        stats = {}
    events = run.events()
    created = stats.get("created", 0)
    swept = sum(e.get("count", 0) for e in events if e["kind"] == "swept")
    lines = [
        f"{_count(created, 'profile')} created, at most {stats.get('peak', 0)} alive at "
        f"once (cap {max_profiles}), {_count(swept, 'leftover')} swept"
    ]
    starts = Counter[str]()
    for event in events:
        if event["kind"] == "starts":
            starts.update({k: event.get(k, 0) for k in STARTS})
    if starts["ahead"] or starts["by_test"]:
        lines.append(_starts_line(starts))
    for kind in ("browser", "note", "warning"):  # each text once: every worker may say it
        texts = dict.fromkeys(e["text"] for e in events if e["kind"] == kind)
        lines += [f"{kind}: {text}" for text in texts]
    notable = bool(swept) or any(e["kind"] == "warning" for e in events)
    rerun = {e["path"] for e in events if e["kind"] == "rerun"}
    for event in events:
        if event["kind"] == "kept" and event["path"] not in rerun:
            lines.append(f"kept {event['path']} ({event['test']})")
        elif event["kind"] == "artifacts":
            lines.append(f"what the browser showed: {event['path']} ({event['test']})")
        elif event["kind"] == "rerun":
            lines.append(f"rerun {event['test']}: the profile of its failed try went")
        elif event["kind"] == "cleanup_failed":
            why = event.get("test") or event.get("error")
            lines.append(f"could not remove {event['path']} ({why})")
        notable = notable or event["kind"] in ("kept", "cleanup_failed", "artifacts")
    return lines, notable


def _starts_line(starts: Counter[str]) -> str:
    ahead, by_test, unused = (starts[k] for k in STARTS)
    total = _count(ahead + by_test, "browser")
    line = f"{total} for tests: {ahead} started ahead, {by_test} by their test"
    return line + (f"; {unused} started ahead went unused" if unused else "")


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}{'' if n == 1 else 's'}"
