"""Canonical form and structural hash of a cell graph.

Two cells that differ only by node ids (and state names, and display names) get the same
canonical graph and the same :func:`structural_hash`; swapping the operands of ``sub`` changes
it, swapping those of ``add``/``mul``/``linear`` does not.

How: every node gets a label (op and structural attributes), then a colour refined
Weisfeiler-Lehman style over operands and consumers (with each output linked back to its
state, so states are told apart by how they are used). Nodes are then numbered by a
topological sort that always takes the ready node with the smallest key (label, canonical
positions of its operands, colour). Nodes left tied are symmetric, so the order among them
does not change the result. The canonical JSON of the renumbered graph is hashed with SHA-256.

The compiler caches programs by this hash, and :func:`canonical` also returns the map from
the user's node ids to canonical ids, so parameters keep the user's names.

This module imports nothing from JAX.
"""

from __future__ import annotations

import hashlib
import json
from typing import NamedTuple

import networkx as nx

from cellsearch.cell.graph import CellGraph, edge_kind, operands, to_dict
from cellsearch.cell.ops import OPS

HASH_CHARS = 16  # hex characters kept of the SHA-256; 64 bits


class Canonical(NamedTuple):
    """Attributes:
    graph: the canonical graph (ids ``x``, ``s<k>_prev``, ``s<k>``, ``n<k>``).
    node_map: user node id -> canonical node id.
    state_map: user state name -> canonical state name.
    hash: the structural hash (hex).
    """

    graph: CellGraph
    node_map: dict[str, str]
    state_map: dict[str, str]
    hash: str


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _label(g: CellGraph, n: str) -> str:
    d = g.nodes[n]
    op = d["op"]
    if op in ("state", "output"):
        return f"{op}:{'out' if d['state'] == g.graph['output'] else 'carry'}"
    if op == "const":
        return f"const:{float(d['value'])!r}"
    if op == "linear":
        bias = d.get("bias", True)
        return f"linear:{bias}:{float(d.get('bias_init', 0.0)) if bias else 0.0!r}:{d.get('scale')!r}"
    return op


def _edge_label(g: CellGraph, u: str, v: str) -> str:
    spec = OPS[g.nodes[v]["op"]]
    if spec.name == "linear":
        return edge_kind(g, u, v)
    return "c" if spec.commutative else str(g.edges[u, v].get("port", 0))


def _colours(g: CellGraph, labels: dict[str, str]) -> dict[str, str]:
    ins = {n: [(u, _edge_label(g, u, n)) for u in g.predecessors(n)] for n in g}
    outs = {n: [(v, _edge_label(g, n, v)) for v in g.successors(n)] for n in g}
    states = {d["state"]: n for n, d in g.nodes(data=True) if d["op"] == "state"}
    for n, d in g.nodes(data=True):  # recurrence: output -> its state
        if d["op"] == "output":
            outs[n].append((states[d["state"]], "rec"))
            ins[states[d["state"]]].append((n, "rec"))
    colour = {n: _sha(labels[n]) for n in g}
    for _ in range(len(g)):
        new = {
            n: _sha(
                colour[n]
                + "<" + ",".join(sorted(f"{e}:{colour[u]}" for u, e in ins[n]))
                + ">" + ",".join(sorted(f"{e}:{colour[v]}" for v, e in outs[n]))
            )
            for n in g
        }
        if len(set(new.values())) == len(set(colour.values())):
            colour = new
            break
        colour = new
    return colour


def canonical_order(g: CellGraph) -> list[str]:
    """The nodes of ``g`` in canonical topological order."""
    labels = {n: _label(g, n) for n in g}
    colour = _colours(g, labels)
    pos: dict[str, int] = {}
    indeg = {n: g.in_degree(n) for n in g}
    ready = [n for n in g if indeg[n] == 0]

    def key(n: str):
        spec = OPS[g.nodes[n]["op"]]
        args = [(_edge_label(g, u, n), pos[u]) for u in operands(g, n)]
        if spec.commutative:
            args.sort()
        return (labels[n], tuple(args), colour[n])

    while ready:
        ready.sort(key=key)
        n = ready.pop(0)
        pos[n] = len(pos)
        for v in g.successors(n):
            indeg[v] -= 1
            if indeg[v] == 0:
                ready.append(v)
    return sorted(pos, key=pos.__getitem__)


def canonical(g: CellGraph) -> Canonical:
    """The canonical form of ``g``; see the module docstring."""
    order = canonical_order(g)
    state_order = [g.nodes[n]["state"] for n in order if g.nodes[n]["op"] == "state"]
    smap = {s: f"s{k}" for k, s in enumerate(state_order)}
    nmap: dict[str, str] = {}
    count = 0
    for n in order:
        d = g.nodes[n]
        if d["op"] == "input":
            nmap[n] = "x"
        elif d["op"] == "state":
            nmap[n] = f"{smap[d['state']]}_prev"
        elif d["op"] == "output":
            nmap[n] = smap[d["state"]]
        else:
            nmap[n] = f"n{count}"
            count += 1
    c = nx.DiGraph(name="", states=tuple(smap[s] for s in state_order), output=smap[g.graph["output"]])
    for n in order:
        d = {k: v for k, v in g.nodes[n].items() if k != "name"}
        if "state" in d:
            d["state"] = smap[d["state"]]
        if d["op"] == "linear":
            d["bias"] = d.get("bias", True)
            d["bias_init"] = float(d.get("bias_init", 0.0)) if d["bias"] else 0.0
            d.setdefault("scale", None)
        c.add_node(nmap[n], **d)
    pos = {n: k for k, n in enumerate(order)}
    for n in order:
        args = operands(g, n)
        if OPS[g.nodes[n]["op"]].commutative:  # operand order carries no meaning: sort it
            args.sort(key=lambda u: (_edge_label(g, u, n), pos[u]))
        for port, u in enumerate(args):
            kind = edge_kind(g, u, n)
            c.add_edge(nmap[u], nmap[n], port=port, **({"kind": kind} if kind != "full" else {}))
    doc = to_dict(c)
    doc.pop("name")
    h = _sha(json.dumps(doc, sort_keys=True))[:HASH_CHARS]
    return Canonical(nx.freeze(c), nmap, smap, h)


def structural_hash(g: CellGraph) -> str:
    """A hex digest that is the same for isomorphic cells.

    >>> from search_spaces.jozefowicz2015 import SEEDS
    >>> structural_hash(SEEDS["LSTM"]()) == structural_hash(SEEDS["LSTM"]())
    True
    >>> structural_hash(SEEDS["LSTM"]()) == structural_hash(SEEDS["GRU"]())
    False
    """
    return canonical(g).hash


def same_cell(a: CellGraph, b: CellGraph) -> bool:
    """``True`` if ``a`` and ``b`` are the same cell up to node ids (checked by isomorphism)."""
    la = {n: _label(a, n) for n in a}
    lb = {n: _label(b, n) for n in b}
    ga, gb = nx.DiGraph(a), nx.DiGraph(b)
    nx.set_node_attributes(ga, la, "lab")
    nx.set_node_attributes(gb, lb, "lab")
    for g0, g in ((a, ga), (b, gb)):
        for u, v in g.edges:
            g.edges[u, v]["elab"] = _edge_label(g0, u, v)
    return nx.is_isomorphic(
        ga, gb, node_match=lambda p, q: p["lab"] == q["lab"], edge_match=lambda p, q: p["elab"] == q["elab"]
    )
