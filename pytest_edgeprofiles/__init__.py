"""Temporary Microsoft Edge (and Chromium) profiles for every test and pytest-xdist worker.

Module map, in the order data flows through them (each module one concern):

    options          the plugin's options: table, parsers, resolution, Settings
    plugin           pytest hooks and the profile fixtures, nothing else
    launch_fixtures  the fixtures to launch a browser yourself: flags, options, the browser
    session_fixtures the fixtures that hand out a browser: edge_driver, edge_context, edge_page
    prelaunch        browsers started ahead, while the test before runs
    lifecycle        one process's part of a test run: its manager, end of run
    base             the run's base profile, settled once per run
    summary          the run's terminal summary, from the run folder
    runs             a run's shared folder: registry, events, snapshot of the base
    profile_manager  the facade: ProfileManager, as the contract gives it
    making           a profile made: owner record and slot, folder, root or fallback root
    clone            a profile filled: the base checked, copied without caches, prefs set
    handouts         a profile handed out, and given back (removed, moved aside or kept)
    removal          every way a profile leaves the disk
    sweep            finding what dead owners left (removal takes it away)
    registry         the cap: slots in one JSON file under a file lock
    records          owner records beside each profile, the source of truth
    processes        who owns what; stopping a browser on a profile
    roots            where profiles live; whether a folder is ours
    chromium         the user data dir: skip rules, locks, preferences
    browsers         finding an installed browser and its version
    launch           flags, environment, Selenium and Playwright settings
    sessions         a browser we started on a profile, ready to attach; stopping it (in
                     the background, with the Stopper)
    files            filesystem mechanics: copy, size, robust removal, atomic JSON
    background       background lanes: the next clone and browser made ahead, the last removed
    errors, logs     the contract's exceptions; the one logger
    hooks            hooks a conftest implements
    cli, cli_common, cli_doctor
                     the ``edgeprofiles`` command line
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import ProfileCleanupError, ProfileCreationError, ProfileLimitError

if TYPE_CHECKING:
    from ._profiles.manager import ProfileManager

__all__ = [
    "ProfileCleanupError",
    "ProfileCreationError",
    "ProfileLimitError",
    "ProfileManager",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # The plugin is imported into every pytest run, and with it this package: the manager
    # (and psutil and filelock with it) only when someone asks for it.
    if name == "ProfileManager":
        from ._profiles.manager import ProfileManager

        return ProfileManager
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
