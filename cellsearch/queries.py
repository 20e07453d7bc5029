"""Read-only queries on a cell graph (the schema is in :mod:`cellsearch.graph`): operands in
port order, consumers, the interface nodes, widths, parameter counts. Re-exported by
:mod:`cellsearch.graph`. Imports nothing from JAX.
"""

from __future__ import annotations

import networkx as nx

from cellsearch.errors import InvalidCellError
from cellsearch.ops import OPS

CellGraph = nx.DiGraph
X_WIDTH, H_WIDTH, ANY_WIDTH = "x", "h", "*"


# ----------------------------------------------------------------------------- queries


def operands(g: CellGraph, node: str) -> list[str]:
    """The operands of ``node``, ordered by port.

    >>> from cellsearch.graph import CellBuilder
    >>> b = CellBuilder("t", states=("h",)); _ = b.output("h", b.tanh(b.linear(b.x, b.state("h"))))
    >>> operands(b.graph, "h")
    ['n1']
    """
    preds = [(d.get("port", 0), u) for u, _, d in g.in_edges(node, data=True)]
    return [u for _, u in sorted(preds)]


def consumers(g: CellGraph, node: str) -> list[str]:
    """The nodes that read ``node``, sorted by id."""
    return sorted(g.successors(node))


def op_of(g: CellGraph, node: str) -> str:
    return g.nodes[node]["op"]


def kind_of(g: CellGraph, node: str) -> str:
    return OPS[g.nodes[node]["op"]].kind


def input_node(g: CellGraph) -> str:
    """The id of the ``x`` node."""
    for n, d in g.nodes(data=True):
        if d.get("op") == "input":
            return n
    raise InvalidCellError(None, "inputs", "the graph has no node with op 'input' (x)")


def state_nodes(g: CellGraph) -> dict[str, str]:
    """State name -> id of its ``state`` (previous value) node."""
    return {d["state"]: n for n, d in g.nodes(data=True) if d.get("op") == "state"}


def output_nodes(g: CellGraph) -> dict[str, str]:
    """State name -> id of its ``output`` (new value) node."""
    return {d["state"]: n for n, d in g.nodes(data=True) if d.get("op") == "output"}


def state_names(g: CellGraph) -> tuple[str, ...]:
    return tuple(g.graph["states"])


def linear_nodes(g: CellGraph) -> list[str]:
    return [n for n in nx.topological_sort(g) if op_of(g, n) == "linear"]


def edge_kind(g: CellGraph, u: str, v: str) -> str:
    return g.edges[u, v].get("kind", "full")


def widths(g: CellGraph) -> dict[str, str]:
    """Symbolic width of every node: ``"x"`` (input width), ``"h"`` (hidden) or ``"*"``
    (a constant, which broadcasts)."""
    out: dict[str, str] = {}
    for n in nx.topological_sort(g):
        op = op_of(g, n)
        kind = OPS[op].kind
        if op == "input":
            out[n] = X_WIDTH
        elif kind == "const":
            out[n] = ANY_WIDTH
        elif kind in ("activation", "binary", "output"):
            ws = {out[u] for u in operands(g, n)} - {ANY_WIDTH}
            out[n] = X_WIDTH if ws == {X_WIDTH} else (H_WIDTH if ws else ANY_WIDTH)
        else:
            out[n] = H_WIDTH
    return out


def needs_equal_widths(g: CellGraph) -> bool:
    """True if the cell mixes ``x``-width and hidden-width values elementwise, so it only
    compiles when ``input_size == hidden_size`` (e.g. MUT1's ``tanh(x) + ...``)."""
    w = widths(g)
    for n in g.nodes:
        kind = kind_of(g, n)
        if kind == "binary" and {w[u] for u in operands(g, n)} >= {X_WIDTH, H_WIDTH}:
            return True
        if kind == "linear" and any(
            edge_kind(g, u, n) == "diag" and w[u] == X_WIDTH for u in operands(g, n)
        ):
            return True
    return False


def param_count(g: CellGraph, hidden_size: int, input_size: int | None = None) -> int:
    """Number of trainable parameters of the cell (input width = hidden width by default).

    >>> from search_spaces.jozefowicz2015 import SEEDS
    >>> param_count(SEEDS["LSTM"](), 10)  # 8 n^2 + 4 n
    840
    """
    input_size = hidden_size if input_size is None else input_size
    w = widths(g)
    total = 0
    for n in linear_nodes(g):
        for u in operands(g, n):
            if edge_kind(g, u, n) == "diag":
                total += hidden_size
            else:
                total += (input_size if w[u] == X_WIDTH else hidden_size) * hidden_size
        total += hidden_size if g.nodes[n].get("bias", True) else 0
    return total


def param_count_coefficients(g: CellGraph) -> tuple[int, int]:
    """``(a, b)`` with ``param_count(g, n) == a n^2 + b n`` when input width is ``n``."""
    c1, c2 = param_count(g, 1), param_count(g, 2)
    a = (c2 - 2 * c1) // 2
    return a, c1 - a


def is_activation_like(g: CellGraph, node: str) -> bool:
    """An activation node, or a single-operand ``linear`` node with a ``scale``: the paper's
    Linear(a, x), which §3.5 lists among the activations."""
    d = g.nodes[node]
    if OPS[d["op"]].kind == "activation":
        return True
    return d["op"] == "linear" and d.get("scale") is not None and g.in_degree(node) == 1


# ----------------------------------------------------------------------------- builder
