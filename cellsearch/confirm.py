"""Confirmation: from a search-time score to a claim (``cellsearch confirm``).

A search ranks cells by the best of a few noisy settings, so its leaderboard is biased upward
(the winner's curse). Confirmation re-trains the top ``k`` cells and the baseline on every task
of the search, each at its best stored setting on that task, with ``seeds`` fresh seeds: seed
``s`` sets both the initialisation and the data order (:data:`SEED_BASE` ``+ s``), and the
cell and the baseline share it, so their runs are **paired**. Runs go to their own table
(``confirmations``); the search's evaluations and scores are never touched. Each run is its own
transaction, so a killed confirmation resumes where it stopped and repeats nothing (every run
is alone in its program, ``members = 1``, so its numbers do not depend on what ran before).

Per cell and task: the ratio to the baseline of each seed pair, their mean, and a 95 % interval
(Student's t over the pairs, :func:`interval`). **Verdict** (:func:`verdict`): ``better`` if
the interval lies above 1, ``worse`` if below, else ``tie``; a cell's verdict over tasks is
``worse`` if any task is worse, ``better`` if every task is better, else ``tie``; its confirmed
score is the minimum over tasks of the mean ratio, as the search's score is a minimum. A seed
whose baseline run diverged (score 0) has no ratio and is left out (and counted).

A seed on which the **cell** failed (diverged, or crashed) while the baseline trained counts as
ratio 0 in the mean (the mean is what the cell delivers at that setting), and the task's verdict
is ``unstable`` whatever the interval says: an interval over a mix of zeros and ratios near 1 is
wide enough to call almost anything a tie, and a cell that diverges at its own best setting on
fresh seeds is not as good as the baseline there. (Measured: a 1-hour search's best, 1.0057 at
search time, diverged on 2 of 5 arithmetic seeds at its lr 3; the interval was [-0.08, 1.26].)
Over tasks, ``worse`` outranks ``unstable``, which outranks ``tie`` and ``better``.

This module imports nothing from JAX (the executor that trains does).
"""

from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import asdict, replace

from cellsearch.errors import ConfigError, StorageError
from cellsearch.storage import Store

SEED_BASE = 7_000_003  # confirmation seeds: far from the search's grid-point seeds
# two-sided 95 % quantiles of Student's t by degrees of freedom (1.96 beyond 30)
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]

_TABLE = """CREATE TABLE IF NOT EXISTS confirmations (
  id INTEGER PRIMARY KEY AUTOINCREMENT, cell_hash TEXT NOT NULL, task TEXT NOT NULL, seed INTEGER NOT NULL,
  steps INTEGER NOT NULL, hparams TEXT NOT NULL, score REAL NOT NULL, status TEXT NOT NULL, metrics TEXT NOT NULL,
  wall_s REAL NOT NULL, created_at REAL NOT NULL, UNIQUE(cell_hash, task, seed, steps))"""


def interval(ratios: list[float]) -> tuple[float, float, float]:
    """Mean and 95 % interval (Student's t) of paired ratios; a single pair has an infinite one.

    >>> m, lo, hi = interval([1.0, 1.1, 0.9]); round(m, 3), round(lo, 3), round(hi, 3)
    (1.0, 0.752, 1.248)
    """
    n = len(ratios)
    if n == 0:
        return math.nan, math.nan, math.nan
    m = statistics.fmean(ratios)
    if n == 1:
        return m, -math.inf, math.inf
    t = _T975[n - 2] if n - 1 <= len(_T975) else 1.96
    half = t * statistics.stdev(ratios) / math.sqrt(n)
    return m, m - half, m + half


def verdict(lo: float, hi: float) -> str:
    """``better`` if the interval lies above 1, ``worse`` if below, else ``tie``."""
    return "better" if lo > 1.0 else "worse" if hi < 1.0 else "tie"


def overall(verdicts: list[str]) -> str:
    """A cell's verdict over its tasks: worse if any is worse, else unstable if any is, better
    if all are better, else tie."""
    for v in ("worse", "unstable"):
        if v in verdicts:
            return v
    return "better" if verdicts and all(v == "better" for v in verdicts) else "tie"


def has_table(store: Store) -> bool:
    return store.conn.execute("SELECT 1 FROM sqlite_master WHERE name='confirmations'").fetchone() is not None


def runs(store: Store) -> list[dict]:
    """Every confirmation run in the store (none if it has no such table)."""
    if not has_table(store):
        return []
    return [dict(r) | {"hparams": json.loads(r["hparams"]), "metrics": json.loads(r["metrics"])}
            for r in store.conn.execute("SELECT * FROM confirmations ORDER BY id")]


def summary(store: Store, baseline: str, tasks: tuple[str, ...]) -> dict[str, dict]:
    """Per confirmed cell: ``tasks`` (per task: mean, lo, hi, pairs, left_out, failed, verdict),
    ``score`` (min over tasks of the mean ratio) and ``verdict`` over tasks."""
    rows = runs(store)
    steps = max((r["steps"] for r in rows), default=None)
    by = {(r["cell_hash"], r["task"], r["seed"]): r for r in rows if r["steps"] == steps}
    out: dict[str, dict] = {}
    for cell in dict.fromkeys(r["cell_hash"] for r in rows if r["cell_hash"] != baseline):
        per = {}
        for t in tasks:
            seeds = sorted(s for c, tt, s in by if c == cell and tt == t)
            pairs, left, failed = [], 0, 0
            for s in seeds:
                b = by.get((baseline, t, s))
                if b is None:
                    continue
                if b["score"] <= 0 or b["status"] != "ok":
                    left += 1
                    continue
                mine = by[(cell, t, s)]
                failed += mine["status"] != "ok"
                pairs.append((mine["score"] if mine["status"] == "ok" else 0.0) / b["score"])
            m, lo, hi = interval(pairs)
            v = "unstable" if failed else verdict(lo, hi) if pairs else "tie"
            per[t] = {"mean": m, "lo": lo, "hi": hi, "pairs": len(pairs), "left_out": left, "failed": failed,
                      "verdict": v}
        if all(p["pairs"] for p in per.values()):
            out[cell] = {"tasks": per, "score": min(p["mean"] for p in per.values()),
                         "verdict": overall([p["verdict"] for p in per.values()]), "steps": steps}
    return out


def confirm(db: str, *, k: int = 5, seeds: int = 5, steps: int | None = None, save: str | None = None,
            on_event=None) -> dict[str, dict]:
    """Re-trains the top ``k`` cells and the baseline with ``seeds`` fresh paired seeds on every
    task of the search in ``db`` (``steps`` per run, default the search's), stores the runs and
    returns :func:`summary`. Resumable: runs already stored are not repeated. ``save`` keeps
    each run's parameters in ``save/<cell>/<task>/seed-<s>`` (``GraphCell.from_saved``)."""
    import os

    from cellsearch.executors import run_job
    from cellsearch.results import baseline_hash, leaderboard, stored_config
    from cellsearch.steps import best_settings, make_job

    if k < 1 or seeds < 2:
        raise ConfigError(f"confirm needs k >= 1 and seeds >= 2 (an interval needs two pairs), got k={k}, seeds={seeds}")
    with Store(db, create=False) as store:
        cfg = stored_config(store)
        base = baseline_hash(cfg)
        top = [r["hash"] for r in leaderboard(store, cfg, k + 1) if r["hash"] != base][:k]
        if not top:
            raise StorageError(f"{db!r} has no scored cell besides the baseline to confirm")
        with store.tx():
            store.conn.execute(_TABLE)
        cells = [base, *top]
        graphs = {c: store.cell(c)["graph"] for c in cells}
        todo = []
        for cell in cells:
            for t in cfg.tasks:
                best = best_settings(store, cell, t, 1)
                if not best:
                    raise StorageError(f"cell {cell} has no finished evaluation on {t!r} to take its setting from")
                todo += [(cell, t, best[0], s) for s in range(seeds)]
        n_steps = steps or cfg.train_config(cfg.tasks[0]).steps
        done = {(r["cell_hash"], r["task"], r["seed"]) for r in runs(store) if r["steps"] == n_steps}
        left = [x for x in todo if (x[0], x[1], x[3]) not in done]
        if on_event:
            on_event("start", {"runs": len(todo), "done": len(todo) - len(left), "cells": len(cells)})
        for i, (cell, t, h, s) in enumerate(left):
            hs = replace(h, seed=SEED_BASE + s)
            train = replace(cfg.train_config(t), steps=n_steps, data_seed=SEED_BASE + s, members=1, rungs=(), bar=0.0)
            job = make_job(cfg, cell, graphs[cell], t, [hs], train, -1)
            if save:
                job["save"] = os.path.join(save, cell, t, f"seed-{s}")
            (r,) = run_job(job)
            if r["status"] == "lost":
                raise StorageError(f"confirmation run of {cell} on {t!r} was lost ({r['metrics'].get('error')}); "
                                   "run the same command again")
            with store.tx():
                store.conn.execute(
                    "INSERT OR IGNORE INTO confirmations (cell_hash, task, seed, steps, hparams, score, status, metrics,"
                    " wall_s, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (cell, t, s, n_steps, json.dumps(asdict(hs), sort_keys=True), float(r["score"]), r["status"],
                     json.dumps(r["metrics"]), float(r["wall_s"]), time.time()))
            if on_event:
                on_event("run", {"i": len(todo) - len(left) + i + 1, "runs": len(todo), "cell": cell, "task": t,
                                 "seed": s, "score": r["score"], "status": r["status"]})
        return summary(store, base, cfg.tasks)


def print_summary(conf: dict[str, dict], searched: dict[str, float | None] | None = None) -> None:
    """The confirmation table: per cell, each task's mean ratio with its 95 % interval and
    verdict, then the confirmed score and the verdict over tasks; with ``searched`` (each
    cell's search-time score) the search-time score beside it and :func:`winners_curse`."""
    searched = searched or {}
    for cell, c in sorted(conf.items(), key=lambda kv: -kv[1]["score"]):
        per = "; ".join(f"{t} {p['mean']:.4f} [{p['lo']:.4f}, {p['hi']:.4f}] {p['verdict']} ({p['pairs']} pairs"
                        + (f", {p['left_out']} left out" if p["left_out"] else "")
                        + _failed_note(p) + ")"
                        for t, p in c["tasks"].items())
        was = f"search-time {searched[cell]:.4f}, " if searched.get(cell) is not None else ""
        print(f"{cell}: {was}confirmed {c['score']:.4f}, {c['verdict']} ({c['steps']} steps per run): {per}")
    if searched:
        print(winners_curse(conf, searched))


def winners_curse(conf: dict[str, dict], searched: dict[str, float | None]) -> str:
    """One line: how far the confirmed scores fell below the search-time scores (a search's best
    of a few noisy settings is biased upward) and how many cells stay at or above the baseline.

    >>> conf = {"a": {"score": 1.01, "verdict": "better"}, "b": {"score": 0.99, "verdict": "tie"}}
    >>> winners_curse(conf, {"a": 1.04, "b": 1.02})
    "winner's curse: the 2 cells' scores moved by -0.030 on average (-0.030 to -0.030) from search to confirmation; 1 of 2 stay at or above the baseline (confirmed score >= 1), 1 better beyond the seed noise"
    """
    gaps = [conf[c]["score"] - searched[c] for c in conf if searched.get(c) is not None]
    if not gaps:
        return "winner's curse: no search-time score to compare with"
    above = sum(v["score"] >= 1.0 for v in conf.values())
    better = sum(v["verdict"] == "better" for v in conf.values())
    return (f"winner's curse: the {len(gaps)} cells' scores moved by {sum(gaps) / len(gaps):+.3f} on average "
            f"({min(gaps):+.3f} to {max(gaps):+.3f}) from search to confirmation; {above} of {len(conf)} stay at or "
            f"above the baseline (confirmed score >= 1), {better} better beyond the seed noise")


def _failed_note(p: dict) -> str:
    """``, failed on 2 of 5 seeds`` for a task on which the cell diverged or crashed, else nothing."""
    return f", failed on {p['failed']} of {p['pairs']} seeds" if p.get("failed") else ""


COLOURS = {"better": "#2e8b57", "tie": "#888888", "unstable": "#e69500", "worse": "#d9534f"}


def report_section(conf: dict[str, dict], tasks: tuple[str, ...], ids: dict[str, int], baseline: str) -> str:
    """The report's section: per task, each confirmed cell's mean ratio to the baseline with
    its 95 % interval (coloured by verdict, the line at 1 is the baseline), then a table."""
    import html

    from cellsearch.pages import figure, png

    if not conf:
        return ""
    cells = sorted(conf, key=lambda c: -conf[c]["score"])
    fig, axes = figure(min(4.2 * len(tasks), 12), 0.5 * len(cells) + 1.6, len(tasks))
    axes = axes if len(tasks) > 1 else [axes]
    for ax, t in zip(axes, tasks, strict=True):
        for y, c in enumerate(cells):
            p = conf[c]["tasks"][t]
            lo, hi = max(p["lo"], p["mean"] - 1), min(p["hi"], p["mean"] + 1)  # a one-pair interval is infinite
            ax.errorbar(p["mean"], y, xerr=[[p["mean"] - lo], [hi - p["mean"]]], fmt="o", capsize=4,
                        color=COLOURS[p["verdict"]])
        ax.axvline(1.0, color="black", lw=0.8, ls="--")
        ax.set_yticks(range(len(cells)), [f"cell {ids.get(c, '?')}" for c in cells])
        ax.invert_yaxis()
        ax.set_xlabel(f"ratio to {baseline} (95 % interval)")
        ax.set_title(t)
        ax.grid(alpha=0.3, axis="x")
    rows = "".join(
        f"<tr><td>cell {ids.get(c, '?')} <code>{c}</code></td><td>{conf[c]['score']:.4f}</td>"
        f"<td style='color:{COLOURS[conf[c]['verdict']]}'><b>{conf[c]['verdict']}</b></td>"
        + "".join(f"<td>{conf[c]['tasks'][t]['mean']:.4f} [{conf[c]['tasks'][t]['lo']:.4f}, "
                  f"{conf[c]['tasks'][t]['hi']:.4f}]{_failed_note(conf[c]['tasks'][t])}</td>" for t in tasks)
        + "</tr>" for c in cells)
    head = "<tr><th>cell</th><th>confirmed</th><th>verdict</th>" + "".join(
        f"<th>{html.escape(t)}</th>" for t in tasks) + "</tr>"
    n = next(iter(conf.values()))
    return (f"<h2>Confirmation</h2><p>Re-trained with {next(iter(n['tasks'].values()))['pairs']} fresh seeds, "
            f"paired with {html.escape(baseline)}, {n['steps']} steps per run: better if the interval lies above 1, "
            f"worse if below, else a tie; unstable where the cell diverged on a seed on which the baseline trained.</p><img alt='confirmation' src='{png(fig)}'/><table>{head}{rows}</table>")
