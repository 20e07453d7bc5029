"""Cell graph schema: each validation rule fails naming the node and the rule; JSON; prune."""

from __future__ import annotations

import json

import networkx as nx
import pytest

from cellsearch.cell.graph import (
    CellBuilder,
    from_dict,
    from_json,
    is_valid,
    needs_equal_widths,
    param_count,
    prune,
    to_dict,
    to_json,
    validate,
)
from cellsearch.errors import CellFormatError, InvalidCellError, UnknownOpError
from cellsearch.evolve.spaces import find_seed
from tests.helpers import all_seeds


def tanh_rnn():
    b = CellBuilder("t", states=("h",))
    b.output("h", b.tanh(b.linear(b.x, "h_prev", node="L"), node="a"))
    return b.graph


def broken(edit):
    g = nx.DiGraph(tanh_rnn())
    edit(g)
    return g


@pytest.mark.parametrize(
    "edit, node, rule",
    [
        (lambda g: g.add_edge("a", "L", port=2), {"a", "L"}, "acyclic"),
        (lambda g: g.nodes["a"].update(op="gelu"), "a", "known-op"),
        (lambda g: g.add_edge("x", "a", port=1), "a", "arity"),
        (lambda g: g.edges["L", "a"].update(port=1), "a", "ports"),
        (lambda g: g.remove_node("h"), None, "missing-output"),
        (lambda g: g.remove_node("h_prev"), None, "missing-state"),
        (lambda g: (g.add_node("z", op="tanh"), g.add_edge("a", "z", port=0)), "z", "dangling"),
        (lambda g: (g.add_node("z", op="tanh"), g.add_edge("h", "z", port=0)), "h", "output-sink"),
        (lambda g: (g.remove_edge("x", "L"), g.edges["h_prev", "L"].update(port=0)), "h", "depends-on-input"),
        (lambda g: (g.remove_edge("h_prev", "L")), "h", "depends-on-state"),
        (lambda g: g.add_node("x2", op="input"), None, "inputs"),
        (lambda g: g.graph.update(states=("h", "c")), None, "missing-state"),
        (lambda g: g.graph.update(output="c"), None, "states"),
        (lambda g: g.nodes["L"].update(bias_init="one"), "L", "linear-attrs"),
    ],
)
def test_each_rule_names_node_and_rule(edit, node, rule):
    g = broken(edit)
    with pytest.raises(InvalidCellError) as err:
        validate(g)
    assert err.value.rule == rule
    assert err.value.node in node if isinstance(node, set) else err.value.node == node
    assert rule in str(err.value)
    assert not is_valid(g)


def test_unknown_op_lists_known_ops():
    g = broken(lambda g: g.nodes["a"].update(op="gelu"))
    with pytest.raises(UnknownOpError, match="known ops: add, const"):
        validate(g)


def test_state_width_rule_rejects_an_output_of_x_alone():
    b = CellBuilder("w", states=("h",))
    b.output("h", b.mul(b.tanh(b.x), b.sigmoid(b.x)))  # x-width, and no state either
    with pytest.raises(InvalidCellError) as err:
        validate(b.graph)
    assert err.value.rule == "depends-on-state"
    b = CellBuilder("w2", states=("h",))
    b.output("h", b.add(b.tanh(b.x), b.mul("h_prev", b.const(0.0))))  # depends on h, but width is mixed
    validate(b.graph)  # x + h: hidden width, needs input_size == hidden_size
    assert needs_equal_widths(b.graph)


def test_valid_seeds_and_frozen():
    for _, name, g in all_seeds():
        validate(g)
        assert nx.is_frozen(g), name
        with pytest.raises(nx.NetworkXError):
            g.add_node("oops")


@pytest.mark.parametrize("space,name,g", all_seeds(), ids=lambda v: v if isinstance(v, str) else "")
def test_json_round_trip_is_stable(space, name, g):
    text = to_json(g)
    back = from_json(text)
    assert to_json(back) == text
    assert nx.utils.graphs_equal(nx.DiGraph(g), back)
    assert json.loads(text)["format"] == "cellsearch.cell/1"


def test_json_errors_are_clear():
    with pytest.raises(CellFormatError, match="not valid JSON"):
        from_json("{nope")
    with pytest.raises(CellFormatError, match="needs the key 'nodes'"):
        from_dict({"states": ["h"]})
    d = to_dict(tanh_rnn())
    d["nodes"][-1]["inputs"] = ["ghost"]
    with pytest.raises(InvalidCellError, match="ghost"):
        from_dict(d)
    d = to_dict(tanh_rnn())
    d["nodes"][2]["inputs"] = ["x", "x"]
    with pytest.raises(InvalidCellError) as err:
        from_dict(d)
    assert err.value.rule == "distinct-operands"


def test_prune_drops_dead_nodes_only():
    g = nx.DiGraph(tanh_rnn())
    g.add_node("dead", op="tanh")
    g.add_edge("x", "dead", port=0)
    p = prune(g)
    assert "dead" not in p and set(p) == set(tanh_rnn())
    assert "dead" in g  # input untouched


def test_param_counts_match_paper_table():
    # Jozefowicz et al. 2015 §2.5, input width = hidden width = n
    n = 7
    expect = {"Tanh": 2 * n * n + n, "GRU": 6 * n * n + 3 * n, "LSTM": 8 * n * n + 4 * n,
              "MUT1": 4 * n * n + 3 * n, "MUT2": 5 * n * n + 3 * n, "MUT3": 6 * n * n + 3 * n}
    for name, count in expect.items():
        assert param_count(find_seed(name), n) == count, name


def test_mut1_mut2_need_equal_widths():
    assert needs_equal_widths(find_seed("MUT1")) and needs_equal_widths(find_seed("MUT2"))
    assert not needs_equal_widths(find_seed("LSTM")) and not needs_equal_widths(find_seed("MUT3"))
