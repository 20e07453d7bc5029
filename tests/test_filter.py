"""The default memorisation filter lets the cells it exists for through (§3.3: the LSTM
passes "for all but extreme settings"). ``benchmarks/filter_calibration.py`` measures the
pass rate over 20 search seeds; this checks one seed per cell with the real filter stage."""

from __future__ import annotations

import numpy as np
import pytest

from cellsearch.config import SearchConfig, quick_config
from cellsearch.search import filter_settings
from cellsearch.spaces import find_seed
from cellsearch.tasks import get_task
from cellsearch.train import train_and_evaluate


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
