"""The memorisation filter lets the cells it exists for through, whatever their lineage's learning
rate (§3.3: the LSTM passes "for all but extreme settings"). ``benchmarks/filter_calibration.py``
measures the pass rates over 20 search seeds and children of every seed; this checks one search
seed with the real filter stage."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from cellsearch.evolve.spaces import find_seed
from cellsearch.hparams import seeded
from cellsearch.nn.train import train_and_evaluate
from cellsearch.search.config import SearchConfig, quick_config
from cellsearch.search.steps import filter_settings
from cellsearch.tasks import get_task


def test_quick_shares_the_calibrated_filter():
    full, quick = SearchConfig(), quick_config()
    assert (quick.filter_train, quick.filter_hparams, quick.filter_threshold, quick.filter_settings) == \
        (full.filter_train, full.filter_hparams, full.filter_threshold, full.filter_settings)
    assert full.filter_threshold == 0.95  # the paper's threshold is kept


@pytest.fixture(scope="module")
def lineage_rates():
    """What a seed step does for a pool seed: the whole filter grid, one search seed (3). Per seed:
    its best filter setting (its lineage's, carried into its children's filter) and its best score."""
    cfg = SearchConfig(seed=3)
    grid = [seeded(h, cfg.seed) for h in cfg.filter_hparams.points()]
    out = {}
    for name in ("LSTM", "GRU", "Tanh"):
        results = train_and_evaluate(find_seed(name), get_task(cfg.filter_task, {}), grid,
                                     cfg.train_config(cfg.filter_task))
        best = max(results, key=lambda r: r.score)
        out[name] = (best.hparams, best.score)
    return out


@pytest.mark.parametrize("name", ["LSTM", "GRU", "Tanh"])
def test_the_seeds_pass_their_filter_grid(lineage_rates, name):
    """The LSTM and the GRU pass (§3.3: the LSTM passes "for all but extreme settings"), and so does
    the tanh RNN, which the grid of lr 0.5 and 1 alone turned away."""
    assert lineage_rates[name][1] >= SearchConfig().filter_threshold


def test_the_filter_passes_a_fixed_trainable_tanh_child(lineage_rates):
    """``h' = W x + W h + b`` (the tanh RNN without its tanh) memorises at the tanh RNN's rates; the
    filter as a search runs it for a child of the tanh RNN (its parent's best rate first) passes it."""
    from cellsearch.cell.graph import CellBuilder

    b = CellBuilder("linear RNN", states=("h",))
    b.output("h", b.linear(b.x, b.state("h"), node="lin_h"))
    cfg = SearchConfig(seed=3)
    settings = filter_settings(cfg, np.random.default_rng([cfg.seed, 7]), [lineage_rates["Tanh"][0]])
    assert settings[0].learning_rate == lineage_rates["Tanh"][0].learning_rate and len(settings) == 2
    train = replace(cfg.train_config(cfg.filter_task), bar=cfg.filter_threshold)  # the search's rungs
    results = train_and_evaluate(b.build(), get_task(cfg.filter_task, {}), settings, train)
    assert max(r.score for r in results) >= cfg.filter_threshold


def _mixed_with_state():
    """The tanh RNN after ``add_mix`` of its tanh with its state: ``z * tanh(...) + (1 - z) * h``."""
    from cellsearch.evolve.edits import add_mix
    from cellsearch.evolve.spaces import load_space

    tanh, gates = find_seed("Tanh"), load_space("gates")
    for s in range(20):
        g, detail = add_mix(tanh, "h_new", rng=np.random.default_rng(s), space=gates)
        if detail == "mix of h_new with h_prev":
            return g
    raise AssertionError("add_mix never mixed the tanh with the state")


def test_the_filter_passes_the_tanh_rnn_mixed_with_its_state(lineage_rates):
    """The rediscovery target one edit from the tanh RNN (``benchmarks/README.md``, "Rediscovery")
    passes the filter a search runs for it, its parent's best rate first."""
    cfg = SearchConfig(seed=3)
    settings = filter_settings(cfg, np.random.default_rng([cfg.seed, 7]), [lineage_rates["Tanh"][0]])
    train = replace(cfg.train_config(cfg.filter_task), bar=cfg.filter_threshold)
    results = train_and_evaluate(_mixed_with_state(), get_task(cfg.filter_task, {}), settings, train)
    assert max(r.score for r in results) >= cfg.filter_threshold, [(r.hparams.learning_rate, r.score) for r in results]


@pytest.mark.slow
def test_the_tanh_rnn_mixed_with_its_state_climbs_on_quick_arithmetic():
    """One ``add_mix`` edit takes the tanh RNN most of the way to the GRU on ``--quick`` arithmetic
    (measured 1.14x the tanh RNN, the GRU 1.18x: ``benchmarks/climb_paths.py``), because it trains
    at the gated cells' learning rate: each cell's best of lr 0.3, 1 and 3, seeds 0-1."""
    from cellsearch.hparams import HParams

    cfg = quick_config(seed=0)
    task = get_task("arithmetic", cfg.task_options["arithmetic"])
    best = {}
    for name, graph in (("Tanh", find_seed("Tanh")), ("mix", _mixed_with_state())):
        best[name] = np.mean([max(r.score for r in train_and_evaluate(
            graph, task, [HParams(learning_rate=lr, param_budget=cfg.budgets["arithmetic"][0], seed=s)
                          for lr in (0.3, 1.0, 3.0)],
            replace(cfg.train_config("arithmetic"), rungs=(), data_seed=s))) for s in range(2)])
    assert best["mix"] >= 1.07 * best["Tanh"], best


@pytest.mark.slow
def test_quick_arithmetic_separates_the_tanh_rnn_from_the_gru():
    """``--quick``'s tasks separate cells (issue 19): on its arithmetic, with the settings a
    search draws for seeds 0-2, the tanh RNN's best is well below the GRU's (measured 0.83 of
    it, ``benchmarks/README.md``), so a child near the GRU is told from the weakest seed."""
    from cellsearch.hparams import seeded

    ratios = []
    for s in range(3):
        cfg = quick_config(seed=s)
        task = get_task("arithmetic", cfg.task_options["arithmetic"])
        settings = [seeded(h, s) for h in cfg.hparam_space("arithmetic").sample(np.random.default_rng([s, 0]),
                                                                                cfg.init_settings)]
        best = {c: max(r.score for r in train_and_evaluate(find_seed(c), task, settings,
                                                           cfg.train_config("arithmetic")))
                for c in ("Tanh", "GRU")}
        ratios.append(best["Tanh"] / best["GRU"])
    assert np.mean(ratios) <= 0.9, ratios


def test_children_of_the_seeds_learn_and_pass_the_default_filter(lineage_rates):
    """The property a search lives on (issue 19): children of LSTM and GRU as a default search
    draws them (one edit, resampled until the liveness probe passes), trained by the real
    filter stage (its settings, rungs and threshold), learn to memorise and some pass. Before
    issue 19 none of 20 random children passed and most stayed at chance (1/26).

    Four fixed children (the first four drawn from seed 2026; not chosen), each filtered as the
    search filters it (its parent's best filter setting first, then one drawn from the grid). The
    children come from their own random stream, the filter's settings from another, so a change of
    the filter grid changes the settings, never which children are tested (an earlier version drew
    both from one stream, and adding lr 0.7 to the grid drew four other, broken children). When
    this was written, with the grid {0.1, 0.3, 0.5, 0.7, 1}, two passed (0.998, 0.973), one reached
    0.94 and one stayed at chance; with lr 0.7 left out the same four reached 0.998, 0.973, 0.87
    and chance. The bounds: at least one passes and at least two learn (above 0.5). Pass rates by
    parent over many children are measured by ``benchmarks/filter_calibration.py``
    (``benchmarks/README.md``, "Filter"), which four children cannot pin down."""
    from cellsearch.evolve.mutate import mutate_live
    from cellsearch.evolve.spaces import load_space
    from cellsearch.search.steps import liveness_check

    cfg = SearchConfig()
    space, probe, task = load_space(cfg.space), liveness_check(cfg), get_task(cfg.filter_task, {})
    train = replace(cfg.train_config(cfg.filter_task), bar=cfg.filter_threshold)  # the search's rungs
    children, settings = np.random.default_rng(2026), np.random.default_rng(2027)
    best = []
    for parent in ("LSTM", "GRU", "LSTM", "GRU"):
        child, edits, _ = mutate_live(find_seed(parent), rng=children, space=space, accept=probe, edits=cfg.edits)
        assert len(edits) == 1
        carry = [lineage_rates[parent][0]]
        best.append(max(r.score for r in train_and_evaluate(child, task, filter_settings(cfg, settings, carry), train)))
    assert sum(b >= cfg.filter_threshold for b in best) >= 1, best
    assert sum(b > 0.5 for b in best) >= 2, best
