"""The sequence model around a cell: input embedding, layers of the cell, readout.

Inputs are embedded to the hidden size (so MUT1/MUT2, which add raw ``x`` to hidden-width
values, always fit, §2.5 [I]); dense inputs (piano rolls) get an affine map instead. Every
layer runs the compiled cell with :func:`jax.lax.scan` from a zero state; the readout is an
affine map to the output classes (softmax) or notes (Bernoulli). All parameters start in
``U[-s, s]`` with ``s = init_scale / sqrt(hidden)`` (§3.8 [S1]); biases start at zero (or a
node's ``bias_init``).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax

from cellsearch.compile import CompiledCell
from cellsearch.tasks.base import TaskSpec


def init_model(seed: int, cell: CompiledCell, spec: TaskSpec, hidden: int, layers: int, init_scale: float = 1.0):
    """Parameters ``{"embed", "layers": [cell params...], "out"}``, drawn with NumPy from ``seed``
    (host-side: a new cell costs no compilation to initialise)."""
    s = np.float32(init_scale / np.sqrt(float(hidden)))

    def u(tag, shape):
        return (np.random.default_rng((seed, tag)).uniform(-1.0, 1.0, shape) * s).astype(np.float32)

    embed = {"W": u(0, (spec.vocab_size, hidden))}
    if spec.dense_input:
        embed["b"] = np.zeros((hidden,), np.float32)
    return {
        "embed": embed,
        "layers": [cell.init_numpy((seed, 2, k), hidden, hidden, init_scale=init_scale) for k in range(layers)],
        "out": {"W": u(1, (hidden, spec.output_size)), "b": np.zeros((spec.output_size,), np.float32)},
    }


def apply_model(cell: CompiledCell, params, inputs, spec: TaskSpec, *, unroll: int = 1):
    """Logits ``(B, T, output_size)`` for inputs ``(B, T)`` tokens or ``(B, T, D)`` vectors."""
    if spec.dense_input:
        x = inputs @ params["embed"]["W"] + params["embed"]["b"]
    else:
        x = params["embed"]["W"][inputs]  # (B, T, H)
    xs = jnp.swapaxes(x, 0, 1)  # (T, B, H): scan over time
    hidden = xs.shape[-1]
    for p in params["layers"]:
        _, xs = cell.scan(p, cell.initial_carry(xs.shape[1:2], hidden, xs.dtype), xs, unroll=unroll)
    ys = jnp.swapaxes(xs, 0, 1)  # (B, T, H)
    return ys @ params["out"]["W"] + params["out"]["b"]


def metric_sums(cell: CompiledCell, params, batch, spec: TaskSpec, *, unroll: int = 1):
    """Sums over scored positions: ``nll``, ``correct``, ``count`` and the same on ``mask2``."""
    return sums_from_logits(apply_model(cell, params, batch.inputs, spec, unroll=unroll), batch, spec)


def _nll(logits, targets, spec: TaskSpec):
    """NLL per position: softmax cross-entropy, or Bernoulli summed over the notes of a step."""
    if spec.output == "bernoulli":
        return optax.sigmoid_binary_cross_entropy(logits, targets).sum(-1)
    return optax.softmax_cross_entropy_with_integer_labels(logits, targets)


def sums_from_logits(logits, batch, spec: TaskSpec):
    """The sums of :func:`metric_sums` for given logits ``(B, T, classes)``."""
    nll = _nll(logits, batch.targets, spec)
    if spec.output == "bernoulli":
        correct = jnp.all((logits > 0) == (batch.targets > 0.5), axis=-1).astype(jnp.float32)
    else:
        correct = (jnp.argmax(logits, -1) == batch.targets).astype(jnp.float32)
    m, m2 = batch.mask, batch.mask2
    return {
        "nll": (nll * m).sum(),
        "correct": (correct * m).sum(),
        "count": m.sum(),
        "correct2": (correct * m2).sum(),
        "count2": m2.sum(),
    }


def loss_fn(cell: CompiledCell, params, batch, spec: TaskSpec, *, unroll: int = 1):
    """Mean NLL per scored position (no accuracy work: this is the training loss)."""
    nll = _nll(apply_model(cell, params, batch.inputs, spec, unroll=unroll), batch.targets, spec)
    return (nll * batch.mask).sum() / jnp.maximum(batch.mask.sum(), 1.0)
