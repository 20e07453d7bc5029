"""The standard protocol: stateful streams, whole-split evaluation, dropout, presets, save/load."""

from __future__ import annotations

from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cellsearch.config import PRESETS, ProtocolConfig
from cellsearch.errors import ConfigError, Diverged
from cellsearch.evolve.spaces import find_seed
from cellsearch.nn.checkpoint import load_run
from cellsearch.nn.compile import compile_cell
from cellsearch.nn.protocol import (
    StreamData,
    evaluate_split,
    forward,
    groups,
    init_params,
    make_steps,
    run_protocol,
    token_streams,
    windows,
    zero_carries,
)

CFG = ProtocolConfig(hidden=16, layers=2, batch_size=4, bptt=5, epochs=2, eval_batch_size=1, init=0.3)


def toy(n=803, vocab=11, seed=0) -> StreamData:
    """Streams where the next token is the last one plus 1 (mod vocab) 90 % of the time."""
    rng = np.random.default_rng(seed)

    def stream(m):
        out = [0]
        for _ in range(m - 1):
            out.append((out[-1] + 1) % vocab if rng.uniform() < 0.9 else int(rng.integers(vocab)))
        return np.asarray(out)

    ids = [stream(m) for m in (n, 97, 88)]
    return StreamData("toy", {"train": [ids[0]], "valid": [ids[1]], "test": [ids[2]]}, False, vocab)


def test_streams_are_contiguous_and_windows_consecutive():
    ids = np.arange(103)
    rows = token_streams(ids, 4)
    assert rows.shape == (4, 25) and all((np.diff(r) == 1).all() for r in rows)
    xs, ys, ms = zip(*windows(rows, np.full(4, 25), 5), strict=True)
    x = np.concatenate(xs, 1)
    m = np.concatenate(ms, 1)
    assert (x[:, :24] == rows[:, :24]).all()  # consecutive windows read each stream in order
    assert (np.concatenate(ys, 1)[:, :24] == rows[:, 1:]).all()
    assert m.sum() == 4 * 24  # every prediction inside a stream, once


def test_carried_state_equals_one_long_scan():
    data, cell = toy(), compile_cell(find_seed("LSTM"))
    params = jax.tree.map(jnp.asarray, init_params(0, cell, data, CFG))
    _, evaluate = make_steps(cell, False, CFG)
    (rows, lengths), = groups(data, "valid", 1)
    carries, total = zero_carries(cell, 1, CFG), 0.0
    for x, y, m in windows(rows, lengths, CFG.bptt):
        carries, s, _ = evaluate(params, carries, x, y, m)
        total += float(s)
    logits, _ = forward(cell, params, rows[:, :-1], dense=False, carries=zero_carries(cell, 1, CFG))
    import optax

    whole = float(optax.softmax_cross_entropy_with_integer_labels(logits, rows[:, 1:]).sum())
    assert total == pytest.approx(whole, rel=1e-5)


def test_whole_split_evaluation_reads_every_token():
    data, cell = toy(), compile_cell(find_seed("GRU"))
    params = jax.tree.map(jnp.asarray, init_params(0, cell, data, CFG))
    _, evaluate = make_steps(cell, False, CFG)
    seen = []

    def counting(*a):
        out = evaluate(*a)
        seen.append(float(out[2]))
        return out

    evaluate_split(cell, counting, params, data, "valid", CFG)
    assert sum(seen) == len(data.splits["valid"][0]) - 1


def test_dropout_is_off_at_evaluation():
    data, cell = toy(), compile_cell(find_seed("LSTM"))
    cfg = ProtocolConfig(hidden=16, layers=2, dropout=0.5)
    params = jax.tree.map(jnp.asarray, init_params(0, cell, data, cfg))
    x = data.splits["valid"][0][None, :20]
    c = zero_carries(cell, 1, cfg)
    clean, _ = forward(cell, params, x, dense=False, carries=c)
    noisy, _ = forward(cell, params, x, dense=False, carries=c, dropout=0.5, key=jax.random.key(1))
    assert not np.allclose(clean, noisy)
    _, evaluate = make_steps(cell, False, cfg)
    y = data.splits["valid"][0][None, 1:21]
    _, s1, _ = evaluate(params, c, x, y, np.ones((1, 20), np.float32))
    _, s2, _ = evaluate(params, c, x, y, np.ones((1, 20), np.float32))
    import optax

    assert float(s1) == float(s2) == pytest.approx(
        float(optax.softmax_cross_entropy_with_integer_labels(clean, y).sum()), rel=1e-5)


def test_presets_hold_the_papers_values():
    s, m, big = PRESETS["zaremba-small"], PRESETS["zaremba-medium"], PRESETS["zaremba-large"]
    assert (s.layers, s.hidden, s.init, s.lr, s.clip, s.bptt, s.epochs, s.lr_decay, s.decay_after, s.dropout) == \
        (2, 200, 0.1, 1.0, 5.0, 20, 13, 0.5, 4, 0.0)
    assert (m.layers, m.hidden, m.dropout, m.epochs) == (2, 650, 0.5, 39)
    assert (big.layers, big.hidden, big.dropout, big.epochs) == (2, 1500, 0.65, 55)
    assert [s.lr_at(e) for e in range(1, 8)] == [1, 1, 1, 1, 0.5, 0.25, 0.125]
    with pytest.raises(ConfigError, match="dropout must be in"):
        ProtocolConfig(dropout=1.5)


def test_training_learns_saves_loads_and_resumes(tmp_path):
    from cellsearch.nn.export import GraphCell, NNXGraphCell

    data, g = toy(), find_seed("LSTM")
    full = run_protocol(g, data, CFG, save_dir=str(tmp_path / "full"))
    first, last = full["history"][0]["train"]["perplexity"], full["history"][-1]["train"]["perplexity"]
    assert last < first and full["test"]["perplexity"] < data.size / 2
    run = load_run(str(tmp_path / "full"))
    assert run.config == CFG and run.state.epoch == 2 and run.result["test"] == full["test"]
    # the saved cell in flax: linen and nnx give what the compiled cell gives with those weights
    cell, variables = GraphCell.from_saved(str(tmp_path / "full"), layer=1)
    x = jnp.ones((3, CFG.hidden))
    carry = cell.initialize_carry(jax.random.key(0), x.shape)
    _, y = cell.apply(variables, carry, x)
    _, want = compile_cell(g).apply(jax.tree.map(jnp.asarray, run.cell_params(1)), carry, x)
    np.testing.assert_allclose(y, want, rtol=1e-6)
    _, y2 = NNXGraphCell.from_saved(str(tmp_path / "full"), layer=1)(carry, x)
    np.testing.assert_allclose(y2, want, rtol=1e-6)

    # a run killed after its first epoch resumes there and ends where the whole run ended
    def die(row):
        if row["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_protocol(g, data, CFG, save_dir=str(tmp_path / "cut"), on_epoch=die)
    assert load_run(str(tmp_path / "cut")).state.epoch == 1
    epochs = []
    again = run_protocol(g, data, CFG, save_dir=str(tmp_path / "cut"), on_epoch=lambda r: epochs.append(r["epoch"]))
    assert epochs == [2] and again["test"] == pytest.approx(full["test"], rel=1e-6)
    with pytest.raises(ConfigError, match="another cell, task or settings"):
        run_protocol(g, data, ProtocolConfig(hidden=16, layers=1), save_dir=str(tmp_path / "cut"))


def test_music_pieces_are_streams(rng):
    pieces = [(rng.uniform(size=(n, 88)) < 0.1).astype(np.float32) for n in (30, 12, 50)]
    data = StreamData("music", {"train": pieces, "valid": pieces, "test": pieces}, True, 88)
    cfg = ProtocolConfig(hidden=8, layers=1, batch_size=2, bptt=7, epochs=1)
    gs = groups(data, "valid", 2)
    assert [r.shape[:2] for r, _ in gs] == [(2, 30), (2, 50)]
    counted = sum(m.sum() for r, ln in gs for _, _, m in windows(r, ln, 7))
    assert counted == sum(n - 1 for n in (30, 12, 50))  # every step of every piece, padding never
    out = run_protocol(find_seed("GRU"), data, cfg)
    assert 0 < out["test"]["nll"] < 88


def test_each_cell_at_its_own_learning_rate(tmp_path, monkeypatch):
    """``--lr-grid``: a short probe per rate, the rate with the lowest validation NLL is chosen
    (a rate that diverges is out), and the choice is saved with the run."""
    import json

    from cellsearch.nn.lr_choice import choose_lr, save_choice

    data, g = toy(), find_seed("GRU")
    cfg = replace(CFG, layers=1, epochs=1)
    lr, probes = choose_lr(g, data, cfg, (0.05, 1.0, 30.0), probe_windows=20)
    assert [p["lr"] for p in probes] == [0.05, 1.0, 30.0] and all(p["status"] == "ok" for p in probes)
    assert lr == min(probes, key=lambda p: p["valid_nll"])["lr"] == 1.0  # the toy stream is easy: 1 beats 0.05 and 30
    save_choice(str(tmp_path), lr, probes, 20)
    assert json.loads((tmp_path / "lr_choice.json").read_text())["chosen"] == 1.0

    import cellsearch.nn.lr_choice as lr_choice

    def diverges(graph, data, cfg, **kw):
        raise Diverged("training diverged in epoch 1 (validation NLL nan)")

    monkeypatch.setattr(lr_choice, "run_protocol", diverges)
    with pytest.raises(ConfigError, match="every rate"):
        choose_lr(g, data, cfg, (1.0, 2.0), probe_windows=5)


def test_the_paper_schedule_halves_the_rate_and_stops():
    """The protocol's §3.7 schedule is :func:`cellsearch.config.paper_schedule`: with a rate too
    small to move the weights validation stops improving, so after ``patience`` epochs the rate
    halves each epoch for ``decay_epochs``, then the run stops before its epoch cap."""
    cfg = replace(CFG, layers=1, schedule="paper", lr=1e-12, epochs=20, patience=2, decay_epochs=2,
                  max_windows=2)
    out = run_protocol(find_seed("GRU"), toy(), cfg)
    lrs = [row["lr"] for row in out["history"]]
    assert out["epochs"] == 5 and lrs == [1e-12, 1e-12, 1e-12, 5e-13, 2.5e-13]
