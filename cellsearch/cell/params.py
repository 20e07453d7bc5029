"""A cell's parameters without JAX: their layout, their initial values, and sizing by budget.

The parameters of a cell are a dict keyed by the ids of its ``linear`` nodes, each
``{"W_<operand id>": kernel, "b": bias}``. Kernels have flax's layout ``(in, out)``; a ``diag``
operand (a peephole) has a weight vector ``(out,)``. :class:`ParamLayout` holds this layout for
one cell structure (in the canonical ids of :mod:`cellsearch.cell.canon`, so isomorphic cells
share it) and draws the initial values with any array library:

* every kernel entry is ``draw(shape, (node index, operand index)) * s`` with
  ``s = bound(init_scale, hidden_size) = init_scale / sqrt(hidden_size)`` (§3.8, [S1]); ``draw``
  gives ``U[-1, 1]`` (:meth:`ParamLayout.init_numpy` with NumPy, the JAX compiler's ``init``
  with JAX keys);
* a Linear(a, x) node (the paper's identity-initialised layer) starts at ``a * I`` plus the
  same draw scaled by :data:`~cellsearch.cell.ops.LINEAR_A_NOISE`;
* a bias starts at its node's ``bias_init`` (0 unless set, e.g. 1 for LSTM-b's forget gate).

:func:`init_numpy` draws a cell's parameters on the host with no compilation at all (the
trainer and the liveness probe use it); :func:`hidden_size` sizes a cell by its parameter budget,
so cells compare at equal size. This module imports nothing from JAX.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import networkx as nx
import numpy as np

from cellsearch.cell.canon import Canonical, canonical
from cellsearch.cell.graph import CellGraph, edge_kind, needs_equal_widths, operands, param_count_coefficients, widths
from cellsearch.cell.ops import LINEAR_A_NOISE
from cellsearch.errors import CompileError

Params = dict[str, dict[str, Any]]


def bound(init_scale: float, hidden_size: int) -> float:
    """The half-width ``s`` of the uniform initialisation ``U[-s, s]``: ``init_scale / sqrt(hidden)``.

    >>> bound(1.0, 100)
    0.1
    """
    return init_scale / math.sqrt(hidden_size)


def init_scale_of(bound_: float, hidden_size: int) -> float:
    """The inverse of :func:`bound`: the ``init_scale`` whose bound at ``hidden_size`` is ``bound_``
    (Zaremba et al.'s ``init 0.1`` at width 200 is init scale ``0.1 * sqrt(200)``).

    >>> round(init_scale_of(bound(1.4, 200), 200), 12)
    1.4
    """
    return bound_ * math.sqrt(hidden_size)


def hidden_size(g: CellGraph, budget: int, layers: int, *, minimum: int = 4) -> int:
    """The largest ``n`` with ``layers * (a n^2 + b n) <= budget`` for the cell's ``a n^2 + b n``
    recurrent parameters per layer (input width = hidden width), and at most ``sqrt(budget /
    layers)``: a cell without a full matrix (``a = 0``: only peepholes and biases, or no
    parameter at all, such as ``h' = h + x``) gets the width of a one-matrix cell, not a state
    thousands wide that the budget would allow.

    >>> from search_spaces.jozefowicz2015 import SEEDS
    >>> hidden_size(SEEDS["LSTM"](), 8 * 50**2 + 4 * 50, 1)
    50
    >>> from cellsearch.cell.graph import CellBuilder
    >>> b = CellBuilder("sum", states=("h",)); _ = b.output("h", b.add(b.state("h"), b.x))
    >>> hidden_size(b.build(), 20_000, 1)
    141
    """
    a, b = param_count_coefficients(g)
    per_layer = budget / layers
    cap = math.isqrt(int(per_layer))
    if a == 0:
        return max(minimum, min(cap, int(per_layer // max(b, 1))))
    n = (-b + math.sqrt(b * b + 4 * a * per_layer)) / (2 * a)
    return max(minimum, min(cap, int(math.floor(n + 1e-9))))


def rename_params(params: Params, names: dict[str, str], partial: bool = False) -> Params:
    """Cell parameters with their node ids mapped by ``names``, operand ids in ``W_<id>`` too:
    ``{"n3": {"W_x": ..., "b": ...}}`` -> ``{"lin_f": {"W_x": ..., "b": ...}}``. With ``partial``,
    what ``names`` does not name is dropped (another cell's parameters, matched where they can be)."""
    if partial:
        params = {n: {k: v for k, v in p.items() if k == "b" or k[2:] in names} for n, p in params.items()
                  if n in names}
    return {names[n]: {(k if k == "b" else "W_" + names[k[2:]]): v for k, v in p.items()} for n, p in params.items()}


class ParamLayout:
    """The parameter layout of one cell structure, in the canonical graph's ids and order.

    Attributes:
      graph: the canonical graph (nodes in canonical topological order).
      order: its node ids in that order.
      linears: the ``linear`` nodes, in order.
      args: each node's operands, in port order.
      width: each node's symbolic width (``"x"``, ``"h"`` or ``"*"``).
      bias: whether each linear node has a bias.
      equal_widths: the cell adds ``x`` to hidden-width values, so it needs ``input == hidden``.
    """

    def __init__(self, g: CellGraph):
        self.graph = g
        self.order = list(g.nodes)  # canonical graphs are built in canonical topological order
        self.args = {n: operands(g, n) for n in self.order}
        self.linears = [n for n in self.order if g.nodes[n]["op"] == "linear"]
        self.width = widths(g)
        self.bias = {n: g.nodes[n].get("bias", True) for n in self.linears}
        self.equal_widths = needs_equal_widths(g)

    def check_sizes(self, input_size: int, hidden_size: int) -> None:
        """Raises :class:`CompileError` when the cell cannot run at these sizes."""
        if self.equal_widths and input_size != hidden_size:
            raise CompileError(
                f"this cell adds x to hidden-width values, so it needs input_size == hidden_size, "
                f"got input_size={input_size}, hidden_size={hidden_size}; embed the input to the hidden size"
            )

    def init_with(self, draw: Callable[[tuple, tuple[int, int]], Any], xp, input_size: int, hidden_size: int,
                  init_scale) -> Params:
        """Parameters in this layout, each kernel entry ``draw(shape, (node index, operand
        index)) * bound(init_scale, hidden_size)`` (``draw`` gives ``U[-1, 1]`` for an
        initialisation; other draws serve other uses, e.g. the functional hash's), a Linear(a, x)
        node's kernel ``a * I`` plus the draw scaled by :data:`LINEAR_A_NOISE`, biases at their
        ``bias_init``. ``xp`` is ``numpy`` or ``jax.numpy``; ``init_scale`` may be traced."""
        self.check_sizes(input_size, hidden_size)
        s = init_scale / np.sqrt(float(hidden_size))
        params: Params = {}
        for k, n in enumerate(self.order):
            if n not in self.bias:
                continue
            d = self.graph.nodes[n]
            p: dict[str, Any] = {}
            for u in self.args[n]:
                idx = (k, self.order.index(u))
                if edge_kind(self.graph, u, n) == "diag":
                    p[f"W_{u}"] = draw((hidden_size,), idx) * s
                    continue
                fan_in = input_size if self.width[u] == "x" else hidden_size
                w = draw((fan_in, hidden_size), idx) * s
                if d.get("scale") is not None:  # Linear(a, x): a * I plus small noise
                    w = w * LINEAR_A_NOISE + d["scale"] * xp.eye(fan_in, hidden_size, dtype=xp.float32)
                p[f"W_{u}"] = w
            if self.bias[n]:
                p["b"] = xp.full((hidden_size,), float(d.get("bias_init", 0.0)), xp.float32)
            params[n] = p
        return params

    def init_numpy(self, seed, input_size: int, hidden_size: int, init_scale: float = 1.0) -> Params:
        """The initial parameters drawn on the host with NumPy from ``seed`` (an int or a tuple)."""
        base = tuple(np.atleast_1d(seed).tolist())

        def draw(shape, idx):
            return np.random.default_rng((*base, *idx)).uniform(-1.0, 1.0, shape).astype(np.float32)

        return self.init_with(draw, np, input_size, hidden_size, np.float32(init_scale))


_LAYOUTS: OrderedDict[str, ParamLayout] = OrderedDict()
_LAYOUTS_SIZE = 4096


def layout(g: CellGraph) -> tuple[Canonical, ParamLayout]:
    """The canonical form of ``g`` and its parameter layout (cached by structural hash)."""
    c = canonical(g)
    lay = _LAYOUTS.get(c.hash)
    if lay is None:
        cg = nx.DiGraph(c.graph)
        lay = _LAYOUTS[c.hash] = ParamLayout(cg)
        if len(_LAYOUTS) > _LAYOUTS_SIZE:
            _LAYOUTS.popitem(last=False)
    else:
        _LAYOUTS.move_to_end(c.hash)
    return c, lay


def init_numpy(g: CellGraph, seed, input_size: int, hidden_size: int, init_scale: float = 1.0) -> Params:
    """``g``'s initial parameters in its own node ids, drawn with NumPy (the same numbers as the
    compiled cell's ``init_numpy``: both draw in canonical order).

    >>> from search_spaces.jozefowicz2015 import SEEDS
    >>> p = init_numpy(SEEDS["LSTM"](), 0, 8, 16)
    >>> sorted(p), p["lin_f"]["W_x"].shape, float(p["lin_f"]["b"][0])
    (['lin_f', 'lin_g', 'lin_i', 'lin_o'], (8, 16), 0.0)
    """
    c, lay = layout(g)
    inv = {v: k for k, v in c.node_map.items()}
    return rename_params(lay.init_numpy(seed, int(input_size), int(hidden_size), init_scale), inv)
