"""The plugin's hooks. It loads into every run: start-up only checks options; the first test
that asks sets the run up (its fixtures are plugins of their own)."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from . import _browser_fixtures, _launch_fixtures, _profile_fixtures
from ._config import SETTINGS, add_options, configure, header, started_run, used_run
from ._lookahead import ARGS_NAME, asks

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
