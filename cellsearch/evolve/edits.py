"""The edits that make a child: the six of Jozefowicz et al. 2015 (§3.5), and three that can build a gate.

An edit is ``apply(g, node, *, rng, space) -> (graph, detail) | None``, registered in
:data:`MUTATIONS` with a predicate ``applies_to(g, node, space)``; a space names the edits it uses
(``MUTATIONS`` of its module) and may bring its own (``EDITS``, rows of the same table).
Beyond the paper's six, ``add_gate`` puts a learned sigmoid gate on an operand of a node
(``u -> u * sigm(W_x x + W_h h + b)``, the shape of every gate of the LSTM and the GRU) and
``add_linear`` a new full linear layer (``u -> W u + b``) and ``add_mix`` a learned convex mix of a
node with one of its ancestors (``u -> z * u + (1 - z) * v``, the GRU's update gate when ``v`` is
the state): from the tanh RNN, the paper's edits add no weight matrix but the near-identity
Linear(a), so a gate is four or more edits away through worse cells; the ``gates`` space has all three. It never touches its input
graph; it returns a new, unvalidated graph (or ``None`` when the random choice it drew cannot
be made, e.g. it would make a node read the same operand twice). The fixed nodes (input,
states, constants, state sinks) are never edit sites (:func:`edit_sites`); the driver that
chooses where and how often to edit is :mod:`cellsearch.evolve.mutate`.

Rule 6's operands differ between the sources (§3.5), so they are a setting,
:data:`OPERAND_RULES`.

This module imports nothing from JAX.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import networkx as nx
import numpy as np

from cellsearch.cell.graph import (
    CellGraph,
    consumers,
    input_node,
    is_activation_like,
    kind_of,
    op_of,
    operands,
    prune,
    state_nodes,
)
from cellsearch.cell.ops import parse_activation


class MutationSpace(Protocol):
    """What the edits need from a search space (:class:`cellsearch.evolve.spaces.SearchSpace` is one):
    ``edits`` maps the names in ``mutations`` to their rows (the table's, or the space's own)."""

    activations: tuple[str, ...]
    binary_ops: tuple[str, ...]
    mutations: tuple[str, ...]
    operand_rule: str
    edits: dict

MAX_NODES = 64  # bound on a child's size: edits that grow the graph stop applying beyond it
_FIXED = ("input", "state", "const", "output")


class AppliedMutation(NamedTuple):
    """One edit applied to one node: the lineage record of a child."""

    name: str
    node: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return self._asdict()


class Mutation(NamedTuple):
    name: str
    applies_to: Callable[[CellGraph, str, Any], bool]
    apply: Callable[..., tuple[CellGraph, str] | None]
    doc: str


# ----------------------------------------------------------------------------- helpers


def _new_id(g: CellGraph) -> str:
    nums = [int(m.group(1)) for n in g for m in [re.fullmatch(r"n(\d+)", n)] if m]
    return f"n{max(nums, default=-1) + 1}"


def _activation_key(g: CellGraph, node: str) -> str:
    d = g.nodes[node]
    return f"linear:{d['scale']:g}" if d["op"] == "linear" else d["op"]


def _set_activation(g: CellGraph, node: str, choice: str) -> None:
    op, scale = parse_activation(choice)
    d = g.nodes[node]
    for k in ("bias", "bias_init", "scale"):
        d.pop(k, None)
    d["op"] = op
    if op == "linear":
        d.update(bias=True, bias_init=0.0, scale=scale)


def _redirect(g: CellGraph, old: str, new: str) -> bool:
    """Makes every consumer of ``old`` read ``new`` instead (same port and kind)."""
    for v in consumers(g, old):
        if v == new:  # the replacement itself reads old (rule 6 with "ancestor_and_node")
            continue
        if g.has_edge(new, v):
            return False
        data = dict(g.edges[old, v])
        g.remove_edge(old, v)
        g.add_edge(new, v, **data)
    return True


def _pick(rng: np.random.Generator, items: list[str]) -> str | None:
    return items[rng.integers(len(items))] if items else None


def _ancestors(g: CellGraph, node: str) -> list[str]:
    return sorted(a for a in nx.ancestors(g, node) if op_of(g, a) != "output")


def _replaceable(g: CellGraph, node: str, space: Any = None) -> bool:
    return op_of(g, node) not in _FIXED


def edit_sites(g: CellGraph) -> list[str]:
    """The nodes an edit may act on: every node but the fixed ones (input, states,
    constants, sinks), in a fixed (lexicographic topological) order."""
    return [n for n in nx.lexicographical_topological_sort(g) if op_of(g, n) not in _FIXED]


def _can_grow(g: CellGraph, space: Any, by: int = 1) -> bool:
    return len(g) + by <= getattr(space, "max_nodes", MAX_NODES)


# ----------------------------------------------------------------------------- the six edits


def swap_activation(g, node, *, rng, space):
    """§3.5 rule 1: replace an activation by another from the space's set."""
    current = _activation_key(g, node)
    choices = [a for a in space.activations if a != current]
    choice = _pick(rng, choices)
    if choice is None:
        return None
    g = nx.DiGraph(g)
    _set_activation(g, node, choice)
    return g, f"{current} -> {choice}"


def swap_binary_op(g, node, *, rng, space):
    """§3.5 rule 2: replace +, * or - by a different one (operand order kept)."""
    current = op_of(g, node)
    choice = _pick(rng, [b for b in space.binary_ops if b != current])
    if choice is None:
        return None
    g = nx.DiGraph(g)
    g.nodes[node]["op"] = choice
    return g, f"{current} -> {choice}"


def insert_activation(g, node, *, rng, space):
    """§3.5 rule 3: put a random activation between the node and one of its operands."""
    args = operands(g, node)
    parent = args[rng.integers(len(args))]
    choice = space.activations[rng.integers(len(space.activations))]
    g = nx.DiGraph(g)
    new = _new_id(g)
    data = dict(g.edges[parent, node])
    g.remove_edge(parent, node)
    g.add_node(new, op="identity")
    _set_activation(g, new, choice)
    g.add_edge(parent, new, port=0)
    g.add_edge(new, node, **data)
    return g, f"{choice} on {parent} -> {node}"


def remove_node(g, node, *, rng, space):
    """§3.5 rule 4: remove a node with exactly one operand and one consumer."""
    (parent,) = operands(g, node)
    g = nx.DiGraph(g)
    if not _redirect(g, node, parent):
        return None
    g.remove_node(node)
    return g, f"{node} bypassed to {parent}"


def replace_with_ancestor(g, node, *, rng, space):
    """§3.5 rule 5: replace the node by one of its ancestors; dead nodes are dropped."""
    anc = _pick(rng, _ancestors(g, node))
    if anc is None:
        return None
    g = nx.DiGraph(g)
    if not _redirect(g, node, anc):
        return None
    return prune(g), f"{node} -> {anc}"


def _operands_ancestor_and_node(g, node, rng):
    return _pick(rng, _ancestors(g, node)), node


def _operands_ancestor_and_random_node(g, node, rng):
    desc = nx.descendants(g, node) | {node}
    others = sorted(n for n in g if n not in desc and op_of(g, n) != "output")
    return _pick(rng, _ancestors(g, node)), _pick(rng, others)


def _operands_ancestor_and_random_ancestor(g, node, rng):
    desc = nx.descendants(g, node) | {node}
    pool = sorted(n for n in g if n not in desc and op_of(g, n) != "output")
    other = _pick(rng, pool)
    if other is None:
        return None, None
    candidates = [a for a in _ancestors(g, other) if a not in desc] or [other]
    return _pick(rng, _ancestors(g, node)), _pick(rng, candidates)


# §3.5 rule 6: "an ancestor and the node itself" (project brief), "an ancestor of the node and
# some other random node" (paper notes), "an ancestor of the node and an ancestor of a random
# node" (re-implementation, and the reference writer's memory). Default: the last.
OPERAND_RULES: dict[str, Callable] = {
    "ancestor_and_node": _operands_ancestor_and_node,
    "ancestor_and_random_node": _operands_ancestor_and_random_node,
    "ancestor_and_random_ancestor": _operands_ancestor_and_random_ancestor,
}


def replace_with_binary(g, node, *, rng, space):
    """§3.5 rule 6: replace the node by the sum, product or difference of two nodes chosen by
    the space's operand rule."""
    a, b = OPERAND_RULES[space.operand_rule](g, node, rng)
    if a is None or b is None or a == b:
        return None
    op = space.binary_ops[rng.integers(len(space.binary_ops))]
    if rng.uniform() < 0.5:
        a, b = b, a
    g = nx.DiGraph(g)
    new = _new_id(g)
    g.add_node(new, op=op)
    g.add_edge(a, new, port=0)
    g.add_edge(b, new, port=1)
    if not _redirect(g, node, new):
        return None
    return prune(g), f"{node} -> {op}({a}, {b})"


def _gate_operand(g, node, rng):
    """An operand of ``node`` (uniformly) and the edge's data, for the edits that wrap an operand."""
    args = operands(g, node)
    u = args[rng.integers(len(args))]
    return u, dict(g.edges[u, node])


# A new gate starts open, sigm(2) = 0.88, so the child starts near its parent's function, as the
# LSTM's forget gate does with its bias of 1 (§5.1). Measured on the tanh RNN's gated children (the
# filter at lr 0.1-1): with bias 0 a gate on h stays at chance (0.04) at every rate but 1 (0.55);
# with 2 it reaches 0.99 (benchmarks/README.md, "Rediscovery"). Another value: a space's own row
# calling add_gate with ``bias``.
GATE_BIAS = 2.0


def add_gate(g, node, *, rng, space, bias: float = GATE_BIAS):
    """A learned gate on an operand: ``u -> u * sigm(W_x x + W_h h + b)``, ``h`` the output state,
    ``b`` starting at ``bias`` (the gate open)."""
    u, data = _gate_operand(g, node, rng)
    g = nx.DiGraph(g)
    x, h = input_node(g), state_nodes(g)[g.graph["output"]]
    lin = _new_id(g)
    g.add_node(lin, op="linear", bias=True, bias_init=float(bias))
    g.add_edge(x, lin, port=0)
    g.add_edge(h, lin, port=1)
    gate = _new_id(g)
    g.add_node(gate, op="sigmoid")
    g.add_edge(lin, gate, port=0)
    prod = _new_id(g)
    g.add_node(prod, op="mul")
    g.remove_edge(u, node)
    g.add_edge(u, prod, port=0)
    g.add_edge(gate, prod, port=1)
    g.add_edge(prod, node, **data)
    return g, f"sigm gate on {u} -> {node}"


# A new mix starts even, sigm(0) = 0.5. Measured on the tanh RNN mixed with its state (--quick
# arithmetic, lr 0.1-3, 3 seeds): bias 0 reaches 0.507 (the tanh RNN 0.444, the GRU 0.524) and trains
# at lr 3; bias -2 (mostly the parent) 0.463, diverging at lr 3 (benchmarks/README.md, "Rediscovery").
MIX_BIAS = 0.0


def add_mix(g, node, *, rng, space, bias: float = MIX_BIAS):
    """A learned convex mix of the node with one of its ancestors, read by every consumer of the
    node: ``u -> z * u + (1 - z) * v``, ``z = sigm(W_x x + W_h h + b)``, ``b`` starting at ``bias``.
    With ``v`` the state it is the GRU's update gate (the MGU/minGRU shape, the smallest gate that
    helps: ``anchors-4.md`` §1); with ``v`` the input or an inner node, a highway connection."""
    v = _pick(rng, [a for a in _ancestors(g, node) if op_of(g, a) != "const"])
    if v is None:
        return None
    g = nx.DiGraph(g)
    x, h = input_node(g), state_nodes(g)[g.graph["output"]]
    out = _new_id(g)
    g.add_node(out, op="add")
    if not _redirect(g, node, out):
        return None
    ids = []
    for op, args, attrs in [("linear", (x, h), {"bias": True, "bias_init": float(bias)}), ("sigmoid", (0,), {}),
                            ("const", (), {"value": 1.0}), ("sub", (2, 1), {}), ("mul", (1, node), {}),
                            ("mul", (3, v), {})]:
        n = _new_id(g)
        g.add_node(n, op=op, **attrs)
        for port, a in enumerate(args):
            g.add_edge(ids[a] if isinstance(a, int) else a, n, port=port)
        ids.append(n)
    g.add_edge(ids[4], out, port=0)
    g.add_edge(ids[5], out, port=1)
    return g, f"mix of {node} with {v}"


def add_linear(g, node, *, rng, space):
    """A new full linear layer on an operand: ``u -> W u + b`` (a fresh layer, not the near-identity
    Linear(a))."""
    u, data = _gate_operand(g, node, rng)
    g = nx.DiGraph(g)
    lin = _new_id(g)
    g.add_node(lin, op="linear", bias=True, bias_init=0.0)
    g.remove_edge(u, node)
    g.add_edge(u, lin, port=0)
    g.add_edge(lin, node, **data)
    return g, f"linear layer on {u} -> {node}"


def identity(g, node, *, rng, space):
    """No change (for debugging and tests)."""
    return nx.DiGraph(g), "identity"


MUTATIONS: dict[str, Mutation] = {
    m.name: m
    for m in [
        Mutation("swap_activation", lambda g, n, s: is_activation_like(g, n), swap_activation, swap_activation.__doc__),
        Mutation("swap_binary_op", lambda g, n, s: kind_of(g, n) == "binary", swap_binary_op, swap_binary_op.__doc__),
        Mutation(
            "insert_activation",
            lambda g, n, s: _replaceable(g, n) and _can_grow(g, s),
            insert_activation,
            insert_activation.__doc__,
        ),
        Mutation(
            "remove_node",
            lambda g, n, s: _replaceable(g, n) and g.in_degree(n) == 1 and g.out_degree(n) == 1,
            remove_node,
            remove_node.__doc__,
        ),
        Mutation("replace_with_ancestor", _replaceable, replace_with_ancestor, replace_with_ancestor.__doc__),
        Mutation(
            "replace_with_binary",
            lambda g, n, s: _replaceable(g, n) and _can_grow(g, s),
            replace_with_binary,
            replace_with_binary.__doc__,
        ),
        Mutation("add_gate", lambda g, n, s: _replaceable(g, n) and _can_grow(g, s, 3), add_gate, add_gate.__doc__),
        Mutation("add_linear", lambda g, n, s: _replaceable(g, n) and _can_grow(g, s), add_linear, add_linear.__doc__),
        Mutation("add_mix", lambda g, n, s: _replaceable(g, n) and _can_grow(g, s, 7), add_mix, add_mix.__doc__),
        Mutation("identity", lambda g, n, s: True, identity, identity.__doc__),
    ]
}
PAPER_MUTATIONS = ("swap_activation", "swap_binary_op", "insert_activation", "remove_node", "replace_with_ancestor",
                   "replace_with_binary")  # §3.5's six


def applicable(g: CellGraph, node: str, space: MutationSpace) -> list[str]:
    """The names of the space's mutations that apply to ``node``."""
    table = getattr(space, "edits", None) or MUTATIONS
    return [m for m in space.mutations if table[m].applies_to(g, node, space)]
