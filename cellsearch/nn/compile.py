"""The compiler: a cell graph becomes pure JAX functions ``init`` and ``apply``.

``compile_cell(graph)`` returns a :class:`CompiledCell`:

* ``init(key, input_size, hidden_size, *, init_scale=1.0) -> params``: the parameter layout and
  initialisation of :mod:`cellsearch.cell.params` (a dict keyed by the ids of the graph's
  ``linear`` nodes, each ``{"W_<operand id>": kernel, "b": bias}``, kernels in flax's ``(in, out)``
  layout, entries in ``U[-s, s]`` with ``s = init_scale / sqrt(hidden_size)``), drawn with JAX
  keys. ``init_scale`` may be a traced value, so settings can be vmapped.
* ``init_numpy(seed, input_size, hidden_size, *, init_scale=1.0)``: the same layout drawn with
  NumPy on the host, which needs no compilation (the trainer uses it).
* ``apply(params, carry, x, *, dtype=None) -> (carry, y)``: one time step, batched over leading
  axes; ``carry`` is a tuple in the graph's ``states`` order (``(c, h)`` for the LSTM, as flax).
  The step computes in ``dtype`` (``None``: the dtype the inputs and parameters promote to;
  ``bfloat16`` for mixed precision, the parameters cast on the way in) and returns the carry in the
  dtype it was given, ``y`` in the computation dtype.
* ``scan(params, carry, xs, *, unroll=1, hoist=None, dtype=None) -> (carry, ys)``: many steps over a
  time-major ``xs`` with :func:`jax.lax.scan`. With ``hoist`` the projections of ``x`` by every
  linear node are computed for the whole sequence in one matmul before the loop (as cuDNN
  does); by default on accelerators only (:func:`default_hoist`).
* ``initial_carry(batch_shape, hidden_size)``: zeros.
* ``trace(params, carry, xs)``: ``scan`` that also returns every node's value at every step.

Every op is computed by its kernel in the op table (:data:`cellsearch.cell.ops.OPS`) with the
JAX backend :data:`JAX`.

Speed: linear nodes that read the same operand share one matmul (``fuse=True``, as flax's
``OptimizedLSTMCell``); the fused weights are concatenated once per ``scan``, not per step.

Cache: the program is built from the canonical form, cached by structural hash (a cell seen
twice, even with other node ids, is traced once); a ``CompiledCell`` renames and reorders.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from cellsearch.cell.canon import Canonical
from cellsearch.cell.graph import CellGraph, edge_kind, param_count, validate
from cellsearch.cell.ops import OPS, Backend
from cellsearch.cell.params import ParamLayout, layout, rename_params
from cellsearch.errors import CompileError

Params = dict[str, dict[str, jax.Array]]
Carry = tuple[jax.Array, ...]

# The JAX backend of the op table's kernels (cellsearch.cell.ops): the compiler and the population
# interpreter evaluate every op through it.
JAX = Backend(tanh=jnp.tanh, sigmoid=jax.nn.sigmoid, relu=jax.nn.relu)


class _Program:
    """The canonical program of one cell structure (ids from :mod:`cellsearch.cell.canon`)."""

    def __init__(self, layout: ParamLayout, fuse: bool):
        g = layout.graph
        self.layout, self.g, self.fuse = layout, g, fuse
        self.order, self.args, self.linears = layout.order, layout.args, layout.linears
        self.states = tuple(g.graph["states"])
        self.out_state = g.graph["output"]
        self.x = "x"
        self.ops = {n: g.nodes[n]["op"] for n in self.order}
        pos = {n: k for k, n in enumerate(self.order)}
        # Linear nodes with the same full-matrix operands form a group (the LSTM's i, f, g, o):
        # their products are summed at full width and split once, as flax's OptimizedLSTMCell.
        self.groups: dict[tuple[str, ...], list[str]] = {}
        for lin in self.linears:
            sig = tuple(sorted((u for u in self.args[lin] if edge_kind(g, u, lin) == "full"), key=pos.__getitem__))
            if sig:
                self.groups.setdefault(sig, []).append(lin)
        self.group_of = {L: sig for sig, lins in self.groups.items() for L in lins}
        # each source's consumers, group by group: one matmul per source, groups contiguous
        self.fused: dict[str, list[str]] = {}
        for sig, lins in self.groups.items():
            for u in sig:
                self.fused.setdefault(u, []).extend(lins)
        self.offset = {(u, sig): self.fused[u].index(lins[0]) for sig, lins in self.groups.items() for u in sig}
        self.bias = layout.bias
        self.x_group = self.fused.get(self.x, [])
        self.bias_in_x = {n: self.bias[n] and n in self.x_group for n in self.linears}
        # does any node read x other than through a full matrix (MUT1's tanh(x), a peephole)?
        self.x_direct = any(not (self.ops[v] == "linear" and edge_kind(g, self.x, v) == "full")
                            for v in g.successors(self.x)) or not self.x_group

    # -- parameters ------------------------------------------------------------------------

    def init(self, key, input_size: int, hidden_size: int, init_scale=1.0) -> Params:
        """The layout's initial parameters (:mod:`cellsearch.cell.params`) drawn with JAX keys."""

        def draw(shape, idx):
            k = jax.random.fold_in(jax.random.fold_in(key, idx[0]), idx[1])
            return jax.random.uniform(k, shape, minval=-1.0, maxval=1.0)

        return self.layout.init_with(draw, jnp, input_size, hidden_size, init_scale)

    def prepare(self, params: Params) -> dict[str, Any]:
        """Concatenates the kernels that share an operand (once, outside the time loop)."""
        prep: dict[str, Any] = {"W": {}, "b": {}, "diag": {}}
        for u, lins in self.fused.items():
            if self.fuse:
                prep["W"][u] = jnp.concatenate([params[L][f"W_{u}"] for L in lins], axis=-1)
            else:
                prep["W"][u] = [params[L][f"W_{u}"] for L in lins]
        if self.x_group:
            bx = [params[L]["b"] if self.bias[L] else jnp.zeros_like(params[L][f"W_{self.x}"][0]) for L in self.x_group]
            prep["bx"] = jnp.concatenate(bx, axis=-1)
        for L in self.linears:
            if self.bias[L] and not self.bias_in_x[L]:
                prep["b"][L] = params[L]["b"]
            for u in self.args[L]:
                if edge_kind(self.g, u, L) == "diag":
                    prep["diag"][(L, u)] = params[L][f"W_{u}"]
        return prep

    def project_x(self, prep, x) -> jax.Array | None:
        """``x @ W_x + b`` for every linear node that reads x, concatenated (hoistable)."""
        if not self.x_group:
            return None
        if self.fuse:
            return x @ prep["W"][self.x] + prep["bx"]
        return jnp.concatenate([x @ w for w in prep["W"][self.x]], axis=-1) + prep["bx"]

    # -- one step ----------------------------------------------------------------------------

    def _group_sum(self, prep, sig, v, prods):
        """The summed products of a group of linear nodes, split per node."""
        lins = self.groups[sig]
        acc = None
        for u in sig:
            if u not in prods:
                prods[u] = v[u] @ prep["W"][u]  # one matmul per source, all its consumers
            full = prods[u]
            hidden = full.shape[-1] // len(self.fused[u])
            start = self.offset[(u, sig)] * hidden
            part = full[..., start:start + len(lins) * hidden] if len(self.fused[u]) > len(lins) else full
            acc = part if acc is None else acc + part
        return jnp.split(acc, len(lins), axis=-1) if len(lins) > 1 else [acc]

    def _linear(self, n, prep, v, prods, sums):
        if self.fuse and n in self.group_of:
            sig = self.group_of[n]
            if sig not in sums:
                sums[sig] = self._group_sum(prep, sig, v, prods)
            total = sums[sig][self.groups[sig].index(n)]
        else:
            total = None
            for u in self.args[n]:
                if edge_kind(self.g, u, n) != "full":
                    continue
                if u == self.x:
                    k = self.x_group.index(n)
                    hidden = prods[u].shape[-1] // len(self.x_group)
                    term = prods[u][..., k * hidden:(k + 1) * hidden]
                else:
                    term = v[u] @ prep["W"][u][self.fused[u].index(n)]
                total = term if total is None else total + term
        for u in self.args[n]:
            if edge_kind(self.g, u, n) == "diag":
                term = prep["diag"][(n, u)] * v[u]
                total = term if total is None else total + term
        if n in prep["b"]:
            total = total + prep["b"][n]
        return total

    def step(self, prep, carry: Carry, x, xproj, record: dict | None = None) -> tuple[Carry, jax.Array]:
        """One time step; with ``record`` (a dict), every computed node's value is put in it."""
        v: dict[str, Any] = {self.x: x}
        for s, c in zip(self.states, carry, strict=True):
            v[f"{s}_prev"] = c
        prods: dict[str, jax.Array] = {} if xproj is None else {self.x: xproj}
        sums: dict[tuple[str, ...], list[jax.Array]] = {}
        new: dict[str, jax.Array] = {}
        for n in self.order:
            op = self.ops[n]
            if n in v:
                continue
            if op == "const":  # full hidden width, so a linear node may read it too
                v[n] = jnp.full_like(v[f"{self.states[0]}_prev"], self.g.nodes[n]["value"])
            elif op == "output":
                new[self.g.nodes[n]["state"]] = v[self.args[n][0]]
            elif op == "linear":
                v[n] = self._linear(n, prep, v, prods, sums)
            else:  # an activation or a binary op: its kernel in the op table
                v[n] = OPS[op].apply(JAX, *(v[u] for u in self.args[n]))
        ref = v[f"{self.out_state}_prev"]
        out = tuple(jnp.broadcast_to(new[s], ref.shape).astype(ref.dtype) for s in self.states)
        if record is not None:
            record.update({n: jnp.broadcast_to(val, ref.shape) for n, val in v.items()
                           if n != self.x and self.ops.get(n) not in ("input", "state", "const")})
        return out, out[self.states.index(self.out_state)]

    def trace(self, params, carry, xs):
        """Like :meth:`scan`, and also every node's value at every step: ``{node: (T, ..., H)}``."""
        prep = self.prepare(params)

        def body(c, x_t):
            rec: dict = {}
            c, y = self.step(prep, c, x_t, self.project_x(prep, x_t), rec)
            return c, (y, rec)

        carry, (ys, rec) = jax.lax.scan(body, carry, xs)
        return carry, ys, rec

    def apply(self, params, carry, x):
        prep = self.prepare(params)
        return self.step(prep, carry, x, self.project_x(prep, x))

    def scan(self, params, carry, xs, unroll: int = 1, hoist: bool | None = None):
        prep = self.prepare(params)
        if hoist is None:
            hoist = default_hoist()
        if not hoist:
            return jax.lax.scan(lambda c, x_t: self.step(prep, c, x_t, self.project_x(prep, x_t)), carry, xs,
                                unroll=unroll)
        xproj = self.project_x(prep, xs)  # (T, ..., k*H): one big matmul before the loop
        if not self.x_direct:  # x is only read through linear nodes: scan over xproj alone
            return jax.lax.scan(lambda c, p_t: self.step(prep, c, None, p_t), carry, xproj, unroll=unroll)

        def body(c, inp):
            x_t, p_t = inp
            return self.step(prep, c, x_t, p_t)

        return jax.lax.scan(body, carry, (xs, xproj), unroll=unroll)


def default_hoist() -> bool:
    """Whether ``scan`` hoists the input projections by default in training (forward and
    backward): on accelerators (one large matmul, as cuDNN), not on CPU, where
    ``benchmarks/bench_step.py`` measured it slower."""
    return jax.default_backend() != "cpu"


class CompiledCell(NamedTuple):
    """Pure functions of one cell; see the module docstring.

    Attributes:
      graph: the cell graph.
      hash: its structural hash.
      states: state names in carry order.
      output: the state that is also the output ``y``.
      init, init_numpy, apply, scan, initial_carry: the functions.
      program: the shared canonical program (same object for isomorphic cells).
      trace: ``trace(params, carry, xs) -> (carry, ys, {node: values (T, ..., H)})``: ``scan``
        that also returns every computed node's value at every step (for analysis).
    """

    graph: CellGraph
    hash: str
    states: tuple[str, ...]
    output: str
    init: Callable[..., Params]
    init_numpy: Callable[..., Params]
    apply: Callable[[Params, Carry, jax.Array], tuple[Carry, jax.Array]]
    scan: Callable[..., tuple[Carry, jax.Array]]
    initial_carry: Callable[..., Carry]
    program: _Program
    trace: Callable[..., tuple[Carry, jax.Array, dict[str, jax.Array]]]

    def param_count(self, input_size: int, hidden_size: int) -> int:
        return param_count(self.graph, hidden_size, input_size)


_CACHE: OrderedDict[tuple[str, bool], _Program] = OrderedDict()
_CACHE_SIZE = 4096
_STATS = {"hits": 0, "misses": 0}


def canonical_program(g: CellGraph, fuse: bool = True) -> tuple[Canonical, _Program]:
    """The canonical form of ``g`` and its program, cached by structural hash: isomorphic
    cells get the same program object (ids, state order and parameter names canonical)."""
    c, lay = layout(g)
    key = (c.hash, fuse)
    prog = _CACHE.get(key)
    if prog is None:
        _STATS["misses"] += 1
        prog = _CACHE[key] = _Program(lay, fuse)
        if len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    else:
        _STATS["hits"] += 1
        _CACHE.move_to_end(key)
    return c, prog


def in_dtype(dtype, params: Params, carry: Sequence, x):
    """Parameters, carry and inputs in the computation dtype: ``dtype``, or (``None``) the dtype the
    inputs and parameters promote to, as flax's ``promote_dtype`` does. Casting to the dtype an
    array already has changes nothing."""
    dt = jnp.dtype(dtype) if dtype is not None else jnp.result_type(x, *jax.tree.leaves(params))
    return (jax.tree.map(lambda a: a.astype(dt), params), tuple(c.astype(dt) for c in carry), x.astype(dt))


def compile_cell(g: CellGraph, *, fuse: bool = True) -> CompiledCell:
    """Compiles a cell graph (validated first); see the module docstring.

    >>> from cellsearch.evolve.spaces import find_seed
    >>> cell = compile_cell(find_seed("LSTM"))
    >>> params = cell.init(jax.random.key(0), 16, 32)
    >>> carry, y = cell.apply(params, cell.initial_carry((8,), 32), jnp.ones((8, 16)))
    >>> [c.shape for c in carry], y.shape
    ([(8, 32), (8, 32)], (8, 32))
    """
    validate(g)
    c, prog = canonical_program(g, fuse)
    nmap = c.node_map
    inv_n = {v: k for k, v in nmap.items()}
    states = tuple(g.graph["states"])
    canon_pos = [prog.states.index(c.state_map[s]) for s in states]  # user state i -> canon index
    user_pos = [states.index(next(s for s in states if c.state_map[s] == cs)) for cs in prog.states]

    def to_canon(params: Params) -> Params:
        for n in params:
            if n not in nmap:
                raise CompileError(f"params has an entry {n!r}, which is not a linear node of the cell")
        return rename_params(params, nmap)

    def carry_in(carry: Sequence) -> Carry:
        if len(carry) != len(states):
            raise CompileError(f"carry must be a tuple of {len(states)} arrays {states}, got {len(carry)}")
        return tuple(carry[i] for i in user_pos)

    def carry_out(carry: Carry, kinds=None) -> Carry:  # canonical order -> the user's (and its dtypes)
        out = tuple(carry[i] for i in canon_pos)
        return out if kinds is None else tuple(c.astype(k) for c, k in zip(out, kinds, strict=True))

    def init(key, input_size: int, hidden_size: int, *, init_scale=1.0) -> Params:
        return rename_params(prog.init(key, int(input_size), int(hidden_size), init_scale), inv_n)

    def init_numpy(seed, input_size: int, hidden_size: int, *, init_scale: float = 1.0) -> Params:
        return rename_params(prog.layout.init_numpy(seed, int(input_size), int(hidden_size), init_scale), inv_n)

    def apply(params, carry, x, *, dtype=None):
        kinds = [c.dtype for c in carry]
        params, carry, x = in_dtype(dtype, params, carry, x)
        new, y = prog.apply(to_canon(params), carry_in(carry), x)
        return carry_out(new, kinds), y

    def scan(params, carry, xs, *, unroll: int = 1, hoist: bool | None = None, dtype=None):
        kinds = [c.dtype for c in carry]
        params, carry, xs = in_dtype(dtype, params, carry, xs)
        new, ys = prog.scan(to_canon(params), carry_in(carry), xs, unroll, hoist)
        return carry_out(new, kinds), ys

    def initial_carry(batch_shape: Sequence[int], hidden_size: int, dtype=jnp.float32) -> Carry:
        return tuple(jnp.zeros((*batch_shape, hidden_size), dtype) for _ in states)

    def trace(params, carry, xs):
        new, ys, rec = prog.trace(to_canon(params), carry_in(carry), xs)
        return carry_out(new), ys, {inv_n[n]: v for n, v in rec.items()}

    return CompiledCell(g, c.hash, states, g.graph["output"], init, init_numpy, apply, scan, initial_carry, prog,
                        trace)


def cache_info() -> dict[str, int]:
    """Hits, misses and size of the program cache."""
    return {**_STATS, "size": len(_CACHE)}
