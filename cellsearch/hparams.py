"""Hyperparameters of one training run, their sampler, and sizing cells by parameter budget.

The paper sampled initialisation scale, learning rate, maximum gradient norm, number of
layers and number of parameters (§3.8, [S1]); the value sets are not known, so the grids
below are ours ([I], from ``jozefowicz2015.md`` §3.8) and are settings of
:class:`HParamSpace`. The hidden size is derived from the parameter budget per cell, so
cells compare at (nearly) equal size. This module imports nothing from JAX.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields, replace

import numpy as np

from cellsearch.errors import ConfigError
from cellsearch.graph import CellGraph, param_count_coefficients


@dataclass(frozen=True)
class HParams:
    """One setting. ``param_budget`` counts the recurrent parameters of all layers (the
    embedding and readout are excluded); ``seed`` seeds the parameter initialisation."""

    init_scale: float = 1.0
    learning_rate: float = 0.5
    max_grad_norm: float = 5.0
    layers: int = 1
    param_budget: int = 20_000
    seed: int = 0

    def key(self) -> str:
        """A stable id of the setting (JSON of its fields)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> HParams:
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ConfigError(f"unknown hyperparameter(s) {sorted(unknown)}; known: {sorted(names)}")
        return cls(**d)


@dataclass(frozen=True)
class HParamSpace:
    """Finite grids to sample settings from (the paper's grid was finite, §3.1)."""

    init_scale: tuple[float, ...] = (0.3, 0.5, 0.7, 1.0, 1.4, 2.0)
    learning_rate: tuple[float, ...] = (0.1, 0.2, 0.5, 1.0, 2.0, 3.0)  # plain SGD; 3.0 helps small cells
    max_grad_norm: tuple[float, ...] = (1.0, 2.5, 5.0, 10.0, 20.0)
    layers: tuple[int, ...] = (1, 2, 3, 4)
    param_budget: tuple[int, ...] = (20_000,)

    def sample(self, rng: np.random.Generator, n: int, *, seed_base: int = 0) -> list[HParams]:
        """``n`` settings drawn uniformly and independently from the grids."""
        out = []
        for k in range(n):
            pick = {f.name: getattr(self, f.name)[rng.integers(len(getattr(self, f.name)))]
                    for f in fields(self)}
            out.append(HParams(**{k2: (float(v) if isinstance(v, float) else int(v)) for k2, v in pick.items()},
                               seed=seed_base + k))
        return out

    def points(self) -> list[HParams]:
        """Every point of the grid, in a fixed order (``seed`` 0)."""
        names = [f.name for f in fields(self)]
        out = [{}]
        for n in names:
            out = [{**d, n: v} for d in out for v in getattr(self, n)]
        return [HParams(**d) for d in out]

    def sample_distinct(self, rng: np.random.Generator, n: int) -> list[HParams]:
        """``n`` different grid points drawn uniformly without replacement (``seed`` 0)."""
        pts = self.points()
        if n > len(pts):
            raise ConfigError(f"asked for {n} different settings from a grid of {len(pts)}")
        return [pts[i] for i in sorted(rng.choice(len(pts), size=n, replace=False))]

    def grid_size(self) -> int:
        return math.prod(len(getattr(self, f.name)) for f in fields(self))

    def with_(self, **changes) -> HParamSpace:
        return replace(self, **changes)


def seeded(h: HParams, search_seed: int, replicate: int = 0) -> HParams:
    """``h`` with its initialisation seed derived from the search seed, its grid point and the
    ``replicate`` number, so a setting's seed is stable: a resumed step, or the same point met
    again, trains the same run; replicate ``r >= 1`` of a point is a run with a new seed (a
    re-evaluation samples seed noise, see :meth:`cellsearch.steps.Search._settings`).

    >>> seeded(HParams(learning_rate=1.0), 0) == seeded(HParams(learning_rate=1.0, seed=7), 0)
    True
    >>> seeded(HParams(), 0).seed != seeded(HParams(), 0, replicate=1).seed
    True
    """
    point = json.dumps({f.name: getattr(h, f.name) for f in fields(h) if f.name != "seed"}, sort_keys=True)
    digest = hashlib.sha256(f"{search_seed}:{point}".encode() + (f":{replicate}".encode() if replicate else b"")).digest()
    return replace(h, seed=int.from_bytes(digest[:4], "little") & 0x7FFFFFFF)


def hidden_size(g: CellGraph, budget: int, layers: int, *, minimum: int = 4) -> int:
    """The largest ``n`` with ``layers * (a n^2 + b n) <= budget`` for the cell's ``a n^2 + b n``
    recurrent parameters per layer (input width = hidden width), and at most ``sqrt(budget /
    layers)``: a cell without a full matrix (``a = 0``: only peepholes and biases, or no
    parameter at all, such as ``h' = h + x``) gets the width of a one-matrix cell, not a state
    thousands wide that the budget would allow.

    >>> from search_spaces.jozefowicz2015 import SEEDS
    >>> hidden_size(SEEDS["LSTM"](), 8 * 50**2 + 4 * 50, 1)
    50
    >>> from cellsearch.graph import CellBuilder
    >>> b = CellBuilder("sum", states=("h",)); _ = b.output("h", b.add(b.state("h"), b.x))
    >>> hidden_size(b.build(), 20_000, 1)
    141
    """
    a, b = param_count_coefficients(g)
    per_layer = budget / layers
    cap = math.isqrt(int(per_layer))
    if a == 0:
        return max(minimum, min(cap, int(per_layer // max(b, 1))))
    n = (-b + math.sqrt(b * b + 4 * a * per_layer)) / (2 * a)
    return max(minimum, min(cap, int(math.floor(n + 1e-9))))
