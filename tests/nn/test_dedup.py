"""Duplicate detection: known equalities hold in both hash layers."""

from __future__ import annotations

import networkx as nx
import numpy as np

from cellsearch.cell.canon import structural_hash
from cellsearch.evolve.spaces import find_seed, load_space
from cellsearch.nn.dedup import Deduper, functional_hash, mutation_stream_stats
from tests.helpers import relabel, swap_ports


def test_relabelled_copy_collides_in_both_layers():
    for name in ("LSTM", "GRU", "MUT2", "FGR"):
        g = find_seed(name)
        r = relabel(g, 3)
        assert structural_hash(r) == structural_hash(g)
        assert functional_hash(r) == functional_hash(g)


def test_swapping_sub_operands_changes_both_hashes():
    g = find_seed("GRU")
    sub = next(n for n, d in g.nodes(data=True) if d["op"] == "sub")
    s = swap_ports(g, sub)
    assert structural_hash(s) != structural_hash(g)
    assert functional_hash(s) != functional_hash(g)


def test_lstm_and_gru_differ_in_both_layers():
    a, b = find_seed("LSTM"), find_seed("GRU")
    assert structural_hash(a) != structural_hash(b)
    assert functional_hash(a) != functional_hash(b)


def test_inserted_identity_is_a_functional_duplicate_only():
    g = nx.DiGraph(find_seed("GRU"))
    g.remove_edge("z", "n1")
    g.add_node("ident", op="identity")
    g.add_edge("z", "ident", port=0)
    g.add_edge("ident", "n1", port=1)
    dd = Deduper()
    base = find_seed("GRU")
    dd.add(structural_hash(base), functional_hash(base))
    reason, s, f = dd.check(g)
    assert reason == "functional" and s != structural_hash(base)


def test_stream_report_counts_add_up():
    stats = mutation_stream_stats(find_seed("GRU"), space=load_space(), n=40, seed=1)
    assert stats["new"] + stats["structural"] + stats["functional"] == 40
    assert stats["new"] > 20


def test_functional_hash_is_deterministic():
    g = find_seed("MUT1")
    assert functional_hash(g) == functional_hash(g)
    assert functional_hash(g, seed=1) != functional_hash(g, seed=0)
    assert np.isfinite(len(functional_hash(g)))
