"""Search strategies behind one interface: the paper's pool, aging evolution, random search.

A strategy decides what a step does and how a scored cell enters the pool:

* ``propose(view, rng) -> ("reeval", hash) | ("child", parent_hash, n_mutations)``
* ``admit(view, hash, score) -> (add, remove)``: pool changes after a cell is scored.

``view`` is the search's read-only view of the store (:class:`PoolView`).
Strategies are listed by name in :data:`STRATEGIES`. This module imports nothing from JAX.
The evaluation pipeline (filter, hurdle, all tasks) is the same for every strategy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from cellsearch.config import one_of


class PoolView:
    """What a strategy may read: the pool (oldest first), the seed cells, and scores.

    ``scores`` makes an object with ``score(hash)`` (:class:`cellsearch.search.results.Scores`),
    read once per call of :meth:`pool_scores`.
    """

    def __init__(self, store, scores: Callable[[], Any], seed_hashes: list[str]):
        self.store, self._scores, self._seeds = store, scores, list(seed_hashes)

    def pool(self) -> list[str]:
        return self.store.pool()

    def seed_hashes(self) -> list[str]:
        return list(self._seeds)

    def pool_scores(self) -> dict[str, float]:
        sc = self._scores()
        return {h: sc.score(h) or 0.0 for h in self.pool()}


class Strategy(Protocol):
    name: str

    def propose(self, view, rng: np.random.Generator) -> tuple: ...

    def admit(self, view, cell_hash: str, score: float) -> tuple[list[str], list[str]]: ...


def _top_n_admit(view, cell_hash: str, score: float, n: int) -> tuple[list[str], list[str]]:
    pool = view.pool_scores()
    if len(pool) < n:
        return [cell_hash], []
    worst = min(pool, key=lambda h: (pool[h], h))
    if score > pool[worst]:
        return [cell_hash], [worst]
    return [], []


class PaperStrategy:
    """Jozefowicz et al. §3.2: with probability ``reeval_prob`` re-evaluate a random pool
    member on new settings, else mutate a random pool member; keep the top ``pool_size``."""

    name = "paper"

    def __init__(self, pool_size: int = 100, reeval_prob: float = 0.5):
        self.pool_size, self.reeval_prob = pool_size, reeval_prob

    def propose(self, view, rng):
        pool = view.pool()
        pick = pool[rng.integers(len(pool))]
        if rng.uniform() < self.reeval_prob:
            return ("reeval", pick)
        return ("child", pick, 1)

    def admit(self, view, cell_hash, score):
        return _top_n_admit(view, cell_hash, score, self.pool_size)


class AgingStrategy:
    """Regularized evolution (Real et al. 2019): sample ``sample_size`` members of the
    population, mutate the best; a scored child joins and the oldest member leaves."""

    name = "aging"

    def __init__(self, population: int = 20, sample_size: int = 5):
        self.population, self.sample_size = population, sample_size

    def propose(self, view, rng):
        pool = view.pool()
        idx = rng.choice(len(pool), size=min(self.sample_size, len(pool)), replace=False)
        scores = view.pool_scores()
        best = max((pool[i] for i in sorted(idx)), key=lambda h: (scores.get(h, 0.0), h))
        return ("child", best, 1)

    def admit(self, view, cell_hash, score):
        pool = view.pool()  # ordered oldest first
        remove = pool[: max(0, len(pool) + 1 - self.population)]
        return [cell_hash], remove


class RandomStrategy:
    """Random search: a random walk of 1..``walk`` mutations from a random seed cell; no
    selection (the pool only keeps the top ``pool_size`` for the leaderboard)."""

    name = "random"

    def __init__(self, walk: int = 3, pool_size: int = 100):
        self.walk, self.pool_size = walk, pool_size

    def propose(self, view, rng):
        seeds = view.seed_hashes()
        return ("child", seeds[rng.integers(len(seeds))], int(rng.integers(1, self.walk + 1)))

    def admit(self, view, cell_hash, score):
        return _top_n_admit(view, cell_hash, score, self.pool_size)


# name -> factory from a search's settings (a SearchConfig), as edits.MUTATIONS: add a
# strategy by adding a row.
STRATEGIES: dict[str, Callable[[Any], Strategy]] = {
    "paper": lambda cfg: PaperStrategy(cfg.pool_size, cfg.reeval_prob),
    "aging": lambda cfg: AgingStrategy(cfg.aging_population, cfg.aging_sample),
    "random": lambda cfg: RandomStrategy(cfg.random_walk, cfg.pool_size),
}


def make_strategy(cfg) -> Strategy:
    """The strategy ``cfg.strategy`` built from the search's settings."""
    one_of("strategy", cfg.strategy, STRATEGIES)
    return STRATEGIES[cfg.strategy](cfg)
