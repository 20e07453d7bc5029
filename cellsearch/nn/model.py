"""The sequence model around a cell, for the search and the standard protocol alike.

Inputs are embedded to the hidden size (so MUT1/MUT2, which add raw ``x`` to hidden-width
values, always fit, §2.5 [I]); dense inputs (piano rolls) get an affine map instead. Every layer
runs the compiled cell with :func:`jax.lax.scan`, from the given carries or a zero state; the
readout is an affine map to the output classes (softmax) or notes (Bernoulli). Inverted dropout
acts on the non-recurrent connections only (Zaremba et al. 2014), and only when a key is given.
All weights start in ``U[-s, s]`` with ``s = bound(init_scale, hidden)``
(:func:`cellsearch.cell.params.bound`, §3.8 [S1]); biases start at zero (or a node's ``bias_init``).

The optimiser is SGD with gradient-norm clipping (:func:`sgd`), as implied by the paper's "max
gradient norm" (§3.7 [I]). The search's trainer (:mod:`cellsearch.nn.train`) and the standard
protocol (:mod:`cellsearch.nn.protocol`) both build, run, score and train the model here.
"""

from __future__ import annotations

from typing import Protocol

import jax
import jax.numpy as jnp
import numpy as np
import optax

from cellsearch.cell.params import bound


class Shape(Protocol):
    """What the model needs to know of its data (a :class:`~cellsearch.tasks.TaskSpec`, or the
    protocol's :class:`~cellsearch.nn.protocol.StreamData`)."""

    vocab_size: int  # input vocabulary, or input width for dense inputs
    output_size: int  # classes (softmax), or independent Bernoulli outputs
    dense_input: bool
    output: str  # "softmax" or "bernoulli"


def init_model(seed: int, cell, shape: Shape, hidden: int, layers: int, init_scale: float = 1.0) -> dict:
    """Parameters ``{"embed", "layers": [cell params...], "out"}``, drawn with NumPy from ``seed``
    (host-side: a new cell costs no compilation to initialise)."""
    s = np.float32(bound(init_scale, hidden))

    def u(tag, size):
        return (np.random.default_rng((seed, tag)).uniform(-1.0, 1.0, size) * s).astype(np.float32)

    embed = {"W": u(0, (shape.vocab_size, hidden))}
    if shape.dense_input:
        embed["b"] = np.zeros((hidden,), np.float32)
    return {
        "embed": embed,
        "layers": [cell.init_numpy((seed, 2, k), hidden, hidden, init_scale=init_scale) for k in range(layers)],
        "out": {"W": u(1, (hidden, shape.output_size)), "b": np.zeros((shape.output_size,), np.float32)},
    }


def inherit(fresh: dict, parent: dict) -> tuple[dict, float]:
    """``fresh`` (an :func:`init_model` tree) with every array whose path and shape ``parent``'s
    trained tree also has replaced by the parent's (EXAMM's Lamarckian inheritance: a child starts
    where its parent ended, wherever their graphs match), and the share of ``fresh``'s weights
    inherited. Paths name graph nodes, so both trees must use the same graph's node names."""
    taken = total = 0

    def walk(a, b):
        nonlocal taken, total
        if isinstance(a, dict):
            return {k: walk(v, b.get(k) if isinstance(b, dict) else None) for k, v in a.items()}
        if isinstance(a, list):
            return [walk(v, b[i] if isinstance(b, list) and i < len(b) else None) for i, v in enumerate(a)]
        total += a.size
        if b is not None and np.shape(b) == a.shape:
            taken += a.size
            return np.asarray(b, a.dtype)
        return a

    out = walk(fresh, parent)
    return out, taken / max(total, 1)


def _dropout(key, v, rate: float):
    if rate == 0.0 or key is None:
        return v
    keep = jax.random.bernoulli(key, 1.0 - rate, v.shape)
    return jnp.where(keep, v / (1.0 - rate), 0.0)


def forward(cell, params, inputs, *, dense: bool, carries=None, dropout: float = 0.0, key=None, unroll: int = 1,
            dtype=None):
    """Logits ``(B, T, classes)`` and each layer's final carry, for inputs ``(B, T)`` tokens or
    ``(B, T, D)`` vectors. ``carries`` (one per layer) defaults to zeros; dropout needs a ``key``.

    With ``dtype`` (mixed precision, e.g. ``bfloat16``) the layers and the readout compute in it from
    the float32 parameters, and the logits come back in float32, so the softmax, the loss and the
    optimiser stay in float32."""
    x = inputs @ params["embed"]["W"] + params["embed"]["b"] if dense else params["embed"]["W"][inputs]
    if dtype is not None:
        x = x.astype(dtype)
    n = len(params["layers"])
    keys = list(jax.random.split(key, n + 1)) if key is not None else [None] * (n + 1)
    xs = jnp.swapaxes(x, 0, 1)  # (T, B, H): scan over time
    if carries is None:
        carries = [cell.initial_carry(xs.shape[1:2], xs.shape[-1], xs.dtype) for _ in range(n)]
    new = []
    for k, (p, c) in enumerate(zip(params["layers"], carries, strict=True)):
        xs = _dropout(keys[k], xs, dropout)
        c, xs = cell.scan(p, c, xs, unroll=unroll, **({"dtype": dtype} if dtype is not None else {}))
        new.append(c)
    xs = _dropout(keys[-1], xs, dropout)
    if dtype is None:
        return jnp.swapaxes(xs, 0, 1) @ params["out"]["W"] + params["out"]["b"], new
    out = jnp.swapaxes(xs, 0, 1) @ params["out"]["W"].astype(dtype) + params["out"]["b"].astype(dtype)
    return out.astype(jnp.float32), new


def nll(logits, targets, output: str):
    """NLL per position: softmax cross-entropy, or Bernoulli summed over the notes of a step."""
    if output == "bernoulli":
        return optax.sigmoid_binary_cross_entropy(logits, targets).sum(-1)
    return optax.softmax_cross_entropy_with_integer_labels(logits, targets)


def apply_model(cell, params, inputs, spec: Shape, *, unroll: int = 1, dtype=None):
    """Logits ``(B, T, output_size)`` from a zero state."""
    return forward(cell, params, inputs, dense=spec.dense_input, unroll=unroll, dtype=dtype)[0]


def metric_sums(cell, params, batch, spec: Shape, *, unroll: int = 1, dtype=None):
    """Sums over scored positions: ``nll``, ``correct``, ``count`` and the same on ``mask2``."""
    return sums_from_logits(apply_model(cell, params, batch.inputs, spec, unroll=unroll, dtype=dtype), batch, spec)


def sums_from_logits(logits, batch, spec: Shape):
    """The sums of :func:`metric_sums` for given logits ``(B, T, classes)``."""
    losses = nll(logits, batch.targets, spec.output)
    if spec.output == "bernoulli":
        correct = jnp.all((logits > 0) == (batch.targets > 0.5), axis=-1).astype(jnp.float32)
    else:
        correct = (jnp.argmax(logits, -1) == batch.targets).astype(jnp.float32)
    m, m2 = batch.mask, batch.mask2
    return {
        "nll": (losses * m).sum(),
        "correct": (correct * m).sum(),
        "count": m.sum(),
        "correct2": (correct * m2).sum(),
        "count2": m2.sum(),
    }


def sgd(lr, clip) -> optax.GradientTransformation:
    """The optimiser of every trainer: ``optax.clip_by_global_norm(clip)`` then ``optax.sgd(lr)``
    (``lr`` and ``clip`` may be traced, one per vmapped member)."""
    return optax.chain(optax.clip_by_global_norm(clip), optax.sgd(lr))


def loss_fn(cell, params, batch, spec: Shape, *, unroll: int = 1, dtype=None):
    """Mean NLL per scored position (no accuracy work: this is the training loss)."""
    losses = nll(apply_model(cell, params, batch.inputs, spec, unroll=unroll, dtype=dtype), batch.targets, spec.output)
    return (losses * batch.mask).sum() / jnp.maximum(batch.mask.sum(), 1.0)
