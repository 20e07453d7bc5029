"""A cell graph as padded integer arrays: the input of the population interpreter.

Many *different* cells can run in one compiled program when each is data, not code (as
ENAS's controller samples and TensorNEAT's padded genomes, ``shared/docs/anchors-2.md`` §2).
:func:`encode` turns a valid cell into an :class:`Encoding` of a :class:`SizeClass`; cells
of one size class stack along a leading axis and :mod:`cellsearch.population` runs them all.

The program of a size class is a fixed sequence of **value slots**:

* slot 0 is ``x``; slots ``1..states`` are the previous states (canonical order);
* **stage 0**: ``elementwise`` slots (constants, and nodes that read no linear node);
* **stage d = 1..stages**: ``linears`` linear nodes, whose products are one batched matrix
  multiply per stage for the whole population (``full`` operand slots with a square kernel
  each, ``diag`` operand slots with a weight vector each, summed into their linear node
  with a 0/1 matrix), then ``elementwise`` slots that read anything before them.

A node's stage is its **linear depth**: 1 + the largest stage of its operands for a linear
node, the largest stage of its operands otherwise (``x``, states and constants: 0). An
elementwise slot holds an op code (:data:`OPCODES`), two operand slots and a constant; every
op is computed and the slot's op selected (cheap next to the matrix products). Padding is
inert: an unused elementwise slot copies ``x`` and is never read, an unused operand slot
has a zero row in the 0/1 matrix, an unused linear node has no bias; the interpreter masks
the unused kernels so they get no gradient.

Width: every value has the hidden width, so cells that read ``x`` need the input width to
equal the hidden width, which the model's embedding always gives.

A population's size class is the elementwise maximum of its cells' own classes, each count
rounded up a ladder (:data:`LADDER`) so that a search meets few classes and compiles few
programs. A cell larger than an explicitly given class is refused (:class:`ConfigError`).

This module imports nothing from JAX.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np

from cellsearch.canon import canonical
from cellsearch.errors import ConfigError
from cellsearch.graph import CellGraph, edge_kind, operands, validate

OPCODES = ("identity", "tanh", "sigmoid", "relu", "add", "mul", "sub", "const")
OPCODE = {name: k for k, name in enumerate(OPCODES)}
LADDER = (0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128)


def round_up(n: int) -> int:
    """``n`` rounded up :data:`LADDER` (beyond it, to a multiple of 64)."""
    for v in LADDER:
        if v >= n:
            return v
    return -(-n // 64) * 64


class SizeClass(NamedTuple):
    """The padded sizes of an interpreter program (per stage, the same for every stage)."""

    states: int
    stages: int
    elementwise: int
    linears: int
    full: int
    diag: int

    @property
    def slots(self) -> int:
        """Value slots of one step: x, states, stage 0, then each stage's linears and elementwise."""
        return 1 + self.states + self.elementwise + self.stages * (self.linears + self.elementwise)

    def covers(self, other: SizeClass) -> bool:
        return all(a >= b for a, b in zip(self, other, strict=True))

    def rounded(self) -> SizeClass:
        return SizeClass(self.states, self.stages, *(round_up(v) for v in self[2:]))

    @staticmethod
    def of(classes: Iterable[SizeClass]) -> SizeClass:
        """The smallest rounded class covering every class given."""
        cs = list(classes)
        if not cs:
            raise ConfigError("a population needs at least one cell")
        return SizeClass(*(max(v) for v in zip(*cs, strict=True))).rounded()


class Encoding(NamedTuple):
    """One cell at one size class (NumPy arrays; stack them to run a population).

    Attributes:
      op, a, b, const: elementwise slots ``(stages + 1, elementwise)``: op code, operand slots
        and constant (``const`` ops only).
      src: operand slots of each stage's products ``(stages, full + diag)``, full ones first.
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
    """A cell's canonical graph, its own size class, and its nodes placed in stages."""

    graph: CellGraph
    size: SizeClass
    stage_of: dict[str, int]
    elementwise: list[list[str]]  # per stage 0..D, in topological order
    linears: list[list[str]]  # per stage 1..D (index d - 1)


def plan(g: CellGraph) -> Plan:
    """Places a cell's canonical nodes in stages (see the module docstring)."""
    validate(g)
    cg = canonical(g).graph
    stage: dict[str, int] = {}
    elem: dict[int, list[str]] = {}
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
            elem.setdefault(depth, []).append(n)
    D = max(lins, default=0)
    full = [sum(1 for n in lins.get(d, []) for u in operands(cg, n) if edge_kind(cg, u, n) == "full")
            for d in range(1, D + 1)]
    diag = [sum(1 for n in lins.get(d, []) for u in operands(cg, n) if edge_kind(cg, u, n) == "diag")
            for d in range(1, D + 1)]
    size = SizeClass(states=len(cg.graph["states"]), stages=D,
                     elementwise=max((len(v) for v in elem.values()), default=0),
                     linears=max((len(v) for v in lins.values()), default=0),
                     full=max(full, default=0), diag=max(diag, default=0))
    return Plan(cg, size, stage, [elem.get(d, []) for d in range(D + 1)], [lins.get(d, []) for d in range(1, D + 1)])


def encode(p: Plan, size: SizeClass) -> tuple[Encoding, Layout]:
    """The cell of plan ``p`` padded to ``size``, and where its parameters go.

    Raises :class:`ConfigError` if ``size`` does not cover the cell's own class."""
    if not size.covers(p.size):
        need = ", ".join(f"{k} {v}" for k, v, have in zip(SizeClass._fields, p.size, size, strict=True) if v > have)
        raise ConfigError(f"the cell needs a larger interpreter size class ({need}) than the one given {tuple(size)}; "
                          "use SizeClass.of over the population's cells")
    g, S, D, E, L, M, Q = p.graph, size.states, size.stages, size.elementwise, size.linears, size.full, size.diag
    states = list(g.graph["states"])
    slot = {"x": 0, **{f"{s}_prev": 1 + i for i, s in enumerate(states)}}
    elem_base = [1 + S] + [1 + S + E + d * (L + E) + L for d in range(D)]
    lin_base = [1 + S + E + d * (L + E) for d in range(D)]
    for d, nodes in enumerate(p.elementwise):
        for j, n in enumerate(nodes):
            slot[n] = elem_base[d] + j
    for d, nodes in enumerate(p.linears):
        for j, n in enumerate(nodes):
            slot[n] = lin_base[d] + j
    enc = Encoding(
        op=np.zeros((D + 1, E), np.int32), a=np.zeros((D + 1, E), np.int32), b=np.zeros((D + 1, E), np.int32),
        const=np.zeros((D + 1, E), np.float32), src=np.zeros((D, M + Q), np.int32),
        onehot=np.zeros((D, M + Q, L), np.float32), real=np.zeros((D, M + Q), np.float32),
        bias=np.zeros((D, L), np.float32), out=np.arange(1, S + 1, dtype=np.int32), y=np.zeros((), np.int32))
    for d, nodes in enumerate(p.elementwise):
        for j, n in enumerate(nodes):
            node, args = g.nodes[n], operands(g, n)
            enc.op[d, j] = OPCODE[node["op"]]
            if node["op"] == "const":
                enc.const[d, j] = float(node["value"])
            for arr, u in zip((enc.a, enc.b), args, strict=False):
                arr[d, j] = slot[u]
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
