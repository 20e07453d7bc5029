"""A search that climbs: bars relative to the lineage, cheap-first screening (ASHA) ranked across
children, failures that are failures, and exact resume in the middle of a rung."""

from __future__ import annotations

import pytest

from cellsearch.config import TrainConfig
from cellsearch.search.driver import run_search
from cellsearch.search.ladder import Ladder
from cellsearch.search.results import baseline_of, stored_config
from cellsearch.store.sqlite import Store
from tests.search_helpers import GRU, TANH, Scripted, cfg, crash_and_resume, staged, tiny_config, unit


def flat(child: float):
    """Seeds: the GRU 0.5 on both tasks, the tanh RNN 0.3; every child ``child``; everyone passes
    the filter."""

    def fn(cell, task, h):
        if task == "memorize":
            return "ok", 1.0
        return "ok", 0.5 if cell == GRU else 0.3 if cell == TANH else child

    return fn


@pytest.mark.parametrize("bars", ["lineage", "baseline"])
def test_a_child_below_the_gru_but_above_its_parent_enters_the_pool(tmp_path, bars):
    """Every child scores 0.72 of the GRU, below the paper's hurdle and floor (0.9). Under lineage
    bars the children of the tanh RNN (0.6 of the GRU) pass the hurdle (0.9 of their parent's bar),
    beat their parent beyond the noise and enter the pool, while the children of the GRU stop at
    the hurdle, and a grandchild that only ties its parent stays out; under the paper's bars every
    child stops at the hurdle."""
    db = str(tmp_path / "s.db")
    run_search(cfg(candidates=8, reeval_prob=0.0, bars=bars), db, executor=Scripted(flat(0.36)))
    with Store(db, write=False) as st:
        kids = st.cells("origin='mutation' AND status != 'duplicate'")
        fate = {r["hash"]: (r["parent"], r["status"]) for r in kids}
        pool = set(st.pool())
    assert {TANH, GRU} <= {p for p, _ in fate.values()}
    for h, (parent, status) in fate.items():
        if bars == "lineage" and parent == TANH:
            assert status == "scored" and h in pool
        elif parent in (TANH, GRU):
            assert status == "hurdle" and h not in pool
        else:  # a grandchild of the tanh RNN (lineage only): it ties its parent, so it stays out
            assert bars == "lineage" and status == "scored" and h not in pool


def test_from_the_tanh_rnn_alone_the_best_is_the_searchs_own_cell_not_the_baseline(tmp_path):
    """The GRU, trained only as the scale of every score, is in ``top`` as the reference but is not
    what the search found: the summary's best (and the progress line's) is the best of its own
    cells, here a child of the tanh RNN above its parent."""
    from cellsearch.search.results import leaderboard

    db = str(tmp_path / "s.db")
    s = run_search(cfg(candidates=3, reeval_prob=0.0, pool_seeds=("Tanh",)), db, executor=Scripted(flat(0.36)))
    assert s.best[0][0] not in (GRU, TANH) and s.best[0][1] == pytest.approx(0.72) and s.best_origin == "mutation"
    assert GRU not in [h for h, _ in s.best]
    with Store(db, write=False) as st:
        assert leaderboard(st)[0]["hash"] == GRU  # `top` still shows the scale


def test_a_child_that_only_ties_its_parent_stays_out():
    """Beating the parent means beyond the seed noise (``admit_margin``)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        db = f"{tmp}/s.db"
        run_search(cfg(candidates=6, reeval_prob=0.0, admit_margin=0.05, pool_seeds=("Tanh",)), db,
                   executor=Scripted(flat(0.3 * 1.04)))
        with Store(db, write=False) as st:
            kids = {r["hash"] for r in st.cells("origin='mutation' AND status='scored'")}
            assert kids and not kids & set(st.pool())


def ranked(cell, task, h):
    """Seeds pass everything; a child's rung result is a number drawn from its hash, so its rank
    among the children at the rung is known; its full result is the same number."""
    if cell in (GRU, TANH):
        return "ok", {"memorize": 1.0}.get(task, 0.5)
    if task == "memorize":
        return "ok", 1.0
    return "ok", 0.2 + 0.6 * unit(cell)


def test_a_childs_fate_at_a_rung_depends_on_its_rank_among_the_children_there(tmp_path):
    """ASHA: every promotion takes a child among the best ``floor(n / eta)`` of the ``n`` children
    at its rung when its step starts; a screened child records its rank among them; the children
    never promoted are not among the best (the search ends only when none is due)."""
    db = str(tmp_path / "s.db")
    c = cfg(candidates=14, reeval_prob=0.0, screen=((0.5, 1),), eta=3,
            train=TrainConfig(steps=6, batch_size=4, chunk=3, eval_every=3))
    s = run_search(c, db, executor=Scripted(ranked))
    assert s.screened > 0 and s.promoted > 0 and s.scored == s.promoted
    with Store(db) as st:
        ladder = Ladder(stored_config(st), st, baseline_of(st)[1])
        steps = st.steps_rows()
        assert {t for (t,) in st.conn.execute("SELECT DISTINCT task FROM evaluations")} >= {"arithmetic@3", "xml@3"}
        for s_ in steps:
            d = s_["detail"]
            if s_["outcome"] == "screened":  # its recorded rank is its rank then
                assert d["rung_score"] == pytest.approx((0.2 + 0.6 * unit(s_["cell_hash"])) / 0.5, rel=1e-9)
                assert (d["rank"], d["of"]) == ladder.rank(d["rung_score"], 0, s_["step"])
            if s_["kind"] == "promote":  # promoted: among the best floor(n / eta) when its step began
                table = ladder.standings(0, s_["step"])
                best = [x["cell"] for x in table[: len(table) // 3]]
                assert s_["cell_hash"] in best and d["promoted_from"] == 0
                unpromoted = [x for x in table if not x["promoted"]]
                assert unpromoted[0]["cell"] == s_["cell_hash"]  # the best one not yet promoted
        final = ladder.standings(0, 10**9)
        assert all(x["promoted"] for x in final[: len(final) // 3])
        assert ladder.promotion(10**9) is None


def test_every_setting_diverged_is_a_failure_not_a_score(tmp_path):
    """A child whose every setting of a task diverged ends ``diverged`` on that task: not scored,
    never in the pool, counted apart in the funnel."""

    def fn(cell, task, h):
        if cell in (GRU, TANH) or task != "xml":
            return "ok", 1.0 if task == "memorize" else 0.5
        return "diverged", 0.0

    db = str(tmp_path / "s.db")
    s = run_search(cfg(candidates=3, reeval_prob=0.0), db, executor=Scripted(fn))
    assert s.scored == 0 and s.diverged == 3
    with Store(db, write=False) as st:
        kids = st.cells("origin='mutation' AND status != 'duplicate'")
        assert {r["status"] for r in kids} == {"diverged"} and all(r["score"] is None for r in kids)
        assert not set(st.pool()) & {r["hash"] for r in kids}
        detail = st.steps_of(kids[0]["hash"])[-1]["detail"]
        assert detail["stage"] == "xml" and "diverged" in detail["error"]


def test_screened_children_are_ranked_and_the_best_earn_a_score_with_real_training(tmp_path, monkeypatch):
    """The ladder with real training: a crash in the middle of the search (a rung's evaluation
    stored, its step not finished) resumes to the store the uninterrupted search writes, training
    states included; a promoted child continued its rung's settings (``continue_rungs``)."""
    c = tiny_config(candidates=5, screen=((0.5, 1),), eta=2, reeval_prob=0.0,
                    train=TrainConfig(steps=6, batch_size=4, chunk=3, eval_every=3))
    crash_and_resume(c, tmp_path, monkeypatch, crash_at=9)
    with Store(str(tmp_path / "full.db"), write=False) as st:
        outcomes = {o["outcome"] for o in st.steps_outcomes(st.finished_steps())}
        assert "screened" in outcomes
        promoted = {r["cell_hash"] for r in st.steps_rows() if r["kind"] == "promote"}
        assert promoted
        for h in promoted:  # its rung's setting continued from step 3 on each task; its other one is new
            for t in c.tasks:
                ev = st.evaluations(h, t)
                assert [e["metrics"].get("continued_from") for e in ev] == [3, None]
                assert ev[0]["hp_key"] == st.evaluations(h, f"{t}@3")[0]["hp_key"]


def test_the_staged_search_still_stops_children_where_it_should_with_a_ladder(tmp_path):
    """Screening changes when a child is fully evaluated, not what the stages decide: with the
    staged script, children fail the filter or the hurdle as they would without a ladder."""
    db = str(tmp_path / "s.db")
    run_search(cfg(candidates=12, screen=((0.5, 1),), train=TrainConfig(steps=6, batch_size=4, chunk=3, eval_every=3)),
               db, executor=Scripted(staged))
    with Store(db, write=False) as st:
        for r in st.cells("origin='mutation' AND status IN ('filtered', 'hurdle', 'scored')"):
            fate = unit(r["hash"])
            want = "filtered" if fate < 1 / 3 else "hurdle" if fate < 2 / 3 else "scored"
            assert r["status"] == want, r["hash"]


@pytest.mark.parametrize("limit", [1, 2])
def test_a_cell_is_re_evaluated_at_most_reeval_max_times(tmp_path, limit):
    """Even when every proposal is a re-evaluation, no cell is re-evaluated more than
    ``reeval_max`` times: past it the step proposes a child of it, so the search goes on."""
    from collections import Counter

    db = str(tmp_path / "s.db")
    s = run_search(cfg(candidates=3, reeval_prob=1.0, reeval_max=limit, pool_seeds=("Tanh",)), db,
                   executor=Scripted(flat(0.36)))
    assert s.children == 3
    with Store(db, write=False) as st:
        reevals = Counter(r["cell_hash"] for r in st.steps_rows() if r["kind"] == "reeval")
    assert reevals and max(reevals.values()) == limit


@pytest.mark.slow
def test_a_promoted_child_continues_its_rung_and_scores_as_if_trained_from_scratch(tmp_path):
    """With ``continue_rungs`` a promoted child's full evaluation continues its rung's settings
    from their kept training states: the same verdicts, pool and scores, bit for bit, as the same
    search training them again from scratch (the rung's program holds as many members as the full
    stage's here, so even the rounding is the same). A continued state is deleted; the states of
    children never promoted are kept, for a later promotion."""
    import sqlite3

    from tests.search_helpers import dump

    train = TrainConfig(steps=6, batch_size=4, chunk=3, eval_every=3)
    stores, states = {}, set()
    for keep in (True, False):
        db = str(tmp_path / f"{keep}.db")
        run_search(tiny_config(candidates=4, screen=((0.5, 2),), eta=2, reeval_prob=0.0, train=train,
                               continue_rungs=keep), db)
        stores[keep] = dump(db)
        with sqlite3.connect(db) as con:
            states = states if not keep else {(c, t) for c, t in con.execute("SELECT cell_hash, task FROM states")}
    on, off = stores[True], stores[False]
    assert on["steps"] == off["steps"] and on["pool"] == off["pool"] and on["cells"] == off["cells"]
    strip = [(c, t, k, {m: v for m, v in met.items() if m != "continued_from"}, s, st)
             for c, t, k, met, s, st in on["evals"]]
    assert strip == off["evals"]
    continued = {(c, t) for c, t, _, met, _, _ in on["evals"] if "continued_from" in met}
    promoted = {s[2] for s in on["steps"] if s[1] == "promote"}
    assert promoted and {c for c, _ in continued} == promoted
    assert all(met["continued_from"] == 3 for *_, met, _, _ in [e for e in on["evals"] if "continued_from" in e[3]])
    screened_out = {s[2] for s in on["steps"] if s[3] == "screened"} - promoted
    assert not {c for c, _ in states} & promoted  # continued: deleted
    assert screened_out and {c for c, _ in states} == screened_out  # kept for a later promotion
