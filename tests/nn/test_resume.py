"""Continuing a run: a setting trained in two parts ends where one run of all its steps ends."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from cellsearch.config import TrainConfig
from cellsearch.errors import ConfigError
from cellsearch.evolve.spaces import find_seed
from cellsearch.hparams import HParams
from cellsearch.nn import resume
from cellsearch.nn.train import train_and_evaluate
from cellsearch.tasks import make_task

# a validation point every 40 steps, as --quick's rung and full stage have one every 300
FULL = TrainConfig(steps=120, batch_size=8, chunk=20, eval_every=40, members=2)
RUNG = replace(FULL, steps=40)


def _settings():
    base = dict(init_scale=1.0, max_grad_norm=5.0, layers=1, param_budget=1500)
    return [HParams(learning_rate=lr, seed=i, **base) for i, lr in enumerate([0.5, 2.0])]


def _same(a, b):
    assert (a.status, a.score, a.steps) == (b.status, b.score, b.steps)
    drop = ("continued_from",)
    assert {k: v for k, v in a.metrics.items() if k not in drop} == {k: v for k, v in b.metrics.items() if k not in drop}


@pytest.mark.parametrize("cell", ["GRU", "LSTM"])
def test_a_continued_rung_ends_where_one_run_ends(cell):
    """What a promoted child relies on: its rung's settings, continued to the full steps, reach the
    same scores, curves and steps, bit for bit, as training them from scratch for the full steps
    (the same data, in a program of the same members)."""
    task, g = make_task("arithmetic", max_digits=2), find_seed(cell)
    once = train_and_evaluate(g, task, _settings(), FULL)
    rung = train_and_evaluate(g, task, _settings(), RUNG, keep_state=True)
    assert all(r.state and r.steps == 40 for r in rung)
    more = train_and_evaluate(g, task, _settings(), FULL, resume=[r.state for r in rung])
    for a, b in zip(once, more, strict=True):
        _same(a, b)
        assert b.metrics["continued_from"] == 40
    for a, r in zip(once, rung, strict=True):  # the rung is the run's first 40 steps (curves keep 5 decimals)
        assert a.metrics["curve"][0] == pytest.approx(r.score, abs=1e-5)


def test_continued_and_fresh_settings_train_side_by_side():
    """A stage with more settings than its rung: the rung's settings continue, the others start from
    scratch in programs of the same member count, each as it would alone."""
    task, g = make_task("arithmetic", max_digits=2), find_seed("GRU")
    base = dict(init_scale=1.0, max_grad_norm=5.0, layers=1, param_budget=1500)
    extra = [HParams(learning_rate=lr, seed=7 + i, **base) for i, lr in enumerate([1.0, 3.0])]
    rung = train_and_evaluate(g, task, _settings(), RUNG, keep_state=True)
    mixed = train_and_evaluate(g, task, [*_settings(), *extra], FULL,
                               resume=[r.state for r in rung] + [None, None])
    for a, b in zip(train_and_evaluate(g, task, _settings(), FULL) + train_and_evaluate(g, task, extra, FULL),
                    mixed, strict=True):
        _same(a, b)
    assert [("continued_from" in r.metrics) for r in mixed] == [True, True, False, False]


def test_the_stage_rung_acts_where_a_continued_run_takes_over():
    """The full stage's successive halving has a rung at the point the screen rung stopped: a
    continued setting below it stops there, as in one run of the stage."""
    task, g = make_task("arithmetic", max_digits=2), find_seed("GRU")
    stage = replace(FULL, rungs=((0.3, 1.0),), bar=2.0)  # no score reaches 2: everyone stops at step 40
    rung = train_and_evaluate(g, task, _settings(), RUNG, keep_state=True)
    more = train_and_evaluate(g, task, _settings(), stage, resume=[r.state for r in rung])
    for a, b in zip(train_and_evaluate(g, task, _settings(), stage), more, strict=True):
        _same(a, b)
        assert b.metrics["stopped_at"] == 40 and b.steps == 40


def test_a_state_made_under_another_schedule_is_refused():
    task, g = make_task("arithmetic", max_digits=2), find_seed("GRU")
    (r,) = train_and_evaluate(g, task, _settings()[:1], replace(RUNG, members=1), keep_state=True)
    with pytest.raises(ConfigError, match="batch_size=8"):
        train_and_evaluate(g, task, _settings()[:1], replace(FULL, batch_size=16), resume=[r.state])
    with pytest.raises(ConfigError, match="40 steps to 20 steps"):
        train_and_evaluate(g, task, _settings()[:1], replace(FULL, steps=20), resume=[r.state])


def test_a_state_round_trips_through_bytes():
    leaves = [np.arange(6, dtype=np.float32).reshape(2, 3), np.float32([1e-30, -0.0])]
    data = np.random.default_rng(5).bit_generator.state
    s = resume.decode(resume.encode(leaves, {"lr": 0.5, "history": [0.1]}, 40, data, RUNG))
    assert s["done"] == 40 and s["member"] == {"lr": 0.5, "history": [0.1]} and s["data"] == data
    assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(leaves, s["leaves"], strict=True))
    assert s["train"]["steps"] == 40
