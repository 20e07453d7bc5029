"""A cell graph as padded integer arrays: the input of the population interpreter.

Many *different* cells can run in one compiled program when each is data, not code (as
ENAS's controller samples and TensorNEAT's padded genomes).
:func:`encode` turns a valid cell into an :class:`Encoding` of a :class:`SizeClass`; cells
of one size class stack along a leading axis and :mod:`cellsearch.nn.population` runs them all.

The program of a size class is a fixed sequence of **value slots**:

* slot 0 is ``x``; slots ``1..states`` are the previous states (canonical order);
* **stage 0**: levels of elementwise slots (constants, and nodes that read no linear node);
* **stage d = 1..stages**: ``linears`` linear nodes, whose products are one batched matrix
  multiply per stage for the whole population (``full`` operand slots with a square kernel
  each, ``diag`` operand slots with a weight vector each, summed into their linear node
  with a 0/1 matrix), then ``levels[d]`` levels of ``width`` elementwise slots each.

A node's stage is its **linear depth**: 1 + the largest stage of its operands for a linear
node, the largest stage of its operands otherwise (``x``, states and constants: 0). An
elementwise node's **level** in its stage is 1 + the largest level of its operands in the
same stage (0 for the rest), so a level's slots read only earlier slots and are computed
together: one gather of their operands, every op of :data:`OPCODES` over the whole level,
each slot's op selected (cheap next to the matrix products), one write. A step is therefore
a few wide operations per level, not one per node, which is what makes it fast on a CPU
(where each small XLA operation costs microseconds) and keeps the backward pass linear in
the number of slots. Padding is inert: an unused elementwise slot copies ``x`` and is never
read, an unused operand slot has a zero row in the 0/1 matrix, an unused linear node has no
bias; the interpreter masks the unused kernels so they get no gradient.

Width: every value has the hidden width, so cells that read ``x`` need the input width to
equal the hidden width, which the model's embedding always gives.

A population's size class is the elementwise maximum of its cells' own classes, the width
and the per-stage product counts rounded up a ladder (:data:`LADDER`) so that a search meets
fewer classes and compiles fewer programs (states, stages and levels stay exact). A cell
larger than an explicitly given class is refused (:class:`ConfigError`).

This module imports nothing from JAX.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np

from cellsearch.cell.canon import canonical
from cellsearch.cell.graph import CellGraph, edge_kind, operands, validate
from cellsearch.errors import ConfigError

OPCODES = ("identity", "tanh", "sigmoid", "relu", "add", "mul", "sub", "const")
OPCODE = {name: k for k, name in enumerate(OPCODES)}
LADDER = (0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128)


def round_up(n: int) -> int:
    """``n`` rounded up :data:`LADDER` (beyond it, to a multiple of 64)."""
    for v in LADDER:
        if v >= n:
            return v
    return -(-n // 64) * 64


_PER_STAGE = ("levels", "linears", "full", "diag")


def _pad(v: tuple[int, ...], n: int) -> tuple[int, ...]:
    return tuple(v) + (0,) * (n - len(v))


class SizeClass(NamedTuple):
    """The padded sizes of an interpreter program.

    Stage ``d`` (``0..stages``) has ``levels[d]`` levels of ``width`` elementwise slots
    each; stage ``d >= 1`` also has ``linears[d - 1]`` linear nodes, fed by ``full[d - 1]``
    and ``diag[d - 1]`` operand slots. Per-stage counts keep a population's padding (and so
    its matrix products) close to what its cells need."""

    states: int
    stages: int
    levels: tuple[int, ...]
    width: int
    linears: tuple[int, ...]
    full: tuple[int, ...]
    diag: tuple[int, ...]

    @property
    def slots(self) -> int:
        """Value slots of one step: x, states, then each stage's linears and levels."""
        return 1 + self.states + sum(self.linears) + self.width * sum(self.levels)

    @property
    def most(self) -> tuple[int, int, int]:
        """The largest (linears, full, diag) of any stage: the weight bank's slot counts."""
        return max(self.linears, default=0), max(self.full, default=0), max(self.diag, default=0)

    def offsets(self) -> tuple[list[list[int]], list[int]]:
        """The first slot of every level (per stage) and of every stage's linears."""
        elem: list[list[int]] = []
        lin: list[int] = []
        k = 1 + self.states
        for d, n in enumerate(self.levels):
            if d:
                lin.append(k)
                k += self.linears[d - 1]
            elem.append([k + self.width * j for j in range(n)])
            k += self.width * n
        return elem, lin

    def _flat(self, stages: int) -> tuple[int, ...]:
        """Every count, per-stage ones padded to ``stages`` stages, in one tuple."""
        out = [self.states, self.stages, self.width]
        for f in _PER_STAGE:
            out += _pad(getattr(self, f), stages + (f == "levels"))
        return tuple(out)

    def covers(self, other: SizeClass) -> bool:
        D = max(self.stages, other.stages)
        return all(a >= b for a, b in zip(self._flat(D), other._flat(D), strict=True))

    def short_of(self, other: SizeClass) -> list[str]:
        """The counts in which this class does not cover ``other`` (for error messages)."""
        D = max(self.stages, other.stages)
        out = []
        for f in SizeClass._fields:
            mine, theirs = getattr(self, f), getattr(other, f)
            if f in _PER_STAGE:
                n = D + (f == "levels")
                mine, theirs = _pad(mine, n), _pad(theirs, n)
                if any(a < b for a, b in zip(mine, theirs, strict=True)):
                    out.append(f"{f} {theirs} (have {mine})")
            elif mine < theirs:
                out.append(f"{f} {theirs} (have {mine})")
        return out

    def rounded(self) -> SizeClass:
        """Width and the counts of the matrix products rounded up :data:`LADDER` (states,
        stages and levels are small and kept exact)."""
        return self._replace(width=round_up(self.width),
                             **{f: tuple(round_up(v) for v in getattr(self, f)) for f in ("linears", "full", "diag")})

    @staticmethod
    def of(classes: Iterable[SizeClass]) -> SizeClass:
        """The smallest rounded class covering every class given."""
        cs = list(classes)
        if not cs:
            raise ConfigError("a population needs at least one cell")
        D = max(c.stages for c in cs)
        per = {f: tuple(max(v) for v in zip(*(_pad(getattr(c, f), D + (f == "levels")) for c in cs), strict=True))
               for f in _PER_STAGE}
        return SizeClass(max(c.states for c in cs), D, width=max(c.width for c in cs), **per).rounded()


class Encoding(NamedTuple):
    """One cell at one size class (NumPy arrays; stack them to run a population).

    Attributes:
      op, a, b, const: elementwise slots ``(stages + 1, max(levels), width)``: op code,
        operand slots and constant (``const`` ops only).
      src: operand slots of each stage's products ``(stages, full + diag)`` (the largest
        stage's counts, :attr:`SizeClass.most`): full ones first, diag ones from ``full``.
      onehot: ``(stages, full + diag, linears)``, 1 where an operand slot feeds a linear node.
      real: ``(stages, full + diag)``, 1 for an operand slot in use (0: padding).
      bias: ``(stages, linears)``, 1 for a linear node with a bias.
      out: the slot holding each state's new value ``(states,)`` (a padded state keeps its own slot).
      y: index of the output state in ``out`` (a 0-d array).
    """

    op: np.ndarray
    a: np.ndarray
    b: np.ndarray
    const: np.ndarray
    src: np.ndarray
    onehot: np.ndarray
    real: np.ndarray
    bias: np.ndarray
    out: np.ndarray
    y: np.ndarray


class Layout(NamedTuple):
    """Where a cell's parameters live in the interpreter's weight bank (canonical node ids):
    ``full[(node, operand)] = (stage, slot)``, ``diag[(node, operand)] = (stage, slot - full)``,
    ``linear[node] = (stage, index)``."""

    full: dict[tuple[str, str], tuple[int, int]]
    diag: dict[tuple[str, str], tuple[int, int]]
    linear: dict[str, tuple[int, int]]


class Plan(NamedTuple):
    """A cell's canonical graph, its own size class, and its nodes placed in stages and levels."""

    graph: CellGraph
    size: SizeClass
    stage_of: dict[str, int]
    elementwise: list[list[list[str]]]  # per stage 0..D, per level, in topological order
    linears: list[list[str]]  # per stage 1..D (index d - 1)


def plan(g: CellGraph) -> Plan:
    """Places a cell's canonical nodes in stages and levels (see the module docstring)."""
    validate(g)
    cg = canonical(g).graph
    stage: dict[str, int] = {}
    level: dict[str, int] = {}
    elem: dict[int, dict[int, list[str]]] = {}
    lins: dict[int, list[str]] = {}
    for n in cg.nodes:  # canonical order is topological
        op = cg.nodes[n]["op"]
        args = operands(cg, n)
        if op in ("input", "state", "output"):
            stage[n] = 0 if op != "output" else stage[args[0]]
            continue
        depth = max((stage[u] for u in args), default=0)
        if op == "linear":
            stage[n] = depth + 1
            lins.setdefault(depth + 1, []).append(n)
        else:
            stage[n] = depth
            level[n] = 1 + max((level[u] for u in args if stage[u] == depth and u in level), default=0)
            elem.setdefault(depth, {}).setdefault(level[n] - 1, []).append(n)
    D = max(lins, default=0)
    full = [sum(1 for n in lins.get(d, []) for u in operands(cg, n) if edge_kind(cg, u, n) == "full")
            for d in range(1, D + 1)]
    diag = [sum(1 for n in lins.get(d, []) for u in operands(cg, n) if edge_kind(cg, u, n) == "diag")
            for d in range(1, D + 1)]
    levels = [[elem.get(d, {}).get(j, []) for j in range(len(elem.get(d, {})))] for d in range(D + 1)]
    size = SizeClass(states=len(cg.graph["states"]), stages=D, levels=tuple(len(v) for v in levels),
                     width=max((len(v) for s in levels for v in s), default=0),
                     linears=tuple(len(lins.get(d, [])) for d in range(1, D + 1)), full=tuple(full), diag=tuple(diag))
    return Plan(cg, size, stage, levels, [lins.get(d, []) for d in range(1, D + 1)])


def encode(p: Plan, size: SizeClass) -> tuple[Encoding, Layout]:
    """The cell of plan ``p`` padded to ``size``, and where its parameters go.

    Raises :class:`ConfigError` if ``size`` does not cover the cell's own class."""
    if not size.covers(p.size):
        raise ConfigError(f"the cell needs a larger interpreter size class ({'; '.join(size.short_of(p.size))}) "
                          "than the one given; use SizeClass.of over the population's cells")
    g, S, D, W, (L, M, Q) = p.graph, size.states, size.stages, size.width, size.most
    states = list(g.graph["states"])
    slot = {"x": 0, **{f"{s}_prev": 1 + i for i, s in enumerate(states)}}
    elem_base, lin_base = size.offsets()
    for d, levels in enumerate(p.elementwise):
        for j, nodes in enumerate(levels):
            for k, n in enumerate(nodes):
                slot[n] = elem_base[d][j] + k
    for d, nodes in enumerate(p.linears):
        for j, n in enumerate(nodes):
            slot[n] = lin_base[d] + j
    V = max(size.levels, default=0)
    enc = Encoding(
        op=np.zeros((D + 1, V, W), np.int32), a=np.zeros((D + 1, V, W), np.int32),
        b=np.zeros((D + 1, V, W), np.int32), const=np.zeros((D + 1, V, W), np.float32),
        src=np.zeros((D, M + Q), np.int32), onehot=np.zeros((D, M + Q, L), np.float32),
        real=np.zeros((D, M + Q), np.float32), bias=np.zeros((D, L), np.float32),
        out=np.arange(1, S + 1, dtype=np.int32), y=np.zeros((), np.int32))
    for d, levels in enumerate(p.elementwise):
        for j, nodes in enumerate(levels):
            for k, n in enumerate(nodes):
                node, args = g.nodes[n], operands(g, n)
                enc.op[d, j, k] = OPCODE[node["op"]]
                if node["op"] == "const":
                    enc.const[d, j, k] = float(node["value"])
                for arr, u in zip((enc.a, enc.b), args, strict=False):
                    arr[d, j, k] = slot[u]
    lay = Layout({}, {}, {})
    for d, nodes in enumerate(p.linears):
        m = q = 0
        for j, n in enumerate(nodes):
            lay.linear[n] = (d, j)
            enc.bias[d, j] = 1.0 if g.nodes[n].get("bias", True) else 0.0
            for u in operands(g, n):
                if edge_kind(g, u, n) == "full":
                    k, m = m, m + 1
                    lay.full[(n, u)] = (d, k)
                else:
                    k, q = M + q, q + 1
                    lay.diag[(n, u)] = (d, k - M)
                enc.src[d, k], enc.onehot[d, k, j], enc.real[d, k] = slot[u], 1.0, 1.0
    out_of = {g.nodes[n]["state"]: operands(g, n)[0] for n in g.nodes if g.nodes[n]["op"] == "output"}
    for i, s in enumerate(states):
        enc.out[i] = slot[out_of[s]]
    enc.y[()] = states.index(g.graph["output"])
    return enc, lay


def stack(encs: Sequence[Encoding]) -> Encoding:
    """Encodings of one size class stacked along a new leading (population) axis."""
    return Encoding(*(np.stack(xs) for xs in zip(*encs, strict=True)))
