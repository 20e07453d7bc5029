"""flax's own recurrent tests, run on cells of the search.

Ported from flax 0.12.8 (commit 3a491108): ``tests/linen/linen_recurrent_test.py`` (``RNNTest``,
``BidirectionalTest``) and ``tests/nn/recurrent_test.py`` of nnx (``TestLSTMCell``, ``TestRNN``):
every test that exercises a cell, with flax's assertions, run for the LSTM and GRU-RA seeds and a
one-edit child of the LSTM in place of ``nn.LSTMCell`` / ``nnx.LSTMCell`` / ``nnx.GRUCell``. Not
ported: the tests of ``flip_sequences`` (no cell), ``ConvLSTMCell``'s spatial dimensions, custom
activation functions (a graph cell's activations are its graph) and a hand-written custom cell.
Where flax checks its own parameter names (``kernel``, ``bias``), the same property is checked on
the graph's layout (every ``W_<operand>`` is ``(in or hidden, hidden)``, every ``b`` is
``(hidden,)``). A one-state cell's carry is a bare array, as flax's ``GRUCell``'s.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn
from flax import nnx
from flax.nnx.nn import initializers

from cellsearch.cell.canon import structural_hash
from cellsearch.cell.graph import needs_equal_widths
from cellsearch.evolve.mutate import mutate
from cellsearch.evolve.spaces import find_seed, load_space
from cellsearch.nn.export import GraphCell, NNXGraphCell


def _child():
    """A fixed one-edit child of the LSTM: the first drawn from seed 2026 that runs at any input
    width (flax's tests feed 3 or 5 inputs to 4 or 6 units; a child that adds ``x`` to hidden-width
    values needs equal widths)."""
    lstm, rng = find_seed("LSTM"), np.random.default_rng(2026)
    while True:
        child, _ = mutate(lstm, rng=rng, space=load_space(), edits="1")
        if not needs_equal_widths(child):
            assert structural_hash(child) != structural_hash(lstm)
            return child


CELLS = {"LSTM": find_seed("LSTM"), "GRU-RA": find_seed("GRU-RA"), "child": _child()}
params_of = pytest.mark.parametrize("name", list(CELLS))


def linen_cell(name, features, **kw):
    return GraphCell(features, CELLS[name], **kw)


def nnx_cell(name, in_features, hidden_features, rngs, **kw):
    return NNXGraphCell(in_features, hidden_features, CELLS[name], rngs=rngs, **kw)


def n_states(name) -> int:
    return len(CELLS[name].graph["states"])


def carry_leaves(carry):
    return jax.tree_util.tree_leaves(carry)


def check_layout(params, channels_in, channels_out):
    """flax's check of its layers' ``kernel`` and ``bias``, on the graph's layout."""
    for node in params.values():
        for k, v in node.items():
            if k == "b":
                assert v.shape == (channels_out,)
            else:
                assert v.shape[0] in (channels_in, channels_out) and v.shape[1] == channels_out


# ----------------------------------------------------------------------------- linen: RNNTest


@params_of
def test_rnn_basic_forward(name):
    batch_size, seq_len, channels_in, channels_out = 10, 40, 5, 15
    rnn = nn.RNN(linen_cell(name, channels_out), return_carry=True)
    xs = jnp.ones((batch_size, seq_len, channels_in))
    variables = rnn.init(jax.random.key(0), xs)
    carry, ys = rnn.apply(variables, xs)
    assert ys.shape == (batch_size, seq_len, channels_out)
    check_layout(variables["params"]["cell"], channels_in, channels_out)


@params_of
def test_rnn_multiple_batch_dims(name):
    batch_dims, seq_len, channels_in, channels_out = (10, 11), 40, 5, 15
    rnn = nn.RNN(linen_cell(name, channels_out), return_carry=True)
    xs = jnp.ones((*batch_dims, seq_len, channels_in))
    variables = rnn.init(jax.random.key(0), xs)
    carry, ys = rnn.apply(variables, xs)
    assert ys.shape == (*batch_dims, seq_len, channels_out)
    check_layout(variables["params"]["cell"], channels_in, channels_out)


@params_of
def test_rnn_unroll(name):
    batch_size, seq_len, channels_in, channels_out = 10, 40, 5, 15
    rnn = nn.RNN(linen_cell(name, channels_out), unroll=10, return_carry=True)
    xs = jnp.ones((batch_size, seq_len, channels_in))
    variables = rnn.init(jax.random.key(0), xs)
    carry, ys = rnn.apply(variables, xs)
    assert ys.shape == (batch_size, seq_len, channels_out)
    check_layout(variables["params"]["cell"], channels_in, channels_out)


@params_of
def test_rnn_time_major(name):
    seq_len, batch_size, channels_in, channels_out = 40, 10, 5, 15
    rnn = nn.RNN(linen_cell(name, channels_out), time_major=True, return_carry=True)
    xs = jnp.ones((seq_len, batch_size, channels_in))
    variables = rnn.init(jax.random.key(0), xs)
    carry, ys = rnn.apply(variables, xs)
    for leaf in carry_leaves(carry):  # carry state should not be zeros after apply
        assert not np.allclose(leaf, jnp.zeros_like(leaf))
        assert leaf.shape == (batch_size, channels_out)
    assert ys.shape == (seq_len, batch_size, channels_out)
    check_layout(variables["params"]["cell"], channels_in, channels_out)


@params_of
def test_numerical_equivalence(name):
    batch_size, seq_len, channels_in, channels_out = 3, 4, 5, 6
    rnn = nn.RNN(linen_cell(name, channels_out), return_carry=True)
    xs = jnp.ones((batch_size, seq_len, channels_in))
    (carry, ys), variables = rnn.init_with_output(jax.random.key(0), xs)
    cell_carry = rnn.cell.initialize_carry(jax.random.key(0), xs[:, 0].shape)
    cell_params = variables["params"]["cell"]
    for i in range(seq_len):
        cell_carry, y = rnn.cell.apply({"params": cell_params}, cell_carry, xs[:, i, :])
        np.testing.assert_allclose(y, ys[:, i, :], rtol=1e-5)
    np.testing.assert_allclose(cell_carry, carry, rtol=1e-5)


@params_of
def test_numerical_equivalence_with_mask(name):
    batch_size, seq_len, channels_in, channels_out = 3, 4, 5, 6
    seq_lengths = jax.random.randint(jax.random.key(0), (batch_size,), minval=1, maxval=seq_len + 1)
    rnn = nn.RNN(linen_cell(name, channels_out), return_carry=True)
    xs = jnp.ones((batch_size, seq_len, channels_in))
    (carry, ys), variables = rnn.init_with_output(jax.random.key(0), xs, seq_lengths=seq_lengths)
    cell_carry = rnn.cell.initialize_carry(jax.random.key(0), xs[:, 0].shape)
    cell_params = variables["params"]["cell"]
    carries = []
    for i in range(seq_len):
        cell_carry, y = rnn.cell.apply({"params": cell_params}, cell_carry, xs[:, i, :])
        np.testing.assert_allclose(y, ys[:, i, :], rtol=1e-5)
        carries.append(cell_carry)
    for batch_idx, length in enumerate(seq_lengths):
        t = int(length) - 1
        for carries_t_, carry_ in zip(carry_leaves(carries[t]), carry_leaves(carry), strict=True):
            np.testing.assert_allclose(carries_t_[batch_idx], carry_[batch_idx], rtol=1e-5)


@params_of
def test_numerical_equivalence_single_batch(name):
    batch_size, seq_len, channels_in, channels_out = 3, 4, 5, 6
    rnn = nn.RNN(linen_cell(name, channels_out), return_carry=True)
    xs = jnp.ones((batch_size, seq_len, channels_in))
    (carry, ys), variables = rnn.init_with_output(jax.random.key(0), xs)
    cell_params = variables["params"]["cell"]
    for batch_idx in range(batch_size):
        cell_carry = rnn.cell.initialize_carry(jax.random.key(0), xs[:1, 0].shape)
        for i in range(seq_len):
            cell_carry, y = rnn.cell.apply({"params": cell_params}, cell_carry, xs[batch_idx, i, :][None])
            np.testing.assert_allclose(y[0], ys[batch_idx, i, :], rtol=1e-6)
        carry_i = jax.tree_util.tree_map(lambda x, b=batch_idx: x[b: b + 1], carry)
        np.testing.assert_allclose(cell_carry, carry_i, rtol=1e-6)


@params_of
def test_numerical_equivalence_single_batch_nn_scan(name):
    batch_size, seq_len, channels_in, channels_out = 3, 4, 5, 6
    cell = linen_cell(name, channels_out)
    rnn = nn.scan(GraphCell, in_axes=1, out_axes=1, variable_broadcast="params",
                  split_rngs={"params": False})(channels_out, CELLS[name])
    xs = jnp.ones((batch_size, seq_len, channels_in))
    carry = rnn.initialize_carry(jax.random.key(0), xs[:, 0].shape)
    (carry, ys), variables = rnn.init_with_output(jax.random.key(0), carry, xs)
    cell_params = variables["params"]
    for batch_idx in range(batch_size):
        cell_carry = cell.initialize_carry(jax.random.key(0), xs[:1, 0].shape)
        for i in range(seq_len):
            cell_carry, y = cell.apply({"params": cell_params}, cell_carry, xs[batch_idx: batch_idx + 1, i, :])
            np.testing.assert_allclose(y[0], ys[batch_idx, i, :], rtol=1e-5)
        carry_i = jax.tree_util.tree_map(lambda x, b=batch_idx: x[b: b + 1], carry)
        np.testing.assert_allclose(cell_carry, carry_i, rtol=1e-5)


@params_of
def test_numerical_equivalence_single_batch_jax_scan(name):
    batch_size, seq_len, channels_in, channels_out = 3, 4, 5, 6
    xs = jax.random.uniform(jax.random.key(0), (batch_size, seq_len, channels_in))
    cell = linen_cell(name, channels_out)
    carry = cell.initialize_carry(jax.random.key(0), xs[:, 0].shape)
    variables = cell.init(jax.random.key(0), carry, xs[:, 0])
    cell_params = variables["params"]

    def scan_fn(carry, x):
        return cell.apply({"params": cell_params}, carry, x)

    carry, ys = jax.lax.scan(scan_fn, carry, xs.swapaxes(0, 1))
    ys = ys.swapaxes(0, 1)
    cell_carry = cell.initialize_carry(jax.random.key(0), xs[:, 0].shape)
    for i in range(seq_len):
        cell_carry, y = cell.apply({"params": cell_params}, cell_carry, xs[:, i, :])
        np.testing.assert_allclose(y, ys[:, i, :], rtol=1e-4)
    np.testing.assert_allclose(cell_carry, carry, rtol=1e-4)


@pytest.mark.parametrize("keep_order", [False, True], ids=["reverse", "reverse_but_keep_order"])
@params_of
def test_reverse(name, keep_order):
    batch_size, seq_len, channels_in, channels_out = 3, 4, 5, 6
    rnn = nn.RNN(linen_cell(name, channels_out), return_carry=True, reverse=True, keep_order=keep_order)
    xs = jnp.ones((batch_size, seq_len, channels_in))
    (carry, ys), variables = rnn.init_with_output(jax.random.key(0), xs)
    cell_params = variables["params"]["cell"]
    for batch_idx in range(batch_size):
        cell_carry = rnn.cell.initialize_carry(jax.random.key(0), xs[:1, 0].shape)
        for i in range(seq_len):
            cell_carry, y = rnn.cell.apply({"params": cell_params}, cell_carry, xs[batch_idx, seq_len - i - 1, :][None])
            t = seq_len - i - 1 if keep_order else i
            np.testing.assert_allclose(y[0], ys[batch_idx, t, :], rtol=1e-5)
        np.testing.assert_allclose(cell_carry, jax.tree_util.tree_map(lambda x, b=batch_idx: x[b: b + 1], carry),
                                   rtol=1e-5)


@params_of
def test_basic_seq_lengths(name):
    x = jnp.ones((2, 10, 6))
    lstm = nn.RNN(linen_cell(name, 265))
    variables = lstm.init(jax.random.key(0), x)
    y = lstm.apply(variables, x, seq_lengths=jnp.array([5, 5]))
    assert y.shape[:2] == (2, 10)


# ----------------------------------------------------------------------------- linen: BidirectionalTest


@params_of
def test_bidirectional(name):
    batch_size, seq_len, channels_in, channels_out = 3, 4, 5, 6
    bdirectional = nn.Bidirectional(nn.RNN(linen_cell(name, channels_out)), nn.RNN(linen_cell(name, channels_out)))
    xs = jnp.ones((batch_size, seq_len, channels_in))
    ys, variables = bdirectional.init_with_output(jax.random.key(0), xs)
    assert ys.shape == (batch_size, seq_len, channels_out * 2)


@params_of
def test_shared_cell(name):
    batch_size, seq_len, channels_in, channels_out = 3, 4, 5, 6
    cell = linen_cell(name, channels_out)
    bdirectional = nn.Bidirectional(nn.RNN(cell), nn.RNN(cell))
    xs = jnp.ones((batch_size, seq_len, channels_in))
    ys, variables = bdirectional.init_with_output(jax.random.key(0), xs)
    assert ys.shape == (batch_size, seq_len, channels_out * 2)


@params_of
def test_custom_merge_fn(name):
    batch_size, seq_len, channels_in, channels_out = 3, 4, 5, 6
    bdirectional = nn.Bidirectional(nn.RNN(linen_cell(name, channels_out)), nn.RNN(linen_cell(name, channels_out)),
                                    merge_fn=lambda x, y: x + y)
    xs = jnp.ones((batch_size, seq_len, channels_in))
    ys, variables = bdirectional.init_with_output(jax.random.key(0), xs)
    assert ys.shape == (batch_size, seq_len, channels_out)


@params_of
def test_return_carry(name):
    batch_size, seq_len, channels_in, channels_out = 3, 4, 5, 6
    bdirectional = nn.Bidirectional(nn.RNN(linen_cell(name, channels_out)), nn.RNN(linen_cell(name, channels_out)),
                                    return_carry=True)
    xs = jnp.ones((batch_size, seq_len, channels_in))
    (carry, ys), variables = bdirectional.init_with_output(jax.random.key(0), xs)
    carry_forward, carry_backward = carry
    assert ys.shape == (batch_size, seq_len, channels_out * 2)
    one = (batch_size, channels_out)
    want = one if n_states(name) == 1 else (one,) * n_states(name)
    assert jax.tree_util.tree_map(jnp.shape, carry_forward) == want
    assert jax.tree_util.tree_map(jnp.shape, carry_backward) == want


# ----------------------------------------------------------------------------- nnx: TestLSTMCell


@params_of
def test_nnx_basic(name):
    module = nnx_cell(name, 3, 4, nnx.Rngs(0))
    x = jnp.ones((2, 3))
    carry = module.initialize_carry(x.shape, nnx.Rngs(0))
    new_carry, y = module(carry, x)
    assert y.shape == (2, 4)


@params_of
def test_nnx_sequence(name):
    module = nnx_cell(name, 3, 4, nnx.Rngs(0))
    x = jax.random.normal(jax.random.PRNGKey(1), (5, 2, 3))  # seq_len, batch, feature
    carry = module.initialize_carry(x.shape[1:], nnx.Rngs(0))
    outputs = []
    for t in range(x.shape[0]):
        carry, y = module(carry, x[t])
        outputs.append(y)
    assert jnp.stack(outputs).shape == (5, 2, 4)


@params_of
def test_nnx_with_different_dtypes(name):
    module = nnx_cell(name, 3, 4, nnx.Rngs(0), dtype=jnp.bfloat16, param_dtype=jnp.bfloat16)
    x = jnp.ones((2, 3), dtype=jnp.bfloat16)
    carry = module.initialize_carry(x.shape, nnx.Rngs(0))
    new_carry, y = module(carry, x)
    assert y.dtype == jnp.bfloat16 and y.shape == (2, 4)


@params_of
def test_nnx_initialize_carry(name):
    module = nnx_cell(name, 3, 4, nnx.Rngs(0))
    carry = module.initialize_carry((1, 3), nnx.Rngs(0), carry_init=initializers.ones)
    for c in carry_leaves(carry):
        assert jnp.all(c == 1.0) and c.shape == (1, 4)
    stream = nnx.Rngs(0).carry  # an RngStream, as nnx.RNN passes it
    for c in carry_leaves(module.initialize_carry((1, 3), stream, carry_init=initializers.ones)):
        assert jnp.all(c == 1.0)


@params_of
def test_nnx_with_variable_sequence_length(name):
    module = nnx_cell(name, 3, 4, nnx.Rngs(0))
    x = jnp.array([[[1, 2, 3], [4, 5, 6], [0, 0, 0]], [[7, 8, 9], [10, 11, 12], [13, 14, 15]]], jnp.float32)
    seq_lengths = jnp.array([2, 3])
    batch_size, max_seq_length = x.shape[:2]
    carry = module.initialize_carry((batch_size, 3), nnx.Rngs(0))
    outputs = []
    for t in range(max_seq_length):
        carry, y = module(carry, x[:, t, :])
        outputs.append(y)
    outputs = jnp.stack(outputs, axis=1)
    mask = jnp.arange(max_seq_length)[None, :] < seq_lengths[:, None]
    assert (outputs * mask[:, :, None]).shape == (2, 3, 4)


@params_of
def test_nnx_stateful(name):
    module = nnx_cell(name, 3, 4, nnx.Rngs(0))
    x1, x2 = jnp.ones((1, 3)), jnp.ones((1, 3)) * 2
    carry = module.initialize_carry(x1.shape, nnx.Rngs(0))
    carry, y1 = module(carry, x1)
    carry, y2 = module(carry, x2)
    assert y1.shape == (1, 4) and y2.shape == (1, 4)


def _copy_linen_into_nnx(variables, module):
    for node, p in variables.items():
        for k, v in p.items():
            module.weights[node][k].set_value(v)


@params_of
def test_nnx_equivalence_with_flax_linen(name):
    """nnx and linen compute the same after copying the parameters (flax maps gate by gate; a graph
    cell's two modules share one layout)."""
    in_features, hidden_features = 3, 4
    x = jax.random.normal(jax.random.PRNGKey(42), (1, in_features))
    module_nnx = nnx_cell(name, in_features, hidden_features, nnx.Rngs(0))
    carry_nnx = module_nnx.initialize_carry(x.shape, nnx.Rngs(0))
    module_linen = linen_cell(name, hidden_features)
    carry_linen = module_linen.initialize_carry(jax.random.PRNGKey(0), x.shape)
    variables_linen = module_linen.init(jax.random.PRNGKey(1), carry_linen, x)
    _copy_linen_into_nnx(variables_linen["params"], module_nnx)
    new_carry_nnx, y_nnx = module_nnx(carry_nnx, x)
    new_carry_linen, y_linen = module_linen.apply(variables_linen, carry_linen, x)
    np.testing.assert_allclose(y_nnx, y_linen, atol=1e-5)
    for c_nnx, c_linen in zip(carry_leaves(new_carry_nnx), carry_leaves(new_carry_linen), strict=True):
        np.testing.assert_allclose(c_nnx, c_linen, atol=1e-5)


def test_nnx_lstm_equals_flax_nnx_lstm_cell():
    """The LSTM seed equals flax's own ``nnx.LSTMCell`` after copying its weights gate by gate."""
    x = jax.random.normal(jax.random.PRNGKey(42), (2, 3))
    ref = nnx.LSTMCell(in_features=3, hidden_features=4, rngs=nnx.Rngs(0))
    mine = nnx_cell("LSTM", 3, 4, nnx.Rngs(1))
    for gate, flax_in in (("i", "ii"), ("f", "if_"), ("g", "ig"), ("o", "io")):
        node = mine.weights[f"lin_{gate}"]
        node["W_x"].set_value(getattr(ref, flax_in).kernel[...])
        node["W_h_prev"].set_value(getattr(ref, f"h{gate}").kernel[...])
        node["b"].set_value(getattr(ref, f"h{gate}").bias[...])
    carry = ref.initialize_carry(x.shape, nnx.Rngs(0))
    (c1, h1), y1 = ref(carry, x)
    (c2, h2), y2 = mine(carry, x)
    for a, b in ((c1, c2), (h1, h2), (y1, y2)):
        np.testing.assert_allclose(a, b, atol=1e-5)


# ----------------------------------------------------------------------------- nnx: TestRNN


@params_of
def test_nnx_rnn_with_cell(name):
    """flax's ``test_rnn_with_lstm_cell`` and ``test_rnn_with_gru_cell``."""
    cell = nnx_cell(name, 3, 4, nnx.Rngs(0))
    rnn = nnx.RNN(cell)
    x = jnp.ones((2, 5, 3))
    carry = cell.initialize_carry((2, 3), nnx.Rngs(0))
    assert rnn(x, initial_carry=carry).shape == (2, 5, 4)


@params_of
def test_nnx_rnn_time_major(name):
    cell = nnx_cell(name, 3, 4, nnx.Rngs(2))
    rnn = nnx.RNN(cell, time_major=True)
    x = jnp.ones((5, 2, 3))
    carry = cell.initialize_carry(x.shape[1:2] + x.shape[2:], nnx.Rngs(2))
    assert rnn(x, initial_carry=carry).shape == (5, 2, 4)


@params_of
def test_nnx_rnn_reverse(name):
    cell = nnx_cell(name, 3, 4, nnx.Rngs(3))
    rnn = nnx.RNN(cell, reverse=True)
    x = jnp.tile(jnp.arange(5), (2, 1)).reshape(2, 5, 1)
    x = jnp.concatenate([x, x, x], axis=-1).astype(jnp.float32)
    outputs = rnn(x)
    assert outputs.shape == (2, 5, 4) and outputs[:, ::-1, :].shape == (2, 5, 4)


@params_of
def test_nnx_rnn_with_seq_lengths(name):
    cell = nnx_cell(name, 3, 4, nnx.Rngs(4))
    rnn = nnx.RNN(cell, return_carry=True)
    x = jnp.array([[[1, 1, 1], [2, 2, 2], [3, 3, 3], [0, 0, 0], [0, 0, 0]],
                   [[4, 4, 4], [5, 5, 5], [6, 6, 6], [7, 7, 7], [8, 8, 8]]], jnp.float32)
    seq_lengths = jnp.array([3, 5])
    carry = cell.initialize_carry((2, 3), nnx.Rngs(4))
    final_carry, outputs = rnn(x, initial_carry=carry, seq_lengths=seq_lengths)
    assert outputs.shape == (2, 5, 4)
    for c in carry_leaves(final_carry):  # c, h: (batch_size, hidden_features)
        assert c.shape == (2, 4)


@params_of
def test_nnx_rnn_with_keep_order(name):
    cell = nnx_cell(name, 3, 4, nnx.Rngs(5))
    rnn = nnx.RNN(cell, reverse=True, keep_order=True)
    x = jnp.tile(jnp.arange(5), (2, 1)).reshape(2, 5, 1)
    x = jnp.concatenate([x, x, x], axis=-1).astype(jnp.float32)
    carry = cell.initialize_carry((2, 3), nnx.Rngs(5))
    assert rnn(x, initial_carry=carry).shape == (2, 5, 4)


@params_of
def test_nnx_rnn_equivalence_with_flax_linen(name):
    in_features, hidden_features = 3, 4
    seq_length, batch_size = 5, 2
    x = jax.random.normal(jax.random.PRNGKey(42), (batch_size, seq_length, in_features))
    cell_nnx = nnx_cell(name, in_features, hidden_features, nnx.Rngs(0))
    rnn_nnx = nnx.RNN(cell_nnx)
    cell_linen = linen_cell(name, hidden_features)
    rnn_linen = nn.RNN(cell_linen)
    carry_linen = cell_linen.initialize_carry(jax.random.PRNGKey(0), x[:, 0].shape)
    variables_linen = rnn_linen.init(jax.random.PRNGKey(1), x)
    _copy_linen_into_nnx(variables_linen["params"]["cell"], cell_nnx)
    carry_nnx = cell_nnx.initialize_carry((batch_size, in_features), nnx.Rngs(0))
    outputs_nnx = rnn_nnx(x, initial_carry=carry_nnx)
    outputs_linen = rnn_linen.apply(variables_linen, x, initial_carry=carry_linen)
    np.testing.assert_allclose(outputs_nnx, outputs_linen, atol=1e-5)


@params_of
def test_nnx_rnn_with_unroll(name):
    cell = nnx_cell(name, 3, 4, nnx.Rngs(6))
    rnn = nnx.RNN(cell, unroll=2)
    x = jnp.ones((2, 6, 3))
    carry = cell.initialize_carry((2, 3), nnx.Rngs(6))
    assert rnn(x, initial_carry=carry).shape == (2, 6, 4)


@params_of
def test_nnx_rnn_with_different_dtypes(name):
    cell = nnx_cell(name, 3, 4, nnx.Rngs(8), dtype=jnp.float16, param_dtype=jnp.float16)
    rnn = nnx.RNN(cell)
    x = jnp.ones((2, 5, 3), dtype=jnp.float16)
    carry = cell.initialize_carry((2, 3), nnx.Rngs(8))
    outputs = rnn(x, initial_carry=carry)
    assert outputs.dtype == jnp.float16 and outputs.shape == (2, 5, 4)


@params_of
def test_nnx_rnn_with_variable_batch_size(name):
    cell = nnx_cell(name, 3, 4, nnx.Rngs(9))
    rnn = nnx.RNN(cell)
    for batch_size in [1, 2, 5]:
        x = jnp.ones((batch_size, 5, 3))
        carry = cell.initialize_carry((batch_size, 3), nnx.Rngs(9))
        assert rnn(x, initial_carry=carry).shape == (batch_size, 5, 4)


@params_of
def test_nnx_recurrent_dropout(name):
    class WithRecurrentDropout(NNXGraphCell):
        def __init__(self, *, rngs, in_features, hidden_features, dropout_rate, **kwargs):
            super().__init__(in_features, hidden_features, CELLS[name], rngs=rngs, **kwargs)
            self.recurrent_dropout = nnx.Dropout(rate=dropout_rate, deterministic=False,
                                                 rng_collection="recurrent_dropout", rngs=rngs)

        def __call__(self, carry, x):
            new_carry, y = super().__call__(carry, x)
            return jax.tree.map(self.recurrent_dropout, new_carry), y

    class RNNWithRecurrentDropout(nnx.Module):
        def __init__(self, *, rngs, in_features, hidden_features=32, dropout_rate=0.5, recurrent_dropout_rate=0.25):
            cell = WithRecurrentDropout(in_features=in_features, hidden_features=hidden_features, rngs=rngs,
                                        dropout_rate=recurrent_dropout_rate)
            self.lstm = nnx.RNN(cell, broadcast_rngs="recurrent_dropout")
            self.dropout = nnx.Dropout(dropout_rate, deterministic=False, rngs=rngs)
            self.dense = nnx.Linear(in_features=hidden_features, out_features=1, rngs=rngs)

        def __call__(self, x):
            x = self.lstm(x)
            x = self.dropout(x)
            return self.dense(x[:, -1, :])

    model = RNNWithRecurrentDropout(in_features=32, hidden_features=64, dropout_rate=0.2,
                                    recurrent_dropout_rate=0.1, rngs=nnx.Rngs(0, recurrent_dropout=1))
    x = jnp.ones((8, 10, 32))
    assert model.lstm.cell.recurrent_dropout.rngs.count[...] == 0
    assert model(x).shape == (8, 1)
    assert model.lstm.cell.recurrent_dropout.rngs.count[...] == 1
