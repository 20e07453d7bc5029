"""Cell graphs: the networkx schema, read-only queries, a builder, validation, pruning and JSON.

A cell is an ``nx.DiGraph`` (we call it a ``CellGraph``) with this schema:

* **Graph attributes.** ``name`` (str), ``states`` (the state names in carry order,
  e.g. ``("c", "h")`` for the LSTM, as flax orders its carry) and ``output`` (the state
  whose new value is also the cell's output ``y``, e.g. ``"h"``).
* **Nodes.** Node ids are strings. Each node has an ``op`` (a key of
  :data:`cellsearch.cell.ops.OPS`) and op-specific attributes:

  - ``input``: the step input ``x_t`` (exactly one such node);
  - ``state``: a previous state, with ``state="h"`` (one per state name);
  - ``const``: a constant, with ``value`` (e.g. the ``1`` of ``1 - z``);
  - ``output``: the new value of a state, with ``state="h"`` (one per state name, no consumers);
  - ``tanh | sigmoid | relu | identity``: activations;
  - ``add | mul | sub``: elementwise binary ops (``sub`` computes port 0 minus port 1);
  - ``linear``: ``sum_k W_k a_k + b`` over its operands ``a_k``; attributes ``bias``
    (bool), ``bias_init`` (float, e.g. 1.0 for LSTM-b's forget gate) and ``scale``
    (``None``, or ``a`` for the paper's Linear(a, x): a square ``W`` initialised to ``a*I``
    plus small noise).
  - optional ``name``: a display name used when printing equations.
* **Edges.** ``u -> v`` means ``u`` is an operand of ``v``. The edge attribute ``port``
  (0, 1, ...) orders operands, because a DiGraph's predecessor order carries no meaning and
  ``sub`` is not commutative. Edges into a ``linear`` node may carry ``kind="diag"`` for a
  learned elementwise weight vector (Greff's peepholes) instead of a full matrix.

A node cannot read the same operand twice (``mul(a, a)``): the DiGraph holds one edge per
pair, so such graphs are rejected with the rule ``distinct-operands`` and mutations resample.

Widths: ``x`` has the input width; every other node has the hidden width, except an
activation or binary op whose operands all have the input width. A binary op that mixes
the two needs ``input_size == hidden_size`` (MUT1 and MUT2 do this; embed to the hidden size).

This module imports nothing from JAX.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import networkx as nx

from cellsearch.cell.ops import OPS, VARIADIC, get_op
from cellsearch.errors import MSG_STATE_WIDTH_CHANGED, CellFormatError, InvalidCellError

CellGraph = nx.DiGraph
X_WIDTH, H_WIDTH, ANY_WIDTH = "x", "h", "*"
FORMAT = "cellsearch.cell/1"


# ----------------------------------------------------------------------------- queries

def operands(g: CellGraph, node: str) -> list[str]:
    """The operands of ``node``, ordered by port.

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


class CellBuilder:
    """Builds a cell graph with readable code.

    >>> b = CellBuilder("Tanh", states=("h",))
    >>> h = b.output("h", b.tanh(b.linear(b.x, b.state("h")), node="h_new"))
    >>> sorted(validate(b.graph).nodes)
    ['h', 'h_new', 'h_prev', 'n0', 'x']
    """

    def __init__(self, name: str, states: Iterable[str] = ("h",), output: str | None = None):
        states = tuple(states)
        self.graph = nx.DiGraph(name=name, states=states, output=output or states[-1])
        self._count = 0
        self.x = self.op("input", (), node="x")
        for s in states:
            self.op("state", (), node=f"{s}_prev", state=s)

    def state(self, name: str) -> str:
        return f"{name}_prev"

    def op(self, op: str, args: Iterable[str], node: str | None = None, **attrs: Any) -> str:
        """Adds a node ``op(*args)`` and returns its id (``n<k>`` unless ``node`` is given)."""
        if node is None:
            while f"n{self._count}" in self.graph:
                self._count += 1
            node = f"n{self._count}"
        if node in self.graph:
            raise InvalidCellError(node, "unique-ids", "a node with this id already exists")
        self.graph.add_node(node, op=op, **{k: v for k, v in attrs.items() if v is not None})
        for port, a in enumerate(args):
            kind = "full"
            if isinstance(a, tuple):  # (node, "diag")
                a, kind = a
            attrs_e = {"port": port} if kind == "full" else {"port": port, "kind": kind}
            self.graph.add_edge(a, node, **attrs_e)
        return node

    def linear(self, *args: str, node=None, name=None, bias=True, bias_init=0.0, scale=None):
        extra = {"bias": bias, "bias_init": float(bias_init), "scale": scale, "name": name}
        if not bias:
            extra.pop("bias_init")
        return self.op("linear", args, node=node, **extra)

    def const(self, value: float, node=None) -> str:
        return self.op("const", (), node=node, value=float(value))

    def output(self, state: str, value: str) -> str:
        return self.op("output", (value,), node=state, state=state)

    def __getattr__(self, op: str):
        if op in OPS and OPS[op].kind in ("activation", "binary"):
            return lambda *args, node=None, name=None: self.op(op, args, node=node, name=name)
        raise AttributeError(op)

    def build(self) -> CellGraph:
        """Validates and returns the graph, frozen."""
        return nx.freeze(validate(self.graph))


# ----------------------------------------------------------------------------- validation


def _check_known_ops(g: CellGraph) -> None:
    for n, d in g.nodes(data=True):
        if not isinstance(n, str):
            raise InvalidCellError(str(n), "string-ids", f"node ids must be strings, got {n!r}")
        get_op(d.get("op"), node=n)


def _check_arity(g: CellGraph) -> None:
    for n, d in g.nodes(data=True):
        spec = OPS[d["op"]]
        ports = sorted(e.get("port", 0) for _, _, e in g.in_edges(n, data=True))
        k = len(ports)
        if ports != list(range(k)):
            raise InvalidCellError(n, "ports", f"operand ports must be 0..{k - 1}, got {ports}")
        if spec.arity == VARIADIC:
            if k < 1:
                raise InvalidCellError(n, "arity", f"op {spec.name!r} needs at least one operand, got 0")
        elif k != spec.arity:
            raise InvalidCellError(
                n, "arity", f"op {spec.name!r} takes {spec.arity} operand(s), got {k}"
            )
        for u, _, e in g.in_edges(n, data=True):
            kind = e.get("kind", "full")
            if kind not in ("full", "diag") or (kind == "diag" and spec.name != "linear"):
                raise InvalidCellError(
                    n, "edge-kind", f"edge from {u!r} has kind {kind!r}; only 'linear' "
                    "operands may be 'full' or 'diag'"
                )


def _check_attributes(g: CellGraph) -> None:
    for n, d in g.nodes(data=True):
        op = d["op"]
        if op == "const" and not isinstance(d.get("value"), int | float):
            raise InvalidCellError(n, "const-value", f"a const node needs a numeric 'value', got {d.get('value')!r}")
        if op == "linear":
            if not isinstance(d.get("bias", True), bool):
                raise InvalidCellError(n, "linear-attrs", f"'bias' must be true or false, got {d['bias']!r}")
            for key in ("bias_init", "scale"):
                v = d.get(key)
                if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
                    raise InvalidCellError(n, "linear-attrs", f"{key!r} must be a number, got {v!r}")


def _check_acyclic(g: CellGraph) -> None:
    try:
        cycle = nx.find_cycle(g)
    except nx.NetworkXNoCycle:
        return
    path = " -> ".join([u for u, _ in cycle] + [cycle[0][0]])
    raise InvalidCellError(cycle[0][0], "acyclic", f"the graph has a cycle: {path}")


def _check_interface(g: CellGraph) -> None:
    xs = [n for n, d in g.nodes(data=True) if d["op"] == "input"]
    if len(xs) != 1:
        raise InvalidCellError(None, "inputs", f"expected exactly one 'input' node (x), got {xs}")
    names = g.graph.get("states")
    if not names or len(set(names)) != len(names) or not all(isinstance(s, str) for s in names):
        raise InvalidCellError(None, "states", f"graph attribute 'states' must list distinct state names, got {names!r}")
    for op in ("state", "output"):
        seen: dict[str, str] = {}
        for n, d in g.nodes(data=True):
            if d["op"] != op:
                continue
            s = d.get("state")
            if s not in names:
                raise InvalidCellError(n, "states", f"{op} node names state {s!r}, which is not in states {list(names)}")
            if s in seen:
                raise InvalidCellError(n, "states", f"state {s!r} has two {op} nodes: {seen[s]!r} and {n!r}")
            seen[s] = n
        for s in names:
            if s not in seen:
                rule = "missing-output" if op == "output" else "missing-state"
                raise InvalidCellError(None, rule, f"state {s!r} has no {op} node")
    if g.graph.get("output") not in names:
        raise InvalidCellError(None, "states", f"graph attribute 'output' must be one of {list(names)}, got {g.graph.get('output')!r}")
    for n, d in g.nodes(data=True):
        if d["op"] == "output" and g.out_degree(n):
            raise InvalidCellError(n, "output-sink", f"an output node cannot be read by other nodes, but {consumers(g, n)} read it")


def _check_reachability(g: CellGraph) -> None:
    outs = set(output_nodes(g).values())
    feeds_output: set[str] = set(outs)
    for o in outs:
        feeds_output |= nx.ancestors(g, o)
    for n, d in g.nodes(data=True):
        if n not in feeds_output and d["op"] not in ("input", "state"):
            raise InvalidCellError(n, "dangling", f"node ({d['op']}) does not feed any output; prune it")
    x = input_node(g)
    sts = set(state_nodes(g).values())
    for s, o in output_nodes(g).items():
        anc = nx.ancestors(g, o)
        if x not in anc:
            raise InvalidCellError(o, "depends-on-input", f"output of state {s!r} does not depend on the input x")
        if not anc & sts:
            raise InvalidCellError(o, "depends-on-state", f"output of state {s!r} does not depend on any previous state, so the cell is not recurrent")


def _check_widths(g: CellGraph) -> None:
    w = widths(g)
    for s, o in output_nodes(g).items():
        if w[o] != H_WIDTH:
            raise InvalidCellError(o, "state-width", f"state {s!r} gets width {w[o]!r}: {MSG_STATE_WIDTH_CHANGED}")


_RULES = (_check_known_ops, _check_arity, _check_attributes, _check_acyclic, _check_interface,
          _check_reachability, _check_widths)


def validate(g: CellGraph) -> CellGraph:
    """Checks every rule of the schema and returns ``g``; raises :class:`InvalidCellError`
    naming the node and the rule at the first failure.

    Rules: ``known-op``, ``ports``, ``arity``, ``edge-kind``, ``const-value``, ``linear-attrs``,
    ``acyclic``, ``inputs``, ``states``, ``missing-output``, ``missing-state``, ``output-sink``,
    ``dangling``, ``depends-on-input``, ``depends-on-state``, ``state-width``.
    """
    if not isinstance(g, nx.DiGraph) or isinstance(g, nx.MultiDiGraph):
        raise InvalidCellError(None, "type", f"a cell graph is an nx.DiGraph, got {type(g).__name__}")
    for rule in _RULES:
        rule(g)
    return g


def is_valid(g: CellGraph) -> bool:
    """``True`` if :func:`validate` passes."""
    try:
        validate(g)
    except InvalidCellError:
        return False
    return True


def prune(g: CellGraph) -> CellGraph:
    """Returns a copy of ``g`` without the nodes that feed no output (inputs and states stay)."""
    outs = set(output_nodes(g).values())
    keep = set(outs)
    for o in outs:
        keep |= nx.ancestors(g, o)
    keep |= {n for n, d in g.nodes(data=True) if d["op"] in ("input", "state")}
    return nx.DiGraph(g.subgraph(keep))


# ----------------------------------------------------------------------------- JSON


def to_dict(g: CellGraph) -> dict[str, Any]:
    """A JSON-ready dict: nodes in a stable topological order, each with its operands."""
    nodes = []
    for n in nx.lexicographical_topological_sort(g):
        d = dict(g.nodes[n])
        entry: dict[str, Any] = {"id": n, "op": d.pop("op")}
        ops = operands(g, n)
        if ops:
            entry["inputs"] = ops
            kinds = [edge_kind(g, u, n) for u in ops]
            if any(k != "full" for k in kinds):
                entry["kinds"] = kinds
        entry.update(sorted(d.items()))
        nodes.append(entry)
    return {
        "format": FORMAT,
        "name": g.graph.get("name", ""),
        "states": list(g.graph["states"]),
        "output": g.graph["output"],
        "nodes": nodes,
    }


def from_dict(data: Mapping[str, Any], *, check: bool = True) -> CellGraph:
    """Builds a graph from :func:`to_dict` output; raises :class:`CellFormatError` for a
    malformed document and :class:`InvalidCellError` for a graph that breaks a rule."""
    if not isinstance(data, Mapping):
        raise CellFormatError(f"a cell is a JSON object, got {type(data).__name__}")
    if "graph" in data and "nodes" not in data:  # a record exported from a search store
        data = data["graph"]
    for key in ("states", "nodes"):
        if key not in data:
            raise CellFormatError(f"a cell needs the key {key!r}; got keys {sorted(data)}")
    if not isinstance(data["nodes"], list):
        raise CellFormatError("'nodes' must be a list of objects")
    states = data["states"]
    if not isinstance(states, list) or not states:
        raise CellFormatError(f"'states' must be a non-empty list of state names, got {states!r}")
    g = nx.DiGraph(name=str(data.get("name", "")), states=tuple(states), output=data.get("output", states[-1]))
    for i, entry in enumerate(data["nodes"]):
        if not isinstance(entry, Mapping) or "id" not in entry or "op" not in entry:
            raise CellFormatError(f"nodes[{i}] must be an object with 'id' and 'op', got {entry!r}")
        node = entry["id"]
        if node in g and "op" in g.nodes[node]:
            raise CellFormatError(f"node id {node!r} appears twice")
        attrs = {k: v for k, v in entry.items() if k not in ("id", "inputs", "kinds")}
        g.add_node(node, **attrs)
    for entry in data["nodes"]:
        node, ins = entry["id"], entry.get("inputs", [])
        kinds = entry.get("kinds", ["full"] * len(ins))
        if not isinstance(ins, list) or not isinstance(kinds, list) or len(kinds) != len(ins):
            raise CellFormatError(f"node {node!r}: 'inputs' must be a list (and 'kinds' as long)")
        if len(set(map(str, ins))) != len(ins):
            raise InvalidCellError(node, "distinct-operands", f"operands {ins} repeat a node; a node reads each operand once")
        for port, (u, kind) in enumerate(zip(ins, kinds, strict=True)):
            if u not in g:
                raise InvalidCellError(node, "known-operand", f"operand {u!r} is not a node of the graph")
            g.add_edge(u, node, port=port, **({"kind": kind} if kind != "full" else {}))
    return validate(g) if check else g


def to_json(g: CellGraph, indent: int | None = 2) -> str:
    """Stable, human-readable JSON (same graph, same text)."""
    return json.dumps(to_dict(g), indent=indent)


def from_json(text: str, *, check: bool = True) -> CellGraph:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise CellFormatError(f"not valid JSON: {e}") from None
    return from_dict(data, check=check)


def load(path: str) -> CellGraph:
    """Reads a cell from a JSON file; errors name the file."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise CellFormatError(f"cannot read cell file {path!r}: {e.strerror}") from None
    try:
        return from_json(text)
    except (CellFormatError, InvalidCellError) as e:
        raise _with_path(e, path) from None


def _with_path(e: Exception, path: str) -> Exception:
    if isinstance(e, InvalidCellError):
        err = type(e)(e.node, e.rule, e.detail)
        err.args = (f"{path}: {e}",)
        return err
    return CellFormatError(f"{path}: {e}")


def save(g: CellGraph, path: str) -> None:
    with open(path, "w") as f:
        f.write(to_json(g) + "\n")
