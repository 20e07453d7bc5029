"""A tiny search configuration that runs in seconds; a scripted executor whose scores are known in
advance; the store's contents; crash and resume."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections import Counter
from dataclasses import asdict

import pytest

from cellsearch.cell.canon import structural_hash
from cellsearch.config import TrainConfig
from cellsearch.evolve.spaces import load_space
from cellsearch.hparams import HParams, HParamSpace
from cellsearch.search.config import SearchConfig

SMALL = HParamSpace(layers=(1,), param_budget=(200,), learning_rate=(0.5, 1.0), init_scale=(1.0,), max_grad_norm=(5.0,))


def tiny_config(**kw) -> SearchConfig:
    base = dict(
        space="tiny", tasks=("arithmetic", "xml"), candidates=3, pool_size=3, settings_per_task=2, init_settings=2,
        screen=(),
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
        "states": con.execute("SELECT cell_hash, task, hp_key, state FROM states ORDER BY cell_hash, task, hp_key").fetchall(),
    }
    con.close()
    # metrics hold wall-clock-free numbers only, but compare them parsed to ignore key order
    out["evals"] = [(a, b, c, json.loads(d), e, f) for a, b, c, d, e, f in out["evals"]]
    return out


def crash_and_resume(cfg: SearchConfig, tmp_path, monkeypatch, crash_at: int, executor=None) -> None:
    """Runs ``cfg`` whole, then again with a crash at the ``crash_at``-th stored evaluation,
    resumes it, and asserts the resumed store lost nothing, repeated nothing and equals the
    whole run's (``executor``: a function that makes each run's executor; default real training)."""
    from cellsearch.search.driver import run_search

    def run(db):
        return run_search(cfg, db, executor=executor() if executor else None)

    full, cut = str(tmp_path / "full.db"), str(tmp_path / "cut.db")
    run(full)
    import cellsearch.store.sqlite as storage

    real = storage.Store.add_evaluations
    calls = {"n": 0}

    def crashing(self, *args, **kw):
        calls["n"] += 1
        if calls["n"] == crash_at:
            raise KeyboardInterrupt("simulated crash")
        return real(self, *args, **kw)

    monkeypatch.setattr(storage.Store, "add_evaluations", crashing)
    with pytest.raises(KeyboardInterrupt):
        run(cut)
    monkeypatch.setattr(storage.Store, "add_evaluations", real)
    before = dump(cut)
    assert len(before["evals"]) > 0
    summary = run(cut)
    after = dump(cut)
    assert all(e in after["evals"] for e in before["evals"])  # nothing finished is lost
    assert summary.new_evaluations == len(after["evals"]) - len(before["evals"])  # none repeated
    assert after == dump(full)  # and the search is the one it would have been


SPACE = load_space("tiny")
GRU = structural_hash(SPACE.seed("GRU"))
TANH = structural_hash(SPACE.seed("Tanh"))


def unit(*parts) -> float:
    """A deterministic number in [0, 1) from its arguments."""
    d = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(d[:8], "little") / 2.0**64


class Scripted:
    """An executor whose results come from ``fn(cell, task, hparams) -> (status, score)``.
    Records every (cell, task, setting) it was asked to train."""

    def __init__(self, fn, lose=()):
        self.fn, self.lose = fn, set(lose)
        self.asked: Counter = Counter()
        self.done: list = []
        self.n = 0

    def submit(self, job):
        self.n += 1
        if "population" in job:  # a population round's job: one list of results per member job
            self.done.append((self.n, [self._results(j) for j in job["population"]]))
            return self.n
        self.done.append((self.n, self._results(job)))
        return self.n

    def _results(self, job):
        out = []
        for d in job["settings"]:
            h = HParams(**d)
            self.asked[(job["cell"], job["task"], h.key())] += 1
            if (job["step"], job["task"]) in self.lose:
                status, score = "lost", 0.0
            else:
                status, score = self.fn(job["cell"], job["task"], h)
            metrics = {"score": score, **({"error": f"scripted {status}"} if status in ("error", "lost") else {})}
            out.append({"hparams": asdict(h), "hp_key": h.key(), "status": status, "score": score,
                        "metrics": metrics, "wall_s": 0.0, "compile_s": 0.0})
        return out

    def wait(self):
        return self.done.pop(0)

    def close(self):
        pass


def staged(cell, task, h):
    """Seeds pass everything; children: a third fail the filter, a third stop at the hurdle."""
    if cell in (GRU, TANH):
        return "ok", {"memorize": 1.0, "arithmetic": 0.5, "xml": 0.4}[task] + 0.01 * h.learning_rate
    fate = unit(cell)
    if task == "memorize":
        return "ok", 0.5 if fate < 1 / 3 else 0.99
    if task == "arithmetic":
        return "ok", 0.1 if fate < 2 / 3 else 0.5 + 0.1 * unit(cell, h.key())
    return "ok", 0.3 + 0.2 * unit(cell, h.key())


def cfg(**kw):
    base = dict(candidates=15, reeval_prob=0.3, filter_threshold=0.95, hurdle=0.9, settings_per_task=2,
                mutation_rate=0.5)
    return tiny_config(**(base | kw))
