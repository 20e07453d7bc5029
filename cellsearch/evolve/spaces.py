"""Loading search spaces (``search_spaces/<name>.py``) and seed cells by name.

A space is checked when it is loaded: an unknown activation, binary op, mutation or
operand rule raises :class:`~cellsearch.errors.ConfigError` here, not midway through a
search. This module imports nothing from JAX.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field

from cellsearch.cell.graph import CellGraph, load, validate
from cellsearch.cell.ops import check_binary_op, parse_activation
from cellsearch.errors import CellSearchError, ConfigError
from cellsearch.evolve.edits import MUTATIONS, OPERAND_RULES, Mutation

DEFAULT_SPACE = "jozefowicz2015"


@dataclass(frozen=True)
class SearchSpace:
    """A loaded, checked search space."""

    name: str
    seeds: dict[str, Callable[[], CellGraph]]
    activations: tuple[str, ...]
    binary_ops: tuple[str, ...]
    mutations: tuple[str, ...]
    operand_rule: str
    baseline: str
    pool_seeds: tuple[str, ...]
    edits: dict = field(default_factory=dict)  # mutation name -> its row (MUTATIONS's, or the space's own EDITS)

    def seed(self, name: str) -> CellGraph:
        if name not in self.seeds:
            raise ConfigError(f"space {self.name!r} has no seed {name!r}; seeds: {', '.join(self.seeds)}")
        return self.seeds[name]()


def space_names() -> list[str]:
    import search_spaces

    return sorted(m.name for m in pkgutil.iter_modules(search_spaces.__path__) if not m.name.startswith("_"))


def _import_file(path: str):
    """Imports a user's space module from its file (``--space my_space.py``)."""
    if not os.path.isfile(path):
        raise ConfigError(f"search space file {path!r} does not exist")
    spec = importlib.util.spec_from_file_location(f"cellsearch_user_space_{abs(hash(os.path.abspath(path)))}", path)
    mod = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(mod)
    except Exception as e:  # the user's code: any error is theirs to fix, named with the file
        raise ConfigError(f"search space file {path!r} failed to import: {type(e).__name__}: {e}") from None
    return mod


def space_digest(name: str) -> str:
    """The SHA-256 of a space given as a file (a search stores it: an edited file is another
    space), ``""`` for a built-in space."""

    if not name.endswith(".py"):
        return ""
    with open(name, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def load_space(name: str = DEFAULT_SPACE) -> SearchSpace:
    """Imports ``search_spaces.<name>`` (or the module in the file ``name`` if it ends in
    ``.py``: a user's own space) and checks its settings: ``SEEDS`` (name -> function
    returning a cell graph), ``ACTIVATIONS``, ``BINARY_OPS``, ``MUTATIONS``, optional
    ``OPERAND_RULE``, ``BASELINE``, ``POOL_SEEDS`` and ``EDITS`` (edits of the space's own, name ->
    :class:`~cellsearch.evolve.edits.Mutation`, usable in its ``MUTATIONS``)."""

    if name.endswith(".py"):
        mod = _import_file(name)
    else:
        names = space_names()
        if name not in names:
            raise ConfigError(f"unknown search space {name!r}; spaces: {', '.join(names)} (or a FILE.py)")
        mod = importlib.import_module(f"search_spaces.{name}")
    where = f"search space {name!r}"
    try:
        acts = tuple(mod.ACTIVATIONS)
        for a in acts:
            parse_activation(a)
        bins = tuple(mod.BINARY_OPS)
        for op in bins:
            check_binary_op(op)
        own = dict(getattr(mod, "EDITS", {}))
        for m, row in own.items():
            if not isinstance(row, Mutation) or row.name != m or not callable(row.apply) or not callable(row.applies_to):
                raise ConfigError(f"EDITS[{m!r}] must be a cellsearch.evolve.edits.Mutation named {m!r} with callable "
                                  "applies_to and apply")
        table = {**MUTATIONS, **own}
        muts = tuple(mod.MUTATIONS)
        for m in muts:
            if m not in table:
                raise ConfigError(f"mutation {m!r} is not known; mutations: {', '.join(table)}")
        rule = getattr(mod, "OPERAND_RULE", "ancestor_and_random_ancestor")
        if rule not in OPERAND_RULES:
            raise ConfigError(f"operand rule {rule!r} is not known; rules: {', '.join(OPERAND_RULES)}")
        seeds = dict(mod.SEEDS)
        baseline = getattr(mod, "BASELINE", "GRU")
        pool = tuple(getattr(mod, "POOL_SEEDS", tuple(seeds)[:2]))
        for s in (baseline, *pool):
            if s not in seeds:
                raise ConfigError(f"baseline/pool seed {s!r} is not one of its SEEDS ({', '.join(seeds)})")
        if name.endswith(".py"):  # a user's seeds; the built-in ones are validated by their builders and tests
            for s, make in seeds.items():
                try:
                    validate(make())
                except CellSearchError as e:
                    raise ConfigError(f"seed {s!r} is not a valid cell: {e}") from None
    except AttributeError as e:
        raise ConfigError(f"{where} lacks a setting: {e}") from None
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    return SearchSpace(name, seeds, acts, bins, muts, rule, baseline, pool, {m: table[m] for m in muts})


def find_seed(name: str, space: str | None = None) -> CellGraph:
    """A seed cell by name, looked up in ``space`` or else in every space (default first)."""
    order = [space] if space else [DEFAULT_SPACE] + [s for s in space_names() if s != DEFAULT_SPACE]
    for s in order:
        sp = load_space(s)
        if name in sp.seeds:
            return sp.seed(name)
    known = sorted({k for s in order for k in load_space(s).seeds})
    raise ConfigError(f"no seed cell named {name!r}; seeds: {', '.join(known)}")


def resolve_cell(name_or_path: str, space: str | None = None) -> CellGraph:
    """A seed name, or a path to a cell JSON file (anything ending in ``.json``)."""
    if name_or_path.endswith(".json"):
        return load(name_or_path)
    return find_seed(name_or_path, space)
