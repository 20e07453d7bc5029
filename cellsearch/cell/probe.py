"""The liveness probe: a cell that cannot learn, found in milliseconds before any training.

Many random children are dead on arrival, and each used to cost a whole filter run. From the
zero initial carry, at the filter's initialisation, the probe runs the cell on a short random
input sequence (inputs at the embedding's scale) and rejects it when

* ``zero-state``: a state stays exactly zero for every step (the zero state is a fixed
  point, as in ``h' = u * h``, ``h' = h * tanh(c')`` or ``c' = f * c * i * g``), or
* ``no-gradient``: the outputs do not move with the parameters (a directional derivative
  along a random direction is exactly zero, or not finite), or
* ``unbounded``: a state leaves ``[-bound, bound]`` (or is not finite) within ``steps`` steps
  (a near-identity Linear(a) or a product that expands the state every step).

It needs no compilation (the cell runs in NumPy) and costs a few milliseconds. Neither
validation nor the functional hash (:mod:`cellsearch.nn.dedup`, which uses random states) sees
these failures. The search resamples a rejected child (:func:`cellsearch.evolve.mutate.mutate_live`)
and counts it in the funnel; ``cellsearch mutate`` reports how many children pass.

The probe's settings (:class:`ProbeConfig`) are ours, not the paper's: the paper trained every
valid child.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import numpy as np

from cellsearch.cell.graph import CellGraph, edge_kind, operands, state_names
from cellsearch.cell.ops import NUMPY, OPS, SQUASHING
from cellsearch.cell.params import bound, hidden_size, init_numpy


@dataclass(frozen=True)
class ProbeConfig:
    """The probe's settings: the filter's parameter budget and initialisation scale (so the
    probe sees the cell the filter would train), the steps run from the zero state, the
    steps the gradient is taken through, the bound on every state, the seed, and whether a
    weight layer must be followed by an activation (:func:`raw_linears`, a structural rule
    and not a liveness one: off by default)."""

    budget: int = 20_000
    init_scale: float = 1.0
    steps: int = 40
    grad_steps: int = 4
    bound: float = 1e3
    batch: int = 2
    seed: int = 0
    activated_linears: bool = False


def raw_linears(g: CellGraph) -> list[str]:
    """The weight layers (``linear`` nodes that are not a Linear(a) activation) read by
    anything but a squashing activation: NAS-Bench-NLP's generator puts an activation after
    every linear node (Klyuchnikov et al. 2020). MUT1, MUT2, GRU-RA and Greff's NIAF
    break it (it is off by default).

    >>> from cellsearch.evolve.spaces import find_seed
    >>> raw_linears(find_seed("GRU"))
    []
    """
    return [n for n, d in g.nodes(data=True) if d["op"] == "linear" and d.get("scale") is None
            and any(g.nodes[v]["op"] not in SQUASHING for v in g.successors(n))]


class _NumpyCell:
    """One step of a cell graph in float64 NumPy (the semantics of :mod:`cellsearch.nn.compile`,
    checked against it in ``tests/test_probe.py``): no compilation, no dispatch cost."""

    def __init__(self, g: CellGraph):
        self.g = g
        self.order = list(nx.lexicographical_topological_sort(g))
        self.args = {n: operands(g, n) for n in g}
        self.states = state_names(g)
        self.state_of = {n: d["state"] for n, d in g.nodes(data=True) if d["op"] in ("state", "output")}

    def step(self, params, carry: dict[str, np.ndarray], x: np.ndarray) -> dict[str, np.ndarray]:
        v: dict[str, np.ndarray] = {}
        new: dict[str, np.ndarray] = {}
        for n in self.order:
            d, args = self.g.nodes[n], self.args[n]
            op = d["op"]
            if op == "input":
                v[n] = x
            elif op == "state":
                v[n] = carry[d["state"]]
            elif op == "const":
                v[n] = np.full_like(x, d["value"])
            elif op == "output":
                new[d["state"]] = np.broadcast_to(v[args[0]], x.shape)
            elif op == "linear":
                p = params[n]
                total = sum(v[u] * p[f"W_{u}"] if edge_kind(self.g, u, n) == "diag" else v[u] @ p[f"W_{u}"]
                            for u in args)
                v[n] = total + p["b"] if "b" in p else total
            else:  # an activation or a binary op: its kernel in the op table
                v[n] = OPS[op].apply(NUMPY, *(v[u] for u in args))
        return new


def liveness(g: CellGraph, config: ProbeConfig = ProbeConfig()) -> str | None:
    """``None`` if the cell is alive, else the reason it is not (``"raw-linear: ..."``,
    ``"zero-state: ..."``, ``"no-gradient: ..."`` or ``"unbounded: ..."``).

    >>> from cellsearch.cell.graph import CellBuilder
    >>> b = CellBuilder("dead", states=("h",))
    >>> h = b.state("h"); _ = b.output("h", b.mul(b.tanh(b.linear(b.x, h)), h))
    >>> liveness(b.build())[:10]
    'zero-state'
    """
    if config.activated_linears:
        raw = raw_linears(g)
        if raw:
            return f"raw-linear: linear node(s) {', '.join(raw)} feed something other than tanh, sigmoid or relu"
    n = hidden_size(g, config.budget, 1)
    params = {node: {k: np.asarray(w, np.float64) for k, w in p.items()}
              for node, p in init_numpy(g, config.seed, n, n, init_scale=config.init_scale).items()}
    cell = _NumpyCell(g)
    out = g.graph["output"]
    rng = np.random.default_rng([config.seed, 7])
    s = bound(config.init_scale, n)
    xs = rng.uniform(-s, s, (config.steps, config.batch, n))
    proj = rng.standard_normal((config.grad_steps, config.batch, n))
    zero = {st: np.zeros((config.batch, n)) for st in cell.states}

    carry, still = zero, set(cell.states)
    with np.errstate(all="ignore"):
        for t in range(config.steps):
            carry = cell.step(params, carry, xs[t])
            worst = max(float(np.max(np.abs(c))) for c in carry.values())
            if not np.isfinite(worst) or worst > config.bound:
                return f"unbounded: a state reached {worst:.3g} (bound {config.bound:g}) at step {t + 1}"
            for st in still:
                if np.any(carry[st] != 0):
                    still = still - {st}
        if still:
            which = ", ".join(sorted(still))
            return f"zero-state: state {which} stayed exactly 0 for {config.steps} steps from the zero state"
        if not params:
            return None  # nothing to train, but the state moves (e.g. h' = h + x): the readout can learn

        def outputs(p) -> float:
            c, total = zero, 0.0
            for t in range(config.grad_steps):
                c = cell.step(p, c, xs[t])
                total += float(np.sum(c[out] * proj[t]))
            return total

        # a central difference along a random direction: exactly 0 when no parameter reaches
        # the outputs (the same float operations on both sides), nonzero otherwise
        d = {node: {k: rng.standard_normal(w.shape) for k, w in p.items()} for node, p in params.items()}
        eps = 1e-4

        def moved_by(sign: float):
            return {node: {k: w + sign * eps * d[node][k] for k, w in p.items()} for node, p in params.items()}

        slope = (outputs(moved_by(1.0)) - outputs(moved_by(-1.0))) / (2 * eps)
    if not np.isfinite(slope) or slope == 0.0:
        return f"no-gradient: the outputs over {config.grad_steps} steps do not move with the parameters " \
               f"(directional derivative {slope:g})"
    return None
