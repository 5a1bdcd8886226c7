"""What we know of Chromium-family browsers, as users import it: an installed browser, and
what a clone of a user data dir leaves out (see ``_chromium``)."""

from ._chromium.installs import Browser, compare_versions, find_browser
from ._chromium.userdata import DEFAULT_SKIP_RULES, SOCKET_TMPDIR_VAR, SkipRules
from ._system.platform import this_host

__all__ = [
    "DEFAULT_SKIP_RULES",
    "SOCKET_TMPDIR_VAR",
    "Browser",
    "SkipRules",
    "compare_versions",
    "find_browser",
    "this_host",
]
