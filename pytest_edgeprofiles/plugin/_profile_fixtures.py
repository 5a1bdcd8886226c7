"""The profile fixtures: each asks the run for a profile and gives it back after its scope."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ._config import run_of
from ._lookahead import NEXT_WANTS_PROFILE, failed

if TYPE_CHECKING:
    from .._profiles.manager import ProfileManager

_KEY = pytest.StashKey[str]()  # per test on edge_profile: its profile's key in the manager


def _asking(item: pytest.Item) -> str:
    uses = getattr(item, "fixturenames", ())
    names = [n for n in ("edge_profile", "edge_session_profile") if n in uses]
    return ", ".join(names) or "a profile"


@pytest.fixture(scope="session")
def edge_profile_manager(pytestconfig: pytest.Config) -> Generator[ProfileManager, None, None]:
    """This worker's ProfileManager, configured from the edgeprofiles options."""
    run = run_of(pytestconfig)
    manager = run.manager_or_fail()
    yield manager
    run.close_browsers()  # they run on its profiles
    run.lending.close_manager(manager)


@pytest.fixture
def edge_profile(
    request: pytest.FixtureRequest, edge_profile_manager: ProfileManager
) -> Generator[Path, None, None]:
    """A fresh profile (user data dir) for this test, as an absolute path (the profile of a
    browser started ahead for it, when there is one)."""
    run, node = run_of(request.config), request.node
    key, path = run.hand_out(node, edge_profile_manager, _asking(node))
    node.stash[_KEY] = key
    yield path
    keep = run.lending.keeps(failed=failed(node))
    another = node.stash.get(NEXT_WANTS_PROFILE, False)
    run.take_back(edge_profile_manager, path, key, keep, node.nodeid, another)


@pytest.fixture(scope="session")
def edge_session_profile(
    request: pytest.FixtureRequest, edge_profile_manager: ProfileManager
) -> Generator[Path, None, None]:
    """One profile for all tests of this worker that ask for it; holds a slot all along."""
    run = run_of(request.config)
    key = run.session_key
    path = run.lending.hand_out(edge_profile_manager, key, "edge_session_profile")
    yield path
    keep = run.lending.keeps(failed=run.lending.session_profile_failed)
    run.take_back(edge_profile_manager, path, key, keep, f"session of {run.lending.worker_key}")


@pytest.fixture
def edge_download_dir(
    request: pytest.FixtureRequest, edge_profile: Path, edge_profile_manager: ProfileManager
) -> Path:
    """The download folder of ``edge_profile``: its own, never shared with another test."""
    key = request.node.stash.get(_KEY, run_of(request.config).lending.worker_key)
    folder = edge_profile_manager.get_download_dir(key)
    assert folder is not None, "every profile gets a download folder"
    return Path(folder)
