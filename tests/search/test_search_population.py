"""``--population``: the search in rounds through the interpreter: determinism, exact resume."""

from __future__ import annotations

import pytest

from cellsearch.search.driver import run_search
from cellsearch.search.schedules import rounds
from cellsearch.store.sqlite import Store
from tests.search_helpers import crash_and_resume, dump, tiny_config


def config(**kw):
    return tiny_config(**({"population": 3, "candidates": 5} | kw))


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


def test_a_population_round_screens_ranks_and_promotes_from_what_finished_before_it(tmp_path):
    """Cheap-first screening in rounds: a round's first steps make the promotions due when it
    began, in order (the highest rung first, then the best unpromoted child), the others propose
    children; a screened child's rank is among the children screened before its round; the
    search ends only when no promotion is due, and every promoted child is scored. The same seed
    gives the same store."""
    from cellsearch.config import TrainConfig
    from cellsearch.search.ladder import Ladder
    from cellsearch.search.results import baseline_of, stored_config
    from cellsearch.search.schedules import round_start
    from tests.search.test_screen import ranked
    from tests.search_helpers import Scripted, cfg

    c = cfg(candidates=14, reeval_prob=0.0, screen=((0.5, 1),), eta=3, population=3,
            train=TrainConfig(steps=6, batch_size=4, chunk=3, eval_every=3))
    a, b = str(tmp_path / "a.db"), str(tmp_path / "b.db")
    s = run_search(c, a, executor=Scripted(ranked))
    run_search(c, b, executor=Scripted(ranked))
    assert dump(a) == dump(b)
    assert s.screened > 0 and s.promoted > 0 and s.scored == s.promoted
    with Store(a, write=False) as st:
        ladder = Ladder(stored_config(st), st, baseline_of(st)[1])
        n_init = 2
        for row in st.steps_rows():
            if row["step"] < n_init:
                continue
            k0 = round_start(n_init, 3, row["step"])
            due = ladder.due(k0)
            i = row["step"] - k0
            if row["kind"] == "promote":
                assert i < len(due) and due[i] == (row["cell_hash"], 1)
            else:
                assert i >= len(due)  # a step proposes only once the round's due promotions are made
            if row["outcome"] == "screened":
                d = row["detail"]
                assert (d["rank"], d["of"]) == ladder.rank(d["rung_score"], 0, k0)
        assert ladder.due(10**9) == []
        assert st.children_done() == 14
        promoted = next(r for r in st.steps_rows() if r["kind"] == "promote")
    from cellsearch.cli.inspect import describe

    # `show` says what a rank in a round is among
    with Store(a, write=False) as st:
        assert "children there when step" in describe(st, promoted["cell_hash"])


@pytest.mark.parametrize("crash_at", [30, 40, 55])
def test_a_screened_population_round_resumes_to_the_same_decisions(tmp_path, monkeypatch, crash_at):
    """Killed in the middle of a screened round (its promotions and children half stored), the
    resumed search promotes, ranks and proposes as the uninterrupted one did: the same store."""
    from cellsearch.config import TrainConfig
    from tests.search.test_screen import ranked
    from tests.search_helpers import Scripted, cfg

    c = cfg(candidates=14, reeval_prob=0.0, screen=((0.5, 1),), eta=3, population=3,
            train=TrainConfig(steps=6, batch_size=4, chunk=3, eval_every=3))
    crash_and_resume(c, tmp_path, monkeypatch, crash_at, executor=lambda: Scripted(ranked))


@pytest.mark.slow
@pytest.mark.parametrize("crash_at", [13, 21])
def test_a_screened_population_search_resumes_exactly(tmp_path, monkeypatch, crash_at):
    """Real training through the interpreter with a ladder: killed in the middle of a round (at
    13, children's rungs half stored; at 21, a promoted child scored and two children at their
    rungs), the resumed search writes the store of the uninterrupted one, bit for bit (the
    programs' member counts and shapes are the uninterrupted round's)."""
    from cellsearch.config import TrainConfig

    c = config(candidates=5, screen=((0.5, 1),), eta=2, reeval_prob=0.0,
               train=TrainConfig(steps=6, batch_size=4, chunk=3, eval_every=3))
    crash_and_resume(c, tmp_path, monkeypatch, crash_at)
    with Store(str(tmp_path / "full.db"), write=False) as st:
        kinds = {(r["kind"], r["outcome"]) for r in st.steps_rows()}
        assert ("child", "screened") in kinds and any(k == "promote" for k, _ in kinds), kinds
        assert not st.conn.execute("SELECT COUNT(*) FROM states").fetchone()[0]  # nothing kept to continue


def test_jobs_that_cannot_share_a_program_travel_apart_each_padded_to_its_kind(tmp_path):
    """A round's jobs share a program only with jobs of the same task, rung and schedule: two
    children of parents with different bars (lineage bars) train the same task in two programs,
    a screen rung's in a third; each is padded to the most its kind can send in a round."""
    from dataclasses import asdict

    from cellsearch.config import TrainConfig
    from cellsearch.search.driver import open_store
    from cellsearch.search.schedules import Rounds
    from cellsearch.search.steps import Search

    c = config(screen=((0.5, 1),))
    with open_store(str(tmp_path / "s.db"), c) as st:
        rounds = Rounds(Search(c, st), deadline=float("inf"), max_steps=100)
        rounds.r = 1

        def job(task, bar, **kw):
            return {"task": task, "task_options": {}, "graph": "{}", "train": asdict(TrainConfig(bar=bar, **kw)), **(
                {"store_as": f"{task}@3"} if "members" in kw else {})}

        jobs = {5: job("arithmetic", 0.4), 6: job("arithmetic", 0.5), 7: job("arithmetic", 0.4),
                8: job("arithmetic", 0.0, steps=3, members=1)}
        rounds.cover = []
        got = {tuple(ks): p["members"] for ks, p in rounds.bundles(jobs)}
    assert got == {(5, 7): 3 * c.settings_per_task, (6,): 3 * c.settings_per_task, (8,): 3}
    assert not jobs
