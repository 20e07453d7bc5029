"""Deriving the successive-halving rungs of a stage from stored learning curves.

Reads validation curves (a setting's score at each validation point) from a search store
(``--db``: every evaluation of ``--task``, seeds and children) and/or from
``children_funnel.py``'s JSON lines (``--funnel``), and for each validation point prints

* the lowest best-so-far score, as a fraction of the bar, of the settings that **ended at or
  above the bar** (those a rung must never stop), and the rung fraction derived from it
  (``margin`` times that, rounded down to 0.05): no passing setting in the data is stopped;
* how many of the settings that ended below the bar the rung stops there, and the share of
  the stage's training steps that saves.

    python rungs.py --funnel /work/runs/funnel_after.jsonl --bar 0.95 --every 1000 --steps 4000

For a task stage, ``--hurdle-bar`` takes the bar from the store as the search sets it: the
hurdle times the baseline's best over its first ``settings_per_task`` settings on ``--task``
(``Search.baseline_bar``); every curve of the task is read, the seeds' and the children's:

    python rungs.py --db quick.db --task arithmetic --hurdle-bar
"""

from __future__ import annotations

import argparse
import json
import math


def curves_from_funnel(path: str) -> list[list[float]]:
    out = []
    for line in open(path):
        r = json.loads(line)
        out += [c for c in r.get("curves", {}).values() if c]
    return out


def curves_from_store(db: str, task: str) -> list[list[float]]:
    from cellsearch.store.sqlite import Store

    with Store(db, write=False) as st:
        rows = st.conn.execute("SELECT metrics FROM evaluations WHERE task=? AND status='ok'", (task,)).fetchall()
    return [json.loads(m)["curve"] for (m,) in rows if "curve" in json.loads(m)]


def hurdle_bar(db: str, task: str) -> float:
    """The bar a search sets on ``task``'s stage: hurdle x the baseline's first-settings best."""
    from cellsearch.search.results import stored_config
    from cellsearch.search.steps import Search
    from cellsearch.store.sqlite import Store

    with Store(db, write=False) as st:
        cfg = stored_config(st)
        return cfg.hurdle * Search(cfg, st).baseline_bar(task, cfg.settings_per_task)


def derive(curves: list[list[float]], bar: float, margin: float = 0.9) -> list[dict]:
    n = max(map(len, curves))
    curves = [c for c in curves if len(c) == n]
    best = [[max(c[: i + 1]) for i in range(n)] for c in curves]
    passing = [b for b in best if b[-1] >= bar]
    failing = [b for b in best if b[-1] < bar]
    rows, alive = [], list(range(len(failing)))
    for i in range(n - 1):
        low = min((b[i] / bar for b in passing), default=float("nan"))
        frac = math.floor(low * margin * 20) / 20 if passing else 0.0
        stopped = [j for j in alive if failing[j][i] < frac * bar]
        alive = [j for j in alive if j not in stopped]
        rows.append({"point": i + 1, "of": n, "passing": len(passing), "lowest_passing": round(low, 3),
                     "fraction": frac, "failing": len(failing), "stopped_here": len(stopped)})
    # share of steps saved: a failing setting stopped after point i trains (i + 1) / n of the budget
    stop_at = {}
    alive = list(range(len(failing)))
    for r in rows:
        for j in list(alive):
            if failing[j][r["point"] - 1] < r["fraction"] * bar:
                stop_at[j] = r["point"]
                alive.remove(j)
    used = sum(stop_at.get(j, n) for j in range(len(failing))) + n * len(passing)
    rows.append({"saved_share": round(1 - used / (n * (len(failing) + len(passing))), 3)})
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", action="append", default=[])
    ap.add_argument("--task", default="memorize")
    ap.add_argument("--funnel", action="append", default=[])
    ap.add_argument("--bar", type=float, default=None)
    ap.add_argument("--hurdle-bar", action="store_true", help="the bar a search sets on the task's stage, from the store")
    ap.add_argument("--margin", type=float, default=0.9)
    args = ap.parse_args()
    curves = [c for f in args.funnel for c in curves_from_funnel(f)]
    curves += [c for d in args.db for c in curves_from_store(d, args.task)]
    bar = hurdle_bar(args.db[0], args.task) if args.hurdle_bar else args.bar
    if bar is None:
        ap.error("give --bar or --hurdle-bar")
    print(f"# {len(curves)} curves, bar {bar:.4f}, margin {args.margin}")
    for r in derive(curves, bar, args.margin):
        print(json.dumps(r))


if __name__ == "__main__":
    main()
