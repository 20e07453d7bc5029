"""``--population``: the search in rounds through the interpreter: determinism, exact resume."""

from __future__ import annotations

import pytest

from cellsearch.search.driver import run_search
from cellsearch.search.schedules import rounds
from cellsearch.store.sqlite import Store
from tests.search_helpers import crash_and_resume, dump, tiny_config


def config(**kw):
    return tiny_config(population=3, candidates=5, **kw)


def test_rounds_cover_every_step_once():
    got = [list(r) for _, r in rounds(4, 3, 14)]
    assert got == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12], [13]]


def test_population_search_same_seed_same_store_and_target_kept(tmp_path):
    a, b = str(tmp_path / "a.db"), str(tmp_path / "b.db")
    sa = run_search(config(), a)
    run_search(config(), b)
    assert dump(a) == dump(b)
    with Store(a, write=False) as s:
        assert s.children_done() == 5  # rounds of 3 never pass the target
        assert s.rounds_committed() >= 2
        outcomes = s.counts()
    assert any(k.startswith("child:scored") for k in outcomes), outcomes
    assert sa.new_evaluations > 0
    # the population search is its own search: the store refuses per-cell resumption
    from cellsearch.errors import StorageError

    with pytest.raises(StorageError, match="population"):
        run_search(tiny_config(candidates=5), a)


@pytest.mark.parametrize("crash_at", [2, 7])
def test_population_search_resumes_exactly(tmp_path, monkeypatch, crash_at):
    crash_and_resume(config(), tmp_path, monkeypatch, crash_at)
