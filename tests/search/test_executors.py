"""Executors: a crashing candidate is an error result, a dead worker is a lost job."""

from __future__ import annotations

import os
from dataclasses import asdict

import pytest

from cellsearch.cell.graph import to_json
from cellsearch.config import TrainConfig
from cellsearch.errors import ConfigError
from cellsearch.evolve.spaces import find_seed
from cellsearch.hparams import HParams
from cellsearch.search import executors
from cellsearch.search.driver import run_search
from cellsearch.search.executors import InlineExecutor, ProcessExecutor, error_results, is_lost, make_executor, run_job
from cellsearch.store.sqlite import Store
from tests.search_helpers import tiny_config


def job(graph=None, **train):
    return {"graph": to_json(graph or find_seed("GRU"), None), "task": "memorize",
            "task_options": {"eval_batches": 1, "eval_batch_size": 8},
            "settings": [asdict(HParams(param_budget=300, seed=s)) for s in (0, 1)],
            "train": asdict(TrainConfig(**({"steps": 4, "batch_size": 4, "chunk": 4} | train))), "cell": "c", "step": 0}


def test_inline_executor_runs_a_job():
    ex = InlineExecutor()
    handle = ex.submit(job())
    got, results = ex.wait()
    assert got == handle and [r["status"] for r in results] == ["ok", "ok"]
    assert not is_lost(results)


def test_a_crashing_candidate_is_an_error_with_its_message():
    bad = job()
    bad["task_options"] = {"no_such_option": 1}
    results = run_job(bad)
    assert [r["status"] for r in results] == ["error", "error"]
    assert "bad option" in results[0]["metrics"]["error"] and not is_lost(results)


def test_error_results_mark_lost_jobs():
    lost = error_results(job(), "worker process died", status="lost")
    assert is_lost(lost) and lost[0]["metrics"]["error"] == "worker process died"


def _die(job):
    os._exit(3)


def test_a_dead_worker_is_a_lost_job_and_the_pool_recovers():
    ex = ProcessExecutor(1)
    try:
        fut = ex._pool.submit(_die, {})  # a worker that dies mid-job, as one killed for memory
        ex._futures[fut] = job()
        _, results = ex.wait()
        assert is_lost(results) and "worker process died" in results[0]["metrics"]["error"]
        ex.submit(job())  # a fresh pool takes the next job
        _, results = ex.wait()
        assert [r["status"] for r in results] == ["ok", "ok"]
    finally:
        ex.close()


def test_unknown_backend_is_refused():
    with pytest.raises(ConfigError, match="backend must be 'local' or 'ray'"):
        make_executor("slurm", 1)


def test_deterministic_sets_the_xla_flag_once(monkeypatch):
    from cellsearch.search.executors import deterministic

    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_foo=1")
    deterministic()
    deterministic()
    assert os.environ["XLA_FLAGS"] == "--xla_cpu_foo=1 --xla_gpu_deterministic_ops=true"


def test_host_errors_are_lost_not_the_cells_error(monkeypatch):
    from cellsearch.nn import train

    def oom(*a, **k):
        raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 4.0GiB")

    monkeypatch.setattr(train, "train_and_evaluate", oom)
    res = executors.run_job(job())
    assert executors.is_lost(res) and "host error" in res[0]["metrics"]["error"]
    monkeypatch.setattr(train, "train_and_evaluate", lambda *a, **k: (_ for _ in ()).throw(MemoryError()))
    assert executors.is_lost(executors.run_job(job()))
    monkeypatch.setattr(train, "train_and_evaluate", lambda *a, **k: (_ for _ in ()).throw(ValueError("shape")))
    res = executors.run_job(job())
    assert not executors.is_lost(res) and res[0]["status"] == "error"


def test_a_search_retries_a_host_error_and_stores_no_error(tmp_path, monkeypatch):
    from cellsearch.nn import train

    orig, calls = train.train_and_evaluate, {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise MemoryError("host out of memory")
        return orig(*a, **k)

    monkeypatch.setattr(train, "train_and_evaluate", flaky)
    db = str(tmp_path / "s.db")
    s = run_search(tiny_config(candidates=0), db)  # the seed steps: the third job fails once, on the host
    assert calls["n"] > 3 and s.steps == 2 and s.stopped == "budget"
    with Store(db, write=False) as st:
        assert not st.conn.execute("SELECT COUNT(*) FROM evaluations WHERE status='error'").fetchone()[0]


def test_a_failed_population_job_says_its_cells_trained_alone(monkeypatch):
    from cellsearch.nn import population

    orig = population.train_population

    def group_fails(graphs, *a, **k):
        if len(graphs) > 1:
            raise ValueError("a group bug")
        return orig(graphs, *a, **k)

    monkeypatch.setattr(population, "train_population", group_fails)
    res = executors.run_job({"population": [job(), job()], "members": 4})
    assert len(res) == 2 and all(r["status"] == "ok" for rs in res for r in rs)
    assert all("trained alone in the interpreter after the group failed" in r["metrics"]["population"]
               for rs in res for r in rs)
