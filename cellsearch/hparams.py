"""Hyperparameters of one training run and the grids they are sampled from.

The paper sampled initialisation scale, learning rate, maximum gradient norm, number of
layers and number of parameters (§3.8, [S1]); the value sets are not known, so the grids
below are ours ([I]) and are settings of :class:`HParamSpace`. A cell's hidden size is derived
from the parameter budget (:func:`cellsearch.cell.params.hidden_size`), so cells compare at
(nearly) equal size. This module imports nothing but the errors.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace

import numpy as np

from cellsearch.errors import ConfigError


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

    def sample(self, rng: np.random.Generator, n: int, *, seed_base: int = 0, spread_rates: bool = False,
               tried_rates: tuple[float, ...] = ()) -> list[HParams]:
        """``n`` settings drawn uniformly and independently from the grids. With ``spread_rates``
        each setting's learning rate is drawn among the rates not drawn before it (nor in
        ``tried_rates``) while any is left, so ``n`` settings cover ``min(n, rates left)``
        different rates: SGD's learning rate moves a cell's score the most of all axes, and 4
        independent draws from ``--quick``'s 6 rates missed the GRU's best two (2 and 3) in
        about 1 search in 5 (``benchmarks/README.md``, "Settings a search starts from").

        >>> space = HParamSpace(learning_rate=(0.1, 1.0, 3.0))
        >>> sorted(h.learning_rate for h in space.sample(np.random.default_rng(0), 3, spread_rates=True))
        [0.1, 1.0, 3.0]
        >>> {h.learning_rate for h in space.sample(np.random.default_rng(0), 2, spread_rates=True,
        ...                                         tried_rates=(0.1,))}
        {1.0, 3.0}
        """
        out, tried = [], set(tried_rates)
        for k in range(n):
            pick = {}
            for f in fields(self):
                grid = getattr(self, f.name)
                if spread_rates and f.name == "learning_rate":
                    grid = tuple(v for v in grid if v not in tried) or grid
                pick[f.name] = grid[rng.integers(len(grid))]
            tried.add(pick["learning_rate"])
            out.append(HParams(**{k2: (float(v) if isinstance(v, float) else int(v)) for k2, v in pick.items()},
                               seed=seed_base + k))
        return out

    def draw(self, rng: np.random.Generator, n: int, *, spread_rates: bool = False, have: list[HParams] = (),
             tried_rates: tuple[float, ...] = (), admit: Callable | None = None) -> list[HParams]:
        """``have`` extended to ``n`` settings by single draws of :meth:`sample` (at most ``50 n``
        draws), each spreading its learning rate over ``tried_rates`` and the rates already in
        the list; ``admit(h, out)`` turns a draw into the setting kept, or ``None`` to skip it
        (default: ``h`` unless already in the list). A grid with fewer points gives fewer. How
        a search draws a cell's settings on a task (``Search._settings``) and how the
        benchmarks draw them as it does.

        >>> space = HParamSpace(learning_rate=(0.1, 1.0), init_scale=(1.0,), max_grad_norm=(5.0,), layers=(1,))
        >>> [h.learning_rate for h in space.draw(np.random.default_rng(0), 3, spread_rates=True)]  # the grid has 2
        [1.0, 0.1]
        """
        out = list(have)
        admit = admit or (lambda h, got: None if h in got else h)
        for _ in range(50 * n):
            if len(out) >= n:
                break
            (h,) = self.sample(rng, 1, spread_rates=spread_rates,
                               tried_rates=tuple(set(tried_rates) | {s.learning_rate for s in out}))
            kept = admit(h, out)
            if kept is not None:
                out.append(kept)
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


def point_key(hparams: dict) -> str:
    """A setting's grid point without its seed, as a stable string (JSON, sorted keys): what
    :func:`seeded` derives a seed from and what tells a confirmation's settings apart.

    >>> point_key({"learning_rate": 1.0, "seed": 3}) == point_key({"seed": 4, "learning_rate": 1.0})
    True
    """
    return json.dumps({k: v for k, v in hparams.items() if k != "seed"}, sort_keys=True)


def setting_text(hparams: dict) -> str:
    """A stored setting as ``cellsearch show`` and ``confirm`` print it.

    >>> setting_text({"learning_rate": 1.0, "init_scale": 2.0, "max_grad_norm": 5.0, "layers": 1, "seed": 3})
    'lr=1 init=2 clip=5 L=1'
    """
    return (f"lr={hparams['learning_rate']:g} init={hparams['init_scale']:g} clip={hparams['max_grad_norm']:g} "
            f"L={hparams['layers']}")


def seeded(h: HParams, search_seed: int, replicate: int = 0) -> HParams:
    """``h`` with its initialisation seed derived from the search seed, its grid point and the
    ``replicate`` number, so a setting's seed is stable: a resumed step, or the same point met
    again, trains the same run; replicate ``r >= 1`` of a point is a run with a new seed (a
    re-evaluation samples seed noise, see :meth:`cellsearch.search.steps.Search._settings`).

    >>> seeded(HParams(learning_rate=1.0), 0) == seeded(HParams(learning_rate=1.0, seed=7), 0)
    True
    >>> seeded(HParams(), 0).seed != seeded(HParams(), 0, replicate=1).seed
    True
    """
    digest = hashlib.sha256(f"{search_seed}:{point_key(asdict(h))}".encode() + (f":{replicate}".encode() if replicate else b"")).digest()
    return replace(h, seed=int.from_bytes(digest[:4], "little") & 0x7FFFFFFF)
