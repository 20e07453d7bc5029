"""The standard final-evaluation protocols: Zaremba et al. 2014 for PTB, Boulanger-Lewandowski
et al. 2012 for music (Jozefowicz et al. §5.2 (b) and (c)).

**Language model (PTB, any token stream).** The training stream is cut into ``batch_size``
contiguous streams; consecutive ``bptt``-token windows of them are the batches, and the
recurrent state is carried from one window to the next (truncated BPTT; reset at each epoch).
Validation and test run over the **whole** split as one stream (``eval_batch_size`` 1 by
default) with the state carried, and the perplexity is ``exp`` of the mean NLL over every
predicted token. The training loss is the NLL summed over the window's time steps and
averaged over the batch (as the TensorFlow PTB tutorial that reproduces Zaremba 2014).

**Music.** Each piece is a stream: pieces are grouped ``batch_size`` at a time (shuffled each
epoch), padded and masked, and read in ``bptt`` windows with the state carried within the
piece. The metric is the NLL per time step summed over the 88 notes, over every time step of
the split (whole pieces, the state carried).

**Model.** The search's sequence model (:mod:`cellsearch.nn.model`): embedding to the hidden
size (affine for piano rolls), ``layers`` layers of the cell, readout, with inverted dropout on
the non-recurrent connections only (Zaremba 2014), never at evaluation. Every weight starts in
``U[-init, init]`` (the cell's biases at ``bias_init``).

**Schedules.** ``fixed``: ``lr`` for ``epochs`` epochs. ``zaremba``: epoch ``e`` (from 1) uses
``lr * lr_decay ** max(0, e - decay_after)``. ``paper`` (Jozefowicz §3.7,
:func:`cellsearch.config.paper_schedule`): when validation has not improved for ``patience``
epochs, halve the rate every epoch for ``decay_epochs`` more, then stop (``epochs`` caps).

The search scores cheaper (:mod:`cellsearch.nn.train`); this module gives final numbers. Runs
save and resume per epoch (``save_dir``, :mod:`cellsearch.nn.checkpoint`). A run whose validation
NLL is not finite raises :class:`~cellsearch.errors.Diverged`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax

from cellsearch.cell.graph import CellGraph
from cellsearch.cell.params import init_scale_of
from cellsearch.config import ProtocolConfig, paper_schedule
from cellsearch.errors import ConfigError, DataError, Diverged
from cellsearch.nn.checkpoint import RunState, resume_protocol_run, save_protocol_run
from cellsearch.nn.compile import CompiledCell, compile_cell
from cellsearch.nn.model import forward, init_model, nll, sgd
from cellsearch.tasks import TASKS, make_task, task_options

# ----------------------------------------------------------------------------- data


@dataclass
class StreamData:
    """Streams of one task: ``splits[name]`` is a list of sequences (one token array for a
    language model, one ``(T, 88)`` piano roll per piece for music)."""

    name: str
    splits: dict[str, list[np.ndarray]]
    dense: bool
    size: int  # vocabulary, or notes per step

    @property
    def output(self) -> str:
        return "bernoulli" if self.dense else "softmax"

    # the model's view of the data (:class:`cellsearch.nn.model.Shape`)
    @property
    def vocab_size(self) -> int:
        return self.size

    @property
    def output_size(self) -> int:
        return self.size

    @property
    def dense_input(self) -> bool:
        return self.dense


def stream_data(task: str, data_dir: str | None = None) -> StreamData:
    """The whole splits of a stream task (``ptb``, ``nottingham``, ``pianomidi``)."""
    if task not in TASKS or not TASKS[task].data:
        raise ConfigError(f"the standard protocol is for ptb, nottingham and pianomidi, not {task!r}")
    t = make_task(task, **task_options(task, {}, data_dir))
    if task == "ptb":
        return StreamData(task, {s: [t.ids[s]] for s in ("train", "valid", "test")}, False, len(t.vocab))
    return StreamData(task, {s: list(t.data[s]) for s in ("train", "valid", "test")}, True, 88)


def token_streams(ids: np.ndarray, batch_size: int) -> np.ndarray:
    """``ids`` cut into ``batch_size`` contiguous streams ``(batch_size, len // batch_size)``.

    >>> token_streams(np.arange(10), 3).tolist()
    [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    """
    n = len(ids) // batch_size
    if n < 2:
        raise DataError(f"a stream of {len(ids)} tokens is too short for {batch_size} streams")
    return np.asarray(ids[: n * batch_size]).reshape(batch_size, n)


def groups(data: StreamData, split: str, batch_size: int, rng: np.random.Generator | None = None
           ) -> list[tuple[np.ndarray, np.ndarray]]:
    """The split as groups of parallel streams ``(rows (B, L[, D]), lengths (B,))``: the token
    stream cut into ``batch_size`` streams, or the pieces ``batch_size`` at a time (shuffled
    with ``rng``, padded with zeros)."""
    seqs = data.splits[split]
    if not data.dense:
        rows = token_streams(seqs[0], batch_size)
        return [(rows, np.full(len(rows), rows.shape[1]))]
    order = rng.permutation(len(seqs)) if rng is not None else np.arange(len(seqs))
    out = []
    for k in range(0, len(order), batch_size):
        part = [seqs[i] for i in order[k:k + batch_size]]
        longest = max(len(p) for p in part)
        rows = np.zeros((batch_size, longest, part[0].shape[1]), np.float32)
        lengths = np.zeros(batch_size, np.int64)
        for j, p in enumerate(part):
            rows[j, : len(p)], lengths[j] = p, len(p)
        out.append((rows, lengths))
    return out


def windows(rows: np.ndarray, lengths: np.ndarray, bptt: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Consecutive windows ``(x, y, mask)`` of ``bptt`` steps: ``y`` is ``x`` shifted by one,
    the last window is padded (mask 0), and a row's steps past its length are masked.

    >>> rows = np.arange(7)[None]
    >>> [(x.tolist(), y.tolist(), m.tolist()) for x, y, m in windows(rows, np.array([7]), 4)]
    [([[0, 1, 2, 3]], [[1, 2, 3, 4]], [[1.0, 1.0, 1.0, 1.0]]), ([[4, 5, 0, 0]], [[5, 6, 0, 0]], [[1.0, 1.0, 0.0, 0.0]])]
    """
    b, n = rows.shape[:2]
    for i in range(0, n - 1, bptt):
        t = min(bptt, n - 1 - i)
        x = np.zeros((b, bptt, *rows.shape[2:]), rows.dtype)
        y = np.zeros_like(x)
        x[:, :t], y[:, :t] = rows[:, i:i + t], rows[:, i + 1:i + 1 + t]
        pos = i + 1 + np.arange(bptt)
        m = ((pos[None, :] < lengths[:, None]) & (np.arange(bptt)[None, :] < t)).astype(np.float32)
        yield x, y, m


# ----------------------------------------------------------------------------- steps


def init_params(seed: int, cell: CompiledCell, data: StreamData, cfg: ProtocolConfig) -> dict:
    """The model's initial parameters (:func:`cellsearch.nn.model.init_model`), every weight in
    ``U[-cfg.init, cfg.init]``."""
    return init_model(seed, cell, data, cfg.hidden, cfg.layers, init_scale_of(cfg.init, cfg.hidden))


def make_steps(cell: CompiledCell, dense: bool, cfg: ProtocolConfig):
    """Jitted ``train(params, carries, x, y, m, lr, key)`` and ``evaluate(params, carries, x, y, m)``."""

    output = "bernoulli" if dense else "softmax"

    def loss(params, carries, x, y, m, key):
        logits, new = forward(cell, params, x, dense=dense, carries=carries, dropout=cfg.dropout, key=key)
        losses = nll(logits, y, output) * m
        return losses.sum() / x.shape[0], (new, losses.sum(), m.sum())

    @jax.jit
    def train(params, carries, x, y, m, lr, key):
        (_, (new, total, count)), grads = jax.value_and_grad(loss, has_aux=True)(params, carries, x, y, m, key)
        opt = sgd(lr, cfg.clip)
        updates, _ = opt.update(grads, opt.init(params), params)
        return optax.apply_updates(params, updates), jax.lax.stop_gradient(new), total, count

    @jax.jit
    def evaluate(params, carries, x, y, m):
        logits, new = forward(cell, params, x, dense=dense, carries=carries)
        losses = nll(logits, y, output) * m
        return new, losses.sum(), m.sum()

    return train, evaluate


def zero_carries(cell: CompiledCell, batch: int, cfg: ProtocolConfig):
    return [cell.initial_carry((batch,), cfg.hidden) for _ in range(cfg.layers)]


def evaluate_split(cell, evaluate, params, data: StreamData, split: str, cfg: ProtocolConfig) -> float:
    """Mean NLL over every predicted token (time step) of the whole split, the state carried."""
    total, count = 0.0, 0.0
    for rows, lengths in groups(data, split, cfg.eval_batch_size):
        carries = zero_carries(cell, rows.shape[0], cfg)
        for x, y, m in windows(rows, lengths, cfg.bptt):
            carries, s, n = evaluate(params, carries, x, y, m)
            total, count = total + float(s), count + float(n)
    return total / max(count, 1.0)


# ----------------------------------------------------------------------------- runs


def _metrics(nll: float, dense: bool) -> dict[str, float]:
    return {"nll": nll} if dense else {"nll": nll, "perplexity": math.exp(min(nll, 700.0))}


def run_protocol(graph: CellGraph, data: StreamData, cfg: ProtocolConfig, *, save_dir: str | None = None,
                 on_epoch: Callable[[dict], None] | None = None,
                 on_window: Callable[[int], None] | None = None) -> dict:
    """Trains ``graph`` under ``cfg`` and returns ``{"valid": ..., "test": ..., "history": ...}``
    (the test metric of the parameters with the best validation). With ``save_dir`` the best
    parameters, the cell and the run's state are written there after every epoch, and a run
    started again with the same directory and settings continues from its last epoch."""
    cell = compile_cell(graph)
    train, evaluate = make_steps(cell, data.dense, cfg)
    state, params, best = RunState(lr=cfg.lr), None, None
    if save_dir:
        loaded = resume_protocol_run(save_dir, graph, data.name, cfg)
        if loaded is not None:
            state, params, best = (loaded[0], *(jax.tree.map(jnp.asarray, p) for p in loaded[1:]))
    if params is None:
        params = jax.tree.map(jnp.asarray, init_params(cfg.seed, cell, data, cfg))
        best = params
    key = jax.random.key(cfg.seed)
    while not state.done and state.epoch < cfg.epochs:
        e = state.epoch + 1
        lr = cfg.lr_at(e) if cfg.schedule != "paper" else state.lr
        rng = np.random.default_rng([cfg.seed, e])
        t0, total, count, n = time.perf_counter(), 0.0, 0.0, 0
        for rows, lengths in groups(data, "train", cfg.batch_size, rng):
            carries = zero_carries(cell, rows.shape[0], cfg)
            for x, y, m in windows(rows, lengths, cfg.bptt):
                if cfg.max_windows is not None and n >= cfg.max_windows:
                    break
                params, carries, s, c = train(params, carries, x, y, m, jnp.float32(lr),
                                              jax.random.fold_in(jax.random.fold_in(key, e), n))
                total, count, n = total + float(s), count + float(c), n + 1
                if on_window:
                    on_window(1)
        valid = evaluate_split(cell, evaluate, params, data, "valid", cfg)
        if not math.isfinite(valid):
            raise Diverged(f"training diverged in epoch {e} (validation NLL {valid}); try a lower --lr or --clip")
        improved = valid < state.best_valid
        if improved:
            state.best_valid, state.since_best, best = valid, 0, params
        else:
            state.since_best += 1
        row = {"epoch": e, "lr": lr, "train": _metrics(total / max(count, 1.0), data.dense),
               "valid": _metrics(valid, data.dense), "seconds": time.perf_counter() - t0}
        state.history.append(row)
        state.epoch = e
        if cfg.schedule == "paper":
            state.decay_left, halve, state.done = paper_schedule(state.since_best, state.decay_left,
                                                                 cfg.patience, cfg.decay_epochs)
            state.lr = state.lr / 2 if halve else state.lr
        if save_dir:
            save_protocol_run(save_dir, graph, data.name, cfg, state, params, best)
        if on_epoch:
            on_epoch(row)
    test = evaluate_split(cell, evaluate, best, data, "test", cfg)
    result = {"task": data.name, "valid": _metrics(state.best_valid, data.dense), "test": _metrics(test, data.dense),
              "epochs": state.epoch, "history": state.history}
    if save_dir:
        save_protocol_run(save_dir, graph, data.name, cfg, state, params, best, result)
    return result
