"""The edits that can build a gate (``add_gate``, ``add_linear``, ``add_mix``), the ``gates`` space, and a
user's space that brings an edit of its own."""

from __future__ import annotations

import numpy as np
import pytest

from cellsearch.cell.graph import is_valid, op_of, operands
from cellsearch.cell.probe import liveness
from cellsearch.cell.render import to_equations
from cellsearch.errors import ConfigError
from cellsearch.evolve.edits import GATE_BIAS, MIX_BIAS, MUTATIONS, PAPER_MUTATIONS, add_gate, add_linear, add_mix
from cellsearch.evolve.mutate import mutate
from cellsearch.evolve.spaces import find_seed, load_space


def test_add_gate_puts_a_learned_sigmoid_gate_on_an_operand():
    tanh = find_seed("Tanh")
    g, detail = add_gate(tanh, "h_new", rng=np.random.default_rng(0), space=load_space("gates"))
    assert is_valid(g) and detail == "sigm gate on lin_h -> h_new" and liveness(g) is None
    (prod,) = operands(g, "h_new")
    u, gate = operands(g, prod)
    assert op_of(g, prod) == "mul" and u == "lin_h" and op_of(g, gate) == "sigmoid"
    (lin,) = operands(g, gate)
    assert op_of(g, lin) == "linear" and operands(g, lin) == ["x", "h_prev"]  # a gate over [x, h]
    assert g.nodes[lin]["bias_init"] == GATE_BIAS > 1  # it starts open: the child starts near its parent
    assert to_equations(g) == ["h' = tanh((W_xh x + W_hh h + b_h) * sigm(W_xn0 x + W_hn0 h + b_n0))"]
    assert len(tanh) == 5  # the parent is untouched


def test_add_linear_puts_a_full_layer_on_an_operand():
    g, detail = add_linear(find_seed("Tanh"), "h_new", rng=np.random.default_rng(0), space=load_space("gates"))
    assert is_valid(g) and detail == "linear layer on lin_h -> h_new"
    (lin,) = operands(g, "h_new")
    assert op_of(g, lin) == "linear" and g.nodes[lin].get("scale") is None and operands(g, lin) == ["lin_h"]


def test_add_mix_makes_the_tanh_rnn_a_gated_interpolation_with_its_state():
    tanh, gates = find_seed("Tanh"), load_space("gates")
    made = {}
    for s in range(40):
        g, detail = add_mix(tanh, "h_new", rng=np.random.default_rng(s), space=gates)
        assert is_valid(g) and liveness(g) is None
        made[detail] = g
    assert set(made) == {"mix of h_new with x", "mix of h_new with h_prev", "mix of h_new with lin_h"}
    g = made["mix of h_new with h_prev"]  # the MGU/minGRU shape: one gate, a convex mix of h and tanh
    (mix,) = operands(g, "h")
    assert op_of(g, mix) == "add" and len(tanh) == 5
    eq = to_equations(g)
    assert eq[-1].startswith("h' = ") and eq[-1].endswith(" * h_new + (1 - n2) * h") and "sigm(W_xn2 x + W_hn2 h" in eq[1]
    lin = next(n for n in g if op_of(g, n) == "linear" and n != "lin_h")
    assert g.nodes[lin]["bias_init"] == MIX_BIAS == 0.0  # an even mix: it trains at the gated cells' rates


def test_the_gates_space_keeps_the_papers_six_and_adds_three():
    paper, gates = load_space("jozefowicz2015"), load_space("gates")
    assert paper.mutations == PAPER_MUTATIONS
    assert gates.mutations == (*PAPER_MUTATIONS, "add_gate", "add_linear", "add_mix")
    assert gates.seeds.keys() == paper.seeds.keys() and gates.edits["add_gate"] is MUTATIONS["add_gate"]
    rng = np.random.default_rng(0)
    names = {mutate(find_seed("Tanh"), rng=rng, space=gates, edits="1")[1][0].name for _ in range(120)}
    assert {"add_gate", "add_linear", "add_mix"} <= names  # both are eventually drawn, and only the space's edits are
    assert names <= set(gates.mutations)


USER_SPACE = '''
from cellsearch.evolve.edits import Mutation
from search_spaces.jozefowicz2015 import ACTIVATIONS, BINARY_OPS, SEEDS
import networkx as nx


def double_tanh(g, node, *, rng, space):
    """Wraps an activation-like node in a second tanh."""
    g = nx.DiGraph(g)
    new = "twice_" + node
    for v in list(g.successors(node)):
        data = dict(g.edges[node, v]); g.remove_edge(node, v); g.add_edge(new, v, **data)
    g.add_node(new, op="tanh")
    g.add_edge(node, new, port=0)
    return g, f"tanh after {node}"


EDITS = {"double_tanh": Mutation("double_tanh", lambda g, n, s: g.nodes[n]["op"] == "tanh", double_tanh,
                                 "a tanh after a tanh")}
MUTATIONS = ("double_tanh",)
POOL_SEEDS = ("Tanh",)
'''


def test_a_users_space_brings_its_own_edit(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text(USER_SPACE)
    space = load_space(str(path))
    child, edits = mutate(space.seed("Tanh"), rng=np.random.default_rng(0), space=space, edits="1")
    assert [e.name for e in edits] == ["double_tanh"] and to_equations(child)[-1] == "h' = tanh(h_new)"
    path.write_text(USER_SPACE.replace('Mutation("double_tanh"', 'Mutation("other_name"'))
    with pytest.raises(ConfigError, match="EDITS\\['double_tanh'\\] must be a cellsearch.evolve.edits.Mutation named"):
        load_space(str(path))
