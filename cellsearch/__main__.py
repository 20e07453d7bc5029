"""``python -m cellsearch``: the command line."""

import sys

from cellsearch.cli import main

sys.exit(main())
