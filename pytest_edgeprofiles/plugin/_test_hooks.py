"""The hooks every test passes through, registered only once a test asks for an edge fixture
(collected so, or asked on the fly): a run whose tests ask for none pays nothing per test."""

from __future__ import annotations

import sys
from collections.abc import Generator

import pytest

from ._browser_fixtures import show_what_the_browser_saw
from ._config import run_of, started_run
from ._lookahead import (
    EDGE_FIXTURES,
    FLAGS,
    NEXT_FLAGS,
    NEXT_WANTS_DRIVER,
    NEXT_WANTS_PROFILE,
    PHASE_FAILED,
    flags_of,
)

_NAME = "edgeprofiles-tests"


def watch(config: pytest.Config) -> None:
    """Register these hooks, once: between tests, or in a test's setup before its reports."""
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
def pytest_runtest_call(item: pytest.Item) -> None:
    # This test has its browser: the next test's starts now, beside it.
    flags = item.stash.get(NEXT_FLAGS, None)
    run = started_run(item.config)
    ahead = run.started_ahead() if run is not None else None
    if flags is not None and ahead is not None:
        ahead.fill(flags, driver=item.stash.get(NEXT_WANTS_DRIVER, False))


# Outside pytest-selenium's, which sets report.extras to its own list, dropping ours.
@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    # Read by the retention policy: of every test, as one asked on the fly has no fixture name.
    item.stash.setdefault(PHASE_FAILED, {})[report.when] = report.failed
    uses = getattr(item, "fixturenames", ())
    if report.failed and "edge_session_profile" in uses and (run := started_run(item.config)):
        run.lending.session_profile_failed = True
    if report.when == "call" and FLAGS in item.stash and (run := started_run(item.config)):
        run.browsers.pace.tested(report.duration)  # a browser test: whether starting ahead pays
    if report.failed or report.when == "call":
        try:
            show_what_the_browser_saw(item, report)
        except (KeyboardInterrupt, SystemExit, pytest.exit.Exception):
            raise
        except BaseException as exc:  # pytest-timeout's fail, say: never in the report's place
            report.sections.append(("edgeprofiles", f"capture interrupted: {exc!r}"))
    return report
