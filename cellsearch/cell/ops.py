"""The op table: what each node of a cell graph may compute, and how.

One :class:`OpSpec` per op, in the table :data:`OPS`: its arity, kind, symbols, and its kernel
``apply(backend, *operands)``. A kernel is written once, against a :class:`Backend` (the three
activation functions; ``+``, ``*`` and ``-`` are the arrays' own), and every evaluator of a cell
uses it: the compiler and the population interpreter with the JAX backend
(:data:`cellsearch.nn.compile.JAX`), the liveness probe with :data:`NUMPY`. This module imports
nothing from JAX.

References: Jozefowicz et al. 2015 §3.4 (node types) and §3.5 (mutation sets).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from cellsearch.errors import ConfigError, UnknownOpError

VARIADIC = -1  # arity of ops that take one or more operands (``linear``)


class OpSpec(NamedTuple):
    """What the graph layer needs to know about an op.

    Attributes:
      name: the value of the node attribute ``op``.
      arity: number of operands (ports ``0..arity-1``), or ``VARIADIC`` (one or more).
      kind: ``input | state | const | output | activation | binary | linear``.
      commutative: operand order does not change the result.
      has_params: the node owns trainable parameters.
      symbol: how the op is written in equations.
      glyph: how the op is drawn in pictures.
      apply: the kernel, ``apply(backend, *operands)`` (``None`` for the interface ops and
        ``linear``, whose weights the evaluators apply themselves).
    """

    name: str
    arity: int
    kind: str
    commutative: bool = False
    has_params: bool = False
    symbol: str = ""
    glyph: str = ""
    apply: Callable[..., Any] | None = None


class Backend(NamedTuple):
    """The functions a kernel may call besides the arrays' own ``+``, ``*`` and ``-``."""

    tanh: Callable[[Any], Any]
    sigmoid: Callable[[Any], Any]
    relu: Callable[[Any], Any]


# The host backend (the liveness probe, in float64): no compilation, no dispatch cost.
NUMPY = Backend(tanh=np.tanh, sigmoid=lambda v: 0.5 * (1.0 + np.tanh(0.5 * v)), relu=lambda v: np.maximum(v, 0.0))


OPS: dict[str, OpSpec] = {
    spec.name: spec
    for spec in [
        OpSpec("input", 0, "input"),  # x_t
        OpSpec("state", 0, "state"),  # h_{t-1}, c_{t-1}, ...
        OpSpec("const", 0, "const"),  # e.g. the 1 of (1 - z)
        OpSpec("output", 1, "output"),  # h_t, c_t, ...
        OpSpec("tanh", 1, "activation", symbol="tanh", glyph="tanh", apply=lambda b, v: b.tanh(v)),
        OpSpec("sigmoid", 1, "activation", symbol="sigm", glyph="σ", apply=lambda b, v: b.sigmoid(v)),
        OpSpec("relu", 1, "activation", symbol="relu", glyph="relu", apply=lambda b, v: b.relu(v)),
        OpSpec("identity", 1, "activation", symbol="", glyph="id", apply=lambda b, v: v),
        OpSpec("add", 2, "binary", commutative=True, symbol="+", glyph="+", apply=lambda b, u, v: u + v),
        OpSpec("mul", 2, "binary", commutative=True, symbol="*", glyph="×", apply=lambda b, u, v: u * v),
        OpSpec("sub", 2, "binary", symbol="-", glyph="−", apply=lambda b, u, v: u - v),
        # sum_k W_k a_k + b; each operand has its own weight; §3.5 Linear(a, x)
        OpSpec("linear", VARIADIC, "linear", commutative=True, has_params=True),
    ]
}

ACTIVATIONS = tuple(n for n, s in OPS.items() if s.kind == "activation")
BINARY_OPS = tuple(n for n, s in OPS.items() if s.kind == "binary")
SQUASHING = tuple(n for n in ACTIVATIONS if n != "identity")  # the activations that bound or rectify

# §3.5 rule 1: tanh, sigmoid, ReLU, Linear(0,x), Linear(1,x), Linear(0.9,x), Linear(1.1,x).
# ``linear:a`` names Linear(a, x): a fresh square layer initialised to a*I + noise.
PAPER_ACTIVATIONS = ("tanh", "sigmoid", "relu", "linear:0", "linear:1", "linear:0.9", "linear:1.1")
PAPER_BINARY_OPS = ("add", "mul", "sub")  # §3.5 rule 2

# Linear(a, x) starts at ``a * I`` plus "small values" (§3.5 [S1]); the paper gives no scale.
# Ours: the noise is LINEAR_A_NOISE times an ordinary layer's (``U[-1, 1] * init_scale /
# sqrt(hidden)``), so the layer stays near the identity; at full scale it expanded the state every
# step (spectral radii measured in benchmarks/README.md, "Children that live").
LINEAR_A_NOISE = 0.1


def get_op(name: str, node: str | None = None) -> OpSpec:
    """Returns the spec of op ``name`` or raises :class:`UnknownOpError` listing the known ops."""
    try:
        return OPS[name]
    except (KeyError, TypeError):
        raise UnknownOpError(
            node, "known-op", f"op {name!r} is not in OPS; known ops: {', '.join(sorted(OPS))}"
        ) from None


def parse_activation(name: str) -> tuple[str, float | None]:
    """Parses an entry of an activation set.

    >>> parse_activation("tanh")
    ('tanh', None)
    >>> parse_activation("linear:0.9")
    ('linear', 0.9)
    """
    if isinstance(name, str) and name.startswith("linear:"):
        try:
            return "linear", float(name.split(":", 1)[1])
        except ValueError:
            pass
    elif name in ACTIVATIONS:
        return name, None
    raise ConfigError(
        f"activation {name!r} is not allowed; use one of {', '.join(ACTIVATIONS)} "
        "or 'linear:A' for Linear(A, x) with a number A"
    )


def check_binary_op(name: str) -> str:
    """Returns ``name`` if it is a binary op, else raises :class:`ConfigError`."""
    if name not in BINARY_OPS:
        raise ConfigError(f"binary op {name!r} is not allowed; use one of {', '.join(BINARY_OPS)}")
    return name
