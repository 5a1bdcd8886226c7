"""``python -m pytest_edgeprofiles``: the ``edgeprofiles`` command line."""

import sys

from .cli import main

sys.exit(main())
