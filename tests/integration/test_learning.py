"""Slow checks that cells really learn (run with ``-m slow``; a few minutes on a laptop CPU)."""

from __future__ import annotations

import pytest

from cellsearch.evolve.spaces import find_seed
from cellsearch.hparams import HParams
from cellsearch.nn.train import TrainConfig, train_and_evaluate
from cellsearch.tasks import make_task

pytestmark = pytest.mark.slow


def test_lstm_learns_memorization_above_95_percent():
    settings = [HParams(learning_rate=lr, init_scale=1.0, max_grad_norm=5.0, param_budget=25_000, seed=s)
                for s, lr in enumerate([1.0, 2.0, 3.0])]
    results = train_and_evaluate(find_seed("LSTM"), make_task("memorize"), settings,
                                 TrainConfig(steps=4000, batch_size=32, chunk=200))
    best = max(r.score for r in results)
    print(f"LSTM memorization accuracy: {[round(r.score, 4) for r in results]}")
    assert best > 0.95


def test_lstm_beats_tanh_on_arithmetic_at_the_same_budget():
    task = make_task("arithmetic", max_digits=4)
    settings = [HParams(learning_rate=lr, init_scale=s, max_grad_norm=5.0, param_budget=20_000, seed=i)
                for i, (lr, s) in enumerate([(0.5, 1.0), (1.0, 1.0), (2.0, 1.0), (1.0, 2.0)])]
    cfg = TrainConfig(steps=3000, batch_size=32, chunk=200)
    best = {name: max(r.score for r in train_and_evaluate(find_seed(name), task, settings, cfg))
            for name in ("LSTM", "Tanh")}
    print(f"arithmetic accuracy at 20k parameters: {best}")
    assert best["LSTM"] > best["Tanh"] + 0.02
