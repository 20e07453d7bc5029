"""Discovered cells as flax cells: a linen ``RNNCellBase`` and an nnx ``RNNCellBase`` with flax's
cell contract.

Both compile the graph with :func:`cellsearch.nn.compile.compile_cell`, so they compute exactly what
the search trained, with the same parameter names: ``{linear node id: {"W_<operand>": kernel,
"b": bias}}``, kernels ``(in, out)`` as flax's ``Dense``. What flax's own cells take, these take
too:

* ``dtype`` (the computation dtype; ``None``: promoted from the inputs and the parameters) and
  ``param_dtype`` (the parameters'); the carry that :meth:`initialize_carry` makes is in the
  computation dtype (``dtype``, else ``param_dtype``), and a step returns the carry in the dtype it
  was given, so ``nn.RNN``'s scan keeps one carry type. flax's ``LSTMCell`` makes its carry in
  ``param_dtype`` and lets promotion decide after the first step.
* ``kernel_init`` (kernels that read the input ``x``), ``recurrent_kernel_init`` (every other
  kernel), ``bias_init`` and ``carry_init``, each a flax initializer ``init(key, shape, dtype)``.
  Unset, a cell starts as the search trained it (:mod:`cellsearch.cell.params`: every kernel in
  ``U[-s, s]``, ``s = init_scale / sqrt(features)``); a Linear(a, x) node keeps its ``a * I``,
  plus :data:`~cellsearch.cell.ops.LINEAR_A_NOISE` times its initializer's draw, and a node's
  ``bias_init`` constant (the LSTM-b forget gate's 1) is added to the drawn bias. Peephole (diag)
  weights always start as the search's.
* **The carry**: a tuple in the graph's ``states`` order for a cell with several states (``(c, h)``
  for LSTM-like cells, as flax's ``LSTMCell``), a bare array for a cell with one state (as flax's
  ``GRUCell``), so code written for flax's cells drops in; ``tuple_carry=True`` keeps ``(h,)``.

Example (linen): ``GraphCell(128, cellsearch.load_cell("GRU"))`` in ``nn.RNN``; (nnx):
``NNXGraphCell(64, 128, graph, rngs=nnx.Rngs(0))`` in ``nnx.RNN``. A cell trained by ``cellsearch
train --save`` or ``confirm --save`` loads with its weights through :meth:`GraphCell.from_saved`.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn
from flax import nnx
from flax.typing import Dtype, Initializer

from cellsearch.cell.graph import CellGraph, edge_kind, from_json, linear_nodes, to_json, widths
from cellsearch.cell.ops import LINEAR_A_NOISE
from cellsearch.evolve.spaces import resolve_cell
from cellsearch.nn.checkpoint import load_run
from cellsearch.nn.compile import CompiledCell, compile_cell


@functools.lru_cache(maxsize=256)
def _compiled(graph_json: str, fuse: bool) -> CompiledCell:
    return compile_cell(from_json(graph_json), fuse=fuse)


def graph_json(graph: CellGraph | str) -> str:
    """A cell as compact JSON: a graph, JSON text, a seed name or a cell file (a store's cell:
    ``cellsearch.load_cell(ID, db)``)."""
    if isinstance(graph, str):
        graph = from_json(graph) if graph.lstrip().startswith("{") else resolve_cell(graph)
    return to_json(graph, None)


def init_params(cell: CompiledCell, key, in_features: int, features: int, *, init_scale: float = 1.0,
                kernel_init: Initializer | None = None, recurrent_kernel_init: Initializer | None = None,
                bias_init: Initializer | None = None, param_dtype: Dtype = jnp.float32) -> dict:
    """A cell's initial parameters (see the module docstring for what each initializer draws)."""
    params = cell.init(key, in_features, features, init_scale=init_scale)
    if kernel_init is None and recurrent_kernel_init is None and bias_init is None:
        return jax.tree.map(lambda a: a.astype(param_dtype), params)
    g, width = cell.graph, widths(cell.graph)
    out: dict[str, dict[str, Any]] = {}
    for i, n in enumerate(linear_nodes(g)):
        d, mine = g.nodes[n], {}
        for j, (name, value) in enumerate(sorted(params[n].items())):
            k = jax.random.fold_in(jax.random.fold_in(key, 10_007 + i), j)
            if name == "b":
                mine[name] = value if bias_init is None else (
                    bias_init(k, value.shape, param_dtype) + float(d.get("bias_init", 0.0)))
                continue
            u = name[2:]
            init = kernel_init if width[u] == "x" else recurrent_kernel_init
            if init is None or edge_kind(g, u, n) == "diag":
                mine[name] = value
            elif d.get("scale") is not None:  # Linear(a, x): a * I plus a little of the initializer's draw
                mine[name] = d["scale"] * jnp.eye(*value.shape) + LINEAR_A_NOISE * init(k, value.shape, param_dtype)
            else:
                mine[name] = init(k, value.shape, param_dtype)
        out[n] = {name: v.astype(param_dtype) for name, v in mine.items()}
    return out


def _carry_shape(input_shape, features: int) -> tuple[int, ...]:
    return (*tuple(input_shape)[:-1], features)


class GraphCell(nn.RNNCellBase):
    """A cell graph as a flax linen RNN cell; drops into ``nn.RNN``, ``nn.Bidirectional``, ``nn.scan``.

    The step is the graph's equations (``cellsearch show NAME``); e.g. for the GRU seed

    .. math::
        r = \\sigma(W_{xr} x + W_{hr} h + b_r), \\quad z = \\sigma(W_{xz} x + W_{hz} h + b_z), \\quad
        u = \\tanh(W_{xu} x + W_{hu} (r * h) + b_u), \\quad h' = z * h + (1 - z) * u

    Attributes:
      features: the hidden size.
      graph: the cell: a :class:`~cellsearch.cell.graph.CellGraph` (``cellsearch.load_cell`` finds one
        in a store), JSON text, a seed name or a cell file; kept as compact JSON, so the module stays
        hashable.
      init_scale: the search's initialisation, ``U[-s, s]`` with ``s = init_scale / sqrt(features)``.
      kernel_init, recurrent_kernel_init, bias_init, carry_init: flax initializers (module docstring).
      dtype, param_dtype: the computation dtype (``None``: promoted) and the parameters' dtype.
      fuse: one matmul per operand for the linear nodes that share it (as ``OptimizedLSTMCell``).
      tuple_carry: keep a one-state cell's carry as ``(h,)`` instead of ``h``.

    >>> import jax, cellsearch
    >>> cell = GraphCell(8, cellsearch.load_cell("GRU"))
    >>> carry = cell.initialize_carry(jax.random.key(0), (2, 3))
    >>> variables = cell.init(jax.random.key(1), carry, jax.numpy.ones((2, 3)))
    >>> new_carry, y = cell.apply(variables, carry, jax.numpy.ones((2, 3)))
    >>> new_carry.shape, y.shape, sorted(variables["params"])
    ((2, 8), (2, 8), ['lin_r', 'lin_u', 'lin_z'])
    """

    features: int
    graph: Any
    init_scale: float = 1.0
    kernel_init: Initializer | None = None
    recurrent_kernel_init: Initializer | None = None
    bias_init: Initializer | None = None
    carry_init: Initializer = nn.initializers.zeros_init()
    dtype: Dtype | None = None
    param_dtype: Dtype = jnp.float32
    fuse: bool = True
    tuple_carry: bool = False

    def __post_init__(self):
        object.__setattr__(self, "graph", graph_json(self.graph))
        super().__post_init__()

    @classmethod
    def from_graph(cls, graph: CellGraph | str, features: int, **kwargs: Any) -> GraphCell:
        return cls(features, graph, **kwargs)

    @classmethod
    def from_saved(cls, directory: str, layer: int = 0, **kwargs: Any) -> tuple[GraphCell, dict]:
        """A trained cell saved by ``cellsearch train ... --save DIR`` (or ``confirm --save``): the
        module and its variables ``{"params": ...}`` for layer ``layer``, ready for ``cell.apply``."""
        run = load_run(directory)
        params = jax.tree.map(jnp.asarray, run.cell_params(layer))
        return cls(run.hidden, run.graph, **kwargs), {"params": params}

    @property
    def compiled(self) -> CompiledCell:
        return _compiled(self.graph, self.fuse)

    @nn.compact
    def __call__(self, carry, inputs):
        cell = self.compiled
        keys = linear_nodes(cell.graph)
        everything = functools.partial(
            init_params, cell, in_features=inputs.shape[-1], features=self.features, init_scale=self.init_scale,
            kernel_init=self.kernel_init, recurrent_kernel_init=self.recurrent_kernel_init, bias_init=self.bias_init,
            param_dtype=self.param_dtype)
        params = {n: self.param(n, lambda key, n=n: everything(key)[n]) for n in keys}
        bare = len(cell.states) == 1 and not self.tuple_carry
        new, y = cell.apply(params, (carry,) if bare else tuple(carry), inputs, dtype=self.dtype)
        return (new[0] if bare else new), y

    @nn.nowrap
    def initialize_carry(self, rng, input_shape):
        """The carry for inputs of shape ``input_shape``: ``carry_init`` (zeros by default) of shape
        ``input_shape[:-1] + (features,)`` per state, in the computation dtype."""
        shape = _carry_shape(input_shape, self.features)
        dtype = self.dtype or self.param_dtype
        states = self.compiled.states
        keys = jax.random.split(rng, len(states)) if rng is not None else [jax.random.key(0)] * len(states)
        carry = tuple(self.carry_init(k, shape, dtype) for k in keys)
        return carry[0] if len(states) == 1 and not self.tuple_carry else carry

    @property
    def num_feature_axes(self) -> int:
        return 1


class NNXGraphCell(nnx.RNNCellBase):
    """A cell graph as a flax nnx RNN cell; works with ``nnx.RNN``.

    Args:
      in_features: the input width (MUT1/MUT2-like cells, which add ``x`` to hidden-width values,
        need ``in_features == hidden_features``).
      hidden_features: the hidden size.
      graph: the cell, as :class:`GraphCell` takes it.
      rngs: ``nnx.Rngs`` for the parameters.
      init_scale, kernel_init, recurrent_kernel_init, bias_init, dtype, param_dtype, fuse,
        tuple_carry: as in :class:`GraphCell`.
      carry_init: the default of :meth:`initialize_carry`'s ``carry_init`` (zeros).
    """

    def __init__(self, in_features: int, hidden_features: int, graph: CellGraph | str, *, rngs: nnx.Rngs,
                 init_scale: float = 1.0, kernel_init: Initializer | None = None,
                 recurrent_kernel_init: Initializer | None = None, bias_init: Initializer | None = None,
                 carry_init: Initializer | None = None, dtype: Dtype | None = None, param_dtype: Dtype = jnp.float32,
                 fuse: bool = True, tuple_carry: bool = False):
        self.graph_json = graph_json(graph)
        self.fuse, self.tuple_carry = fuse, tuple_carry
        self.in_features, self.hidden_features = in_features, hidden_features
        self.dtype, self.param_dtype, self.carry_init = dtype, param_dtype, carry_init
        params = init_params(self.compiled, rngs.params(), in_features, hidden_features, init_scale=init_scale,
                             kernel_init=kernel_init, recurrent_kernel_init=recurrent_kernel_init, bias_init=bias_init,
                             param_dtype=param_dtype)
        self.weights = nnx.data({n: {k: nnx.Param(v) for k, v in p.items()} for n, p in params.items()})

    @property
    def compiled(self) -> CompiledCell:
        return _compiled(self.graph_json, self.fuse)

    @classmethod
    def from_saved(cls, directory: str, layer: int = 0, **kwargs: Any) -> NNXGraphCell:
        """A trained cell saved by ``cellsearch train ... --save DIR`` (layer ``layer``), with its
        trained parameters."""
        run = load_run(directory)
        module = cls(run.hidden, run.hidden, run.graph, rngs=nnx.Rngs(0), **kwargs)
        for node, p in run.cell_params(layer).items():
            for k, v in p.items():
                module.weights[node][k].set_value(jnp.asarray(v, module.param_dtype))
        return module

    def param_dict(self) -> dict[str, dict[str, jax.Array]]:
        """The parameters as plain arrays, in :func:`~cellsearch.nn.compile.compile_cell`'s layout."""
        return {n: {k: v.get_value() for k, v in p.items()} for n, p in self.weights.items()}

    def __call__(self, carry, inputs):
        cell = self.compiled
        bare = len(cell.states) == 1 and not self.tuple_carry
        new, y = cell.apply(self.param_dict(), (carry,) if bare else tuple(carry), inputs, dtype=self.dtype)
        return (new[0] if bare else new), y

    def initialize_carry(self, input_shape, rngs: nnx.Rngs | nnx.RngStream | None = None,
                         carry_init: Initializer | None = None):
        """The carry for inputs of shape ``input_shape``: ``carry_init`` (else the module's, else
        zeros) of shape ``input_shape[:-1] + (hidden_features,)`` per state, in the computation
        dtype. ``rngs`` is an ``nnx.Rngs`` (its ``carry`` stream) or an ``nnx.RngStream``, as
        ``nnx.RNN`` passes it; it may be left out when the carry starts at zeros."""
        init = carry_init or self.carry_init
        if isinstance(rngs, nnx.Rngs):
            rngs = rngs.carry
        if rngs is None and init is not None:
            raise ValueError("RNGs must be provided to initialize the cell carry with a carry_init.")
        init = init or nnx.initializers.zeros_init()
        shape = _carry_shape(input_shape, self.hidden_features)
        dtype = self.dtype or self.param_dtype
        states = self.compiled.states
        carry = tuple(init(rngs() if rngs is not None else jax.random.key(0), shape, dtype) for _ in states)
        return carry[0] if len(states) == 1 and not self.tuple_carry else carry

    @property
    def num_feature_axes(self) -> int:
        return 1
