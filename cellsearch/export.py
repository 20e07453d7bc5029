"""flax modules from cell graphs: a linen ``RNNCellBase`` and an nnx module.

Both wrap :func:`cellsearch.compile.compile_cell`, so they compute exactly what the search
trained, with the same parameter names (``{linear node id: {"W_<operand>": kernel, "b": bias}}``).
The carry is a tuple in the graph's ``states`` order, e.g. ``(c, h)`` for LSTM-like cells and
``(h,)`` for GRU-like ones; the output ``y`` is the new value of the graph's output state.

Example (linen)::

    cell = GraphCell.from_graph(cellsearch.graph.load("cell.json"), features=128)
    model = nn.RNN(cell)                      # (batch, time, features) -> (batch, time, 128)

Example (nnx)::

    cell = NNXGraphCell(64, 128, graph=graph, rngs=nnx.Rngs(0))
    model = nnx.RNN(cell)
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn
from flax import nnx

from cellsearch.compile import CompiledCell, compile_cell
from cellsearch.graph import CellGraph, from_json, linear_nodes, to_json


@functools.lru_cache(maxsize=256)
def _compiled(graph_json: str, fuse: bool) -> CompiledCell:
    return compile_cell(from_json(graph_json), fuse=fuse)


class GraphCell(nn.RNNCellBase):
    """A cell graph as a flax linen RNN cell; drops into ``nn.RNN``.

    Attributes:
      graph_json: the cell as compact JSON (a hashable, static field).
      features: the hidden size.
      init_scale: parameters start in ``U[-s, s]``, ``s = init_scale / sqrt(features)``.
      fuse: fuse the matmuls that share an operand.
    """

    graph_json: str
    features: int
    init_scale: float = 1.0
    fuse: bool = True

    @classmethod
    def from_graph(cls, graph: CellGraph, features: int, **kwargs: Any) -> GraphCell:
        return cls(graph_json=to_json(graph, None), features=features, **kwargs)

    @property
    def compiled(self) -> CompiledCell:
        return _compiled(self.graph_json, self.fuse)

    @classmethod
    def from_saved(cls, directory: str, layer: int = 0, **kwargs: Any) -> tuple[GraphCell, dict]:
        """A trained cell saved by ``cellsearch train ... --save DIR``: the module and its
        variables ``{"params": ...}`` for layer ``layer``, ready for ``cell.apply``."""
        from cellsearch.protocol import load_run

        run = load_run(directory)
        params = jax.tree.map(jnp.asarray, run.cell_params(layer))
        return cls.from_graph(run.graph, features=run.hidden, **kwargs), {"params": params}

    @nn.compact
    def __call__(self, carry, inputs):
        cell = self.compiled
        in_size = inputs.shape[-1]
        params = {
            n: self.param(
                n, lambda key, n=n: cell.init(key, in_size, self.features, init_scale=self.init_scale)[n]
            )
            for n in linear_nodes(cell.graph)
        }
        return cell.apply(params, tuple(carry), inputs)

    @nn.nowrap
    def initialize_carry(self, rng, input_shape):
        """Zeros of shape ``input_shape[:-1] + (features,)``, one per state."""
        del rng
        return self.compiled.initial_carry(input_shape[:-1], self.features)

    @property
    def num_feature_axes(self) -> int:
        return 1


class NNXGraphCell(nnx.Module):
    """A cell graph as a flax nnx module; works with ``nnx.RNN``.

    Args:
      in_features: input width (MUT1/MUT2-like cells need ``in_features == hidden_features``).
      hidden_features: hidden size.
      graph: the cell graph.
      rngs: ``nnx.Rngs`` for the parameters.
      init_scale, fuse: as in :class:`GraphCell`.
    """

    def __init__(self, in_features: int, hidden_features: int, *, graph: CellGraph,
                 rngs: nnx.Rngs, init_scale: float = 1.0, fuse: bool = True):
        self.graph_json = to_json(graph, None)
        self.fuse = fuse
        self.in_features, self.hidden_features = in_features, hidden_features
        params = self.compiled.init(rngs.params(), in_features, hidden_features, init_scale=init_scale)
        self.weights = nnx.data(
            {n: {k: nnx.Param(v) for k, v in p.items()} for n, p in params.items()}
        )

    @property
    def compiled(self) -> CompiledCell:
        return _compiled(self.graph_json, self.fuse)

    @classmethod
    def from_saved(cls, directory: str, layer: int = 0, **kwargs: Any) -> NNXGraphCell:
        """A trained cell saved by ``cellsearch train ... --save DIR`` (layer ``layer``),
        with its trained parameters."""
        from cellsearch.protocol import load_run

        run = load_run(directory)
        n = run.hidden
        module = cls(n, n, graph=run.graph, rngs=nnx.Rngs(0), **kwargs)
        for node, p in run.cell_params(layer).items():
            for k, v in p.items():
                module.weights[node][k].set_value(jnp.asarray(v))
        return module

    def param_dict(self) -> dict[str, dict[str, jax.Array]]:
        """The parameters as plain arrays, in :func:`compile_cell`'s layout."""
        return {n: {k: v.get_value() for k, v in p.items()} for n, p in self.weights.items()}

    def __call__(self, carry, inputs):
        return self.compiled.apply(self.param_dict(), tuple(carry), inputs)

    def initialize_carry(self, input_shape, rngs=None, carry_init=None):
        """Zeros of shape ``input_shape[:-1] + (hidden_features,)``, one per state
        (``carry_init``, if given, is called as ``carry_init(key, shape, dtype)`` per state)."""
        shape = (*input_shape[:-1], self.hidden_features)
        if carry_init is None:
            return self.compiled.initial_carry(input_shape[:-1], self.hidden_features)
        key = rngs.carry() if rngs is not None else jax.random.key(0)
        return tuple(carry_init(jax.random.fold_in(key, i), shape, jnp.float32)
                     for i in range(len(self.compiled.states)))

    @property
    def num_feature_axes(self) -> int:
        return 1
