"""The look-ahead hooks every test passes through, registered only once a test asks for an edge
fixture (collected so, or the process's run made by one asked on the fly): a run whose tests
ask for none pays nothing for them. The report hook stays in ``plugin``, registered with it:
a conftest's ``tryfirst`` report wrapper must still see what it adds."""

from __future__ import annotations

import sys

import pytest

from ._config import run_of, started_run
from ._lookahead import (
    EDGE_FIXTURES,
    FLAGS,
    NEXT_FLAGS,
    NEXT_WANTS_DRIVER,
    NEXT_WANTS_PROFILE,
    flags_of,
)

_NAME = "edgeprofiles-tests"


def watch(config: pytest.Config) -> None:
    """Register these hooks, once: the look-ahead begins with the next test."""
    if not config.pluginmanager.has_plugin(_NAME):
        config.pluginmanager.register(sys.modules[__name__], _NAME)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """The one look-ahead: what this test and the next ask; the run gets ready while it runs."""
    flags = flags_of(item)
    if flags is not None:
        item.stash[FLAGS] = flags
    wanted = EDGE_FIXTURES.intersection(getattr(nextitem, "fixturenames", ()))
    if wanted and nextitem is not None and nextitem.get_closest_marker("skip") is not None:
        wanted = frozenset()
    item.stash[NEXT_WANTS_PROFILE] = "edge_profile" in wanted
    item.stash[NEXT_WANTS_DRIVER] = "edge_driver" in wanted
    item.stash[NEXT_FLAGS] = flags_of(nextitem) if wanted else None
    run = started_run(item.config)
    ahead = run.started_ahead() if run is not None else None
    if ahead is not None and ahead.holding and flags != ahead.flags:
        ahead.empty()  # its test did not take it: it would hold a slot until our next one
    if wanted:
        run_of(item.config).get_ready_ahead()  # once a process: then it returns at once


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    # Before this test gives its own profile back: the slot the test before left for this
    # one's claim is gone with it, unless no claim came.
    if (run := started_run(item.config)) is not None:
        run.free_released_slots()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    # This test has its browser: the next test's starts now, beside it.
    flags = item.stash.get(NEXT_FLAGS, None)
    run = started_run(item.config)
    ahead = run.started_ahead() if run is not None else None
    if flags is not None and ahead is not None:
        ahead.fill(flags, driver=item.stash.get(NEXT_WANTS_DRIVER, False))
