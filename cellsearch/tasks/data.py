"""Where the data sets are: the one resolution of the data folder, for every task that reads files.

The folder holding ``ptb/`` and ``music/`` is, in this order: the ``--data-dir`` a command is given
(``data_dir`` in code), the environment variable ``$CELLSEARCH_DATA``, else :data:`DEFAULT`
(``$XDG_DATA_HOME/cellsearch/data``, i.e. ``~/.local/share/cellsearch/data``). Nothing is ever
downloaded: a missing file is a :class:`~cellsearch.errors.DataError` that says where to put it.
The test suite and CI point ``$CELLSEARCH_DATA`` at the checkout's ``../shared/data``.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "CELLSEARCH_DATA"
DEFAULT = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "cellsearch" / "data"
HELP = f"folder holding ptb/ and music/ (default ${ENV}, else {DEFAULT})"


def data_dir(given: str | os.PathLike | None = None) -> Path:
    """The data folder: ``given``, else ``$CELLSEARCH_DATA``, else :data:`DEFAULT`."""
    if given:
        return Path(given)
    env = os.environ.get(ENV)
    return Path(env) if env else DEFAULT


def find_dir(given: str | os.PathLike | None, sub: str) -> Path:
    """The folder of one data set: ``<data folder>/<sub>`` if it exists, else the data folder itself
    (so ``--data-dir`` may also name the set's own folder)."""
    base = data_dir(given)
    return base / sub if (base / sub).is_dir() else base
