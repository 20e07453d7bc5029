"""analyze: node traces equal the compiled cell, gate saturation sees a saturated gate."""

from __future__ import annotations

import json

import numpy as np

from cellsearch.cli.main import main
from cellsearch.evolve.spaces import find_seed
from cellsearch.nn.analyze import analyze


def test_a_forget_gate_biased_open_is_right_saturated(tmp_path):
    g = find_seed("LSTM-b").copy()
    g.nodes["lin_f"]["bias_init"] = 8.0  # sigm(8 + small) > 0.9 at every step
    summary = analyze(g, "memorize", str(tmp_path), steps=10, budget=600, lr=0.01)
    f, i = summary["gates"]["f"][0], summary["gates"]["i"][0]
    assert f["right"] > 0.95 and f["left"] == 0.0
    assert i["right"] < 0.5  # the input gate, biased at 0, is not
    assert (tmp_path / "saturation.png").stat().st_size > 1000 and (tmp_path / "activations.png").exists()
    assert json.loads((tmp_path / "analysis.json").read_text())["gates"].keys() == {"f", "i", "o"}


def test_trace_equals_scan():
    import jax
    import jax.numpy as jnp

    from cellsearch.nn.compile import compile_cell
    from tests.helpers import relabel

    g = relabel(find_seed("GRU"), 3)
    cell = compile_cell(g)
    p = cell.init(jax.random.key(0), 6, 6)
    xs = jax.random.normal(jax.random.key(1), (7, 2, 6))
    c0 = cell.initial_carry((2,), 6)
    c1, ys = cell.scan(p, c0, xs)
    c2, ys2, rec = cell.trace(p, c0, xs)
    np.testing.assert_allclose(ys, ys2, rtol=1e-6)
    for a, b in zip(c1, c2, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert set(rec) <= set(g.nodes) and all(v.shape == (7, 2, 6) for v in rec.values())
    out_src = next(iter(g.predecessors(next(n for n, d in g.nodes(data=True) if d["op"] == "output"))))
    np.testing.assert_allclose(rec[out_src], ys, rtol=1e-6)
    assert jnp.all(jnp.isfinite(ys))


def test_analyze_cli_from_a_saved_run(tmp_path, capsys, rng):
    from tests.cli.test_cli import tiny_ptb

    tiny_ptb(tmp_path, rng)
    assert main(["train", "GRU", "--task", "ptb", "--data-dir", str(tmp_path), "--hidden", "8", "--layers", "2",
                 "--epochs", "1", "--bptt", "5", "--batch-size", "4", "--no-compile-cache",
                 "--save", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    assert main(["analyze", "GRU", "--task", "ptb", "--params", str(tmp_path / "run"), "--data-dir", str(tmp_path),
                 "-o", str(tmp_path / "an")]) == 0
    out = capsys.readouterr().out
    assert "gate r: layer 1:" in out and "layer 2:" in out
    assert main(["analyze", "LSTM", "--task", "ptb", "--params", str(tmp_path / "run"), "--data-dir",
                 str(tmp_path)]) == 2
    assert "another cell" in capsys.readouterr().err
