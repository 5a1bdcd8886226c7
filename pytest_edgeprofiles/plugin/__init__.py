"""The plugin's hooks. It loads into every run: start-up only checks options; the first test
that asks sets the run up (its fixtures are plugins of their own)."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from . import _browser_fixtures, _launch_fixtures, _profile_fixtures
from ._browser_fixtures import show_what_the_browser_saw
from ._config import SETTINGS, add_options, configure, header, started_run, used_run
from ._lookahead import ARGS_NAME, FLAGS, PHASE_FAILED, asks, fixtures_used

_PRIVATE = pytest.StashKey[frozenset[Path]]()  # profile and download roots: never tests


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    import importlib

    pluginmanager.add_hookspecs(importlib.import_module(f"{__name__}._hookspecs"))
    # The fixtures' modules, registered as pytest_plugins would, without its price: for each
    # name it lists, pytest reads every installed distribution's entry points (~4 ms a name).
    for module in (_profile_fixtures, _launch_fixtures, _browser_fixtures):
        pluginmanager.register(module, module.__name__)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)
    args_help = "flags added to every browser the edge fixtures start, one a line"
    parser.addini(ARGS_NAME, args_help, type="linelist", default=[])


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f'{ARGS_NAME}("--flag", ...): start this test\'s browser (edge_driver, '
        "edge_context, edge_page) with these flags too",
    )
    if config.option.help or config.option.version:
        return
    settings = configure(config)
    roots = (settings.profile_root, settings.download_root)
    config.stash[_PRIVATE] = frozenset(Path(root) for root in roots if root)


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    settings = config.stash.get(SETTINGS, None)
    return None if settings is None else header(config, settings)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    # Profiles are never tests (a clone holding a .py file would differ between workers).
    return True if collection_path in config.stash.get(_PRIVATE, frozenset()) else None


def pytest_collection_finish(session: pytest.Session) -> None:
    if any(asks(item) for item in session.items):
        from ._test_hooks import watch  # a run whose tests ask for none never imports it

        watch(session.config)


# Outside pytest-selenium's, which sets report.extras to its own list, dropping ours; inside a
# conftest's tryfirst wrappers (registered after us), which may read what we add.
@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if (run := started_run(item.config)) is None:
        return report  # no test of this process has asked for anything of ours
    # Whether each phase failed, for the retention policy: of every test, since one asked for
    # on the fly has no fixture name; a phase that failed once stays failed (pytest reports a
    # failed subtest, then its test's passing call), until a rerun's setup starts anew.
    phases = item.stash.setdefault(PHASE_FAILED, {})
    if report.when == "setup":
        phases.clear()
    phases[report.when] = phases.get(report.when, False) or report.failed
    if report.failed and "edge_session_profile" in fixtures_used(item):
        run.lending.session_profile_failed = True
    if report.when == "call" and FLAGS in item.stash:
        run.browsers.pace.tested(report.duration)  # a browser test: whether starting ahead pays
    if report.failed or report.when == "call":
        try:
            show_what_the_browser_saw(item, report)
        except (KeyboardInterrupt, SystemExit, pytest.exit.Exception):
            raise
        except BaseException as exc:  # pytest-timeout's fail, say: never in the report's place
            report.sections.append(("edgeprofiles", f"capture interrupted: {exc!r}"))
    return report


@pytest.hookimpl(wrapper=True)
def pytest_sessionfinish(session: pytest.Session) -> Generator[None, None, None]:
    # Before a worker reports its end: the summary counts its browsers' starts.
    if (run := started_run(session.config)) is not None:
        run.close_browsers()
    yield
    if (run := used_run(session.config)) is not None:
        run.shared.sweep_again()  # what dead runs (and workers) left, swept at the end too


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if (run := used_run(config)) is None:
        return
    from ._summary import summarize

    lines, notable = summarize(run.shared.folder, run.settings.max_profiles)
    if config.get_verbosity() < 0 and not notable:
        return  # -q: nothing worth a line
    terminalreporter.write_sep("=", "edgeprofiles")
    for line in lines:
        terminalreporter.write_line(line)


def pytest_unconfigure(config: pytest.Config) -> None:
    if (run := started_run(config) or used_run(config)) is not None:
        run.finish()
