"""GPU checks (``-m gpu``; skipped without a GPU): the compiled cells and a training run on GPU."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cellsearch.config import TrainConfig
from cellsearch.evolve.spaces import find_seed
from cellsearch.hparams import HParams
from cellsearch.nn.compile import compile_cell, default_hoist
from cellsearch.nn.train import train_and_evaluate
from cellsearch.tasks import make_task

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("name", ["LSTM", "GRU", "MUT1", "Vanilla"])
def test_gpu_scan_matches_cpu(name):
    cell = compile_cell(find_seed(name))
    params = cell.init(jax.random.key(0), 32, 32)
    xs = jax.random.normal(jax.random.key(1), (20, 8, 32))
    carry = cell.initial_carry((8,), 32)
    gpu = jax.devices("gpu")[0]
    cpu = jax.devices("cpu")[0]
    with jax.default_device(gpu):
        _, y_gpu = jax.jit(cell.scan)(jax.device_put(params, gpu), carry, jax.device_put(xs, gpu))
    with jax.default_device(cpu):
        _, y_cpu = jax.jit(cell.scan)(jax.device_put(params, cpu), carry, jax.device_put(xs, cpu))
    np.testing.assert_allclose(np.asarray(y_gpu), np.asarray(y_cpu), rtol=2e-3, atol=2e-4)
    assert default_hoist()  # input projections are hoisted on accelerators


def test_gpu_training_runs_vmapped():
    results = train_and_evaluate(find_seed("GRU"), make_task("memorize"),
                                 [HParams(learning_rate=lr, param_budget=20_000, seed=i) for i, lr in enumerate([1.0, 2.0])],
                                 TrainConfig(steps=300, batch_size=32, chunk=100))
    assert all(r.status == "ok" and np.isfinite(r.metrics["nll"]) for r in results)
    assert jnp.zeros(1).devices().pop().platform == "gpu"


def test_gpu_population_trains_like_each_cell_alone():
    """The interpreter on a GPU: a population of different cells trains to the results of
    each cell trained alone on the same GPU (looser than on CPU: GPU matmuls round
    differently with their shapes)."""
    from cellsearch.nn.population import train_population

    task = make_task("arithmetic", max_digits=2)
    cells = [find_seed("LSTM"), find_seed("GRU"), find_seed("MUT1")]
    settings = [[HParams(learning_rate=0.5, init_scale=1.0, max_grad_norm=1.0, param_budget=5000, seed=i)]
                for i in range(len(cells))]
    cfg = TrainConfig(steps=50, batch_size=16, chunk=50, data_seed=1)
    together = train_population(cells, task, settings, cfg)
    for g, hs, got in zip(cells, settings, together, strict=True):
        alone = train_and_evaluate(g, task, hs, cfg)[0]
        assert got[0].status == alone.status == "ok"
        np.testing.assert_allclose(got[0].metrics["nll"], alone.metrics["nll"], rtol=1e-3)
