"""One process's part of a test run, made when a test first asks for a profile or a browser.

Nothing happens before that: a run none of whose tests asks creates no folder, sweeps
nothing and starts no process. The first process that needs one (the only process, or any
xdist worker) makes the run folder, sweeping what dead runs left first; the first that needs
the base makes it once for the whole run (the configured base, or the conftest hook's), the
others wait for it; each process finds the browser when a test first needs one.
"""

from __future__ import annotations

import json
import threading
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock

from . import clone
from .browsers import Browser, compare_versions, find_browser, kind_of
from .chromium import last_version
from .errors import MAX_PROFILES_RANGE, ProfileLimitError
from .logs import log
from .options import Settings, option
from .processes import lock_state
from .profile_manager import ProfileManager
from .registry import Registry
from .roots import UnsafeDirectoryError
from .runs import RunFolder, sweep_leftovers
from .sweep import prune_kept

#: The profile key of a process without xdist workers, as pytest-xdist names it.
CONTROLLER_KEY = "master"


class BaseUnusable(Exception):
    """The run has no usable base (the hook failed, or its base is too large): every test
    that needs a profile fails with this message, which the whole run shares."""


class RunLifecycle:
    """The per-process state of a run, made on first use, ended at ``pytest_unconfigure``.

    Thread-safe: a thread may warm it up (make the run folder and the first clone) while the
    tests are collected, and the first fixture then waits for it rather than racing it.

    Attributes:
        settings: The resolved options and what the controller derived from them.
        is_controller: Whether this process is the run's controller (or its only process).
        worker_key: ``gw0``, ``gw1``, ... or ``master``: the key of this process's profiles.
        session_profile_failed: A test using the session profile failed: it is kept.
    """

    def __init__(
        self, config: pytest.Config, settings: Settings, *, is_controller: bool, worker_key: str
    ) -> None:
        self.config = config
        self.settings = settings
        self.is_controller = is_controller
        self.worker_key = worker_key
        self.session_profile_failed = False
        self._lock = threading.RLock()
        self._run: RunFolder | None = None
        self._source: tuple[str | None] | None = None
        self._browser: tuple[Browser | None] | None = None
        self._manager: ProfileManager | None = None
        self._warm_up: threading.Thread | None = None
        #: What settling the base found worth a warning, given by the next fixture: pytest
        #: reports a warning only from its own thread, and the warm-up thread may settle it.
        self._warnings: list[str] = []

    # -- made on first use ----------------------------------------------------------------

    def run(self) -> RunFolder:
        """The run folder, made (after a sweep of dead runs' leftovers) if no process has."""
        with self._lock:
            if self._run is None:
                s = self.settings
                run, swept = RunFolder.open(Path(s.profile_root), s.run_id, s.controller_pid)
                if swept:
                    run.add_event("swept", count=swept)
                self._run = run
            return self._run

    def browser(self) -> Browser | None:
        """The browser, found (and asked its version) once per process, when first needed."""
        with self._lock:
            if self._browser is None:
                override = self.settings.browser
                found = (
                    Browser(override, kind_of(override), _version(override))
                    if override
                    else find_browser()
                )
                self._browser = (found,)
                if found is not None:
                    self.run().add_event("browser", text=found.describe())
                    self._warn_if_newer(found)
            return self._browser[0]

    def manager(self) -> ProfileManager:
        """This process's manager, made on first use (after the run's base is settled).

        Raises:
            BaseUnusable: The run has no usable base.
            OSError: The run folder or the base's snapshot could not be made.
        """
        with self._lock:
            if self._manager is None:
                s = self.settings
                run = self.run()
                self._manager = ProfileManager(
                    self._clone_source(),
                    max_profiles=s.max_profiles,
                    profile_size_limit_mb=s.profile_size_limit_mb,
                    root=s.profile_root,
                    registry_path=run.registry_path,
                    run_id=s.run_id,
                    download_root=s.download_root,
                )
            return self._manager

    def manager_or_fail(self) -> ProfileManager:
        """:meth:`manager`, failing the test that asked when the run cannot have one."""
        try:
            manager = self.manager()
        except BaseUnusable as exc:
            failure = str(exc)
        except UnsafeDirectoryError as exc:
            failure = f"edgeprofiles: {exc} (another user may have planted it)"
        except OSError as exc:  # what no check at start-up could foresee (a full disk)
            root, flag = self.settings.profile_root, option("profile_root").flag
            failure = f"edgeprofiles: cannot make the run folder under {root} ({flag}): {exc}"
        else:
            with self._lock:
                given, self._warnings = self._warnings, []
            for message in given:
                warnings.warn(pytest.PytestWarning(message), stacklevel=2)
            return manager
        pytest.fail(failure, pytrace=False)  # outside the except: no chained traceback

    def warm_up(self) -> None:
        """Tests that need profiles were collected: make the run folder, and with a
        configured base its snapshot and this process's first clone, in a thread, while the
        rest of the start-up goes on. Failures are met again, and reported, by the fixture.
        A base made by the conftest hook waits for the first fixture: the hook is the
        user's code, which runs on pytest's own thread."""

        def work() -> None:
            try:
                if self.settings.base_profile is None:
                    self.run()
                else:
                    self.manager().prepare_profile(self.worker_key)
            except (OSError, BaseUnusable) as exc:
                log.warning("edgeprofiles: could not get ready ahead of the tests: %s", exc)

        self._warm_up = threading.Thread(target=work, name="edgeprofiles-warm-up", daemon=True)
        self._warm_up.start()

    # -- the base, settled once per run ---------------------------------------------------

    def _clone_source(self) -> str | None:
        """What every clone of the run is made from: the run's snapshot of its base."""
        if self._source is None:
            run = self.run()
            with FileLock(f"{run.path / 'base.json'}.lock", mode=0o600, thread_local=False):
                settled = _read_json(run.path / "base.json")
                if settled is None:
                    settled = self._settle_base(run)
                    (run.path / "base.json").write_text(json.dumps(settled), encoding="utf-8")
                    self._warnings += settled["warnings"]
            if settled["error"]:
                raise BaseUnusable(settled["error"])
            self._source = (settled["source"],)
        return self._source[0]

    def _settle_base(self, run: RunFolder) -> dict[str, Any]:
        """Decide the run's base: this process is the first to need it. Its warnings are
        given here only, once for the run; its failure is written for every process."""
        settled: dict[str, Any] = {"source": None, "error": None, "warnings": []}
        base = self.settings.base_profile
        try:
            base = base or self._made_base(run)
            if base is not None:
                _check_clone_size(Path(base), self.settings.profile_size_limit_mb)
                settled["warnings"] = _live_browser_on(Path(base))
                settled["source"] = str(run.make_clone_source(Path(base)))
        except BaseUnusable as exc:
            settled["error"] = str(exc)
        except OSError as exc:
            settled["error"] = f"edgeprofiles: cannot copy the base profile {base}: {exc}"
        return settled

    def _made_base(self, run: RunFolder) -> str | None:
        """The conftest hook's base, if a conftest implements the hook."""
        hook = self.config.hook.pytest_edgeprofiles_base_profile
        if not hook.get_hookimpls():
            return None  # nothing to ask: the browser need not be found for it
        folder = run.path / "base"
        folder.mkdir(mode=0o700, exist_ok=True)
        try:
            made = hook(config=self.config, browser=self.browser(), folder=folder)
        except Exception as exc:
            log.error("pytest_edgeprofiles_base_profile failed", exc_info=True)
            raise BaseUnusable(
                f"edgeprofiles: the pytest_edgeprofiles_base_profile hook failed "
                f"({type(exc).__name__}: {exc}); every test that needs a profile fails with it"
            ) from exc
        if made is None:
            return None
        try:
            return str(clone.check_base_profile(made))
        except (OSError, ValueError) as exc:
            raise BaseUnusable(
                f"pytest_edgeprofiles_base_profile returned {str(made)!r}, not a usable base: {exc}"
            ) from None

    def _warn_if_newer(self, browser: Browser) -> None:
        base = self.settings.base_profile
        base_version = last_version(Path(base)) if base else None
        if compare_versions(base_version, browser.version) == "newer":
            warnings.warn(
                pytest.PytestWarning(
                    f"edgeprofiles: the base profile {base} was last opened by version "
                    f"{base_version}, newer than {browser.describe()}; the browser may refuse "
                    f"its databases ('Your profile can not be used because it is from a newer "
                    f"version')"
                ),
                stacklevel=2,
            )

    # -- handing profiles out and taking them back ------------------------------------------

    def take_profile(self, manager: ProfileManager, key: str) -> Path:
        """A profile a browser can start on: an invalid one is recreated once, never handed out
        (Chromium silently falls back to the user's real profile on an unusable dir).

        Args:
            manager: The ``edge_profile_manager`` fixture's (a conftest may override it).
            key: The profile key: the worker's, or ``<worker>.session``.

        Raises:
            pytest.fail.Exception: No slot came free in time, or no valid profile was made.
        """
        for _ in range(2):
            full: ProfileLimitError | None = None
            try:
                path = manager.create_profile(key, timeout=self.settings.profile_wait)
            except ProfileLimitError as exc:
                full = exc
            if full is not None:  # failed outside the except: no chained traceback
                pytest.fail(self._limit_message(full), pytrace=False)
            if manager.validate_profile(key):
                return Path(path)
            log.warning("profile %s of %s is not valid; recreating it", path, key)
            manager.cleanup_profile(key)
        pytest.fail(f"edgeprofiles: could not make a valid profile for {key}", pytrace=False)

    def _limit_message(self, exc: ProfileLimitError) -> str:
        holders = ", ".join(
            f"{h.worker_id} (pid {h.pid}, since {datetime.fromtimestamp(h.created_at):%H:%M:%S})"
            for h in exc.holders
        )
        cap, wait = option("max_profiles"), option("profile_wait")
        return (
            f"edgeprofiles: no free profile slot after waiting {self.settings.profile_wait:g} s: "
            f"{exc}; held by {holders or 'nobody known'}. Raise the cap with {cap.flag}, "
            f"{cap.env} or ini {cap.ini} (at most {MAX_PROFILES_RANGE[1]}), "
            f"or wait longer with {wait.flag}."
        )

    def keeps(self, failed: bool) -> bool:
        """Whether the retention policy keeps a profile whose tests ``failed`` (or not)."""
        retention = self.settings.profile_retention
        return retention == "all" or (retention == "failed" and failed)

    def retire_profile(
        self, manager: ProfileManager, key: str, keep: bool, test: str, background: bool = False
    ) -> None:
        """Done with the profile of ``key``: keep it, or remove it (``background``: a rename
        now, the deletion later). A kept profile or a failed removal becomes an event, which
        the summary reports."""
        if keep:
            path = manager.keep_profile(key)
            if path is not None:
                self.run().add_event("kept", path=path, test=test)
            return
        if background:
            manager.release_profile(key)
            return
        path = manager.get_profile_path(key)
        if not manager.cleanup_profile(key):
            self.run().add_event("cleanup_failed", path=path, test=test)

    def close_manager(self, manager: ProfileManager) -> None:
        """Remove what ``manager`` still holds, recording what failed in the background."""
        manager.cleanup_all_profiles()
        for path, error in manager.background_failures:
            self.run().add_event("cleanup_failed", path=path, error=error)

    # -- the end of the run ---------------------------------------------------------------

    def sweep_again(self) -> None:
        """At the end of a run that used profiles: what dead runs (and this run's dead
        workers) left."""
        swept = len(sweep_leftovers(Path(self.settings.profile_root)).removed)
        if swept:
            RunFolder(Path(self.settings.run_dir)).add_event("swept", count=swept)

    def summary(self) -> tuple[list[str], bool]:
        """The lines of the terminal summary, and whether any is worth saying under ``-q``
        (a kept profile, a leftover, a failure). Only for a run that made its folder."""
        run = RunFolder(Path(self.settings.run_dir))
        stats = Registry(run.registry_path).stats() if run.registry_path.exists() else {}
        events = run.events()
        created = stats.get("created", 0)
        swept = sum(e.get("count", 0) for e in events if e["kind"] == "swept")
        lines = [
            f"{_count(created, 'profile')} created, at most {stats.get('peak', 0)} alive at "
            f"once (cap {self.settings.max_profiles}), {_count(swept, 'leftover')} swept"
        ]
        lines += sorted({f"browser: {e['text']}" for e in events if e["kind"] == "browser"})
        notable = bool(swept)
        for event in events:
            if event["kind"] == "kept":
                lines.append(f"kept {event['path']} ({event['test']})")
            elif event["kind"] == "cleanup_failed":
                why = event.get("test") or event.get("error")
                lines.append(f"could not remove {event['path']} ({why})")
            notable = notable or event["kind"] in ("kept", "cleanup_failed")
        return lines, notable

    def finish(self) -> None:
        """The end of this process's part: after the summary, which names kept profiles."""
        if self._warm_up is not None:
            self._warm_up.join()  # it writes into the run folder removed below
        if self._manager is not None:
            # A clone prepared for tests that never ran here (their fixture never set up).
            self._manager.cleanup_all_profiles()
        run = RunFolder(Path(self.settings.run_dir))
        if not self.is_controller or not run.path.is_dir():
            return  # a run that used no profile made nothing, and prunes nothing
        # Older runs' kept profiles go now, this run's stay as the summary said.
        prune_kept(Path(self.settings.profile_root), self.settings.profile_retention_count)
        try:
            run.remove()
        except OSError as exc:
            log.warning("could not remove the run folder %s: %s", self.settings.run_dir, exc)


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}{'' if n == 1 else 's'}"


def _version(path: str) -> str | None:
    from .browsers import browser_version

    return browser_version(path)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def _check_clone_size(base: Path, limit_mb: int) -> None:
    """A base too large for the limit fails every test the same way: say so once, naming the
    base the user gave (the manager only sees the run's snapshot of it)."""
    size = clone.clone_size(base)
    if size > limit_mb * clone.MB:
        limit = option("profile_size_limit_mb")
        raise BaseUnusable(
            f"{limit.flag}: a clone of the base profile {base} takes {size / clone.MB:.1f} MiB "
            f"(caches left out), over the limit of {limit_mb} MiB; raise the limit "
            f"({limit.flag}, {limit.env} or {limit.ini}) or trim the base"
        )


def _live_browser_on(base: Path) -> list[str]:
    """Users point the base at their real profile: a warning when its browser still runs."""
    state, owner = lock_state(base)
    if state != "live" or owner is None:
        return []
    return [
        f"edgeprofiles: a browser (pid {owner.pid}) is running on the base profile {base}; "
        f"its files may change while the run copies them (databases are copied through "
        f"SQLite's backup); close it for a faithful copy"
    ]
