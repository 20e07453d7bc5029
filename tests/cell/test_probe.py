"""Children that can learn: the liveness probe, edit sites, edit counts, Linear(a)'s spectrum."""

from __future__ import annotations

import numpy as np
import pytest

from cellsearch.cell.graph import CellBuilder
from cellsearch.cell.ops import LINEAR_A_NOISE
from cellsearch.cell.probe import ProbeConfig, _NumpyCell, liveness
from cellsearch.evolve.edits import edit_sites
from cellsearch.evolve.mutate import EditCount, mutate, mutate_live
from cellsearch.evolve.spaces import find_seed, load_space
from cellsearch.nn.compile import compile_cell
from tests.helpers import all_seeds

SPACE = load_space("jozefowicz2015")


def _cell(name, body):
    b = CellBuilder(name, states=("h",))
    h = b.state("h")
    b.output("h", body(b, h))
    return b.build()


DEAD = {
    "h' = u * h": lambda b, h: b.mul(b.tanh(b.linear(b.x, h)), h),
    "h' = h * tanh(Wx + b)": lambda b, h: b.mul(h, b.tanh(b.linear(b.x))),
}
EXPLODING = {"h' = Linear(3)(h) + x": lambda b, h: b.add(b.linear(h, scale=3.0), b.x)}


@pytest.mark.parametrize("space, name, g", all_seeds(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_seed_is_alive(space, name, g):
    if name == "Damaged":  # tiny's deliberately broken seed may or may not live; it must not crash
        liveness(g)
        return
    assert liveness(g) is None, name


@pytest.mark.parametrize("label", list(DEAD))
def test_zero_fixed_points_are_dead(label):
    assert liveness(_cell("dead", DEAD[label])).startswith("zero-state"), label


@pytest.mark.parametrize("label", list(EXPLODING))
def test_an_expanding_state_is_unbounded(label):
    assert liveness(_cell("boom", EXPLODING[label])).startswith("unbounded"), label


def test_outputs_that_ignore_the_parameters_have_no_gradient():
    # h' = tanh(h + x) + 0 * Linear(h): nothing trainable reaches h' ... built as h' = tanh(h + x) with
    # a linear node feeding only a product with a zero constant
    b = CellBuilder("nograd", states=("h",))
    h = b.state("h")
    zero = b.const(0.0)
    b.output("h", b.add(b.tanh(b.add(h, b.x)), b.mul(zero, b.linear(h))))
    assert liveness(b.build()).startswith("no-gradient")


def test_numpy_step_equals_the_compiled_cell():
    """The probe's NumPy evaluator computes what the compiled cell computes (seeds and children)."""
    rng = np.random.default_rng(0)
    graphs = [find_seed(n) for n in ("LSTM", "GRU", "MUT1", "LSTM-b")]
    graphs += [mutate(find_seed("GRU"), rng=rng, space=SPACE, edits="1-3")[0] for _ in range(10)]
    for g in graphs:
        cell = compile_cell(g)
        params = cell.init_numpy(0, 8, 8)
        carry = tuple(rng.uniform(-1, 1, (3, 8)).astype(np.float32) for _ in g.graph["states"])
        x = rng.uniform(-1, 1, (3, 8)).astype(np.float32)
        want, _ = cell.apply(params, carry, x)
        npc = _NumpyCell(g)
        got = npc.step({k: {n: np.float64(w) for n, w in p.items()} for k, p in params.items()},
                       dict(zip(g.graph["states"], map(np.float64, carry), strict=True)), np.float64(x))
        for s, w in zip(g.graph["states"], want, strict=True):
            np.testing.assert_allclose(got[s], np.asarray(w), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("edits", ["paper", "1-3"])
def test_sinks_and_fixed_nodes_are_never_edited(edits):
    fixed = ("input", "state", "const", "output")
    for name in ("LSTM", "GRU"):
        parent = find_seed(name)
        for seed in range(150):
            child, applied = mutate(parent, rng=np.random.default_rng(seed), space=SPACE, edits=edits)
            for e in applied:  # edits never create fixed nodes, so every fixed node is the parent's
                assert e.node not in parent or parent.nodes[e.node]["op"] not in fixed, (name, seed, e)
            assert [child.nodes[n]["state"] for n in child if child.nodes[n]["op"] == "output"]  # sinks kept
    assert all(child.nodes[n]["op"] not in fixed for n in edit_sites(child))


def test_edit_counts():
    assert EditCount.parse("paper").paper and EditCount.parse("2") == EditCount(2, 2)
    for bad in ("0", "3-1", "x", "1-"):
        with pytest.raises(ValueError, match="edits must be"):
            EditCount.parse(bad)
    rng = np.random.default_rng(0)
    counts = [len(mutate(find_seed("LSTM"), rng=rng, space=SPACE, edits="1-3")[1]) for _ in range(200)]
    assert set(counts) <= {1, 2, 3} and {1, 2, 3} <= set(counts)


def test_mutate_live_resamples_dead_children():
    rng = np.random.default_rng(0)
    seen = []

    def accept(g):
        seen.append(g)
        return "zero-state: test" if len(seen) < 3 else None

    child, edits, rejected = mutate_live(find_seed("GRU"), rng=rng, space=SPACE, accept=accept, edits="1")
    assert child is seen[-1] and rejected == ["zero-state: test"] * 2 and len(edits) == 1


def test_children_mostly_live():
    """The property the search relies on: most 1-3-edit children of LSTM and GRU pass the probe,
    and the probe rejects some (benchmarks/README.md, "Children that live")."""
    rng = np.random.default_rng(1)
    for name in ("LSTM", "GRU"):
        verdicts = [liveness(mutate(find_seed(name), rng=rng, space=SPACE, edits="1-3")[0]) for _ in range(60)]
        alive = sum(v is None for v in verdicts)
        assert 0.7 * 60 <= alive < 60, (name, alive)


@pytest.mark.parametrize("a", [0.0, 0.9, 1.0, 1.1])
def test_linear_a_starts_near_a_times_identity(a):
    """Linear(a, x)'s spectral radius is within 0.15 of a at the filter's width, for every
    init scale of the grid, and the noise that keeps it there is what makes it: at full-scale
    noise the same layer's radius is far from a."""
    g = _cell("lin", lambda b, h: b.add(b.tanh(b.linear(h, scale=a)), b.x))
    (node,) = [n for n, d in g.nodes(data=True) if d["op"] == "linear"]
    for scale in (0.5, 1.0, 2.0):
        w = compile_cell(g).init_numpy(0, 70, 70, init_scale=scale)[node]["W_h_prev"]
        radius = max(abs(np.linalg.eigvals(w)))
        assert abs(radius - a) < 0.15, (a, scale, radius)
    w = compile_cell(g).init_numpy(0, 70, 70, init_scale=2.0)[node]["W_h_prev"]
    full = a * np.eye(70) + (w - a * np.eye(70)) / LINEAR_A_NOISE  # the same draw at full scale
    assert abs(max(abs(np.linalg.eigvals(full))) - a) > 0.3


def test_probe_config_is_the_filters():
    from cellsearch.search.config import SearchConfig
    from cellsearch.search.steps import liveness_check

    assert liveness_check(SearchConfig())(find_seed("LSTM")) is None
    assert ProbeConfig().budget == SearchConfig().filter_hparams.param_budget[0]
