"""The search: scoring math, pool updates, staged filter, strategies, determinism, resume."""

from __future__ import annotations

import pytest

from cellsearch.errors import ConfigError, StorageError
from cellsearch.search.config import SearchConfig, quick_config
from cellsearch.search.driver import run_search
from cellsearch.search.results import leaderboard
from cellsearch.search.steps import Search
from cellsearch.store.sqlite import Store
from tests.search_helpers import Scripted, cfg, crash_and_resume, dump, staged, tiny_config


def fake_result(score, status="ok", **hp):
    from dataclasses import asdict

    from cellsearch.hparams import HParams

    h = HParams(**hp)
    return {"hparams": asdict(h), "hp_key": h.key(), "status": status, "score": score, "metrics": {"score": score},
            "wall_s": 0.1, "compile_s": 0.0}


def test_score_is_min_over_tasks_of_ratio_to_baseline(tmp_path):
    cfg = tiny_config()
    with Store(str(tmp_path / "s.db")) as st:
        st.set_meta("config", cfg.to_json())
        s = Search(cfg, st)
        base, cell = s.baseline, "c" * 16
        st.add_evaluations(base, "arithmetic", [fake_result(0.5), fake_result(0.8, seed=1)], 0)
        st.add_evaluations(base, "xml", [fake_result(0.4)], 0)
        assert s.score(cell) is None  # not evaluated
        st.add_evaluations(cell, "arithmetic", [fake_result(0.88), fake_result(float("nan"), "diverged", seed=2)], 1)
        assert s.score(cell) is None  # xml missing
        st.add_evaluations(cell, "xml", [fake_result(0.3), fake_result(0.9, "diverged", seed=3)], 1)
        # best arithmetic 0.88 / 0.8 = 1.1; best xml 0.3 / 0.4 = 0.75 (a diverged run counts as 0)
        assert s.score(cell) == pytest.approx(0.75)
        assert s.score(base) == pytest.approx(1.0)


@pytest.mark.parametrize("reference, expected", [("matched", 0.9 / 0.7), ("all", 0.9 / 1.0)])
def test_a_cell_is_read_against_the_baselines_best_over_as_many_settings(tmp_path, reference, expected):
    """The baseline, re-evaluated twice, has 6 settings; a child has 2, one of them carried over
    from the baseline (same grid point and seed). "matched" reads the child against the
    baseline's first 2 and the shared one, not against its best over all 6 ("all", the paper's)."""
    cfg = tiny_config(tasks=("arithmetic",), reference=reference)
    with Store(str(tmp_path / "s.db")) as st:
        st.set_meta("config", cfg.to_json())
        s = Search(cfg, st)
        base, cell = s.baseline, "c" * 16
        st.add_evaluations(base, "arithmetic", [fake_result(v, seed=i) for i, v in enumerate((0.5, 0.6, 0.7, 0.65,
                                                                                               0.8, 1.0))], 0)
        st.add_evaluations(cell, "arithmetic", [fake_result(0.9, seed=99), fake_result(0.85, seed=2)], 1)
        assert s.score(cell) == pytest.approx(expected)  # matched: 0.9 / max(0.5, 0.6, 0.7 shared)
        assert s.score(base) == pytest.approx(1.0)
        st.add_evaluations(base, "arithmetic", [fake_result(2.0, seed=7)], 2)  # a re-evaluation of the baseline
        assert s.score(cell) == pytest.approx(expected if reference == "matched" else 0.45)


def test_the_hurdle_compares_first_settings_as_the_score_counts_them(tmp_path):
    """The hurdle's bar is the baseline's best over its first n settings, counted as the score
    counts them: a diverged setting is one of the n (scoring 0), a crashed one is not a setting."""
    cfg = tiny_config(tasks=("arithmetic",), settings_per_task=3, hurdle=1.0, bars="baseline")
    with Store(str(tmp_path / "s.db")) as st:
        st.set_meta("config", cfg.to_json())
        s = Search(cfg, st)
        st.add_evaluations(s.baseline, "arithmetic", [fake_result(0.0, "error", seed=0), fake_result(0.5, seed=1),
                                                      fake_result(0.0, "diverged", seed=2),
                                                      fake_result(0.9, seed=3)], 0)
        assert s.first_best(s.baseline, "arithmetic", 2) == pytest.approx(0.5)  # 0.5 and the divergence
        assert s.bar("arithmetic", None) == pytest.approx(0.9)  # the crash is not one of the 3


def test_tiny_search_end_to_end_and_staged_filter(tmp_path):
    db = str(tmp_path / "s.db")
    summary = run_search(tiny_config(), db)
    assert summary.children == 3 and summary.steps >= 5
    with Store(db, write=False) as st:
        n = st.conn.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]
        assert n == summary.evaluations == summary.new_evaluations
        statuses = {r["status"] for r in st.cells()}
        assert "seed" in statuses
        board = leaderboard(st, k=5)
        assert board and board[0]["score"] >= board[-1]["score"]
    # a filter nobody passes stops every child after one evaluation
    db2 = str(tmp_path / "f.db")
    run_search(tiny_config(filter_threshold=1.01, reeval_prob=0.0), db2)
    with Store(db2, write=False) as st:
        outcomes = [r[0] for r in st.conn.execute("SELECT outcome FROM steps WHERE kind='child'")]
        assert outcomes and set(outcomes) <= {"filtered", "duplicate"}
        for r in st.cells("status='filtered'"):
            assert {e["task"] for e in st.evaluations(r["hash"])} == {"memorize"}
    # an impossible hurdle stops them after the first task
    db3 = str(tmp_path / "h.db")
    run_search(tiny_config(hurdle=100.0, reeval_prob=0.0), db3)
    with Store(db3, write=False) as st:
        for r in st.cells("status='hurdle'"):
            assert {e["task"] for e in st.evaluations(r["hash"])} == {"memorize", "arithmetic"}
        assert st.cells("status='hurdle'")


def test_same_seed_same_store(tmp_path):
    a, b = str(tmp_path / "a.db"), str(tmp_path / "b.db")
    run_search(tiny_config(strategy="aging"), a)
    run_search(tiny_config(strategy="aging"), b)
    assert dump(a) == dump(b)


def test_resume_after_a_crash_between_two_evaluations(tmp_path, monkeypatch):
    crash_and_resume(tiny_config(), tmp_path, monkeypatch, crash_at=6)


def test_two_searches_cannot_share_a_store(tmp_path):
    db = str(tmp_path / "s.db")
    with Store(db):
        with pytest.raises(StorageError, match="in use by another search"):
            Store(db)
        with pytest.raises(StorageError, match="in use by another search"):
            run_search(tiny_config(), db)


def test_resume_with_other_settings_is_refused(tmp_path):
    db = str(tmp_path / "s.db")
    run_search(tiny_config(candidates=1), db)
    with pytest.raises(StorageError, match="other settings \\(seed differ"):
        run_search(tiny_config(candidates=1, seed=5), db)
    run_search(tiny_config(candidates=2), db)  # a bigger budget is fine


def test_crashing_candidate_is_recorded_and_search_goes_on(tmp_path, monkeypatch):
    import cellsearch.nn.train as train

    orig = train.train_and_evaluate

    def flaky(graph, task, settings, config, **kw):
        if task.spec.name == "memorize":
            raise RuntimeError("boom")
        return orig(graph, task, settings, config, **kw)

    monkeypatch.setattr(train, "train_and_evaluate", flaky)
    db = str(tmp_path / "s.db")
    summary = run_search(tiny_config(candidates=2, reeval_prob=0.0), db)
    assert summary.children == 2
    with Store(db, write=False) as st:
        errs = st.conn.execute("SELECT metrics FROM evaluations WHERE status='error'").fetchall()
        assert errs and "RuntimeError: boom" in errs[0][0]
        assert {r["status"] for r in st.cells("origin='mutation'")} <= {"error", "duplicate"}


def test_bad_settings_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="strategy must be one of"):
        SearchConfig(strategy="annealing")
    with pytest.raises(ConfigError, match="unknown task 'chess'"):
        SearchConfig(tasks=("chess",))
    with pytest.raises(StorageError, match="not a cellsearch store"):
        p = tmp_path / "x.db"
        p.write_text("hello, not sqlite" * 100)
        Store(str(p))


def test_a_cells_settings_spread_over_the_learning_rates(tmp_path):
    """A cell's first 4 settings on a task have 4 different learning rates, and a later draw
    tries the rates it has not tried yet first; with ``spread_rates=False`` (stores from before
    the setting) the draws are independent and repeat rates."""
    import numpy as np

    from cellsearch.hparams import HParamSpace

    grid = HParamSpace(layers=(1,), param_budget=(200,), learning_rate=(0.1, 0.3, 0.5, 1.0, 2.0, 3.0),
                       init_scale=(0.5, 1.0, 2.0), max_grad_norm=(1.0, 5.0, 10.0))
    cell = "c" * 16
    for spread in (True, False):
        c = tiny_config(hparams=grid, spread_rates=spread)
        with Store(str(tmp_path / f"{spread}.db")) as st:
            st.set_meta("config", c.to_json())
            s = Search(c, st)
            draws = [s._settings(cell, "arithmetic", 4, np.random.default_rng(k), 0) for k in range(40)]
            assert all(len(set(d)) == 4 for d in draws)
            rates = [len({h.learning_rate for h in d}) for d in draws]
            assert (min(rates) == 4) if spread else (min(rates) < 4)
            if spread:
                st.add_evaluations(cell, "arithmetic", [fake_result(0.5, learning_rate=h.learning_rate, seed=h.seed)
                                                        for h in draws[0]], 0)
                later = s._settings(cell, "arithmetic", 2, np.random.default_rng(99), 1)
                assert {h.learning_rate for h in later} == set(grid.learning_rate) - {h.learning_rate for h in draws[0]}


def test_an_old_store_keeps_drawing_settings_independently():
    import json

    old = json.loads(tiny_config().to_json())
    del old["spread_rates"]
    assert SearchConfig.from_json(json.dumps(old)).spread_rates is False


def test_config_json_round_trip():
    for c in (SearchConfig(), quick_config(), tiny_config(strategy="random")):
        assert SearchConfig.from_json(c.to_json()) == c


def test_hours_budget_stops_the_search(tmp_path):
    summary = run_search(tiny_config(candidates=None, hours=1e-7), str(tmp_path / "t.db"))
    assert summary.stopped == "time" and summary.steps == 0


def test_the_cascade_stops_children_at_a_rung_and_resumes_exactly(tmp_path, monkeypatch):
    """With filter rungs and a bar no tiny child can reach, children stop at the first rung;
    the step says where, and a crash mid-search resumes to the same store."""
    from cellsearch.config import TrainConfig

    cfg = tiny_config(candidates=3, filter_threshold=0.99,
                      filter_train=TrainConfig(steps=6, batch_size=4, chunk=3, eval_every=3, rungs=((0.5, 1.0),)))
    crash_and_resume(cfg, tmp_path, monkeypatch, crash_at=7)
    with Store(str(tmp_path / "full.db"), write=False) as st:
        filtered = [o for o in st.steps_outcomes(st.finished_steps()) if o["outcome"] == "filtered"]
        assert filtered and all(o["detail"]["stopped_at"] == 3 for o in filtered)


def test_a_childs_filter_stops_once_a_setting_passes_and_the_seeds_train_whole(tmp_path):
    """``filter_train.stop_on_pass``: a child's filter job ends at the first validation point where
    one of its settings reaches the threshold (all its settings stop there, and the child passes);
    the seeds' seed step trains the whole filter grid, so their lineage's rate is their best."""
    import json

    from cellsearch.config import TrainConfig

    cfg = tiny_config(candidates=3, filter_threshold=1e-6,
                      filter_train=TrainConfig(steps=9, batch_size=4, chunk=3, eval_every=3, stop_on_pass=True))
    db = str(tmp_path / "p.db")
    run_search(cfg, db)
    with Store(db, write=False) as st:
        seeds = {o["cell"] for o in st.steps_outcomes(st.finished_steps()) if o["outcome"] == "seeded"}
        jobs = {}
        for r in st.conn.execute("SELECT step, cell_hash, metrics FROM evaluations WHERE task = 'memorize'"):
            jobs.setdefault((r["step"], r["cell_hash"]), []).append(json.loads(r["metrics"]).get("stopped_at"))
        outcomes = {o["cell"]: o["outcome"] for o in st.steps_outcomes(st.finished_steps())}
    assert all(at is None for (_, c), ats in jobs.items() if c in seeds for at in ats)
    children = [ats for (_, c), ats in jobs.items() if c not in seeds]
    assert children and all(len(set(ats)) == 1 and ats[0] in (3, 6) for ats in children)
    assert all(outcomes[c] != "filtered" for _, c in jobs if c not in seeds)


def test_later_tasks_train_in_rungs_against_the_pools_floor(tmp_path, monkeypatch):
    """Stage 3's bar is the pool's floor on each task (under the paper's bars, the hurdle times the
    baseline's bar there): jobs carry it, and a child whose every setting on a later task stopped at
    a rung is scored with ``stopped_at`` and ``stopped_task``, and ``show`` says where it stopped."""
    import cellsearch.search.steps as steps
    from cellsearch.cli.inspect import describe
    from cellsearch.config import TrainConfig
    from cellsearch.search.steps import Search as StepSearch

    real_bar = StepSearch.baseline_bar
    monkeypatch.setattr(StepSearch, "baseline_bar",
                        lambda self, task, n: 1e6 if task == "xml" else real_bar(self, task, n))
    bars = []
    real_job = steps.make_job

    def job(cfg, cell_hash, graph_json, task, settings, train, step, store_as=None):
        bars.append((step, task, train.bar))
        return real_job(cfg, cell_hash, graph_json, task, settings, train, step, store_as)

    monkeypatch.setattr(steps, "make_job", job)
    cfg = tiny_config(candidates=2, reeval_prob=0.0, hurdle=0.5, bars="baseline",
                      train=TrainConfig(steps=6, batch_size=4, chunk=3, eval_every=3, rungs=((0.5, 1.0),)))
    db = str(tmp_path / "r.db")
    run_search(cfg, db)
    child_xml = [b for k, t, b in bars if t == "xml" and k >= 2]
    assert child_xml and all(b == 0.5 * 1e6 for b in child_xml)
    assert all(b == 0.0 for k, t, b in bars if k < 2)  # seeds train whole
    with Store(db, write=False) as st:
        scored = [o for o in st.steps_outcomes(st.finished_steps()) if o["outcome"] == "scored"]
        assert scored and all(o["detail"]["stopped_at"] == 3 and o["detail"]["stopped_task"] == "xml"
                              for o in scored)
        text = describe(st, scored[0]["cell"])
    assert "stopped at the rung after 3 steps of xml" in text and "pool's floor" in text


def test_a_search_on_its_step_cap_says_so(tmp_path, monkeypatch):
    import cellsearch.search.steps as steps

    monkeypatch.setattr(steps, "mutate_live", lambda parent, **k: (parent, [], []))  # every child a duplicate
    s = run_search(cfg(candidates=1), str(tmp_path / "s.db"), executor=Scripted(staged))
    assert s.stopped == "step cap" and s.children == 0 and s.steps == 2 + 40 and s.duplicates > 0
