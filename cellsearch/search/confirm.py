"""Confirmation: re-training the top cells and the baseline with fresh paired seeds (``cellsearch confirm``).

A search ranks cells by the best of a few noisy settings, so its leaderboard is biased upward
(the winner's curse). Confirmation re-trains the top ``k`` cells and the baseline on every task
of the search, each at its best stored setting on that task (its best ``settings`` distinct
ones, judged at the best of them on the fresh seeds, :func:`~cellsearch.search.verdicts.chosen_runs`),
with ``seeds`` fresh seeds: seed
``s`` sets both the initialisation and the data order (:data:`SEED_BASE` ``+ s``), and the
cell and the baseline share it, so their runs are **paired**. Runs go to their own table
(``confirmations``); the search's evaluations and scores are never touched. Each run is its own
transaction, so a killed confirmation resumes where it stopped and repeats nothing (every run
is alone in its program, ``members = 1``, so its numbers do not depend on what ran before).
The verdicts are :mod:`cellsearch.search.verdicts`'; confirmation always trains from scratch.

This module imports nothing from JAX (the executor that trains does).
"""

from __future__ import annotations

import os
from dataclasses import asdict, replace

from cellsearch.errors import ConfigError, StorageError
from cellsearch.hparams import HParams, point_key
from cellsearch.search.executors import run_job
from cellsearch.search.results import baseline_of, find_cell, leaderboard, stored_config
from cellsearch.search.steps import best_settings, make_job
from cellsearch.search.verdicts import summary
from cellsearch.store.sqlite import Store

SEED_BASE = 7_000_003  # confirmation seeds: far from the search's grid-point seeds


def confirmed(store: Store) -> dict[str, dict]:
    """The confirmation summary of a store's runs (:func:`cellsearch.search.verdicts.summary`)."""
    cfg = stored_config(store)
    return summary(store.confirmations(), baseline_of(store)[1], cfg.tasks)


def distinct_best(store: Store, cell: str, task: str, n: int) -> list[HParams]:
    """The cell's ``n`` best finished settings on ``task`` that differ in more than their seed,
    best first (a re-evaluation may have repeated a setting with another seed)."""
    out: dict[str, HParams] = {}
    for h in best_settings(store, cell, task, 10**9):
        out.setdefault(point_key(asdict(h)), h)
        if len(out) == n:
            break
    return list(out.values())


def confirm(db: str, *, k: int = 5, seeds: int = 5, steps: int | None = None, save: str | None = None,
            cells: list[str] = (), settings: int = 1, on_event=None) -> dict[str, dict]:
    """Re-trains the top ``k`` cells (and ``cells``: ids or hashes of any cells of the store, e.g. a
    seed to compare with) and the baseline with ``seeds`` fresh paired seeds on every task of the
    search in ``db`` (``steps`` per run, default the search's), each at its best ``settings``
    distinct stored settings per task (fewer where it has fewer), stores the runs and returns
    :func:`confirmed`. Resumable: runs already stored are not repeated, so raising ``settings``
    or ``seeds`` later runs only what is new. ``save`` keeps each run's parameters in
    ``save/<cell>/<task>/seed-<s>`` (``seed-<s>-setting-<i>`` for the ``i``-th setting past the
    first; ``GraphCell.from_saved``)."""
    if k < 1 or seeds < 2 or settings < 1:
        raise ConfigError(f"confirm needs k >= 1, seeds >= 2 (an interval needs two pairs) and settings >= 1, "
                          f"got k={k}, seeds={seeds}, settings={settings}")
    with Store(db, create=False) as store:
        cfg = stored_config(store)
        base = baseline_of(store)[1]
        top = [r["hash"] for r in leaderboard(store, cfg, k + 1) if r["hash"] != base][:k]
        top += [h for h in (find_cell(store, c)["hash"] for c in cells) if h != base and h not in top]
        if not top:
            raise StorageError(f"{db!r} has no scored cell besides the baseline to confirm")
        cells = [base, *top]
        graphs = {c: store.cell(c)["graph"] for c in cells}
        todo = []
        for cell in cells:
            for t in cfg.tasks:
                best = distinct_best(store, cell, t, settings)
                if not best:
                    raise StorageError(f"cell {cell} has no finished evaluation on {t!r} to take its setting from")
                todo += [(cell, t, i, h, s) for i, h in enumerate(best) for s in range(seeds)]
        n_steps = steps or cfg.train_config(cfg.tasks[0]).steps
        done = {(r["cell_hash"], r["task"], r["seed"], point_key(r["hparams"]))
                for r in store.confirmations() if r["steps"] == n_steps}
        left = [x for x in todo if (x[0], x[1], x[4], point_key(asdict(x[3]))) not in done]
        if on_event:
            on_event("start", {"runs": len(todo), "done": len(todo) - len(left), "cells": len(cells)})
        for j, (cell, t, i, h, s) in enumerate(left):
            hs = replace(h, seed=SEED_BASE + s)
            train = replace(cfg.train_config(t), steps=n_steps, data_seed=SEED_BASE + s, members=1, rungs=(), bar=0.0)
            job = make_job(cfg, cell, graphs[cell], t, [hs], train, -1)
            if save:
                job["save"] = os.path.join(save, cell, t, f"seed-{s}" + (f"-setting-{i}" if i else ""))
            (r,) = run_job(job)
            if r["status"] == "lost":
                raise StorageError(f"confirmation run of {cell} on {t!r} was lost ({r['metrics'].get('error')}); "
                                   "run the same command again")
            store.add_confirmation(cell, t, s, n_steps, asdict(hs), r)
            if on_event:
                on_event("run", {"i": len(todo) - len(left) + j + 1, "runs": len(todo), "cell": cell, "task": t,
                                 "seed": s, "setting": i, "score": r["score"], "status": r["status"]})
        return confirmed(store)
