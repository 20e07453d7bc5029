"""The default memorisation filter lets the cells it exists for through (§3.3: the LSTM
passes "for all but extreme settings"). ``benchmarks/filter_calibration.py`` measures the
pass rate over 20 search seeds; this checks one seed per cell with the real filter stage."""

from __future__ import annotations

import numpy as np
import pytest

from cellsearch.evolve.spaces import find_seed
from cellsearch.nn.train import train_and_evaluate
from cellsearch.search.config import SearchConfig, quick_config
from cellsearch.search.steps import filter_settings
from cellsearch.tasks import get_task


def test_quick_shares_the_calibrated_filter():
    full, quick = SearchConfig(), quick_config()
    assert (quick.filter_train, quick.filter_hparams, quick.filter_threshold, quick.filter_settings) == \
        (full.filter_train, full.filter_hparams, full.filter_threshold, full.filter_settings)
    assert full.filter_threshold == 0.95  # the paper's threshold is kept


@pytest.mark.parametrize("name", ["LSTM", "GRU"])
def test_lstm_and_gru_pass_the_default_filter(name):
    cfg = SearchConfig(seed=3)
    settings = filter_settings(cfg, np.random.default_rng([cfg.seed, 7]))
    assert len(settings) == cfg.filter_settings
    results = train_and_evaluate(find_seed(name), get_task(cfg.filter_task, {}), settings,
                                 cfg.train_config(cfg.filter_task))
    assert max(r.score for r in results) >= cfg.filter_threshold


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


def test_children_of_the_seeds_learn_and_pass_the_default_filter():
    """The property a search lives on (issue 19): children of LSTM and GRU as a default search
    draws them (one edit, resampled until the liveness probe passes), trained by the real
    filter stage (its settings, rungs and threshold), learn to memorise and some pass. Before
    issue 19 none of 20 random children passed and most stayed at chance (1/26).

    Four fixed children (the first four drawn from seed 2026; not chosen): when this was
    written one passed, one missed by 0.001 (0.949) and two stayed near chance, so the bounds
    are: at least one passes and at least two reach 0.9. Of 31 live one-edit children trained
    by ``benchmarks/children_funnel.py`` 19 passed (``benchmarks/README.md``, "Children"): a
    pass rate near 60 %, which four children cannot pin down."""
    from dataclasses import replace

    from cellsearch.evolve.mutate import mutate_live
    from cellsearch.evolve.spaces import load_space
    from cellsearch.search.steps import liveness_check

    cfg = SearchConfig()
    space, probe, task = load_space(cfg.space), liveness_check(cfg), get_task(cfg.filter_task, {})
    train = replace(cfg.train_config(cfg.filter_task), bar=cfg.filter_threshold)  # the search's rungs
    rng = np.random.default_rng(2026)
    best = []
    for parent in ("LSTM", "LSTM", "GRU", "GRU"):
        child, edits, _ = mutate_live(find_seed(parent), rng=rng, space=space, accept=probe, edits=cfg.edits)
        assert len(edits) == 1
        best.append(max(r.score for r in train_and_evaluate(child, task, filter_settings(cfg, rng), train)))
    assert sum(b >= cfg.filter_threshold for b in best) >= 1, best
    assert sum(b >= 0.9 for b in best) >= 2, best
