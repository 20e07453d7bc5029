"""cellsearch: evolutionary search for recurrent cells, in JAX.

Cells are networkx graphs (:mod:`cellsearch.graph`), mutated as in Jozefowicz et al. 2015
(:mod:`cellsearch.mutate`), compiled to jitted JAX (:mod:`cellsearch.compile`), trained with
optax (:mod:`cellsearch.train`), searched (:mod:`cellsearch.search`, settings in :mod:`cellsearch.config`, results read by
:mod:`cellsearch.results`) and exported as flax
modules (:mod:`cellsearch.export`).

The graph layer (graph, ops, canon, render, mutate, spaces) does not import JAX; the names
below that need JAX are imported lazily, so ``import cellsearch`` stays cheap.
"""

from cellsearch.canon import structural_hash as structural_hash
from cellsearch.errors import CellSearchError as CellSearchError
from cellsearch.errors import InvalidCellError as InvalidCellError
from cellsearch.graph import CellBuilder as CellBuilder
from cellsearch.graph import CellGraph as CellGraph
from cellsearch.graph import from_json as from_json
from cellsearch.graph import load as load
from cellsearch.graph import save as save
from cellsearch.graph import to_json as to_json
from cellsearch.graph import validate as validate
from cellsearch.mutate import mutate as mutate
from cellsearch.render import to_equations as to_equations
from cellsearch.spaces import find_seed as find_seed
from cellsearch.spaces import load_space as load_space

__version__ = "0.1.0"

_LAZY = {
    "compile_cell": ("cellsearch.compile", "compile_cell"),
    "GraphCell": ("cellsearch.export", "GraphCell"),
    "NNXGraphCell": ("cellsearch.export", "NNXGraphCell"),
    "functional_hash": ("cellsearch.dedup", "functional_hash"),
    "train_and_evaluate": ("cellsearch.train", "train_and_evaluate"),
    "run_search": ("cellsearch.search", "run_search"),
    "SearchConfig": ("cellsearch.config", "SearchConfig"),
    "quick_config": ("cellsearch.config", "quick_config"),
    "leaderboard": ("cellsearch.results", "leaderboard"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(mod), attr)
    raise AttributeError(f"module 'cellsearch' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
