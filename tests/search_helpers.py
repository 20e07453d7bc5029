"""A tiny search configuration that runs in seconds; the store's contents; crash and resume."""

from __future__ import annotations

import json
import sqlite3

import pytest

from cellsearch.config import SearchConfig, TrainConfig
from cellsearch.hparams import HParamSpace

SMALL = HParamSpace(layers=(1,), param_budget=(200,), learning_rate=(0.5, 1.0), init_scale=(1.0,), max_grad_norm=(5.0,))


def tiny_config(**kw) -> SearchConfig:
    base = dict(
        space="tiny", tasks=("arithmetic", "xml"), candidates=3, pool_size=3, settings_per_task=2, init_settings=2,
        reeval_prob=0.3, filter_threshold=0.0, hurdle=0.0, hparams=SMALL, filter_hparams=SMALL,
        budgets={"arithmetic": (200,), "xml": (200,)},
        train=TrainConfig(steps=6, batch_size=4, chunk=6), filter_train=TrainConfig(steps=3, batch_size=4, chunk=3),
        task_options={t: {"eval_batches": 1, "eval_batch_size": 8} for t in ("arithmetic", "xml", "memorize")}
        | {"arithmetic": {"max_digits": 1, "eval_batches": 1, "eval_batch_size": 8},
           "xml": {"seq_len": 8, "eval_batches": 1, "eval_batch_size": 8}},
    )
    base.update(kw)
    return SearchConfig(**base)


def dump(db):
    """Store contents without timing fields."""
    con = sqlite3.connect(db)
    out = {
        "cells": con.execute("SELECT id, hash, graph, functional_hash, parent, edits, origin, status, score, step FROM cells ORDER BY id").fetchall(),
        "evals": con.execute("SELECT cell_hash, task, hp_key, metrics, score, status FROM evaluations ORDER BY cell_hash, task, hp_key").fetchall(),
        "steps": con.execute("SELECT step, kind, cell_hash, outcome, detail FROM steps ORDER BY step").fetchall(),
        "pool": con.execute("SELECT * FROM pool ORDER BY cell_hash").fetchall(),
    }
    con.close()
    # metrics hold wall-clock-free numbers only, but compare them parsed to ignore key order
    out["evals"] = [(a, b, c, json.loads(d), e, f) for a, b, c, d, e, f in out["evals"]]
    return out


def crash_and_resume(cfg: SearchConfig, tmp_path, monkeypatch, crash_at: int) -> None:
    """Runs ``cfg`` whole, then again with a crash at the ``crash_at``-th stored evaluation,
    resumes it, and asserts the resumed store lost nothing, repeated nothing and equals the
    whole run's."""
    from cellsearch.search import run_search

    full, cut = str(tmp_path / "full.db"), str(tmp_path / "cut.db")
    run_search(cfg, full)
    import cellsearch.storage as storage

    real = storage.Store.add_evaluations
    calls = {"n": 0}

    def crashing(self, *args, **kw):
        calls["n"] += 1
        if calls["n"] == crash_at:
            raise KeyboardInterrupt("simulated crash")
        return real(self, *args, **kw)

    monkeypatch.setattr(storage.Store, "add_evaluations", crashing)
    with pytest.raises(KeyboardInterrupt):
        run_search(cfg, cut)
    monkeypatch.setattr(storage.Store, "add_evaluations", real)
    before = dump(cut)
    assert len(before["evals"]) > 0
    summary = run_search(cfg, cut)
    after = dump(cut)
    assert all(e in after["evals"] for e in before["evals"])  # nothing finished is lost
    assert summary.new_evaluations == len(after["evals"]) - len(before["evals"])  # none repeated
    assert after == dump(full)  # and the search is the one it would have been
