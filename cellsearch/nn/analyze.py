"""``cellsearch analyze``: what a trained cell's nodes do on validation data.

For every ``sigmoid`` node (a gate) of every layer, the gate-saturation scatter of Karpathy,
Johnson & Fei-Fei 2015: each unit is a point at (fraction of time steps with the gate below
0.1, fraction above 0.9), so units near the top-left are gates that are almost always open,
the bottom-right almost always shut, and the diagonal ones switch. For every computed node,
a histogram of its activations. The cell is trained here (one setting, the search's trainer)
or read from a run saved by ``cellsearch train ... --save DIR`` (``--params DIR``).
"""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from cellsearch.cell.canon import structural_hash
from cellsearch.cell.graph import CellGraph
from cellsearch.config import TrainConfig
from cellsearch.errors import ConfigError
from cellsearch.hparams import HParams
from cellsearch.nn.compile import compile_cell
from cellsearch.tasks import TASKS, make_task, task_options

LOW, HIGH = 0.1, 0.9


def trace_model(cell, params, inputs, dense: bool) -> list[dict[str, np.ndarray]]:
    """Every node's values per layer, ``[{node: (T, B, H)}, ...]``, on ``inputs`` ``(B, T[, D])``."""
    h = inputs @ params["embed"]["W"] + params["embed"]["b"] if dense else params["embed"]["W"][inputs]
    xs = jnp.swapaxes(jnp.asarray(h), 0, 1)
    out = []
    for p in params["layers"]:
        carry = cell.initial_carry(xs.shape[1:2], xs.shape[-1])
        _, xs, rec = jax.jit(cell.trace)(p, carry, xs)
        out.append({n: np.asarray(v) for n, v in rec.items()})
    return out


def saturation(values: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per unit: the fraction of (scored) positions below 0.1 and above 0.9.

    >>> low, high = saturation(np.array([[[0.0, 0.5]], [[0.95, 0.5]]]))  # (T=2, B=1, H=2)
    >>> low.tolist(), high.tolist()
    ([0.5, 0.0], [0.5, 0.0])
    """
    v = values.reshape(-1, values.shape[-1])
    w = np.ones(len(v)) if mask is None else np.swapaxes(mask, 0, 1).reshape(-1)
    n = max(w.sum(), 1.0)
    return ((v < LOW) * w[:, None]).sum(0) / n, ((v > HIGH) * w[:, None]).sum(0) / n


def trained(graph: CellGraph, task_name: str, *, params_dir: str | None, data_dir: str | None, steps: int,
            budget: int | None, seed: int, lr: float):
    """(params, task): read from a saved run, or trained here with one setting."""
    from cellsearch.nn.train import train_and_evaluate

    if params_dir:
        from cellsearch.nn.checkpoint import load_run

        run = load_run(params_dir)
        if structural_hash(run.graph) != structural_hash(graph):
            raise ConfigError(f"{params_dir!r} holds another cell than the one named; pass the same cell or omit it")
        if run.task != task_name:
            raise ConfigError(f"{params_dir!r} was trained on {run.task!r}, not {task_name!r}")
        task = make_task(task_name, **task_options(task_name, {}, data_dir))
        return jax.tree.map(jnp.asarray, run.params), task
    task = make_task(task_name, **task_options(task_name, {}, data_dir))
    h = HParams(learning_rate=lr, init_scale=1.0, max_grad_norm=5.0, layers=1,
                param_budget=budget or TASKS[task_name].budget, seed=seed)
    (r,) = train_and_evaluate(graph, task, [h], TrainConfig(steps=steps, batch_size=32, chunk=100, data_seed=seed),
                              keep_params=True)
    if r.status != "ok":
        raise ConfigError(f"training {task_name!r} {r.status}; try a lower learning rate (--lr)")
    return jax.tree.map(jnp.asarray, r.params), task


def analyze(graph: CellGraph, task_name: str, out_dir: str, *, params_dir: str | None = None,
            data_dir: str | None = None, steps: int = 1000, budget: int | None = None, seed: int = 0,
            lr: float = 1.0, batches: int = 4) -> dict:
    """Writes ``saturation.png``, ``activations.png`` and ``analysis.json`` into ``out_dir``;
    returns the summary (per gate: mean fractions left- and right-saturated)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot write into {out_dir!r}: {e.strerror}") from None
    params, task = trained(graph, task_name, params_dir=params_dir, data_dir=data_dir, steps=steps, budget=budget,
                           seed=seed, lr=lr)
    cell = compile_cell(graph)
    evb = task.eval_batches("valid")[:batches]
    if not evb:
        raise ConfigError(f"task {task_name!r} has no validation data to analyze")
    layers: list[dict[str, list[np.ndarray]]] = []
    masks = []
    for b in evb:
        for k, rec in enumerate(trace_model(cell, params, b.inputs, task.spec.dense_input)):
            if len(layers) <= k:
                layers.append({})
            for n, v in rec.items():
                layers[k].setdefault(n, []).append(v)
        masks.append(b.mask)
    mask = np.concatenate(masks, 0)  # (B, T)
    recs = [{n: np.concatenate(vs, 1) for n, vs in L.items()} for L in layers]  # (T, B_total, H)
    gates = [n for n in graph.nodes if graph.nodes[n]["op"] == "sigmoid"]
    summary: dict = {"task": task_name, "layers": len(recs), "gates": {}}
    if gates:
        fig, axes = plt.subplots(1, len(gates), figsize=(max(6.0, 3.4 * len(gates)), 3.6), squeeze=False)
        for j, n in enumerate(gates):
            ax = axes[0][j]
            for k, rec in enumerate(recs):
                low, high = saturation(rec[n], mask)
                ax.scatter(low, high, s=10, alpha=0.6, label=f"layer {k + 1}")
                summary["gates"].setdefault(n, []).append({"left": float(low.mean()), "right": float(high.mean())})
            ax.plot([0, 1], [1, 0], color="grey", lw=0.8, ls="--")
            ax.set_xlim(-0.02, 1.02)
            ax.set_ylim(-0.02, 1.02)
            ax.set_aspect("equal")
            ax.set_xlabel("fraction left-saturated (< 0.1)")
            ax.set_ylabel("fraction right-saturated (> 0.9)")
            ax.set_title(f"gate {n}")
            if len(recs) > 1:
                ax.legend(fontsize=7)
        fig.suptitle(f"Gate saturation on {task_name}\n(validation data, one point per unit)", fontsize=10)
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, "saturation.png"), dpi=100)
        plt.close(fig)
    nodes = [n for n in recs[0] if graph.nodes[n]["op"] != "output"]
    cols = min(4, len(nodes))
    rows = -(-len(nodes) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
    flat = mask.T.reshape(-1) > 0
    for j, n in enumerate(nodes):
        ax = axes[j // cols][j % cols]
        v = recs[0][n].reshape(-1, recs[0][n].shape[-1])[flat].ravel()
        ax.hist(v, bins=50, color="#2a7ab9")
        ax.set_title(f"{n} ({graph.nodes[n]['op']})", fontsize=9)
    for j in range(len(nodes), rows * cols):
        axes[j // cols][j % cols].axis("off")
    fig.suptitle("Activations of every node (layer 1)")
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "activations.png"), dpi=90)
    plt.close(fig)
    with open(os.path.join(out_dir, "analysis.json"), "w") as f:
        json.dump(summary, f, indent=1)
    return summary
