"""cellsearch: evolutionary search for recurrent cells, in JAX.

A cell is a computation graph held in networkx (:mod:`cellsearch.cell`), mutated with the edits
of Jozefowicz et al. 2015 (:mod:`cellsearch.evolve`), compiled to jitted JAX and trained with
optax (:mod:`cellsearch.nn`), searched (:mod:`cellsearch.search`, results in an SQLite store,
:mod:`cellsearch.store`), and reused as a flax module (:class:`GraphCell`, :class:`NNXGraphCell`).
The command line is :mod:`cellsearch.cli`; ``docs/architecture.md`` draws the layers.

The names below are the front door. Those that need JAX (the compiler, the trainer, the flax
modules, the functional hash) are imported when first used, so ``import cellsearch`` stays light.

>>> import cellsearch
>>> print("\\n".join(cellsearch.to_equations(cellsearch.find_seed("GRU"))))
r = sigm(W_xr x + W_hr h + b_r)
u = tanh(W_xu x + W_1u (r * h) + b_u)
z = sigm(W_xz x + W_hz h + b_z)
h' = z * h + (1 - z) * u
"""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import TYPE_CHECKING

from cellsearch.cell.canon import structural_hash as structural_hash
from cellsearch.cell.graph import CellBuilder as CellBuilder
from cellsearch.cell.graph import CellGraph as CellGraph
from cellsearch.cell.graph import from_json as cell_from_json
from cellsearch.cell.graph import save as save_cell
from cellsearch.cell.graph import to_json as cell_to_json
from cellsearch.cell.graph import validate as validate_cell
from cellsearch.cell.render import to_equations as to_equations
from cellsearch.errors import CellSearchError as CellSearchError
from cellsearch.errors import InvalidCellError as InvalidCellError
from cellsearch.evolve.mutate import mutate as mutate
from cellsearch.evolve.spaces import find_seed as find_seed
from cellsearch.evolve.spaces import load_space as load_space
from cellsearch.search.config import SearchConfig as SearchConfig
from cellsearch.search.config import quick_config as quick_config
from cellsearch.search.driver import run_search as run_search
from cellsearch.search.results import leaderboard as leaderboard
from cellsearch.search.results import load_cell as load_cell

if TYPE_CHECKING:  # the names imported on first use, visible to type checkers and IDEs
    from cellsearch.nn.compile import compile_cell as compile_cell
    from cellsearch.nn.dedup import functional_hash as functional_hash
    from cellsearch.nn.export import GraphCell as GraphCell
    from cellsearch.nn.export import NNXGraphCell as NNXGraphCell
    from cellsearch.nn.train import train_and_evaluate as train_and_evaluate

try:
    __version__ = importlib.metadata.version("cellsearch")
except importlib.metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

_LAZY = {
    "compile_cell": "cellsearch.nn.compile",
    "functional_hash": "cellsearch.nn.dedup",
    "GraphCell": "cellsearch.nn.export",
    "NNXGraphCell": "cellsearch.nn.export",
    "train_and_evaluate": "cellsearch.nn.train",
}

__all__ = [
    "CellBuilder", "CellGraph", "CellSearchError", "GraphCell", "InvalidCellError", "NNXGraphCell", "SearchConfig",
    "cell_from_json", "cell_to_json", "compile_cell", "find_seed", "functional_hash", "leaderboard", "load_cell",
    "load_space", "mutate", "quick_config", "run_search", "save_cell", "structural_hash", "to_equations",
    "train_and_evaluate", "validate_cell",
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cellsearch' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
