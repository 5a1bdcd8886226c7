"""The ``edgeprofiles`` command line: look at, clean up and check profiles outside a test run."""

from ._commands import build_parser, main

__all__ = ["build_parser", "main"]
