"""Strategies: the name -> factory table, proposals from the pool, pool admission."""

from __future__ import annotations

import numpy as np
import pytest

from cellsearch.errors import ConfigError
from cellsearch.evolve.strategies import STRATEGIES, AgingStrategy, PaperStrategy, RandomStrategy, make_strategy
from cellsearch.search.config import SearchConfig


class FakeView:
    def __init__(self, scores):
        self.scores = scores

    def pool(self):
        return list(self.scores)

    def pool_scores(self):
        return dict(self.scores)

    def seed_hashes(self):
        return ["lstm", "gru"]


def test_paper_pool_keeps_the_top_n():
    st = PaperStrategy(pool_size=3)
    assert st.admit(FakeView({"a": 1.0, "b": 0.5}), "new", 0.1) == (["new"], [])
    assert st.admit(FakeView({"a": 1.0, "b": 0.5, "c": 0.7}), "new", 0.6) == (["new"], ["b"])
    assert st.admit(FakeView({"a": 1.0, "b": 0.5, "c": 0.7}), "new", 0.4) == ([], [])


def test_strategies_propose_from_their_pools():
    rng = np.random.default_rng(0)
    view = FakeView({"a": 1.0, "b": 0.2, "c": 0.1})
    kinds = {PaperStrategy(reeval_prob=0.5).propose(view, rng)[0] for _ in range(50)}
    assert kinds == {"reeval", "child"}
    for _ in range(20):
        kind, parent, n = AgingStrategy(sample_size=3).propose(view, rng)
        assert (kind, parent) == ("child", "a")  # the best of a full sample
        kind, parent, n = RandomStrategy(walk=3).propose(view, rng)
        assert parent in ("lstm", "gru") and 1 <= n <= 3
    assert AgingStrategy(population=3).admit(view, "new", 0.0) == (["new"], ["a"])  # the oldest leaves



def test_the_table_builds_each_strategy_from_the_settings():
    assert set(STRATEGIES) == {"paper", "aging", "random"}
    s = make_strategy(SearchConfig(strategy="paper", pool_size=7, reeval_prob=0.25))
    assert isinstance(s, PaperStrategy) and (s.pool_size, s.reeval_prob) == (7, 0.25)
    s = make_strategy(SearchConfig(strategy="aging", aging_population=9, aging_sample=2))
    assert isinstance(s, AgingStrategy) and (s.population, s.sample_size) == (9, 2)
    assert isinstance(make_strategy(SearchConfig(strategy="random")), RandomStrategy)
    with pytest.raises(ConfigError, match="strategy must be one of paper, aging, random"):
        SearchConfig(strategy="annealing")


def test_paper_strategy_never_reevaluates_at_zero_probability():
    rng = np.random.default_rng(0)
    view = FakeView({"a": 1.0, "b": 0.2})
    assert {PaperStrategy(reeval_prob=0.0).propose(view, rng)[0] for _ in range(50)} == {"child"}
