"""Training and evaluating a cell on a task, many hyperparameter settings at once.

``train_and_evaluate(graph, task, settings, config)`` trains every setting and returns one
:class:`EvalResult` each. Settings that share a shape (layers and hidden size) train in
**one compiled program**: parameters get a leading axis and ``jax.vmap`` runs them together,
with learning rate, gradient clip and init scale as traced per-member values. Programs are
cached by (cell structure, task shape, sizes), so a cell seen again is not recompiled; with
:func:`enable_compilation_cache` the cache also survives the process.

Optimiser: SGD with gradient-norm clipping (:func:`cellsearch.nn.model.sgd`).

Schedules (``TrainConfig.schedule``):

* ``"fixed"``: ``steps`` steps, validation at the end (and every ``eval_every`` steps);
* ``"paper"`` (§3.7 [P], :func:`cellsearch.config.paper_schedule`): epochs of ``steps_per_epoch``
  steps; when validation has not improved for ``patience`` (3) epochs, halve the learning rate
  every epoch for ``decay_epochs`` (4) more epochs, then stop; at most ``steps`` steps.

A member whose loss turns NaN/inf, whose update would make a parameter NaN/inf, or whose
training or validation loss exceeds ``diverge_factor * log(classes)`` stops
with status ``"diverged"`` (score 0, whatever it reached before: the paper's rule is not
known, [I]); it is a result, never an exception. Its parameters are left at their last
finite values and the other members go on. With ``TrainConfig.members`` every program has
the same member count, so a setting's result does not depend on its company.
"""

from __future__ import annotations

import math
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from cellsearch.cell.canon import canonical
from cellsearch.cell.graph import CellGraph
from cellsearch.cell.params import hidden_size, rename_params
from cellsearch.config import TrainConfig, paper_schedule
from cellsearch.errors import ConfigError
from cellsearch.hparams import HParams
from cellsearch.nn import resume as resume_state
from cellsearch.nn.compile import CompiledCell, compile_cell
from cellsearch.nn.model import inherit, init_model, loss_fn, metric_sums, sgd
from cellsearch.tasks.base import Batch, Task, TaskSpec, stack


class EvalResult(NamedTuple):
    """The outcome of one setting: ``status`` is ``"ok"`` or ``"diverged"``; ``score`` is the
    task's higher-is-better metric at the best validation point (0.0 if diverged)."""

    hparams: HParams
    status: str
    score: float
    metrics: dict[str, float]
    steps: int
    wall_s: float
    compile_s: float
    params: Any = None  # the final model parameters, with ``keep_params`` only
    state: bytes | None = None  # what a later run continues from, with ``keep_state`` only (cellsearch.nn.resume)


# ----------------------------------------------------------------------------- persistent cache


def enable_compilation_cache(path: str | None = None) -> str:
    """Turns on JAX's persistent compilation cache (every program, however fast to compile).

    The cache is trusted input: keep it private to one user. Default
    ``$CELLSEARCH_COMPILE_CACHE`` or ``~/.cache/cellsearch/jax``.
    """
    path = path or os.environ.get("CELLSEARCH_COMPILE_CACHE") or os.path.expanduser("~/.cache/cellsearch/jax")
    os.makedirs(path, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    return path


# ----------------------------------------------------------------------------- programs


class _Programs(NamedTuple):
    train: Any
    evaluate: Any


# Bounded (least recently used first out): a long search meets thousands of cells, and each
# compiled XLA CPU executable holds memory mappings until it is freed, of which Linux allows a
# process 65,530 (vm.max_map_count); a search that kept every executable aborted with "LLVM ERROR:
# Unable to allocate section memory". 96 executables keep the cells a search revisits soon; an
# evicted one comes back from the persistent compilation cache (benchmarks/README.md, "Compile cost").
CACHE_SIZE = 96
_PROGRAMS: OrderedDict[tuple, _Programs] = OrderedDict()
_COMPILED: OrderedDict[tuple, Any] = OrderedDict()  # (program key, fn name, arg shapes) -> executable


def _remember(cache: OrderedDict, key, value):
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > CACHE_SIZE:
        cache.popitem(last=False)
    return value


def build_programs(loss: Callable, sums: Callable) -> _Programs:
    """The jitted ``train`` and ``evaluate`` programs of a group of members trained together.

    ``loss(p, static, batch)`` is one member's training loss and ``sums(p, static, batch)``
    its metric sums; ``static`` is the member's input that is not trained (``()`` for a
    compiled cell; the encoded cell for the population interpreter). Members are vmapped:
    ``train(params, statics, lr, clip, active, batches)`` runs a chunk of steps, each member
    with its own learning rate, gradient clip and active flag."""

    def train_member(p, static, lr, clip, active, batch):
        value, grads = jax.value_and_grad(lambda q: loss(q, static, batch))(p)
        opt = sgd(lr, clip)
        updates, _ = opt.update(grads, opt.init(p), p)
        new = optax.apply_updates(p, updates)
        finite = jnp.isfinite(value) & jnp.all(jnp.asarray([jnp.all(jnp.isfinite(a)) for a in jax.tree.leaves(new)]))
        ok = active & finite
        new = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, p)  # a bad step changes nothing
        # an update that would make a parameter NaN/inf reports a NaN loss: the member diverged
        return new, jnp.where(finite, value, jnp.nan)

    def train_chunk(params, statics, lr, clip, active, batches):
        def step(ps, batch):
            return jax.vmap(train_member, in_axes=(0, 0, 0, 0, 0, None))(ps, statics, lr, clip, active, batch)

        return jax.lax.scan(step, params, batches)  # losses: (chunk, K)

    def evaluate(params, statics, batch):
        return jax.vmap(lambda p, s: sums(p, s, batch))(params, statics)

    return _Programs(jax.jit(train_chunk, donate_argnums=0), jax.jit(evaluate))


def default_dtype() -> str:
    """The computation dtype a search or a training run takes by default: bfloat16 on an
    accelerator (mixed precision), float32 on a CPU."""
    return "float32" if jax.default_backend() == "cpu" else "bfloat16"


def compute_dtype(cfg: TrainConfig):
    """The dtype the model computes in (``None``: float32 throughout, the parameters' own)."""
    return None if cfg.dtype == "float32" else jnp.dtype(cfg.dtype)


def _make_programs(cell: CompiledCell, spec: TaskSpec, hidden: int, layers: int, unroll: int, dtype) -> _Programs:
    return build_programs(lambda q, _, batch: loss_fn(cell, q, batch, spec, unroll=unroll, dtype=dtype),
                          lambda q, _, batch: metric_sums(cell, q, batch, spec, unroll=unroll, dtype=dtype))


# XLA's CPU backend at LLVM optimisation level 1 instead of its default: a search compiles
# every new cell's programs, and on this CPU that is 30 % of a --quick search's hour; level 1
# compiled them 17-21 % faster at the same training speed (level 0 trains 2-4x slower). Results
# move by float rounding only: in the README's quick start 291 of 296 evaluations are the same
# bit for bit and every verdict and the pool are the same. XLA's older fusion path (its fusion
# emitters off) compiles a further third faster with every score of the quick start equal bit for
# bit. benchmarks/README.md, "Compile cost".
CPU_COMPILER_OPTIONS = {"xla_backend_optimization_level": 1, "xla_cpu_use_fusion_emitters": False}


def _compiled(pkey: tuple, name: str, fn, *args) -> tuple[Any, float]:
    """AOT-compiles ``fn`` for ``args``' shapes once (on a CPU with :data:`CPU_COMPILER_OPTIONS`);
    returns it and the compile seconds."""
    k = (pkey, name, tuple((np.shape(x), str(x.dtype)) for x in jax.tree.leaves(args)))
    if k in _COMPILED:
        _COMPILED.move_to_end(k)
        return _COMPILED[k], 0.0
    t = time.perf_counter()
    options = CPU_COMPILER_OPTIONS if jax.default_backend() == "cpu" else None
    exe = _remember(_COMPILED, k, fn.lower(*args).compile(options))
    return exe, time.perf_counter() - t


def cached_programs(key: tuple, make: Callable[[], _Programs]) -> _Programs:
    """The programs under ``key``, built by ``make()`` the first time (bounded cache)."""
    if key in _PROGRAMS:
        _PROGRAMS.move_to_end(key)
        return _PROGRAMS[key]
    return _remember(_PROGRAMS, key, make())


# ----------------------------------------------------------------------------- metrics


def summarize(sums: dict[str, float], spec: TaskSpec) -> dict[str, float]:
    """Turns metric sums into ``accuracy``, ``nll`` (per scored position), ``perplexity``,
    ``closing_accuracy`` (when a second mask is used) and ``score``."""
    count = max(sums["count"], 1.0)
    nll = sums["nll"] / count
    out = {"nll": nll, "accuracy": sums["correct"] / count}
    if spec.output == "softmax":
        out["perplexity"] = math.exp(min(nll, 700.0))
    if sums.get("count2", 0) > 0:
        out["closing_accuracy"] = sums["correct2"] / sums["count2"]
    out["score"] = out["accuracy"] if spec.score == "accuracy" else math.exp(-nll) if math.isfinite(nll) else 0.0
    return out


def _evaluate(exe, params, statics, batches: list[Batch], spec: TaskSpec, k: int) -> list[dict[str, float]]:
    totals = None
    for b in batches:
        s = jax.device_get(exe(params, statics, b))
        totals = s if totals is None else {n: totals[n] + s[n] for n in s}
    return [summarize({n: float(v[i]) for n, v in totals.items()}, spec) for i in range(k)]


# ----------------------------------------------------------------------------- the loop


@dataclass
class _Member:
    lr: float
    best: dict[str, float] | None = None
    since_best: int = 0
    decay_left: int = -1  # -1: not decaying yet
    status: str = "ok"
    active: bool = True
    steps: int = 0
    history: list[float] = field(default_factory=list)
    stopped: int = 0  # the step of the rung that stopped it (0: not stopped)


def rung_bar(cfg: TrainConfig, done: int) -> float:
    """The score a setting must have reached (its best so far) after ``done`` steps, a
    validation point, to go on: ``fraction * cfg.bar`` if a rung ``(share, fraction)`` of
    ``cfg.rungs`` sits there (the first validation point at or after ``share * steps``), else 0.

    >>> cfg = TrainConfig(steps=4000, eval_every=1000, rungs=((0.5, 0.5), (0.6, 0.8)), bar=0.9)
    >>> [round(rung_bar(cfg, d), 3) for d in (1000, 2000, 3000, 4000)]
    [0.0, 0.45, 0.72, 0.0]
    """
    every = cfg.validation_every
    at = {min(math.ceil(share * cfg.steps / every) * every, cfg.steps): f for share, f in cfg.rungs}
    return at.get(done, 0.0) * cfg.bar if done < cfg.steps else 0.0


def _schedule_epoch(m: _Member, metrics: dict[str, float], cfg: TrainConfig) -> None:
    """Records a validation point; under ``"paper"``, §3.7's schedule (:func:`~cellsearch.config.paper_schedule`)."""
    m.history.append(metrics["score"])
    if m.best is None or metrics["score"] > m.best["score"]:
        m.best, m.since_best = metrics, 0
    else:
        m.since_best += 1
    if cfg.schedule != "paper":
        return
    m.decay_left, halve, stop = paper_schedule(m.since_best, m.decay_left, cfg.patience, cfg.decay_epochs)
    if stop:
        m.active = False
    elif halve:
        m.lr /= 2


def _train_group(cell, task: Task, group: Sequence[HParams], hidden: int, cfg: TrainConfig,
                 on_steps: Callable[[int], None] | None, starts: Sequence[dict | None] = (),
                 states: Sequence[dict] = (), keep_state: bool = False) -> tuple[list[EvalResult], Any, list[float]]:
    """One program for ``group`` (settings of one shape); with ``cfg.members`` it is padded
    with idle copies of the first setting to exactly that many members. ``starts[i]``, where
    given, is a trained tree (the canonical cell's names) member ``i`` inherits from;
    ``states``, where given, are the decoded states (:mod:`cellsearch.nn.resume`) every member
    continues from, made by one earlier run of these settings."""
    spec = task.spec
    key = (cell.hash, spec, hidden, group[0].layers, cfg.unroll, cfg.dtype)
    progs = cached_programs(key, lambda: _make_programs(cell, spec, hidden, group[0].layers, cfg.unroll,
                                                        compute_dtype(cfg)))
    t0 = time.perf_counter()
    real = len(group)
    group = list(group) + [group[0]] * max(0, cfg.members - real)
    # host-side init (NumPy, no compilation), stacked along the settings axis
    each = [init_model(h.seed, cell, spec, hidden, h.layers, h.init_scale) for h in group]
    shares = [0.0] * len(group)
    for i, start in enumerate(starts):
        if start is not None:
            each[i], shares[i] = inherit(each[i], start)
    for i, st in enumerate(states):
        tree = jax.tree.structure(each[i])
        if [np.shape(a) for a in jax.tree.leaves(each[i])] != [np.shape(a) for a in st["leaves"]]:
            raise ConfigError(f"the training state of setting {group[i].key()} does not fit this cell's parameters")
        each[i] = jax.tree.unflatten(tree, st["leaves"])
    params = jax.tree.map(lambda *xs: jnp.asarray(np.stack(xs)), *each)
    results, params = run_members(key, progs, params, (), group, task, cfg, on_steps, real=real, t0=t0,
                                  states=states, keep_state=keep_state)
    return results, jax.tree.map(lambda a: a[:real], params), shares[:real]


def _stop_passed(members: list[_Member], cells: list[int], bar: float, done: int) -> None:
    """A pass/fail stage: every setting of a cell one of whose settings has reached ``bar`` (and
    not diverged) stops at ``done``, since training on cannot change the cell's verdict."""
    passed = {c for m, c in zip(members, cells, strict=True)
              if m.status == "ok" and m.best is not None and m.best["score"] >= bar}
    for m, c in zip(members, cells, strict=True):
        if c in passed and m.active:
            m.active, m.stopped = False, done


def run_members(pkey: tuple, progs: _Programs, params, statics, group: Sequence[HParams], task: Task,
                cfg: TrainConfig, on_steps: Callable[[int], None] | None, *, real: int | None = None,
                t0: float | None = None, cells: Sequence[int] = (), states: Sequence[dict] = (),
                keep_state: bool = False) -> tuple[list[EvalResult], Any]:
    """Trains the stacked members ``params`` (one per setting of ``group``) with ``progs``
    under ``cfg``'s schedule and returns a result each and the final parameters. Members
    from ``real`` on are padding: they never train and get no result (they keep a
    program's shape, so it is not compiled again for another member count). ``cells`` says
    which cell each member trains (default: one cell), for ``cfg.stop_on_pass``: a cell's
    settings stop when one of them passes. With ``states`` (one per real member, decoded by
    :mod:`cellsearch.nn.resume`, made by one run) the members continue that run: its steps,
    bookkeeping and data stream; ``params`` hold its parameters. With ``keep_state`` each result
    carries its member's state (``EvalResult.state``)."""
    spec = task.spec
    k = len(group)
    real = k if real is None else real
    t0 = time.perf_counter() if t0 is None else t0
    members = [_Member(lr=h.learning_rate, active=i < real) for i, h in enumerate(group)]
    clip = jnp.asarray([h.max_grad_norm for h in group], jnp.float32)
    rng = np.random.default_rng([cfg.data_seed, sum(map(ord, spec.name))])
    eval_batches = task.eval_batches(cfg.eval_split)
    limit = cfg.diverge_factor * math.log(max(spec.output_size, 2)) * (88 if spec.output == "bernoulli" else 1)
    epoch = cfg.validation_every
    teams = list(cells) or [0] * real  # the cell each member trains, for stop_on_pass
    compile_s, done = 0.0, 0
    if states:  # continue: the run's steps, data stream and bookkeeping, then this schedule's rung there
        for st in states:
            resume_state.check(st, cfg)
        done = states[0]["done"]
        rng.bit_generator.state = states[0]["data"]
        for i, st in enumerate(states):
            members[i] = _Member(**st["member"])
            m = members[i]
            if m.active and m.best is not None and m.best["score"] < rung_bar(cfg, done):
                m.active, m.stopped = False, done
        resumed = done
    while done < cfg.steps and any(m.active for m in members):
        n = min(cfg.chunk, cfg.steps - done, epoch - done % epoch)
        batches = stack([task.train_batch(rng, cfg.batch_size) for _ in range(n)])
        lr = jnp.asarray([m.lr for m in members], jnp.float32)
        active = jnp.asarray([m.active for m in members])
        train, c = _compiled(pkey, f"train{n}", progs.train, params, statics, lr, clip, active, batches)
        compile_s += c
        params, losses = train(params, statics, lr, clip, active, batches)
        losses = np.asarray(losses)  # (n, K)
        done += n
        for i, m in enumerate(members):
            if not m.active:
                continue
            m.steps += n
            bad = ~np.isfinite(losses[:, i]) | (losses[:, i] > limit)
            if bad.any():
                m.status, m.active = "diverged", False
        if on_steps:
            on_steps(n * real)
        if done % epoch == 0 or done == cfg.steps:
            evaluate, c = _compiled(pkey, "eval", progs.evaluate, params, statics, eval_batches[0])
            compile_s += c
            for m, met in zip(members, _evaluate(evaluate, params, statics, eval_batches, spec, k), strict=True):
                if m.active and not met["nll"] <= limit:  # NaN/inf or past the kill rule: never a score
                    m.status, m.active = "diverged", False
                elif m.active:
                    _schedule_epoch(m, met, cfg)
                    if m.best["score"] < rung_bar(cfg, done):  # successive halving: cannot reach the bar
                        m.active, m.stopped = False, done
            if cfg.stop_on_pass and cfg.bar > 0 and done < cfg.steps:
                _stop_passed(members[:real], teams, cfg.bar, done)
    wall = time.perf_counter() - t0
    out = []
    for h, m in zip(group[:real], members[:real], strict=True):
        extra = {"curve": [round(v, 5) for v in m.history]} if len(m.history) > 1 else {}
        if m.stopped:
            extra["stopped_at"] = m.stopped
        if m.status == "diverged" and cfg.after_divergence == "best" and m.best is not None:
            metrics, status, score = {**m.best, "diverged_after": m.steps}, "ok", m.best["score"]
        elif m.status == "diverged" or m.best is None:
            metrics = {"score": 0.0}
            status, score = ("diverged" if m.status == "diverged" else "ok"), 0.0
        else:
            metrics, status, score = m.best, "ok", m.best["score"]
        if states:
            extra["continued_from"] = resumed
        out.append(EvalResult(h, status, float(score), {**metrics, **extra}, m.steps, wall / real, compile_s / real))
    if keep_state:
        data = rng.bit_generator.state
        for i in range(real):
            leaves = [np.asarray(a[i]) for a in jax.tree.leaves(params)]
            out[i] = out[i]._replace(state=resume_state.encode(leaves, asdict(members[i]), done, data, cfg))
    return out, params


def train_and_evaluate(
    graph: CellGraph | CompiledCell,
    task: Task,
    settings: Sequence[HParams],
    config: TrainConfig | None = None,
    *,
    on_steps: Callable[[int], None] | None = None,
    keep_params: bool = False,
    inherit_from: Sequence[dict | None] | None = None,
    resume: Sequence[bytes | None] | None = None,
    keep_state: bool = False,
) -> list[EvalResult]:
    """Trains ``graph`` on ``task`` under every setting and evaluates it on validation.

    Settings of the same shape train together, vmapped, in one compiled program.

    Args:
      graph: a cell graph (or an already compiled cell).
      task: a task from :func:`cellsearch.tasks.make_task`.
      settings: the hyperparameter settings.
      config: the training schedule (default ``TrainConfig()``).
      on_steps: called with the number of (setting x step) units done after each chunk.
      keep_params: also return each setting's final parameters (``EvalResult.params``: the
        model's ``{"embed", "layers": [cell params in the graph's node names], "out"}``).
      inherit_from: per setting, ``None`` or such a tree of another cell (the parent's, in the
        parent's node names, which a child's unchanged nodes keep): the setting starts from it
        wherever a parameter's name and shape match, from its own initialisation elsewhere;
        ``metrics["inherited"]`` is the share of weights it took. The search does not use it: a
        child started from its parent's weights ranks worse at a cheap rung than one trained
        from scratch (``benchmarks/README.md``, "Weight inheritance").
      resume: per setting, ``None`` or a training state (``EvalResult.state`` of an earlier run
        of this cell, task and setting, :mod:`cellsearch.nn.resume`): the setting continues that
        run to ``config.steps`` (``metrics["continued_from"]`` says where it took over). Settings
        whose states one run made train together, in programs of ``config.members``.
      keep_state: also return each setting's state, for a later run to continue.

    Returns:
      One :class:`EvalResult` per setting, in order.
    """
    config = config or TrainConfig()
    # Train the canonical form: isomorphic cells (other node names) share one program, and the
    # cached program's parameter names always match (training's parameters are internal).
    canon = canonical(graph.graph if isinstance(graph, CompiledCell) else graph)
    cell = compile_cell(canon.graph)
    back = {v: k for k, v in canon.node_map.items()}
    if resume is not None and len(resume) != len(settings):
        raise ConfigError(f"resume has {len(resume)} states for {len(settings)} settings")
    states = [None if b is None else resume_state.decode(b) for b in (resume or [None] * len(settings))]
    groups: dict[tuple, list[int]] = {}
    for i, h in enumerate(settings):
        if h.layers < 1:
            raise ConfigError(f"layers must be >= 1, got {h.layers}")
        n = hidden_size(cell.graph, h.param_budget, h.layers)
        run = None if states[i] is None else resume_state.group_key(states[i])  # settings continued together
        groups.setdefault((h.layers, n, run), []).append(i)
    results: list[EvalResult | None] = [None] * len(settings)
    width = config.members or len(settings)
    chunks = [(n, idx[j:j + width]) for (_, n, _), idx in groups.items() for j in range(0, len(idx), width)]
    if inherit_from is not None and len(inherit_from) != len(settings):
        raise ConfigError(f"inherit_from has {len(inherit_from)} trees for {len(settings)} settings")
    to_canon = canon.node_map
    starts = [None if t is None else {**t, "layers": [rename_params(p, to_canon, partial=True) for p in t["layers"]]}
              for t in (inherit_from or [None] * len(settings))]
    for n, idx in chunks:
        group, params, shares = _train_group(cell, task, [settings[i] for i in idx], n, config, on_steps,
                                             [starts[i] for i in idx], [states[i] for i in idx if states[i]],
                                             keep_state)
        for j, (i, r) in enumerate(zip(idx, group, strict=True)):
            r = r._replace(metrics={**r.metrics, "hidden": n, **({"inherited": round(shares[j], 4)}
                                                                 if starts[i] is not None else {})})
            if keep_params:  # member j's parameters, renamed from the canonical cell's to the graph's
                mine = jax.tree.map(lambda a, j=j: np.asarray(a[j]), params)
                r = r._replace(params={**mine, "layers": [rename_params(p, back) for p in mine["layers"]]})
            results[i] = r
    return results  # type: ignore[return-value]


def result_to_dict(r: EvalResult) -> dict[str, Any]:
    """A plain-dict result, as executors return and the store writes (``state``: the training
    state's bytes, with ``keep_state`` only)."""
    return {"hparams": asdict(r.hparams), "hp_key": r.hparams.key(), "status": r.status, "score": r.score, "metrics": r.metrics,
            "steps": r.steps, "wall_s": r.wall_s, "compile_s": r.compile_s, **({"state": r.state} if r.state else {})}
