"""The package's one logger; pytest shows its warnings with the test that caused them."""

import logging

log = logging.getLogger("pytest_edgeprofiles")
