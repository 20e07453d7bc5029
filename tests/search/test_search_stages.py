"""The real staged pipeline (dedup, filter, hurdle, tasks, score) driven by a scripted executor.

The executor returns scores that are a function of (cell, task, setting), so each test knows
which children must pass which stage; :class:`cellsearch.search.steps.Search` and
:func:`cellsearch.search.driver.run_search` are the real ones.
"""

from __future__ import annotations

from collections import Counter

import pytest

from cellsearch.errors import SearchStopped
from cellsearch.hparams import point_key
from cellsearch.search.driver import run_search
from cellsearch.search.results import Scores
from cellsearch.store.sqlite import Store
from tests.search_helpers import GRU, TANH, Scripted, cfg, staged, unit


def test_stages_stop_the_children_they_should(tmp_path):
    db = str(tmp_path / "s.db")
    ex = Scripted(staged)
    s = run_search(cfg(), db, executor=ex)
    assert s.children == 15
    with Store(db, write=False) as st:
        seen = Counter()
        for r in st.cells("origin='mutation' AND status != 'duplicate'"):
            tasks = {e["task"] for e in st.evaluations(r["hash"])}
            fate = unit(r["hash"])
            expected = ("filtered", {"memorize"}) if fate < 1 / 3 else \
                ("hurdle", {"memorize", "arithmetic"}) if fate < 2 / 3 else \
                ("scored", {"memorize", "arithmetic", "xml"})
            assert (r["status"], tasks) == expected, r["hash"]
            seen[r["status"]] += 1
        assert set(seen) == {"filtered", "hurdle", "scored"}  # the script exercised every stage
    # re-evaluation and carried-over settings never train a (cell, task, setting) twice
    assert max(ex.asked.values()) == 1


def test_hurdle_is_the_baselines_best_not_the_parents(tmp_path):
    """The parent (Tanh) is far better than the GRU on the first task; a child at 0.5 of the
    parent but above 0.9 x the GRU's best must pass the hurdle."""

    def fn(cell, task, h):
        if cell == TANH:
            return "ok", {"memorize": 1.0, "arithmetic": 0.9, "xml": 0.5}[task]
        if cell == GRU:
            return "ok", {"memorize": 1.0, "arithmetic": 0.4, "xml": 0.5}[task]
        return "ok", {"memorize": 1.0, "arithmetic": 0.45, "xml": 0.5}[task]

    db = str(tmp_path / "s.db")
    run_search(cfg(candidates=4, reeval_prob=0.0, strategy="random"), db, executor=Scripted(fn))
    with Store(db, write=False) as st:
        kids = st.cells("origin='mutation' AND status != 'duplicate'")
        assert kids and all(r["status"] == "scored" for r in kids)
        # and the score is the ratio to the GRU: min(0.45 / 0.4, 0.5 / 0.5)
        assert Scores(st).score(kids[0]["hash"]) == pytest.approx(1.0)


def test_children_get_their_parents_best_settings(tmp_path):
    db = str(tmp_path / "s.db")
    run_search(cfg(candidates=6, reeval_prob=0.0, filter_threshold=0.0, hurdle=0.0), db,
               executor=Scripted(lambda c, t, h: ("ok", unit(c, t, h.key()))))
    with Store(db, write=False) as st:
        checked = 0
        for r in st.cells("origin='mutation' AND status='scored'"):
            for task in ("arithmetic", "xml"):
                parent = sorted((e for e in st.evaluations(r["parent"], task) if e["status"] == "ok"),
                                key=lambda e: -e["score"])
                mine = {e["hp_key"] for e in st.evaluations(r["hash"], task)}
                top = [e["hp_key"] for e in parent[:2]]
                assert set(top) <= mine, (r["hash"], task)
                checked += 1
        assert checked >= 2


def test_an_error_after_the_first_task_is_an_error_not_a_score(tmp_path):
    def fn(cell, task, h):
        if cell in (GRU, TANH):
            return "ok", 0.5
        return ("error", 0.0) if task == "xml" else ("ok", 0.9 if task == "arithmetic" else 1.0)

    db = str(tmp_path / "s.db")
    s = run_search(cfg(candidates=3, reeval_prob=0.0), db, executor=Scripted(fn))
    assert s.scored == 0 and s.errors == 3
    with Store(db, write=False) as st:
        kids = st.cells("origin='mutation' AND status != 'duplicate'")
        assert {r["status"] for r in kids} == {"error"}
        assert all(r["score"] is None for r in kids)
        assert not set(st.pool()) & {r["hash"] for r in kids}  # never in the pool, so never a parent
        detail = st.step_of(kids[0]["hash"])["detail"]
        assert detail["stage"] == "xml" and "scripted error" in detail["error"]
        assert Scores(st).score(kids[0]["hash"]) is None


def test_a_lost_job_is_retried_and_never_stored(tmp_path):
    db = str(tmp_path / "s.db")
    events = []
    ok = Scripted(lambda c, t, h: ("ok", 1.0 if t == "memorize" else 0.5))
    # step 2 (the first child) loses its filter job every time: retried, then left for a resume
    lossy = Scripted(ok.fn, lose={(2, "memorize")})
    run_search(cfg(candidates=2, reeval_prob=0.0), db, executor=lossy, retries=2,
               on_event=lambda k, i: events.append((k, i)))
    assert [i["try"] for k, i in events if k == "retry"] == [1, 2]
    assert [i["step"] for k, i in events if k == "abandoned"] == [2]
    with Store(db, write=False) as st:
        assert 2 not in st.finished_steps()
        assert st.conn.execute("SELECT COUNT(*) FROM evaluations WHERE status='lost'").fetchone()[0] == 0
    events.clear()
    run_search(cfg(candidates=3, reeval_prob=0.0), db, executor=ok, on_event=lambda k, i: events.append((k, i)))
    start = next(i for k, i in events if k == "start")
    assert start["unfinished"] == [2]  # the resumed search says it retries the step
    with Store(db, write=False) as st:
        assert 2 in st.finished_steps()


def test_a_failed_baseline_stops_the_search_with_one_clear_reason(tmp_path):
    def fn(cell, task, h):
        if cell == GRU and task == "xml":
            return "diverged", 0.0
        return "ok", 0.5

    db = str(tmp_path / "s.db")
    with pytest.raises(SearchStopped, match="baseline GRU failed on task 'xml': all 2 of its settings diverged"):
        run_search(cfg(), db, executor=Scripted(fn))
    with Store(db, write=False) as st:
        assert st.conn.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0] > 0  # kept
        assert st.children_done() == 0  # nothing was scored against a zero baseline
    with pytest.raises(SearchStopped, match="'xml'"):  # and a resume stops the same way
        run_search(cfg(), db, executor=Scripted(fn))

    def crash(cell, task, h):
        return ("error", 0.0) if cell == GRU and task == "arithmetic" else ("ok", 0.5)

    with pytest.raises(SearchStopped, match="'arithmetic': all 2 of its settings crashed \\(scripted error\\)"):
        run_search(cfg(), str(tmp_path / "c.db"), executor=Scripted(crash))


def test_reevaluations_draw_new_seeds_and_a_used_up_grid_says_so(tmp_path):
    """The tiny grid has 2 points, all used by the seed steps: a re-evaluation trains them again
    with new seeds (seed noise is sampled, the grid never runs out), and a child asking for
    more settings than the grid holds is told so in its step's detail."""
    import json

    db = str(tmp_path / "s.db")
    run_search(cfg(candidates=12, reeval_prob=0.6, settings_per_task=5), db, executor=Scripted(staged))
    with Store(db, write=False) as st:
        reevals = st.conn.execute("SELECT step, cell_hash FROM steps WHERE kind='reeval'").fetchall()
        assert reevals
        step, cell = reevals[0]
        ev = st.conn.execute("SELECT hparams FROM evaluations WHERE cell_hash=? AND task='arithmetic'",
                             (cell,)).fetchall()
        points = Counter(point_key(json.loads(h)) for (h,) in ev)
        assert len(ev) > 2 and len(points) == 2 and max(points.values()) >= 2  # same points, new seeds
        assert len({json.loads(h)["seed"] for (h,) in ev}) == len(ev)
        details = [json.loads(d) for (d,) in st.conn.execute(
            "SELECT detail FROM steps WHERE kind='child' AND outcome IN ('scored', 'hurdle')")]
        assert details and all("arithmetic" in d.get("grid_used_up", []) for d in details)
        assert not any(json.loads(d).get("grid_used_up") for (d,) in st.conn.execute(
            "SELECT detail FROM steps WHERE kind='reeval'"))
