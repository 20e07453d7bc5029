"""Executors: a crashing candidate is an error result, a dead worker is a lost job."""

from __future__ import annotations

import os
from dataclasses import asdict

import pytest

from cellsearch.config import TrainConfig
from cellsearch.errors import ConfigError
from cellsearch.executors import InlineExecutor, ProcessExecutor, error_results, is_lost, make_executor, run_job
from cellsearch.graph import to_json
from cellsearch.hparams import HParams
from cellsearch.spaces import find_seed


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
    from cellsearch.executors import deterministic

    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_foo=1")
    deterministic()
    deterministic()
    assert os.environ["XLA_FLAGS"] == "--xla_cpu_foo=1 --xla_gpu_deterministic_ops=true"
