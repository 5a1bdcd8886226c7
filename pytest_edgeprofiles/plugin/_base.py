"""The run's base profile, checked and copied into the run folder once per run by the first
process that needs it; the others share what it found, so a failure fails all with one message."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .._chromium.installs import Browser, compare_versions
from .._chromium.processes import a_browser, lock_state
from .._chromium.userdata import DEFAULT_SKIP_RULES, last_version
from .._options import Settings, option
from .._profiles import clone
from .._profiles.runs import RunFolder
from .._system import files
from .._system.locks import FileMutex
from .._system.logs import log


class BaseUnusable(Exception):
    """The run has no usable base: every test that needs a profile fails with this message."""


class RunBase:
    """One process's view of the run's base; ``note("warning", text=...)`` notes a warning for
    the summary."""

    def __init__(
        self, config: pytest.Config, settings: Settings, note: Callable[..., None]
    ) -> None:
        self.config, self.settings, self._note = config, settings, note
        self._settled: dict[str, Any] | None = None
        self._versions_checked = False
        self._hook = config.hook.pytest_edgeprofiles_base_profile

    def clone_source(self, run: RunFolder, browser: Callable[[], Browser | None]) -> str | None:
        """The run's snapshot of its base, that every clone is made from (``browser`` finds
        the browser, for the hook). Raises ``BaseUnusable`` when the run has no usable base."""
        if self._settled is None:
            if self.settings.base_profile is None and not self._hook.get_hookimpls():
                self._settled = {"source": None, "base": None, "error": None}
            else:
                self._settled = self._read_or_settle(run, browser)
        if self._settled["error"]:
            raise BaseUnusable(self._settled["error"])
        source: str | None = self._settled["source"]
        return source

    def check_versions(self, browser: Browser | None) -> None:
        """A warning, once, when a browser newer than ``browser`` last opened the base."""
        base = self._settled and self._settled.get("base")
        if not base or browser is None or self._versions_checked:
            return
        self._versions_checked = True
        base_version = last_version(Path(base))
        if compare_versions(base_version, browser.version) == "newer":
            self._note(
                "warning",
                text=f"the base profile {base} was last opened by version {base_version}, newer "
                f"than {browser.describe()}; the browser may refuse its databases ('Your "
                f"profile can not be used because it is from a newer version')",
            )

    def _read_or_settle(
        self, run: RunFolder, browser: Callable[[], Browser | None]
    ) -> dict[str, Any]:
        marker = run.path / "base.json"
        try:
            with FileMutex(Path(f"{marker}.lock")):
                try:
                    settled: dict[str, Any] = files.read_json(marker)
                except FileNotFoundError:
                    settled = self._settle(run, browser)
                    files.write_json_atomic(marker, settled)
        except (OSError, ValueError) as exc:
            raise BaseUnusable(
                f"edgeprofiles: cannot settle the run's base profile ({marker}): {exc}"
            ) from None
        return settled

    def _settle(self, run: RunFolder, browser: Callable[[], Browser | None]) -> dict[str, Any]:
        settled: dict[str, Any] = {"source": None, "base": None, "error": None}
        base = self.settings.base_profile
        try:
            base = base or self._made_base(run, browser)
            if base is not None:
                settled["base"] = base
                _check_clone_size(Path(base), self.settings.profile_size_limit_mb)
                for warning in _live_browser_on(Path(base)):
                    self._note("warning", text=warning)
                settled["source"] = str(
                    run.make_clone_source(Path(base), self.settings.controller_pid)
                )
        except BaseUnusable as exc:
            settled["error"] = str(exc)
        except OSError as exc:
            settled["error"] = f"edgeprofiles: cannot copy the base profile {base}: {exc}"
        return settled

    def _made_base(self, run: RunFolder, browser: Callable[[], Browser | None]) -> str | None:
        # In an empty folder: a process killed while making it may have left a half-made one.
        folder = run.path / "base"
        folder.mkdir(mode=0o700, exist_ok=True)
        files.clear_dir(folder)
        try:
            made = self._hook(config=self.config, browser=browser(), folder=folder)
        except (Exception, pytest.fail.Exception, pytest.skip.Exception) as exc:
            log.error("pytest_edgeprofiles_base_profile failed", exc_info=True)
            raise BaseUnusable(
                f"edgeprofiles: the pytest_edgeprofiles_base_profile hook failed "
                f"({type(exc).__name__}: {exc}); every test that needs a profile fails with it"
            ) from None
        if made is None:
            return None
        try:
            return str(clone.check_base_profile(made))
        except (OSError, ValueError) as exc:
            raise BaseUnusable(
                f"edgeprofiles: pytest_edgeprofiles_base_profile returned {str(made)!r}, not a "
                f"usable base: {exc}"
            ) from None


def _check_clone_size(base: Path, limit_mb: int) -> None:
    # Said once, naming the user's base (the manager only sees the run's snapshot of it).
    size = files.tree_size(base, DEFAULT_SKIP_RULES.skips)  # caches and lock state left out
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
    if state != "live":
        return []
    browser = a_browser(owner.pid if owner else None)
    return [
        f"{browser} is running on the base profile {base}; its files may change while the "
        f"run copies them (databases are copied through SQLite's backup); close it for a "
        f"faithful copy"
    ]
