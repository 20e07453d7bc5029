"""The compiler: exact equality with flax (and torch) cells, fused == unfused, scan == loop."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn
from flax import nnx

from cellsearch.cell.graph import CellBuilder
from cellsearch.cell.ops import LINEAR_A_NOISE
from cellsearch.cell.params import bound, init_numpy
from cellsearch.errors import CompileError
from cellsearch.evolve.spaces import find_seed
from cellsearch.nn.compile import cache_info, compile_cell
from tests.helpers import all_seeds, relabel

IN, H, B = 5, 7, 3
RTOL = 1e-5
LSTM_GATES = {"i": "lin_i", "f": "lin_f", "g": "lin_g", "o": "lin_o"}


def rand(key, *shape):
    return jax.random.normal(key, shape)


def lstm_params_from_flax(fp):
    """Gate-by-gate copy of flax ``LSTMCell`` parameters into the LSTM graph's layout."""
    return {
        lin: {"W_x": fp["i" + g]["kernel"], "W_h_prev": fp["h" + g]["kernel"], "b": fp["h" + g]["bias"]}
        for g, lin in LSTM_GATES.items()
    }


def perturb(tree, key):
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(treedef, [v + 0.3 * rand(k, *v.shape) for v, k in zip(leaves, keys, strict=True)])


@pytest.mark.parametrize("flax_cell", [nn.LSTMCell, nn.OptimizedLSTMCell])
def test_lstm_graph_matches_flax_lstm_cell(flax_cell):
    k = jax.random.split(jax.random.key(0), 5)
    x, c0, h0 = rand(k[0], B, IN), rand(k[1], B, H), rand(k[2], B, H)
    fl = flax_cell(H)
    fp = perturb(fl.init(k[3], (c0, h0), x), k[4])  # non-zero biases too
    cell = compile_cell(find_seed("LSTM"))
    params = lstm_params_from_flax(fp["params"])
    carry = flax_carry = (c0, h0)
    for t in range(4):  # step for step, each side from its own previous carry
        flax_carry, want = fl.apply(fp, flax_carry, x * (t + 1))
        carry, got = cell.apply(params, carry, x * (t + 1))
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-6)
        np.testing.assert_allclose(carry[0], flax_carry[0], rtol=RTOL, atol=1e-6)


def test_gru_reset_after_graph_matches_flax_gru_cell():
    k = jax.random.split(jax.random.key(1), 4)
    x, h0 = rand(k[0], B, IN), rand(k[1], B, H)
    fl = nn.GRUCell(H)
    fp = perturb(fl.init(k[2], h0, x), k[3])["params"]
    params = {
        "lin_r": {"W_x": fp["ir"]["kernel"], "W_h_prev": fp["hr"]["kernel"], "b": fp["ir"]["bias"]},
        "lin_z": {"W_x": fp["iz"]["kernel"], "W_h_prev": fp["hz"]["kernel"], "b": fp["iz"]["bias"]},
        "lin_xu": {"W_x": fp["in"]["kernel"], "b": fp["in"]["bias"]},
        "lin_hu": {"W_h_prev": fp["hn"]["kernel"], "b": fp["hn"]["bias"]},
    }
    cell = compile_cell(find_seed("GRU-RA"))
    carry, fh = (h0,), h0
    for t in range(4):
        fh, want = fl.apply({"params": fp}, fh, x * (t + 1))
        carry, got = cell.apply(params, carry, x * (t + 1))
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-6)


def test_lstm_graph_matches_nnx_lstm_cell():
    cell = nnx.LSTMCell(IN, H, rngs=nnx.Rngs(0))
    p = {
        lin: {"W_x": getattr(cell, "i" + (g if g != "f" else "f_")).kernel.get_value(),
              "W_h_prev": getattr(cell, "h" + g).kernel.get_value(),
              "b": getattr(cell, "h" + g).bias.get_value()}
        for g, lin in LSTM_GATES.items()
    }
    k = jax.random.split(jax.random.key(2), 3)
    carry, x = (rand(k[0], B, H), rand(k[1], B, H)), rand(k[2], B, IN)
    want_carry, want = cell(carry, x)
    got_carry, got = compile_cell(find_seed("LSTM")).apply(p, carry, x)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-6)
    np.testing.assert_allclose(got_carry[0], want_carry[0], rtol=RTOL, atol=1e-6)


def test_paper_gru_and_mut1_match_numpy_reference():
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    k = jax.random.split(jax.random.key(3), 3)
    x, h = np.asarray(rand(k[0], B, H)), np.asarray(rand(k[1], B, H))
    cell = compile_cell(find_seed("GRU"))
    p = jax.tree.map(np.asarray, cell.init(k[2], H, H, init_scale=2.0))
    p = {n: {kk: v + 0.1 for kk, v in d.items()} for n, d in p.items()}
    r = sig(x @ p["lin_r"]["W_x"] + h @ p["lin_r"]["W_h_prev"] + p["lin_r"]["b"])
    z = sig(x @ p["lin_z"]["W_x"] + h @ p["lin_z"]["W_h_prev"] + p["lin_z"]["b"])
    wrh = next(kk for kk in p["lin_u"] if kk not in ("W_x", "b"))
    u = np.tanh(x @ p["lin_u"]["W_x"] + (r * h) @ p["lin_u"][wrh] + p["lin_u"]["b"])
    _, got = cell.apply(p, (h,), x)
    np.testing.assert_allclose(got, z * h + (1 - z) * u, rtol=1e-5, atol=1e-6)

    cell = compile_cell(find_seed("MUT1"))
    p = jax.tree.map(np.asarray, cell.init(k[2], H, H, init_scale=2.0))
    z = sig(x @ p["lin_z"]["W_x"] + p["lin_z"]["b"])
    r = sig(x @ p["lin_r"]["W_x"] + h @ p["lin_r"]["W_h_prev"] + p["lin_r"]["b"])
    wrh = next(kk for kk in p["lin_u"] if kk != "b")
    u = np.tanh((r * h) @ p["lin_u"][wrh] + np.tanh(x) + p["lin_u"]["b"])
    _, got = cell.apply(p, (h,), x)
    np.testing.assert_allclose(got, u * z + h * (1 - z), rtol=1e-5, atol=1e-6)


def test_lstm_matches_torch_lstm_cell():
    torch = pytest.importorskip("torch")
    t = torch.nn.LSTMCell(IN, H)
    w_ih, w_hh = t.weight_ih.detach().numpy(), t.weight_hh.detach().numpy()
    bias = (t.bias_ih + t.bias_hh).detach().numpy()
    params = {}
    for k, g in enumerate("ifgo"):  # torch's gate order: i, f, g, o
        rows = slice(k * H, (k + 1) * H)
        params[LSTM_GATES[g]] = {"W_x": w_ih[rows].T, "W_h_prev": w_hh[rows].T, "b": bias[rows]}
    x, h, c = (np.random.default_rng(0).normal(size=s).astype(np.float32) for s in [(B, IN), (B, H), (B, H)])
    th, tc = t(torch.tensor(x), (torch.tensor(h), torch.tensor(c)))
    (gc, gh), _ = compile_cell(find_seed("LSTM")).apply(params, (c, h), x)
    np.testing.assert_allclose(gh, th.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gc, tc.detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("space,name,g", all_seeds(), ids=lambda v: v if isinstance(v, str) else "")
def test_fused_equals_unfused_and_scan_equals_loop(space, name, g):
    fused, plain = compile_cell(g), compile_cell(g, fuse=False)
    key = jax.random.key(4)
    params = fused.init(key, H, H)
    xs = rand(jax.random.key(5), 6, B, H)  # (T, B, IN)
    carry = tuple(rand(jax.random.fold_in(key, i), B, H) for i in range(len(fused.states)))
    c1, ys1 = jax.jit(fused.scan)(params, carry, xs)
    c2, ys2 = plain.scan(params, carry, xs)
    np.testing.assert_allclose(ys1, ys2, rtol=1e-5, atol=1e-6)
    for hoist in (True, False):  # input projections before the loop, or in every step
        _, ys_h = fused.scan(params, carry, xs, hoist=hoist)
        np.testing.assert_allclose(ys_h, ys1, rtol=1e-5, atol=1e-6)
    c3, loop = carry, []
    for t in range(xs.shape[0]):
        c3, y = fused.apply(params, c3, xs[t])
        loop.append(y)
    np.testing.assert_allclose(ys1, jnp.stack(loop), rtol=1e-5, atol=1e-6)
    for a, b in zip(c1, c3, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_apply_batches_over_leading_axes():
    cell = compile_cell(find_seed("LSTM"))
    p = cell.init(jax.random.key(0), IN, H)
    x = rand(jax.random.key(1), 2, 3, IN)
    carry, y = cell.apply(p, cell.initial_carry((2, 3), H), x)
    assert y.shape == (2, 3, H)
    _, y_flat = cell.apply(p, cell.initial_carry((6,), H), x.reshape(6, IN))
    np.testing.assert_allclose(y.reshape(6, H), y_flat, rtol=1e-6)
    _, y_one = cell.apply(p, cell.initial_carry((), H), x[1, 2])
    np.testing.assert_allclose(y[1, 2], y_one, rtol=1e-6)


def test_isomorphic_cells_share_one_program():
    g = find_seed("MUT3")
    before = cache_info()
    a, b = compile_cell(g), compile_cell(relabel(g, 7))
    assert a.program is b.program and a.hash == b.hash
    assert cache_info()["hits"] >= before["hits"] + 1
    # the same key gives the same parameters, up to node names
    pa, pb = a.init(jax.random.key(0), H, H), b.init(jax.random.key(0), H, H)
    assert sorted(jax.tree.leaves(jax.tree.map(jnp.sum, pa))) == sorted(jax.tree.leaves(jax.tree.map(jnp.sum, pb)))
    # and a jitted scan is traced once for both
    scan = jax.jit(lambda p, c, xs: a.program.scan(p, c, xs))
    xs = jnp.ones((3, 2, H))
    carry = a.initial_carry((2,), H)
    from cellsearch.nn.compile import canonical_program

    _, prog = canonical_program(g, True)
    canon_params = prog.init(jax.random.key(0), H, H)
    scan(canon_params, carry, xs)
    scan(canon_params, carry, xs)
    assert scan._cache_size() == 1


def test_forget_bias_survives_init():
    p = compile_cell(find_seed("LSTM-b")).init(jax.random.key(0), IN, H, init_scale=3.0)
    np.testing.assert_array_equal(p["lin_f"]["b"], np.ones(H))
    np.testing.assert_array_equal(p["lin_i"]["b"], np.zeros(H))


def test_init_scale_bounds_and_linear_a_identity():
    """Kernels lie in U[-s, s] with s = init_scale / sqrt(hidden) and fill it; a Linear(a, x)
    kernel is a * I plus that noise times LINEAR_A_NOISE, drawn alike by JAX and by NumPy."""
    cell = compile_cell(find_seed("LSTM"))
    p = cell.init(jax.random.key(0), H, H, init_scale=0.5)
    w = np.asarray(p["lin_i"]["W_x"])
    assert np.abs(w).max() <= bound(0.5, H) + 1e-7 and np.abs(w).max() > 0.9 * bound(0.5, H)
    b = CellBuilder("lin", states=("h",))
    b.output("h", b.add(b.tanh(b.linear(b.state("h"), scale=1.1, node="L")), b.x))
    g = b.build()
    for p in (compile_cell(g).init(jax.random.key(1), H, H, init_scale=0.5), init_numpy(g, 1, H, H, init_scale=0.5)):
        noise = np.asarray(p["L"]["W_h_prev"]) - 1.1 * np.eye(H)
        assert 0 < np.abs(noise).max() <= LINEAR_A_NOISE * bound(0.5, H) + 1e-7
        assert np.abs(np.diag(np.asarray(p["L"]["W_h_prev"])) - 1.1).max() <= LINEAR_A_NOISE * bound(0.5, H) + 1e-6


def test_unequal_widths_are_a_clear_compile_error():
    with pytest.raises(CompileError, match="input_size == hidden_size"):
        compile_cell(find_seed("MUT1")).init(jax.random.key(0), 3, 5)
