"""``python -m pytest_edgeprofiles``: the ``edgeprofiles`` command line."""

import sys

from .cli._commands import main

sys.exit(main())
