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

**Model.** Embedding to the hidden size (affine for piano rolls), ``layers`` layers of the
cell, readout. Inverted dropout on the non-recurrent connections only (Zaremba 2014), never at
evaluation. Every weight starts in ``U[-init, init]`` (the cell's biases at ``bias_init``).

**Schedules.** ``fixed``: ``lr`` for ``epochs`` epochs. ``zaremba``: epoch ``e`` (from 1) uses
``lr * lr_decay ** max(0, e - decay_after)``. ``paper`` (Jozefowicz §3.7): when validation has
not improved for 3 epochs, halve the rate every epoch for 4 more, then stop (``epochs`` caps).

The search scores cheaper (:mod:`cellsearch.train`); this module gives final numbers. Runs
save and resume per epoch (``save_dir``); :func:`save_trained` saves the trainer's runs.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
import optax

from cellsearch.compile import CompiledCell, compile_cell
from cellsearch.config import ProtocolConfig
from cellsearch.errors import ConfigError, DataError
from cellsearch.graph import CellGraph, from_json, to_json

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


def stream_data(task: str, data_dir: str | None = None) -> StreamData:
    """The whole splits of a stream task (``ptb``, ``nottingham``, ``pianomidi``)."""
    from cellsearch.tasks import TASKS, make_task, task_options

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


# ----------------------------------------------------------------------------- model


def init_params(seed: int, cell: CompiledCell, data: StreamData, cfg: ProtocolConfig) -> dict:
    """Every weight in ``U[-init, init]`` (drawn with NumPy), the cell's biases at ``bias_init``."""
    n, s = cfg.hidden, cfg.init

    def u(tag, shape):
        return np.random.default_rng((seed, tag)).uniform(-s, s, shape).astype(np.float32)

    embed = {"W": u(0, (data.size, n))}
    if data.dense:
        embed["b"] = np.zeros((n,), np.float32)
    return {"embed": embed,
            "layers": [cell.init_numpy((seed, 2, k), n, n, init_scale=s * math.sqrt(n)) for k in range(cfg.layers)],
            "out": {"W": u(1, (n, data.size)), "b": np.zeros((data.size,), np.float32)}}


def _dropout(key, v, rate: float):
    if rate == 0.0 or key is None:
        return v
    keep = jax.random.bernoulli(key, 1.0 - rate, v.shape)
    return jnp.where(keep, v / (1.0 - rate), 0.0)


def forward(cell: CompiledCell, params, carries, x, *, dense: bool, dropout: float = 0.0, key=None):
    """Logits ``(B, T, classes)`` and the new carries for inputs ``(B, T[, D])``."""
    h = x @ params["embed"]["W"] + params["embed"]["b"] if dense else params["embed"]["W"][x]
    keys = list(jax.random.split(key, len(params["layers"]) + 1)) if key is not None else [None] * (
        len(params["layers"]) + 1)
    hs = jnp.swapaxes(h, 0, 1)
    new = []
    for k, (p, c) in enumerate(zip(params["layers"], carries, strict=True)):
        hs = _dropout(keys[k], hs, dropout)
        c, hs = cell.scan(p, c, hs)
        new.append(c)
    hs = _dropout(keys[-1], hs, dropout)
    return jnp.swapaxes(hs, 0, 1) @ params["out"]["W"] + params["out"]["b"], new


def _nll(logits, y, dense: bool):
    if dense:
        return optax.sigmoid_binary_cross_entropy(logits, y).sum(-1)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y)


def make_steps(cell: CompiledCell, dense: bool, cfg: ProtocolConfig):
    """Jitted ``train(params, carries, x, y, m, lr, key)`` and ``evaluate(params, carries, x, y, m)``."""

    def loss(params, carries, x, y, m, key):
        logits, new = forward(cell, params, carries, x, dense=dense, dropout=cfg.dropout, key=key)
        nll = _nll(logits, y, dense) * m
        return nll.sum() / x.shape[0], (new, nll.sum(), m.sum())

    @jax.jit
    def train(params, carries, x, y, m, lr, key):
        (_, (new, total, count)), grads = jax.value_and_grad(loss, has_aux=True)(params, carries, x, y, m, key)
        opt = optax.chain(optax.clip_by_global_norm(cfg.clip), optax.sgd(lr))
        updates, _ = opt.update(grads, opt.init(params), params)
        return optax.apply_updates(params, updates), jax.lax.stop_gradient(new), total, count

    @jax.jit
    def evaluate(params, carries, x, y, m):
        logits, new = forward(cell, params, carries, x, dense=dense)
        nll = _nll(logits, y, dense) * m
        return new, nll.sum(), m.sum()

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


@dataclass
class RunState:
    """What a run has done; saved after every epoch so a killed run resumes there."""

    epoch: int = 0
    lr: float = 0.0
    best_valid: float = math.inf
    since_best: int = 0
    decay_left: int = -1
    history: list[dict] = field(default_factory=list)
    done: bool = False


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
        loaded = _resume(save_dir, graph, data, cfg)
        if loaded is not None:
            state, params, best = loaded
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
            raise ConfigError(f"training diverged in epoch {e} (validation NLL {valid}); try a lower --lr or --clip")
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
            if state.decay_left < 0 and state.since_best >= 3:
                state.decay_left = 4
            if state.decay_left == 0:
                state.done = True
            elif state.decay_left > 0:
                state.lr, state.decay_left = state.lr / 2, state.decay_left - 1
        if save_dir:
            _save(save_dir, graph, data, cfg, state, params, best)
        if on_epoch:
            on_epoch(row)
    test = evaluate_split(cell, evaluate, best, data, "test", cfg)
    result = {"task": data.name, "valid": _metrics(state.best_valid, data.dense), "test": _metrics(test, data.dense),
              "epochs": state.epoch, "history": state.history}
    if save_dir:
        _save(save_dir, graph, data, cfg, state, params, best, result)
    return result


# ----------------------------------------------------------------------------- saving


def _tree_to_bytes(tree) -> bytes:
    from flax import serialization

    return serialization.msgpack_serialize(jax.tree.map(np.asarray, tree))


def _save(d: str, graph, data: StreamData, cfg: ProtocolConfig, state: RunState, params, best, result=None) -> None:
    os.makedirs(d, exist_ok=True)
    files = {"cell.json": to_json(graph).encode() + b"\n", "params.msgpack": _tree_to_bytes(best),
             "last.msgpack": _tree_to_bytes(params),
             "run.json": json.dumps({"task": data.name, "config": asdict(cfg), "state": asdict(state),
                                     "result": result}, indent=1).encode()}
    _write_files(d, files)


def _write_files(d: str, files: dict[str, bytes]) -> None:
    for name, blob in files.items():  # write-then-rename: a kill never leaves a half file
        tmp = os.path.join(d, name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(blob)
        os.replace(tmp, os.path.join(d, name))


def _resume(d: str, graph, data: StreamData, cfg: ProtocolConfig):
    path = os.path.join(d, "run.json")
    if not os.path.exists(path):
        return None
    saved = load_run(d)
    if saved.config != cfg or saved.task != data.name or to_json(saved.graph) != to_json(graph):
        raise ConfigError(f"{d!r} holds a run with another cell, task or settings; pass another --save folder")
    with open(os.path.join(d, "last.msgpack"), "rb") as f:
        from flax import serialization

        last = jax.tree.map(jnp.asarray, serialization.msgpack_restore(f.read()))
    return saved.state, _as_lists(last), _as_lists(jax.tree.map(jnp.asarray, saved.params))


def _as_lists(tree):
    """msgpack keeps lists as dicts keyed '0', '1', ...: the layers back to a list."""
    if isinstance(tree.get("layers"), dict):
        tree = {**tree, "layers": [tree["layers"][k] for k in sorted(tree["layers"], key=int)]}
    return tree


def save_trained(d: str, graph, task: str, result, train: dict) -> None:
    """Saves a run of the search's trainer (``train --save`` on any task, confirmation runs): cell,
    final parameters (``keep_params``), setting, schedule and result, as :func:`load_run` reads."""
    os.makedirs(d, exist_ok=True)
    meta = {"kind": "settings", "task": task, "hidden": int(result.metrics["hidden"]), "hparams": asdict(result.hparams),
            "train": train, "result": {"status": result.status, "score": result.score,
                                       "metrics": {k: v for k, v in result.metrics.items() if isinstance(v, int | float)}}}
    _write_files(d, {"cell.json": to_json(graph).encode() + b"\n", "params.msgpack": _tree_to_bytes(result.params),
                     "run.json": json.dumps(meta, indent=1).encode()})


@dataclass
class SavedRun:
    """A saved run: the cell, its parameters (``{"embed", "layers": [cell params per layer],
    "out"}``), its hidden size, task and result; ``config`` and ``state`` for a run of the
    standard protocol (:func:`run_protocol`), ``settings`` (the setting and schedule) for a
    run of the search's trainer (:func:`save_trained`)."""

    graph: CellGraph
    params: dict
    config: ProtocolConfig | None
    task: str
    state: RunState | None
    result: dict | None
    hidden: int = 0
    settings: dict | None = None

    def cell_params(self, layer: int = 0) -> dict:
        """One layer's cell parameters, in :func:`cellsearch.compile.compile_cell`'s layout."""
        return self.params["layers"][layer]


def load_run(d: str) -> SavedRun:
    """Reads a run saved with ``cellsearch train ... --save DIR``."""
    from flax import serialization

    try:
        with open(os.path.join(d, "run.json")) as f:
            meta = json.load(f)
        with open(os.path.join(d, "cell.json")) as f:
            graph = from_json(f.read())
        with open(os.path.join(d, "params.msgpack"), "rb") as f:
            params = _as_lists(serialization.msgpack_restore(f.read()))
    except (OSError, ValueError, KeyError) as e:
        raise DataError(f"{d!r} is not a saved cellsearch run (cell.json, params.msgpack, run.json): {e}") from None
    if meta.get("kind") == "settings":
        return SavedRun(graph, params, None, meta["task"], None, meta.get("result"), int(meta["hidden"]),
                        {"hparams": meta["hparams"], "train": meta["train"]})
    cfg = ProtocolConfig(**meta["config"])
    return SavedRun(graph, params, cfg, meta["task"], RunState(**meta["state"]), meta.get("result"), cfg.hidden)
