"""flax modules: linen GraphCell in nn.RNN and NNXGraphCell in nnx.RNN compute the compiled cell."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn
from flax import nnx

from cellsearch.evolve.spaces import find_seed
from cellsearch.nn.compile import compile_cell
from cellsearch.nn.export import GraphCell, NNXGraphCell


def test_linen_graph_cell_in_nn_rnn_equals_compiled_scan():
    g = find_seed("LSTM")
    cell = GraphCell.from_graph(g, features=6)
    rnn = nn.RNN(cell)
    x = jax.random.normal(jax.random.key(0), (2, 5, 4))  # (batch, time, features)
    variables = rnn.init(jax.random.key(1), x)
    ys = rnn.apply(variables, x)
    assert ys.shape == (2, 5, 6)
    params = variables["params"]["cell"]
    compiled = compile_cell(g)
    _, want = compiled.scan(params, compiled.initial_carry((2,), 6), jnp.swapaxes(x, 0, 1))
    np.testing.assert_allclose(ys, jnp.swapaxes(want, 0, 1), rtol=1e-5, atol=1e-6)
    assert cell.num_feature_axes == 1
    carry = cell.initialize_carry(jax.random.key(0), (2, 4))
    assert [c.shape for c in carry] == [(2, 6), (2, 6)]


def test_nnx_graph_cell_in_nnx_rnn_equals_compiled_scan():
    g = find_seed("GRU")
    cell = NNXGraphCell(4, 6, graph=g, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(0), (2, 5, 4))
    ys = nnx.RNN(cell)(x)
    compiled = compile_cell(g)
    _, want = compiled.scan(cell.param_dict(), compiled.initial_carry((2,), 6), jnp.swapaxes(x, 0, 1))
    np.testing.assert_allclose(ys, jnp.swapaxes(want, 0, 1), rtol=1e-5, atol=1e-6)
    assert len(jax.tree.leaves(nnx.state(cell, nnx.Param))) == 9


def test_readme_training_example_learns():
    """The README's ten-line example: a discovered cell in plain flax + optax."""
    graph = find_seed("MUT2")

    class Model(nn.Module):
        @nn.compact
        def __call__(self, tokens):
            x = nn.Embed(10, 16)(tokens)
            h = nn.RNN(GraphCell.from_graph(graph, features=16))(x)
            return nn.Dense(10)(h)

    tokens = jax.random.randint(jax.random.key(0), (8, 12), 0, 10)
    model, opt = Model(), optax.adam(1e-2)
    params = model.init(jax.random.key(1), tokens)
    state = opt.init(params)

    def loss_fn(p):  # learn to copy the previous token
        logits = model.apply(p, tokens)[:, 1:]
        return optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, :-1]).mean()

    @jax.jit
    def step(p, s):
        loss, g = jax.value_and_grad(loss_fn)(p)
        u, s = opt.update(g, s)
        return optax.apply_updates(p, u), s, loss

    first = None
    for _ in range(60):
        params, state, loss = step(params, state)
        first = loss if first is None else first
    assert float(loss) < 0.5 * float(first)
