"""The exception hierarchy of cellsearch, in one place.

Every error names the thing that is wrong, the rule it broke and what was seen, so
that a user can fix the input without reading a traceback from deep inside JAX.
This module imports nothing from JAX.
"""

from __future__ import annotations


class CellSearchError(Exception):
    """Base class of every error raised on purpose by cellsearch."""


class InvalidCellError(CellSearchError, ValueError):
    """A cell graph breaks one of the rules checked by :func:`cellsearch.cell.graph.validate`.

    Attributes:
      node: the node at fault (``None`` for a graph-wide rule).
      rule: the short name of the rule, e.g. ``"acyclic"`` or ``"arity"``.
      detail: what was expected and what was seen.
    """

    def __init__(self, node: str | None, rule: str, detail: str):
        self.node, self.rule, self.detail = node, rule, detail
        where = f"node {node!r}" if node is not None else "the graph"
        super().__init__(f"{where} breaks rule {rule!r}: {detail}")


class UnknownOpError(InvalidCellError):
    """A node uses an op that is not in :data:`cellsearch.cell.ops.OPS`."""


class CellFormatError(CellSearchError, ValueError):
    """A cell file or JSON document is not a cell (bad JSON, missing keys, wrong types)."""


class MutationFailed(CellSearchError):
    """No valid child was found within ``max_attempts`` resamples."""


class CompileError(CellSearchError, ValueError):
    """A valid graph cannot be compiled for the sizes asked (e.g. it adds ``x`` to ``h``
    but ``input_size != hidden_size``)."""


class ConfigError(CellSearchError, ValueError):
    """A setting, search space, task or CLI value is not allowed."""


class Diverged(CellSearchError):
    """A training run diverged (a loss or a validation metric is not finite) where the caller
    needs a finished run, e.g. the standard protocol; the search records divergence as a status."""


class DataError(CellSearchError, FileNotFoundError):
    """A data set is missing or malformed."""


class StorageError(CellSearchError):
    """The search store cannot be opened, is locked by another search, or is corrupt."""


MSG_STATE_WIDTH_CHANGED = (
    "every state output must have the hidden width; an output that is computed from `x` "
    "alone through elementwise ops has the input width. Put a `linear` node in between."
)


class SearchStopped(CellSearchError):
    """The search cannot go on as configured (e.g. the baseline failed on a task, so no
    ratio to it would mean anything); everything stored so far is kept."""


class Interrupted(KeyboardInterrupt):
    """A search was asked to stop (SIGINT or SIGTERM, :func:`stop_on_signals`); like
    ``KeyboardInterrupt``, no ``except Exception`` swallows it. ``signal`` names the signal."""

    def __init__(self, signal: str = "SIGINT"):
        self.signal = signal
        super().__init__(signal)
