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

**Verification** (``confirm --verify N``): the best confirmed cell of the top ``k`` is picked on
the confirmation seeds, and its settings (and the baseline's) were chosen on them too, so its
confirmed score carries a second, smaller winner's curse. Verification re-trains that one cell
and the baseline, at the settings chosen above, on ``N`` **held-out** paired seeds (numbered from
:data:`VERIFY_SEED0`, never used by a confirmation), and judges it there alone
(:func:`verified`): an unbiased verdict on the search's final answer. The pick is stored
(meta ``verification``) before any of its runs, so a killed verification resumes with the same
pick, and a store verifies one cell only: a second pick would be chosen with the held-out seeds
already seen (``benchmarks/README.md``, "Confirmation").

This module imports nothing from JAX (the executor that trains does).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, replace

from cellsearch.errors import ConfigError, StorageError
from cellsearch.hparams import HParams, point_key
from cellsearch.search.executors import run_job
from cellsearch.search.results import baseline_of, find_cell, leaderboard, stored_config
from cellsearch.search.steps import best_settings, make_job
from cellsearch.search.verdicts import chosen_runs, summary
from cellsearch.store.sqlite import Store

SEED_BASE = 7_000_003  # confirmation seeds: far from the search's grid-point seeds
VERIFY_SEED0 = 1000  # verification's held-out seeds are numbered from here; a confirmation's stay below


def confirmed(store: Store) -> dict[str, dict]:
    """The confirmation summary of a store's runs (:func:`cellsearch.search.verdicts.summary`),
    without the verification's held-out seeds."""
    cfg = stored_config(store)
    return summary(_selection_runs(store), baseline_of(store)[1], cfg.tasks)


def _selection_runs(store: Store) -> list[dict]:
    """The confirmation runs a pick is chosen on: every seed below the held-out ones."""
    return [r for r in store.confirmations() if r["seed"] < VERIFY_SEED0]


def verified(store: Store) -> dict | None:
    """The verification of a store (``None`` if it has none): ``cell`` (the pick), ``among`` (the
    cells it was picked from), ``seeds`` (held-out seeds asked for) and ``result``: the cell's
    :func:`~cellsearch.search.verdicts.summary` on the held-out seeds alone (``None`` before
    every task has a pair)."""
    text = store.meta("verification")
    if not text:
        return None
    v = json.loads(text)
    base = baseline_of(store)[1]
    runs = [r for r in store.confirmations() if r["seed"] >= VERIFY_SEED0 and r["cell_hash"] in (v["cell"], base)]
    return {**v, "result": summary(runs, base, stored_config(store).tasks).get(v["cell"])}


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
            cells: list[str] = (), settings: int = 1, verify: int = 0, on_event=None) -> dict[str, dict]:
    """Re-trains the top ``k`` cells (and ``cells``: ids or hashes of any cells of the store, e.g. a
    seed to compare with) and the baseline with ``seeds`` fresh paired seeds on every task of the
    search in ``db`` (``steps`` per run, default the search's), each at its best ``settings``
    distinct stored settings per task (fewer where it has fewer), stores the runs and returns
    :func:`confirmed`. Resumable: runs already stored are not repeated, so raising ``settings``
    or ``seeds`` later runs only what is new. ``save`` keeps each run's parameters in
    ``save/<cell>/<task>/seed-<s>`` (``seed-<s>-setting-<i>`` for the ``i``-th setting past the
    first; ``GraphCell.from_saved``). With ``verify`` (``N`` held-out seeds), the best confirmed
    of the top ``k`` and the baseline are then re-trained on them (:func:`verify_pick`)."""
    if k < 1 or not 2 <= seeds <= VERIFY_SEED0 or settings < 1 or not (verify == 0 or 2 <= verify <= VERIFY_SEED0):
        raise ConfigError(f"confirm needs k >= 1, 2 <= seeds <= {VERIFY_SEED0} (an interval needs two pairs), "
                          f"settings >= 1 and verify 0 (none) or 2 to {VERIFY_SEED0}, "
                          f"got k={k}, seeds={seeds}, settings={settings}, verify={verify}")
    with Store(db, create=False) as store:
        cfg = stored_config(store)
        base = baseline_of(store)[1]
        lead = [r["hash"] for r in leaderboard(store, cfg, k + 1) if r["hash"] != base][:k]
        top = lead + [h for h in (find_cell(store, c)["hash"] for c in cells) if h != base and h not in lead]
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
        _run_all(store, cfg, graphs, todo, n_steps, save, on_event, "start")
        if verify:
            verify_pick(store, cfg, graphs, lead, seeds, verify, n_steps, save, on_event)
        return confirmed(store)


def verify_pick(store: Store, cfg, graphs: dict[str, str], among: list[str], seeds: int, verify: int, n_steps: int,
                save: str | None, on_event) -> None:
    """Picks the best confirmed of ``among`` (at ``n_steps``), stores the pick, and re-trains it
    and the baseline, each at the setting per task its confirmation was judged at, on ``verify``
    held-out seeds (:data:`VERIFY_SEED0` on)."""
    base = baseline_of(store)[1]
    runs = [r for r in _selection_runs(store) if r["steps"] == n_steps]
    conf = summary(runs, base, cfg.tasks)
    if not any(c in conf for c in among):
        raise StorageError("no cell of the top k has a confirmation on every task to pick from; nothing was verified")
    pick = max((c for c in among if c in conf), key=lambda c: conf[c]["score"])
    mine = {"cell": pick, "among": among, "selected_on": seeds, "seeds": verify, "steps": n_steps}
    text = store.meta("verification")
    if text:
        was = json.loads(text)
        if was["cell"] != pick or was["steps"] != n_steps:
            raise ConfigError(f"this store was verified on {was['cell']} ({was['steps']} steps per run), picked from "
                              f"{len(was['among'])} cells on {was['selected_on']} seeds; a second pick ({pick}) would "
                              "be chosen with the held-out seeds already seen. Verify another pick in a copy of the "
                              "store made before the verification, or run confirm without --verify")
        mine = {**was, "seeds": verify}  # the same pick: it was chosen among the cells first named
    store.set_meta("verification", json.dumps(mine))
    chosen = chosen_runs(runs)[1]
    todo = [(cell, t, 0, HParams.from_dict(chosen[(cell, t)]["hparams"]), VERIFY_SEED0 + s)
            for cell in (base, pick) for t in cfg.tasks for s in range(verify)]
    _run_all(store, cfg, graphs, todo, n_steps, save, on_event, "verify", {"cell": pick, "among": len(among)})


def _run_all(store: Store, cfg, graphs: dict[str, str], todo: list[tuple], n_steps: int, save: str | None,
             on_event, kind: str, info: dict | None = None) -> None:
    """Trains and stores the runs of ``todo`` (``(cell, task, setting index, setting, seed)``) not
    stored yet, each alone in its program, each its own transaction."""
    done = {(r["cell_hash"], r["task"], r["seed"], point_key(r["hparams"]))
            for r in store.confirmations() if r["steps"] == n_steps}
    left = [x for x in todo if (x[0], x[1], x[4], point_key(asdict(x[3]))) not in done]
    if on_event:
        on_event(kind, {**(info or {}), "runs": len(todo), "done": len(todo) - len(left),
                        "cells": len({x[0] for x in todo})})
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
