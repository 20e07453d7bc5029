"""Training: vmapped settings equal separate runs; divergence is a status; schedules; sizing."""

from __future__ import annotations

import numpy as np
import pytest

from cellsearch.cell.graph import param_count
from cellsearch.cell.params import hidden_size
from cellsearch.config import TrainConfig
from cellsearch.errors import ConfigError
from cellsearch.evolve.spaces import find_seed
from cellsearch.hparams import HParams, HParamSpace
from cellsearch.nn.train import _Member, _schedule_epoch, _stop_passed, train_and_evaluate
from cellsearch.tasks import make_task

CFG = TrainConfig(steps=40, batch_size=8, chunk=20)


def settings(n=3, **kw):
    base = dict(init_scale=1.0, max_grad_norm=5.0, layers=1, param_budget=1500)
    base.update(kw)
    return [HParams(learning_rate=lr, seed=i, **base) for i, lr in enumerate([0.3, 1.0, 2.0][:n])]


def test_vmapped_settings_equal_separate_runs():
    task = make_task("memorize")
    g = find_seed("GRU")
    together = train_and_evaluate(g, task, settings(), CFG)
    for h, r in zip(settings(), together, strict=True):
        (alone,) = train_and_evaluate(g, task, [h], CFG)
        assert alone.status == r.status == "ok"
        for k in ("nll", "accuracy", "score"):
            assert alone.metrics[k] == pytest.approx(r.metrics[k], rel=1e-4, abs=1e-6), k


def test_divergence_is_recorded_not_raised():
    task = make_task("arithmetic", max_digits=2)
    hs = settings(2)
    hs[1] = HParams(init_scale=2.0, learning_rate=1e6, max_grad_norm=1e9, layers=1, param_budget=1500, seed=1)
    ok, bad = train_and_evaluate(find_seed("Tanh"), task, hs, CFG)
    assert bad.status == "diverged" and bad.score == 0.0
    assert ok.status == "ok" and np.isfinite(ok.metrics["nll"])


def test_mixed_shapes_are_grouped_and_results_keep_order():
    task = make_task("memorize")
    hs = settings(2) + [HParams(learning_rate=1.0, layers=2, param_budget=1500, seed=9)]
    rs = train_and_evaluate(find_seed("LSTM"), task, hs, CFG)
    assert [r.hparams for r in rs] == hs
    assert rs[2].metrics["hidden"] < rs[0].metrics["hidden"]


def test_loss_falls_on_memorize():
    task = make_task("memorize")
    (r0,) = train_and_evaluate(find_seed("GRU"), task, settings(1, param_budget=3000), TrainConfig(steps=1, batch_size=16))
    (r1,) = train_and_evaluate(find_seed("GRU"), task, [HParams(learning_rate=2.0, param_budget=3000)],
                               TrainConfig(steps=300, batch_size=16, chunk=50))
    assert r1.metrics["nll"] < r0.metrics["nll"] - 0.3


def test_paper_schedule_halves_then_stops():
    cfg = TrainConfig(schedule="paper", patience=3, decay_epochs=4)
    m = _Member(lr=1.0)
    scores = [0.5, 0.6, 0.6, 0.6, 0.6] + [0.1] * 10
    lrs = []
    for s in scores:
        if not m.active:
            break
        _schedule_epoch(m, {"score": s}, cfg)
        lrs.append(m.lr)
    assert lrs == [1.0, 1.0, 1.0, 1.0, 0.5, 0.25, 0.125, 0.0625, 0.0625]
    assert not m.active and m.best["score"] == 0.6


def test_paper_schedule_stops_a_run_that_stopped_improving():
    """A rate too small to move the weights: validation never improves after the first epoch, so
    §3.7's schedule waits 3 epochs, halves for 4 and stops after epoch 8, long before the cap."""
    cfg = TrainConfig(schedule="paper", steps=400, steps_per_epoch=20, batch_size=8, chunk=20)
    (r,) = train_and_evaluate(find_seed("Tanh"), make_task("memorize"), [HParams(learning_rate=1e-12, param_budget=500)],
                              cfg)
    assert r.status == "ok" and r.steps == 8 * 20 and len(r.metrics["curve"]) == 8


def test_hidden_size_respects_budget_per_cell():
    for name in ("LSTM", "GRU", "MUT1", "Tanh"):
        g = find_seed(name)
        for budget in (1000, 20_000, 5_000_000):
            for layers in (1, 3):
                n = hidden_size(g, budget, layers)
                assert layers * param_count(g, n) <= budget < layers * param_count(g, n + 1)


def test_sampler_stays_on_the_grid_and_is_seeded():
    space = HParamSpace()
    a = space.sample(np.random.default_rng(0), 50)
    assert a == space.sample(np.random.default_rng(0), 50)
    for h in a:
        assert h.learning_rate in space.learning_rate and h.layers in space.layers
        assert h.init_scale in space.init_scale and h.max_grad_norm in space.max_grad_norm


def test_bad_config_is_a_clear_error():
    with pytest.raises(ConfigError, match="schedule must be"):
        TrainConfig(schedule="cosine")
    with pytest.raises(ConfigError, match="unknown hyperparameter"):
        HParams.from_dict({"lr": 1.0})


def test_program_caches_are_bounded(monkeypatch):
    import cellsearch.nn.train as train

    monkeypatch.setattr(train, "CACHE_SIZE", 2)
    task = make_task("memorize")
    for name in ("Tanh", "GRU", "LSTM"):
        train_and_evaluate(find_seed(name), task, settings(1), TrainConfig(steps=2, batch_size=4, chunk=2))
        assert len(train._PROGRAMS) <= 2 and len(train._COMPILED) <= 2


def test_evicted_executables_give_their_memory_maps_back(monkeypatch):
    """Each XLA CPU executable holds ~140 memory mappings; a long search must not pile them up
    until the process hits vm.max_map_count (a one-hour search once aborted so)."""
    import gc

    import cellsearch.nn.train as train
    from cellsearch.evolve.mutate import mutate
    from cellsearch.evolve.spaces import load_space

    def maps() -> int:
        with open("/proc/self/maps") as f:
            return sum(1 for _ in f)

    monkeypatch.setattr(train, "CACHE_SIZE", 2)
    task, space, rng = make_task("memorize", eval_batches=1, eval_batch_size=8), load_space(), np.random.default_rng(0)
    cfg = TrainConfig(steps=3, batch_size=4, chunk=3)
    counts = []
    for _ in range(6):  # 6 new cells, 2 executables each, 2 kept
        child, _ = mutate(find_seed("GRU"), rng=rng, space=space, max_rate=0.3)
        train_and_evaluate(child, task, settings(1, param_budget=300), cfg)
        gc.collect()
        counts.append(maps())
    assert max(counts[2:]) - counts[1] < 600  # flat once the cache is full (unbounded: +280 per cell, +1,100 here)


def test_isomorphic_cells_train_in_one_process():
    """A relabelled copy of a cell reuses the cached program and trains to the same numbers."""
    from tests.helpers import relabel

    g = find_seed("LSTM")
    task = make_task("memorize", eval_batches=1)
    (a,) = train_and_evaluate(g, task, settings(1), CFG)
    for seed in (1, 2):
        (b,) = train_and_evaluate(relabel(g, seed), task, settings(1), CFG)
        assert b.metrics["nll"] == pytest.approx(a.metrics["nll"], rel=1e-6)


def short_last_batch_mat(path, rng):
    """A small piano-roll .mat whose validation set ends in a short batch (35 windows: 32 + 3)."""
    from scipy.io import savemat

    def seqs(lengths):
        arr = np.empty((1, len(lengths)), dtype=object)
        for i, n in enumerate(lengths):
            arr[0, i] = (rng.uniform(size=(n, 88)) < 0.05).astype(np.uint8)
        return arr

    # seq_len 8: a sequence of 8k+1 steps gives k windows; 17 + 18 = 35 windows
    savemat(str(path), {"traindata": seqs([40, 33, 60]), "validdata": seqs([137, 145]), "testdata": seqs([20])})


@pytest.mark.parametrize("which, name", [("nottingham", "Nottingham.mat"), ("pianomidi", "Piano_midi.mat")])
def test_music_trains_and_evaluates_with_a_short_last_batch(tmp_path, rng, which, name):
    (tmp_path / "music").mkdir()
    short_last_batch_mat(tmp_path / "music" / name, rng)
    task = make_task(which, data_dir=str(tmp_path), seq_len=8)
    batches = task.eval_batches("valid")
    assert len(batches) == 2 and {b.inputs.shape for b in batches} == {(32, 8, 88)}
    assert batches[1].mask.sum() == 3 * 8  # the padded rows are not scored
    (r,) = train_and_evaluate(find_seed("LSTM"), task, settings(1, param_budget=2000), CFG)
    assert r.status == "ok" and np.isfinite(r.metrics["nll"]) and 0 < r.score < 1


@pytest.mark.parametrize("which", ["nottingham", "pianomidi"])
def test_music_on_the_real_files(data_dir, which):
    if not (data_dir / "music").is_dir():
        pytest.skip(f"music data not found under {data_dir}")
    task = make_task(which, data_dir=str(data_dir))
    assert len({b.inputs.shape for b in task.eval_batches("valid")}) == 1
    (r,) = train_and_evaluate(find_seed("LSTM"), task, settings(1), TrainConfig(steps=10, batch_size=8, chunk=10))
    assert r.status == "ok" and 0 < r.metrics["nll"] < 88 * np.log(2) * 2


def test_a_setting_does_not_depend_on_its_company():
    """With a fixed member count, a setting alone and beside others gives the same numbers."""
    from dataclasses import replace

    task = make_task("memorize", eval_batches=1, eval_batch_size=8)
    cfg = TrainConfig(steps=30, batch_size=4, chunk=10, members=4)
    mine = HParams(learning_rate=2.0, param_budget=500, seed=3)
    others = [replace(mine, learning_rate=lr, seed=s) for lr, s in ((0.5, 1), (1.0, 2), (3.0, 4))]
    (alone,) = train_and_evaluate(find_seed("GRU"), task, [mine], cfg)
    company = train_and_evaluate(find_seed("GRU"), task, [*others[:2], mine, others[2]], cfg)
    assert company[2].metrics == alone.metrics and company[2].status == alone.status


def test_an_update_to_non_finite_parameters_is_diverged_never_a_score():
    """A step whose update writes inf/NaN parameters (an infinite learning rate on the last
    step, so every training loss seen was finite) is ``diverged``, and so is one whose
    parameters stay finite but whose validation loss is past the kill rule."""
    task = make_task("memorize", eval_batches=1, eval_batch_size=8)
    cfg = TrainConfig(steps=1, batch_size=4, chunk=1)
    ok, nan, huge = train_and_evaluate(find_seed("LSTM"), task, [HParams(learning_rate=lr, param_budget=500)
                                                                  for lr in (1.0, float("inf"), 1e38)], cfg)
    assert ok.status == "ok" and ok.score > 0
    for r in (nan, huge):
        assert r.status == "diverged" and r.score == 0.0


def test_a_rung_stops_a_setting_that_cannot_reach_the_bar():
    """Successive halving: at a rung, a setting below fraction x bar stops (recorded with the
    step it stopped at and its best score so far); without a bar nothing stops."""
    from dataclasses import replace

    task = make_task("memorize", eval_batches=1, eval_batch_size=8)
    cfg = TrainConfig(steps=40, batch_size=4, chunk=10, eval_every=10, rungs=((0.25, 1.0), (0.5, 0.5)), bar=0.99)
    stopped, free = (train_and_evaluate(find_seed("GRU"), task, settings(2, param_budget=500), c)
                     for c in (cfg, replace(cfg, bar=0.0)))
    for r in stopped:
        assert r.status == "ok" and r.metrics["stopped_at"] == 10 and r.steps == 10 and r.score < 0.99
    for r in free:
        assert "stopped_at" not in r.metrics and r.steps == 40 and len(r.metrics["curve"]) == 4
    with pytest.raises(ConfigError, match="a share of the steps"):
        TrainConfig(steps=40, eval_every=10, rungs=((15, 0.5),))


def test_a_pass_fail_stage_stops_every_setting_once_one_passes():
    """``stop_on_pass`` (the filter's): at the first validation point where one setting's best
    reaches the bar, the job's settings all stop there with their best so far; the same job
    without it trains every setting to the end, and the passing setting's verdict is the same."""
    from dataclasses import replace

    task = make_task("memorize", eval_batches=1, eval_batch_size=8)
    free = train_and_evaluate(find_seed("GRU"), task, settings(2, param_budget=500),
                              TrainConfig(steps=40, batch_size=4, chunk=10, eval_every=10))
    bar = max(r.metrics["curve"][1] for r in free)  # the best score at the second validation point
    assert bar > max(r.metrics["curve"][0] for r in free)
    cfg = TrainConfig(steps=40, batch_size=4, chunk=10, eval_every=10, bar=bar, stop_on_pass=True)
    stopped = train_and_evaluate(find_seed("GRU"), task, settings(2, param_budget=500), cfg)
    for r, f in zip(stopped, free, strict=True):
        assert r.status == "ok" and r.metrics["stopped_at"] == 20 and r.steps == 20
        assert r.score == max(f.metrics["curve"][:2])  # its best so far, as the free run had it then
    assert all(r.steps == 40 and "stopped_at" not in r.metrics for r in free)
    unmet = train_and_evaluate(find_seed("GRU"), task, settings(2, param_budget=500), replace(cfg, bar=1.01))
    assert all(r.steps == 40 for r in unmet)  # nobody passes: nothing stops


def test_a_pass_stops_only_the_passing_cells_settings():
    """In a program of several cells (the population interpreter), one cell passing stops its
    own settings, not another cell's; a setting that diverged never passes."""
    def member(score, status="ok"):
        return _Member(lr=1.0, best={"score": score}, status=status)

    ms = [member(0.97), member(0.2), member(0.5), member(0.99, "diverged"), member(0.3)]
    ms[3].active = False
    _stop_passed(ms, [0, 0, 1, 2, 2], 0.95, done=1000)
    assert [m.active for m in ms] == [False, False, True, False, True]
    assert [m.stopped for m in ms] == [1000, 1000, 0, 0, 0]


def test_bfloat16_trains_the_lstm_as_float32_does():
    """Mixed precision (bfloat16 compute, float32 parameters, loss and SGD) trains the LSTM on
    arithmetic to within 2 % of the float32 run's validation NLL after 300 steps, from the same
    initialisation and batches; it moves the numbers (it is not float32 in disguise)."""
    task = make_task("arithmetic", max_digits=3)
    hs = [HParams(learning_rate=1.0, param_budget=10_000, seed=2)]
    runs = {dt: train_and_evaluate(find_seed("LSTM"), task, hs, TrainConfig(steps=300, batch_size=32, chunk=100,
                                                                             dtype=dt))
            for dt in ("float32", "bfloat16")}
    start = train_and_evaluate(find_seed("LSTM"), task, hs[:1], TrainConfig(steps=1, batch_size=32))[0].metrics["nll"]
    for f32, bf16 in zip(runs["float32"], runs["bfloat16"], strict=True):
        a, b = f32.metrics["nll"], bf16.metrics["nll"]
        assert bf16.status == "ok" and a < start - 0.5 and abs(b - a) / a < 0.02 and a != b


def test_a_child_inherits_its_parents_trained_weights_where_they_match():
    """Inheritance (EXAMM's): the parent's own graph takes every weight and, not trained further,
    scores what the parent scored; weights are matched by node and operand name; a cell of
    another hidden size takes only what still fits."""
    from dataclasses import replace

    from cellsearch.cell.graph import from_json, to_json

    task = make_task("arithmetic", max_digits=1, eval_batches=1, eval_batch_size=16)
    h = HParams(layers=1, param_budget=1500, learning_rate=1.0, init_scale=1.0, max_grad_norm=5.0)
    cfg = TrainConfig(steps=60, batch_size=8, chunk=30, eval_every=60)
    gru = find_seed("GRU")
    [parent] = train_and_evaluate(gru, task, [h], cfg, keep_params=True)
    still = replace(cfg, steps=1, eval_every=1)
    [same] = train_and_evaluate(gru, task, [replace(h, learning_rate=0.0)], still, inherit_from=[parent.params])
    [fresh] = train_and_evaluate(gru, task, [replace(h, learning_rate=0.0)], still)
    assert same.metrics["inherited"] == 1.0 and same.score == parent.score != fresh.score
    assert "inherited" not in fresh.metrics

    # matched by node name: a gate without weights renamed changes nothing; a renamed linear
    # node is another node, whose weights start afresh while the others are inherited
    js = to_json(gru)
    [again] = train_and_evaluate(from_json(js.replace('"z"', '"zz"')), task, [replace(h, learning_rate=0.0)], still,
                                 inherit_from=[parent.params])
    assert again.metrics["inherited"] == 1.0 and again.score == parent.score
    [part] = train_and_evaluate(from_json(js.replace('"lin_z"', '"lin_new"')), task, [h], still,
                                inherit_from=[parent.params])
    assert 0.5 < part.metrics["inherited"] < 1.0

    [lstm] = train_and_evaluate(find_seed("LSTM"), task, [h], still, inherit_from=[parent.params])
    assert lstm.metrics["inherited"] < 0.5  # another hidden size: nothing of the cell's matrices fits
    with pytest.raises(ConfigError, match="inherit_from"):
        train_and_evaluate(gru, task, [h, h], cfg, inherit_from=[parent.params])
