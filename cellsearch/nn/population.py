"""The population interpreter: many different cells trained in one compiled program.

A compiled cell (:mod:`cellsearch.nn.compile`) is code: each new structure costs an XLA
compilation and then trains alone, a handful of tiny kernels per time step. Here a cell is
data (:mod:`cellsearch.nn.encoding`): one program per (size class, task shape, hidden size,
layers) runs any cell of that class, and a population of cells and settings is vmapped, so
each stage's matrix products of the whole population are **one batched GEMM** (batch axes:
member and operand slot) and the elementwise ops are computed all-and-selected, a level of
slots at a time. The backward pass is written by hand (:func:`_program`): every slot is
written once, so one cotangent buffer is updated in place, level by level, in reverse.

* :class:`Interpreter` has a compiled cell's ``scan``/``apply``/``initial_carry``, so the
  model (:mod:`cellsearch.nn.model`) runs it unchanged. Its parameters are a weight bank per
  layer: ``{"W": (stages, full, H, H), "diag": (stages, diag, H), "b": (stages, linears, H)}``.
* :func:`pack` / :func:`unpack` move a compiled cell's parameters (canonical node ids) into
  the bank and back; the members start from exactly the parameters the compiled cell would
  draw (:func:`cellsearch.nn.model.init_model`), so the two paths can be compared number for number.
* Members of one program share the hidden size ``H``: a member with a smaller hidden size is
  zero-padded and :func:`effective` masks its padding (and every unused slot) before each
  use, so padding gets no gradient and the gradient-norm clip sees the member's own
  parameters only. Its padded state units are reset to zero every step.
* :func:`train_population` trains every (cell, setting) pair as one member, with the same
  batches, schedule and divergence rule as :func:`cellsearch.nn.train.train_and_evaluate`, and
  returns the same results. Member counts are padded up :data:`~cellsearch.nn.encoding.LADDER`
  and hidden sizes to a multiple of :data:`HIDDEN_STEP`, so a search compiles few programs.

The input projections are not hoisted out of the time loop (the CPU default of compiled
cells). Equality with compiled cells (one step, and 50 training steps) is tested in
``tests/test_population.py``; speed is measured in ``benchmarks/bench_population.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from cellsearch.cell.graph import CellGraph
from cellsearch.cell.ops import OPS
from cellsearch.cell.params import hidden_size
from cellsearch.config import TrainConfig
from cellsearch.errors import ConfigError
from cellsearch.hparams import HParams
from cellsearch.nn.compile import JAX, compile_cell
from cellsearch.nn.encoding import OPCODES, Encoding, Layout, SizeClass, encode, plan, round_up, stack
from cellsearch.nn.model import init_model, loss_fn, metric_sums
from cellsearch.nn.train import EvalResult, build_programs, cached_programs, run_members
from cellsearch.tasks.base import Task, TaskSpec

HIDDEN_STEP = 8  # members' hidden sizes are padded to a multiple of this



class Static(NamedTuple):
    """A member's untrained input: its encoded cell and its hidden-unit mask ``(H,)``."""

    enc: Encoding
    hmask: Any


def _branch(name: str, a, b, c):
    """Op code ``name``'s values on a level (its kernel in the op table; ``const`` is ``c``)."""
    if name == "const":
        return c
    spec = OPS[name]
    return spec.apply(JAX, a) if spec.arity == 1 else spec.apply(JAX, a, b)


def _level(op, const, a, b):
    """One level's values: every op over the whole level, each slot's op selected (branch ``k``
    computes :data:`~cellsearch.nn.encoding.OPCODES` ``[k]``)."""
    shape = (op.shape[0],) + (1,) * (a.ndim - 1)
    sel = jnp.broadcast_to(op.reshape(shape), a.shape)
    c = jnp.broadcast_to(const.reshape(shape).astype(a.dtype), a.shape)
    return jax.lax.select_n(sel, *(_branch(name, a, b, c) for name in OPCODES))


def _linear(ops, W, diag, b, *, onehot, full: int):
    """One stage's linear nodes from their operand values ``ops`` (full ones first): every
    full product of the stage as one GEMM (batched over members when vmapped), the diag
    products, summed into their nodes by the 0/1 matrix, plus the bias."""
    lead = (1,) * (ops.ndim - 2)
    terms = []
    if full:
        terms.append(jnp.einsum("m...h,mhk->m...k", ops[:full], W))
    if diag.shape[0]:
        terms.append(ops[full:] * diag.reshape(diag.shape[0], *lead, -1))
    t = jnp.concatenate(terms) if len(terms) > 1 else terms[0]
    return jnp.einsum("ml,m...k->l...k", onehot.astype(t.dtype), t) + b.reshape(b.shape[0], *lead, -1)


def _program(size: SizeClass):
    """``run(enc, p, x, prev) -> vals``: every value slot of one step, with a hand-written
    backward pass.

    Written once, read afterwards: every slot is written exactly once, by a level or a
    stage's linears, and read only by later ones. So the forward's final buffer holds every
    value the backward needs, and the backward walks the levels in reverse with **one**
    cotangent buffer, adding each level's operand cotangents into it in place. Left to
    autodiff, each gather's transpose would build a zero buffer of every slot and add it in:
    O(levels x slots) per step instead of O(slots)."""
    z = size
    S, (_, M, _) = z.states, z.most
    elem_base, lin_base = z.offsets()

    def _stage_args(enc, p, s):
        """Stage ``s + 1``'s operand slots and the arguments of :func:`_linear`, cut to its own counts."""
        L, F, Q = z.linears[s], z.full[s], z.diag[s]
        src = jnp.concatenate([enc.src[s, :F], enc.src[s, M:M + Q]])
        onehot = jnp.concatenate([enc.onehot[s, :F, :L], enc.onehot[s, M:M + Q, :L]])
        return src, (p["W"][s, :F], p["diag"][s, :Q], p["b"][s, :L]), {"onehot": onehot, "full": F}

    def forward(enc, p, x, prev):
        vals = jnp.zeros((z.slots, *x.shape), x.dtype).at[0].set(x)
        if S:
            vals = vals.at[1:1 + S].set(prev)
        for d in range(z.stages + 1):
            if d and z.linears[d - 1]:
                src, args, kw = _stage_args(enc, p, d - 1)
                vals = jax.lax.dynamic_update_slice_in_dim(vals, _linear(vals[src], *args, **kw), lin_base[d - 1], 0)
            for j, base in enumerate(elem_base[d]):
                a, b = vals[enc.a[d, j]], vals[enc.b[d, j]]
                vals = jax.lax.dynamic_update_slice_in_dim(vals, _level(enc.op[d, j], enc.const[d, j], a, b), base, 0)
        return vals

    @jax.custom_vjp
    def run(enc, p, x, prev):
        return forward(enc, p, x, prev)

    def run_fwd(enc, p, x, prev):
        vals = forward(enc, p, x, prev)
        return vals, (enc, p, vals)

    def run_bwd(res, g):
        enc, p, vals = res
        grads = {k: [jnp.zeros_like(v[s]) for s in range(z.stages)] for k, v in p.items()}
        for d in reversed(range(z.stages + 1)):
            for j, base in reversed(list(enumerate(elem_base[d]))):
                ia, ib = enc.a[d, j], enc.b[d, j]
                _, vjp = jax.vjp(lambda a, b, d=d, j=j: _level(enc.op[d, j], enc.const[d, j], a, b), vals[ia], vals[ib])
                ga, gb = vjp(jax.lax.dynamic_slice_in_dim(g, base, z.width, 0))
                g = g.at[ia].add(ga).at[ib].add(gb)
            if d and z.linears[d - 1]:
                src, args, kw = _stage_args(enc, p, d - 1)
                _, vjp = jax.vjp(partial(_linear, **kw), vals[src], *args)
                gops, gW, gdg, gb = vjp(jax.lax.dynamic_slice_in_dim(g, lin_base[d - 1], z.linears[d - 1], 0))
                for k, v in (("W", gW), ("diag", gdg), ("b", gb)):  # back to the bank's shape
                    grads[k][d - 1] = grads[k][d - 1].at[:v.shape[0]].set(v)
                g = g.at[src].add(gops)
        gp = {k: jnp.stack(v) if z.stages else jnp.zeros_like(p[k]) for k, v in grads.items()}
        return None, gp, g[0], g[1:1 + S]

    run.defvjp(run_fwd, run_bwd)
    return run


class Interpreter:
    """Runs the encoded cell ``enc`` (arrays, possibly traced) of size class ``size``."""

    def __init__(self, enc: Encoding, size: SizeClass, hmask=None):
        self.enc, self.size, self.hmask = enc, size, hmask
        self._run = _program(size)

    def initial_carry(self, batch_shape: Sequence[int], hidden_size: int, dtype=jnp.float32):
        return tuple(jnp.zeros((*batch_shape, hidden_size), dtype) for _ in range(self.size.states))

    def step(self, p, carry, x):
        """One time step: ``(carry, y)`` as a compiled cell's ``apply``."""
        e, S = self.enc, self.size.states
        prev = jnp.stack(carry) if S else jnp.zeros((0, *x.shape), x.dtype)
        vals = self._run(e, p, x, prev)
        new = vals[e.out]
        if self.hmask is not None:
            new = new * self.hmask
        return tuple(new[i] for i in range(S)), new[e.y]

    apply = step  # a compiled cell's name for one step

    def scan(self, p, carry, xs, *, unroll: int = 1, hoist: bool | None = None):
        return jax.lax.scan(lambda c, x_t: self.step(p, c, x_t), carry, xs, unroll=unroll)


# ----------------------------------------------------------------------------- parameters


def empty_bank(size: SizeClass, hidden: int) -> dict[str, np.ndarray]:
    L, M, Q = size.most
    return {"W": np.zeros((size.stages, M, hidden, hidden), np.float32),
            "diag": np.zeros((size.stages, Q, hidden), np.float32),
            "b": np.zeros((size.stages, L, hidden), np.float32)}


def pack(lay: Layout, size: SizeClass, hidden: int, params: dict) -> dict[str, np.ndarray]:
    """A compiled cell's parameters (canonical node ids, hidden size ``n <= hidden``) in the
    interpreter's bank, zero-padded to ``hidden``."""
    bank = empty_bank(size, hidden)
    for (n, u), (d, k) in lay.full.items():
        w = np.asarray(params[n][f"W_{u}"])
        bank["W"][d, k, :w.shape[0], :w.shape[1]] = w
    for (n, u), (d, k) in lay.diag.items():
        w = np.asarray(params[n][f"W_{u}"])
        bank["diag"][d, k, :w.shape[0]] = w
    for n, (d, j) in lay.linear.items():
        if "b" in params[n]:
            b = np.asarray(params[n]["b"])
            bank["b"][d, j, :b.shape[0]] = b
    return bank


def unpack(lay: Layout, bank, hidden: int, graph: CellGraph) -> dict:
    """The inverse of :func:`pack`: the compiled cell's parameters at hidden size ``hidden``."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for (n, u), (d, k) in lay.full.items():
        out.setdefault(n, {})[f"W_{u}"] = np.asarray(bank["W"][d, k, :hidden, :hidden])
    for (n, u), (d, k) in lay.diag.items():
        out.setdefault(n, {})[f"W_{u}"] = np.asarray(bank["diag"][d, k, :hidden])
    for n, (d, j) in lay.linear.items():
        if graph.nodes[n].get("bias", True):
            out.setdefault(n, {})["b"] = np.asarray(bank["b"][d, j, :hidden])
    return out


def pack_model(lay: Layout, size: SizeClass, hidden: int, params: dict) -> dict:
    """A model's parameters (:func:`~cellsearch.nn.model.init_model`) padded to ``hidden``."""
    n = params["out"]["W"].shape[0]
    pad = hidden - n
    embed = {"W": np.pad(params["embed"]["W"], ((0, 0), (0, pad)))}
    if "b" in params["embed"]:
        embed["b"] = np.pad(params["embed"]["b"], (0, pad))
    return {"embed": embed, "layers": [pack(lay, size, hidden, p) for p in params["layers"]],
            "out": {"W": np.pad(params["out"]["W"], ((0, pad), (0, 0))), "b": np.asarray(params["out"]["b"])}}


def unpack_model(lay: Layout, params, hidden: int, graph: CellGraph) -> dict:
    """The inverse of :func:`pack_model`: the model at its own hidden size ``hidden``."""
    embed = {"W": np.asarray(params["embed"]["W"])[:, :hidden]}
    if "b" in params["embed"]:
        embed["b"] = np.asarray(params["embed"]["b"])[:hidden]
    return {"embed": embed, "layers": [unpack(lay, p, hidden, graph) for p in params["layers"]],
            "out": {"W": np.asarray(params["out"]["W"])[:hidden], "b": np.asarray(params["out"]["b"])}}


def effective(params, static: Static):
    """The member's parameters with padding and unused slots zeroed (before every use, so
    they get no gradient)."""
    e, hm = static.enc, static.hmask
    M = params["layers"][0]["W"].shape[1] if params["layers"] else 0

    def layer(p):
        return {"W": p["W"] * (e.real[:, :M, None, None] * hm[:, None] * hm[None, :]),
                "diag": p["diag"] * (e.real[:, M:, None] * hm),
                "b": p["b"] * (e.bias[..., None] * hm)}

    embed = {"W": params["embed"]["W"] * hm}
    if "b" in params["embed"]:
        embed["b"] = params["embed"]["b"] * hm
    return {"embed": embed, "layers": [layer(p) for p in params["layers"]],
            "out": {"W": params["out"]["W"] * hm[:, None], "b": params["out"]["b"]}}


def population_programs(size: SizeClass, spec: TaskSpec, hidden: int, layers: int, unroll: int):
    """The (cached) train and evaluate programs of one size class and task shape."""

    def model(static):
        return Interpreter(static.enc, size, static.hmask)

    key = ("population", size, spec, hidden, layers, unroll)
    return key, cached_programs(key, lambda: build_programs(
        lambda q, s, batch: loss_fn(model(s), effective(q, s), batch, spec, unroll=unroll),
        lambda q, s, batch: metric_sums(model(s), effective(q, s), batch, spec, unroll=unroll)))


# ----------------------------------------------------------------------------- training


class _Cell(NamedTuple):
    plan: Any
    compiled: Any


def train_population(
    graphs: Sequence[CellGraph],
    task: Task,
    settings: Sequence[Sequence[HParams]],
    config: TrainConfig | None = None,
    *,
    on_steps: Callable[[int], None] | None = None,
    keep_params: bool = False,
    members: int | None = None,
    cover: tuple[Sequence[CellGraph], Sequence[int]] | None = None,
) -> list[list[EvalResult]]:
    """Trains every cell under its settings, all in one program per layer count, and
    evaluates them: the population counterpart of
    :func:`cellsearch.nn.train.train_and_evaluate` (same batches, schedule and results).

    Args:
      graphs: the cells (any valid cells; they need not share a structure).
      task: the task, shared by every cell.
      settings: per cell, its settings (the same length as ``graphs``).
      config: the training schedule.
      on_steps: called with the number of (member x step) units done after each chunk.
      keep_params: also return each member's final parameters in the compiled cell's
        layout (canonical node ids).
      members: pad each program to at least this many members. XLA's float rounding
        depends on the member count (not on a member's position or its neighbours, measured
        on CPU), so a search that needs the same numbers on resume fixes it.
      cover: ``(graphs, budgets)``: make each program large enough for these cells at these
        parameter budgets too (size class and hidden size). The rounding also depends on the
        program's shape (measured: a member's parameters differ by an ulp between programs
        padded differently), so a search passes the cells of the whole round: a resumed
        round, which trains fewer of them, then runs the same programs.

    Returns:
      Per cell, one :class:`~cellsearch.nn.train.EvalResult` per setting, in order; each member's
      ``wall_s`` and ``compile_s`` are its share of its program's.
    """
    config = config or TrainConfig()
    if config.dtype != "float32":
        raise ConfigError(f"the population interpreter trains in float32 only, not {config.dtype}")
    if len(graphs) != len(settings):
        raise ConfigError(f"train_population needs one list of settings per cell: {len(graphs)} cells, "
                          f"{len(settings)} lists")
    cells = []
    for g in graphs:
        p = plan(g)
        cells.append(_Cell(p, compile_cell(p.graph)))
    groups: dict[int, list[tuple[int, int, int]]] = {}  # layers -> (cell, setting, hidden)
    for i, (c, hs) in enumerate(zip(cells, settings, strict=True)):
        for j, h in enumerate(hs):
            if h.layers < 1:
                raise ConfigError(f"layers must be >= 1, got {h.layers}")
            groups.setdefault(h.layers, []).append((i, j, hidden_size(c.plan.graph, h.param_budget, h.layers)))
    extra = [plan(g) for g in cover[0]] if cover else []
    out: list[list[EvalResult | None]] = [[None] * len(hs) for hs in settings]
    for layers, group in groups.items():
        hidden = max([n for *_, n in group] + [hidden_size(p.graph, b, layers) for p in extra for b in cover[1]])
        size = SizeClass.of([cells[i].plan.size for i, _, _ in group] + [p.size for p in extra])
        for (i, j, _), r in zip(group, _train_members(cells, settings, layers, group, task, config, on_steps,
                                                       keep_params, members or 0, size, hidden), strict=True):
            out[i][j] = r
    return out  # type: ignore[return-value]


def _train_members(cells, settings, layers, members, task, cfg, on_steps, keep_params, at_least, size,
                   hidden) -> list[EvalResult]:
    t0 = time.perf_counter()
    spec = task.spec
    hidden = -(-hidden // HIDDEN_STEP) * HIDDEN_STEP
    encoded = {i: encode(cells[i].plan, size) for i in {i for i, _, _ in members}}
    real = len(members)
    padded = members + [members[0]] * (max(round_up(real), at_least) - real)  # padding members: copies that never train
    group = [settings[i][j] for i, j, _ in padded]
    params, statics = [], []
    for (i, _, n), h in zip(padded, group, strict=True):
        enc, lay = encoded[i]
        p = init_model(h.seed, cells[i].compiled, spec, n, layers, h.init_scale)
        params.append(pack_model(lay, size, hidden, p))
        statics.append(Static(enc, (np.arange(hidden) < n).astype(np.float32)))
    params = jax.tree.map(lambda *xs: jnp.asarray(np.stack(xs)), *params)
    statics = Static(stack([s.enc for s in statics]), np.stack([s.hmask for s in statics]))
    key, progs = population_programs(size, spec, hidden, layers, cfg.unroll)
    results, final = run_members(key, progs, params, statics, group, task, cfg, on_steps, real=real, t0=t0,
                                 cells=[i for i, _, _ in members])
    out = []
    for m, ((i, _, n), r) in enumerate(zip(members, results, strict=True)):
        r = r._replace(metrics={**r.metrics, "hidden": n})
        if keep_params:
            mine = jax.tree.map(lambda a, m=m: np.asarray(a[m]), final)
            r = r._replace(params=unpack_model(encoded[i][1], mine, n, cells[i].plan.graph))
        out.append(r)
    return out
