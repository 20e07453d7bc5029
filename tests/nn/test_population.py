"""The population interpreter equals the compiled cells: one step, and training."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cellsearch.cell.canon import canonical
from cellsearch.cell.graph import validate
from cellsearch.cell.ops import ACTIVATIONS, BINARY_OPS
from cellsearch.config import TrainConfig
from cellsearch.errors import ConfigError
from cellsearch.evolve.mutate import mutate
from cellsearch.evolve.spaces import find_seed, load_space
from cellsearch.hparams import HParams
from cellsearch.nn.compile import compile_cell
from cellsearch.nn.encoding import OPCODES, SizeClass, encode, plan, stack
from cellsearch.nn.population import Interpreter, pack, train_population
from cellsearch.nn.train import train_and_evaluate
from cellsearch.tasks import make_task
from tests.helpers import all_seeds


def random_children(parent: str, n: int, seed: int):
    """``n`` random descendants (1-3 mutations) of a seed of the paper's space."""
    space = load_space("jozefowicz2015")
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        g = find_seed(parent)
        for _ in range(int(rng.integers(1, 4))):
            g, _ = mutate(g, rng=rng, space=space)
        out.append(g)
    return out


def test_every_op_has_a_code():
    assert set(OPCODES) == {*ACTIVATIONS, *BINARY_OPS, "const"}


def test_one_step_equals_compiled_cells_for_every_seed_and_200_children():
    cells = [g for _, _, g in all_seeds()] + random_children("LSTM", 100, 0) + random_children("GRU", 100, 1)
    plans = [plan(g) for g in cells]
    size = SizeClass.of(p.size for p in plans)
    H, B = 12, 3
    rng = np.random.default_rng(0)
    x = rng.normal(size=(B, H)).astype(np.float32)
    encs, banks, carries, want = [], [], [], []
    # members get hidden sizes 12 and 9: a smaller member is zero-padded and masked
    for k, p in enumerate(plans):
        n = H if k % 2 == 0 else 9
        c = compile_cell(p.graph)
        params = c.init_numpy(k, n, n, init_scale=1.5)
        carry = tuple(rng.normal(size=(B, n)).astype(np.float32) for _ in c.states)
        want.append(jax.tree.map(np.asarray, c.apply(params, carry, x[:, :n])))
        enc, lay = encode(p, size)
        encs.append((enc, (np.arange(H) < n).astype(np.float32)))
        banks.append(pack(lay, size, H, params))
        padded = [np.pad(v, ((0, 0), (0, H - n))) for v in carry]
        carries.append(padded + [np.zeros((B, H), np.float32)] * (size.states - len(carry)))
    enc = stack([e for e, _ in encs])
    hm = jnp.asarray(np.stack([m for _, m in encs]))
    bank = jax.tree.map(lambda *a: jnp.asarray(np.stack(a)), *banks)
    carry = tuple(jnp.asarray(np.stack([c[i] for c in carries])) for i in range(size.states))
    new, y = jax.jit(jax.vmap(lambda e, m, p, c: Interpreter(e, size, m).step(p, c, x[:, :p["W"].shape[-1]])))(
        enc, hm, bank, carry)
    for k, (w_carry, w_y) in enumerate(want):
        n = w_y.shape[-1]
        np.testing.assert_allclose(np.asarray(y[k])[:, :n], w_y, rtol=1e-5, atol=1e-6, err_msg=f"cell {k} output")
        assert not np.asarray(y[k])[:, n:].any()  # padding stays zero
        for i, w in enumerate(w_carry):
            np.testing.assert_allclose(np.asarray(new[i][k])[:, :n], w, rtol=1e-5, atol=1e-6, err_msg=f"cell {k}")
    assert np.abs(np.asarray(y)).max() > 0.1  # the check above compares something


def test_children_encode_validly():
    for g in random_children("LSTM", 30, 5):
        validate(g)
        p = plan(g)
        enc, _ = encode(p, p.size)
        assert enc.src.max(initial=0) < p.size.slots and enc.out.max() < p.size.slots


def test_too_small_a_size_class_is_refused():
    p = plan(find_seed("LSTM"))
    with pytest.raises(ConfigError, match=r"larger interpreter size class \(linears \(4,\) \(have \(2,\)\)"):
        encode(p, p.size._replace(linears=(2,)))
    with pytest.raises(ConfigError, match=r"levels \(0, 5\)"):
        encode(p, p.size._replace(levels=(0, 4)))


def _close(a, b, rel):
    """Equal to ``rel`` of the tensor's scale (an entry near zero is not held to its own
    relative error: float rounding of another summation order is ~1e-7 of the scale)."""
    a, b = np.asarray(a), np.asarray(b)
    assert np.abs(a - b).max() <= rel * np.abs(b).max(), (np.abs(a - b).max(), np.abs(b).max())


def test_fifty_training_steps_equal_each_cell_trained_alone():
    """Two vmapped settings per cell; cells of other hidden sizes (padded), a peephole cell
    (diagonal weights) and a mutated child, in one program."""
    task, k = make_task("arithmetic", max_digits=2), 2
    cells = [find_seed("LSTM"), find_seed("MUT1"), find_seed("Vanilla", "greff2015"), *random_children("GRU", 1, 7)]
    settings = [[HParams(learning_rate=lr, init_scale=1.0, max_grad_norm=clip, param_budget=2000, seed=10 * i + j)
                 for j, (lr, clip) in enumerate([(0.5, 1.0), (1.0, 5.0)][:k])] for i in range(len(cells))]
    cfg = TrainConfig(steps=50, batch_size=8, chunk=50, data_seed=3)
    together = train_population(cells, task, settings, cfg, keep_params=True)
    compared = 0
    for g, hs, got in zip(cells, settings, together, strict=True):
        alone = train_and_evaluate(canonical(g).graph, task, hs, cfg, keep_params=True)
        for a, b in zip(got, alone, strict=True):
            assert a.status == b.status and a.steps == b.steps
            if a.status != "ok":  # diverged alone too, at the same step
                continue
            compared += 1
            _close(a.metrics["nll"], b.metrics["nll"], 1e-4)
            assert a.metrics["hidden"] == b.metrics["hidden"]
            for pa, pb in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
                assert pa.shape == pb.shape
                _close(pa, pb, 1e-4)
    assert compared >= len(cells) * k - 2


def test_hand_written_backward_equals_the_compiled_cells_gradient():
    """The interpreter's backward pass (written by hand, see ``population._program``) gives
    the compiled cell's gradient for parameters, input and state, every seed and 10
    children, over three steps (so a state's gradient flows through the next step)."""
    cells = [g for _, _, g in all_seeds()] + random_children("LSTM", 5, 3) + random_children("GRU", 5, 4)
    plans = [plan(g) for g in cells]
    size = SizeClass.of(p.size for p in plans)
    H, B, T = 8, 2, 3
    rng = np.random.default_rng(1)
    xs = rng.normal(size=(T, B, H)).astype(np.float32)
    encs, banks, want = [], [], []
    for k, p in enumerate(plans):
        c = compile_cell(p.graph)
        params = c.init_numpy(k, H, H, init_scale=1.0)

        def loss(params, xs, c=c):
            _, ys = c.scan(params, c.initial_carry((B,), H), xs, hoist=False)
            return jnp.sum(jnp.sin(ys))  # a loss that weighs every output differently

        gp, gx = jax.grad(loss, argnums=(0, 1))(params, xs)
        enc, lay = encode(p, size)
        encs.append(enc)
        banks.append(pack(lay, size, H, params))
        want.append((pack(lay, size, H, jax.tree.map(np.asarray, gp)), np.asarray(gx)))

    def loss(bank, enc, xs):
        it = Interpreter(enc, size)
        _, ys = it.scan(bank, it.initial_carry((B,), H), xs)
        return jnp.sum(jnp.sin(ys))

    banks = jax.tree.map(lambda *a: jnp.asarray(np.stack(a)), *banks)
    gb, gx = jax.jit(jax.vmap(jax.grad(loss, argnums=(0, 2)), in_axes=(0, 0, None)))(banks, stack(encs), xs)
    for k, (wb, wx) in enumerate(want):
        for name in wb:
            np.testing.assert_allclose(np.asarray(gb[name][k]), wb[name], rtol=1e-5, atol=1e-5, err_msg=f"{k} {name}")
        np.testing.assert_allclose(np.asarray(gx[k]), wx, rtol=1e-5, atol=1e-5, err_msg=f"{k} x")


def test_a_member_computes_the_same_numbers_alone_or_with_the_rest_of_its_cover():
    """What a resumed search round relies on: with the member count and the cover fixed, a
    cell trained with fewer others gets bit-identical results (without the cover its program
    would be padded differently, and XLA's rounding changes with the shape)."""
    task = make_task("arithmetic", max_digits=2)
    cells = random_children("LSTM", 2, 11) + random_children("GRU", 2, 12)
    settings = [[HParams(learning_rate=1.0, init_scale=1.0, max_grad_norm=5.0, param_budget=3000, seed=i)]
                for i in range(len(cells))]
    cfg = TrainConfig(steps=10, batch_size=8, chunk=10, data_seed=1)
    cover = (cells, [3000])
    alone = train_population(cells[:1], task, settings[:1], cfg, keep_params=True, members=4, cover=cover)[0][0]
    together = train_population(cells, task, settings, cfg, keep_params=True, members=4, cover=cover)[0][0]
    assert alone.metrics == together.metrics
    for a, b in zip(jax.tree.leaves(alone.params), jax.tree.leaves(together.params), strict=True):
        assert np.array_equal(a, b)
