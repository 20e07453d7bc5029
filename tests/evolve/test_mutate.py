"""The mutation engine: children always valid, parents never touched, every edit reachable."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cellsearch.cell.graph import is_valid, operands, to_json, validate
from cellsearch.cell.ops import ACTIVATIONS, PAPER_ACTIVATIONS
from cellsearch.errors import MutationFailed
from cellsearch.evolve.edits import MUTATIONS, applicable
from cellsearch.evolve.mutate import mutate
from cellsearch.evolve.spaces import find_seed, load_space
from cellsearch.nn.compile import compile_cell

SPACE = load_space("jozefowicz2015")


@pytest.fixture(scope="module")
def children():
    """2 x 1000 children of LSTM and GRU, one seed each (graph layer only: fast)."""
    out = []
    for name in ("LSTM", "GRU"):
        parent = find_seed(name)
        before = to_json(parent)
        for seed in range(1000):
            child, edits = mutate(parent, rng=np.random.default_rng(seed), space=SPACE)
            out.append((name, seed, child, edits))
        assert to_json(parent) == before  # no edit ever changes its parent
    return out


def test_every_child_is_valid_and_keeps_its_states(children):
    for name, seed, child, edits in children:
        validate(child)
        parent = find_seed(name)
        assert child.graph["states"] == parent.graph["states"], (name, seed)
        assert edits


def test_children_compile_and_run_one_step_finite(children):
    for name, seed, child, _ in children[::8]:  # 250 of them; the slow test runs all
        cell = compile_cell(child)
        p = cell.init(jax.random.key(seed), 8, 8)
        carry, y = cell.apply(p, cell.initial_carry((2,), 8), jnp.ones((2, 8)))
        assert y.shape == (2, 8) and bool(jnp.isfinite(y).all()), (name, seed)


@pytest.mark.slow
def test_all_children_compile_and_run(children):
    for name, seed, child, _ in children:
        cell = compile_cell(child)
        p = cell.init(jax.random.key(seed), 8, 8)
        _, y = cell.apply(p, cell.initial_carry((2,), 8), jnp.ones((2, 8)))
        assert bool(jnp.isfinite(y).all()), (name, seed)


def test_every_edit_and_activation_is_eventually_produced(children):
    names = {e.name for *_, edits in children for e in edits}
    assert names == set(SPACE.mutations)
    produced = set()
    for *_, child, _ in children:
        for _, d in child.nodes(data=True):
            if d["op"] in ACTIVATIONS:
                produced.add(d["op"])
            elif d["op"] == "linear" and d.get("scale") is not None:
                produced.add(f"linear:{d['scale']:g}")
    assert set(PAPER_ACTIVATIONS) <= produced
    details = {e.detail.split(" -> ")[-1] for *_, edits in children for e in edits if e.name == "swap_binary_op"}
    assert {"add", "mul", "sub"} <= details


def test_same_seed_same_child():
    g = find_seed("LSTM")
    a = mutate(g, rng=np.random.default_rng(42), space=SPACE)
    b = mutate(g, rng=np.random.default_rng(42), space=SPACE)
    assert to_json(a[0]) == to_json(b[0]) and a[1] == b[1]


@pytest.mark.parametrize("name", [m for m in MUTATIONS if m != "identity"])
def test_each_edit_is_pure_and_honours_applies_to(name):
    rng = np.random.default_rng(0)
    for seed_name in ("LSTM", "GRU", "MUT1", "Vanilla"):
        g = find_seed(seed_name)
        before = to_json(g)
        for node in list(g.nodes):
            if name not in applicable(g, node, SPACE):
                continue
            out = MUTATIONS[name].apply(g, node, rng=rng, space=SPACE)
            assert to_json(g) == before
            if out is not None:
                child, detail = out
                assert isinstance(detail, str)
                assert child is not g


def test_remove_node_never_orphans_an_output():
    g = find_seed("LSTM")
    for node in g:
        if MUTATIONS["remove_node"].applies_to(g, node, SPACE):
            child, _ = MUTATIONS["remove_node"].apply(g, node, rng=np.random.default_rng(0), space=SPACE)
            assert all(len(operands(child, o)) == 1 for o in ("c", "h"))
            assert is_valid(child)


def test_mutation_failed_names_the_parent():
    class Empty:
        mutations = ("swap_binary_op",)
        binary_ops = ("add",)  # nothing to swap to
        activations = ("tanh",)
        operand_rule = "ancestor_and_node"

    with pytest.raises(MutationFailed, match="no valid child of cell"):
        mutate(find_seed("Tanh"), rng=np.random.default_rng(0), space=Empty(), max_attempts=5)


@pytest.mark.parametrize("rule", ["ancestor_and_node", "ancestor_and_random_node", "ancestor_and_random_ancestor"])
def test_operand_rules_all_give_valid_children(rule):
    from dataclasses import replace

    space = replace(SPACE, operand_rule=rule, mutations=("replace_with_binary",))
    for seed in range(100):
        child, edits = mutate(find_seed("GRU"), rng=np.random.default_rng(seed), space=space)
        assert is_valid(child) and all(e.name == "replace_with_binary" for e in edits)


def test_mutations_repair_the_damaged_seed():
    """tiny's ``Damaged`` seed lost the GRU's update path (h' reaches h only through a matmul).
    Some child in a short mutation stream grows an elementwise path from h back to h' (the
    path a gated update needs); every child is valid."""
    import networkx as nx

    from cellsearch.cell.graph import validate
    from cellsearch.evolve.mutate import mutate
    from cellsearch.evolve.spaces import load_space

    space = load_space("tiny")
    g = space.seed("Damaged")

    def elementwise_path(c) -> bool:
        direct = c.subgraph(n for n, d in c.nodes(data=True) if d["op"] != "linear")
        return nx.has_path(direct, "h_prev", "h")

    assert not elementwise_path(g)
    rng = np.random.default_rng(0)
    repaired = 0
    for _ in range(200):
        child, _ = mutate(g, rng=rng, space=space)
        validate(child)
        repaired += elementwise_path(child)
    assert repaired > 0
