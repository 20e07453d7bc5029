"""``python -m cellsearch``: the command line."""

import sys

from cellsearch.cli.main import main

sys.exit(main())
