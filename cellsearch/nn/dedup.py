"""Duplicate detection in two layers: structural hash and functional hash.

* **Structural**: :func:`cellsearch.cell.canon.structural_hash`, equal for isomorphic graphs.
* **Functional** (automl_zero's "functional equivalence checking"): run the compiled cell
  once on fixed random inputs, states and parameters, round the outputs and hash them.
  The parameters are drawn per linear node from a key folded with the node's rank among
  the linear nodes in canonical order, so isomorphic cells collide by construction and
  cells that differ only by no-op structure (an inserted identity, say) usually collide
  too. Rounding (``decimals``) absorbs float noise from a different evaluation order.

The paper does not say it deduplicated this way (§3.6, unverified); it is our addition.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np

from cellsearch.cell.canon import structural_hash
from cellsearch.cell.graph import CellGraph, operands
from cellsearch.evolve.mutate import mutate
from cellsearch.nn.compile import canonical_program

WIDTH = 8  # hidden = input width used for the probe (equal, so MUT1-like cells run)
BATCH = 4
DECIMALS = 4


def _probe_params(prog, key):
    """Normal-distributed parameters in the program's layout (its own initialiser with a
    normal draw), with a little noise on every bias so bias-only differences show."""

    def draw(shape, idx):
        return jax.random.normal(jax.random.fold_in(jax.random.fold_in(key, idx[0]), idx[1]), shape)

    params = prog.layout.init_with(draw, jnp, WIDTH, WIDTH, 1.0)
    for k, n in enumerate(prog.linears):
        if "b" in params[n]:
            params[n]["b"] = params[n]["b"] + 0.1 * jax.random.normal(jax.random.fold_in(key, 10_000 + k), (WIDTH,))
    return params


def _drop_identities(g: CellGraph) -> CellGraph:
    """Bypasses ``identity`` nodes (they compute nothing), so the probe's parameters line up
    with those of the cell without them."""
    h = nx.DiGraph(g)
    for n in [n for n, d in g.nodes(data=True) if d["op"] == "identity"]:
        (src,) = operands(h, n)
        outs = list(h.successors(n))
        if any(h.has_edge(src, v) for v in outs):
            continue  # would read one operand twice; keep it
        for v in outs:
            h.add_edge(src, v, **h.edges[n, v])
        h.remove_node(n)
    return h


def functional_hash(g: CellGraph, *, seed: int = 0, decimals: int = DECIMALS) -> str:
    """A hex digest of the cell's outputs on fixed random inputs, states and parameters.

    >>> from search_spaces.jozefowicz2015 import SEEDS
    >>> functional_hash(SEEDS["LSTM"]()) == functional_hash(SEEDS["LSTM-b"]())
    False
    """
    _, prog = canonical_program(_drop_identities(g))
    key = jax.random.key(seed)
    params = _probe_params(prog, jax.random.fold_in(key, 1))
    x = jax.random.normal(jax.random.fold_in(key, 2), (BATCH, WIDTH))
    states = jax.random.normal(jax.random.fold_in(key, 3), (len(prog.states), BATCH, WIDTH))
    # states are told apart by role (canonical order), so the probe carry is canonical too
    carry, y = prog.apply(params, tuple(states), x)
    # two steps, so that a state that only matters through the next step still counts
    carry, y2 = prog.apply(params, carry, x)
    out = np.concatenate([np.ravel(np.asarray(a, np.float64)) for a in (*carry, y, y2)])
    out = np.nan_to_num(out, nan=1e9, posinf=1e9, neginf=-1e9)
    rounded = np.round(out, decimals) + 0.0  # + 0.0 folds -0.0 into 0.0
    return hashlib.sha256(rounded.tobytes()).hexdigest()[:16]


@dataclass
class Deduper:
    """Remembers the cells seen so far by both hashes.

    ``check(g)`` returns ``(reason, structural, functional)`` where ``reason`` is ``None`` for a
    new cell, else ``"structural"`` or ``"functional"``; ``add`` records a cell.
    """

    structural: dict[str, str] = field(default_factory=dict)
    functional: dict[str, str] = field(default_factory=dict)

    def check(self, g: CellGraph) -> tuple[str | None, str, str]:
        s = structural_hash(g)
        if s in self.structural:
            return "structural", s, ""
        f = functional_hash(g)
        if f in self.functional:
            return "functional", s, f
        return None, s, f

    def add(self, structural: str, functional: str) -> None:
        self.structural.setdefault(structural, structural)
        if functional:
            self.functional.setdefault(functional, structural)


def mutation_stream_stats(parent: CellGraph, *, space, n: int, seed: int) -> dict[str, int]:
    """Mutates ``parent`` ``n`` times and counts the duplicates (both layers) in the stream."""

    rng = np.random.default_rng(seed)
    dd = Deduper()
    dd.add(structural_hash(parent), functional_hash(parent))
    counts = {"children": n, "new": 0, "structural": 0, "functional": 0}
    for _ in range(n):
        child, _ = mutate(parent, rng=rng, space=space)
        reason, s, f = dd.check(child)
        counts[reason or "new"] += 1
        if reason is None:
            dd.add(s, f)
    return counts
