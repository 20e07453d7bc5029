"""Structural hash: invariant to relabelling, sensitive to sub's operand order."""

from __future__ import annotations

import pytest

from cellsearch.cell.canon import canonical, same_cell, structural_hash
from cellsearch.cell.graph import to_json
from cellsearch.evolve.spaces import find_seed
from tests.helpers import all_seeds, relabel, swap_ports


@pytest.mark.parametrize("space,name,g", all_seeds(), ids=lambda v: v if isinstance(v, str) else "")
def test_relabelled_copy_has_same_hash(space, name, g):
    for seed in range(3):
        r = relabel(g, seed)
        assert structural_hash(r) == structural_hash(g)
        assert same_cell(r, g)


def test_sub_operand_order_matters():
    g = find_seed("GRU")
    sub = next(n for n, d in g.nodes(data=True) if d["op"] == "sub")
    assert structural_hash(swap_ports(g, sub)) != structural_hash(g)
    assert not same_cell(swap_ports(g, sub), g)


def test_commutative_operand_order_does_not_matter():
    g = find_seed("GRU")
    add = next(n for n, d in g.nodes(data=True) if d["op"] == "add")
    assert structural_hash(swap_ports(g, add)) == structural_hash(g)


def test_distinct_seeds_have_distinct_hashes():
    hashes = {}
    for space, name, g in all_seeds():
        if space in ("tiny", "gates"):  # they reuse the paper's seeds
            continue
        hashes.setdefault(structural_hash(g), []).append(name)
    same = [sorted(v) for v in hashes.values() if len(v) > 1]
    # Greff's NP (no peepholes) is exactly the paper's LSTM: the one true equality
    assert same == [["LSTM", "NP"]], same
    assert structural_hash(find_seed("LSTM")) != structural_hash(find_seed("LSTM-b"))


def test_canonical_graph_is_a_fixed_point():
    for _, _, g in all_seeds():
        c = canonical(g)
        assert to_json(canonical(c.graph).graph) == to_json(c.graph)
        assert canonical(c.graph).hash == c.hash
