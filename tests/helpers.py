"""Test helpers: relabelling cells and reading all seeds."""

from __future__ import annotations

import networkx as nx
import numpy as np

from cellsearch.evolve.spaces import load_space, space_names


def all_seeds():
    """(space, name, graph) for every seed of every space."""
    out = []
    for s in space_names():
        sp = load_space(s)
        for name in sp.seeds:
            out.append((s, name, sp.seed(name)))
    return out


def relabel(g, seed: int = 0):
    """A copy of ``g`` with every node id replaced by a random one (state names kept)."""
    rng = np.random.default_rng(seed)
    nodes = list(g.nodes)
    names = [f"v{k}" for k in rng.permutation(len(nodes) * 3)[: len(nodes)]]
    out = nx.relabel_nodes(nx.DiGraph(g), dict(zip(nodes, names, strict=True)))
    # also shuffle insertion order, which must not matter either
    h = nx.DiGraph(**out.graph)
    for n in rng.permutation(list(out.nodes)):
        h.add_node(n, **out.nodes[n])
    for u, v in rng.permutation(np.array(list(out.edges), dtype=object)):
        h.add_edge(u, v, **out.edges[u, v])
    return h


def swap_ports(g, node):
    """A copy of ``g`` with the two operands of ``node`` swapped."""
    h = nx.DiGraph(g)
    for u in list(h.predecessors(node)):
        h.edges[u, node]["port"] = 1 - h.edges[u, node]["port"]
    return h
