"""Rank agreement of cheap rungs with the full score: which fidelity ranks children as the full
evaluation does (Spearman's rho, a bootstrap 95 % interval), from a store whose children were all
fully evaluated.

A candidate rung is (settings, steps): a child's rung score is, on each task, the best over its
first ``settings`` evaluations (a child's first settings are its parent's best: the ones a rung
trains) of the best validation point up to ``steps`` on their stored learning curves, divided by
the baseline's at the same fidelity; the minimum over the tasks, as a score. Its full score is the
search's. Reported over every child, and over the children that pass the memorisation filter at
some learning rate (the ones a ladder sees).

A store for it: a search in which nothing stops a child, with wide grids and curves kept, e.g.
the calibration search of ``benchmarks/README.md``, "Cheap-first screening" (every seed of the
paper's space in the pool, random search, 90 children; 86 minutes on one core)::

    cellsearch search --quick --space SPACE_WITH_ALL_SEEDS.py --strategy random --set random_walk=2 \\
        --set hurdle=0 --set filter_threshold=0 --set train.rungs=none --set filter_train.rungs=none \\
        --set hparams.learning_rate=0.1,0.3,0.5,1,2,3 --set filter_hparams.learning_rate=0.1,0.3,0.5,1 \\
        --set filter_settings=4 --set screen=none --candidates 90 --db calib.db --seed 11
    python benchmarks/rank_agreement.py --db calib.db
"""

from __future__ import annotations

import argparse
import json
import sqlite3

from common import spearman, spearman_interval


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", required=True)
    ap.add_argument("--settings", default="1,2,4", help="settings per rung to try")
    ap.add_argument("--points", type=int, default=5, help="validation points to try (steps: k x eval_every)")
    ap.add_argument("--threshold", type=float, default=0.95, help="the filter's pass mark")
    args = ap.parse_args()

    con = sqlite3.connect(f"file:{args.db}?mode=ro", uri=True)
    config = json.loads(con.execute("SELECT value FROM meta WHERE key='config'").fetchone()[0])
    tasks, every = tuple(config["tasks"]), config["train"]["eval_every"]
    cells = {r[0]: r[1] for r in con.execute("SELECT hash, origin FROM cells")}
    base = con.execute("SELECT value FROM meta WHERE key='baseline'").fetchone()
    base = json.loads(base[0])["hash"] if base else next(h for h, o in cells.items() if o == "seed:GRU")
    rows: dict = {}
    for h, task, metrics, score, status in con.execute(
            "SELECT cell_hash, task, metrics, score, status FROM evaluations ORDER BY id"):
        curve = json.loads(metrics).get("curve") or [] if status == "ok" else []
        rows.setdefault((h, task), []).append((score if status == "ok" else 0.0, curve))

    def best(h, t, n=None):
        return max((s for s, _ in rows[(h, t)][:n]), default=0.0)

    def rung(h, t, n, point):
        return max((max(c[: point + 1]) if c else 0.0 for _, c in rows[(h, t)][:n]), default=0.0)

    kids = sorted(h for h, o in cells.items() if o == "mutation" and all((h, t) in rows for t in tasks))
    full = {h: min(best(h, t) / best(base, t) for t in tasks) for h in kids}
    passers = [h for h in kids if (h, "memorize") in rows and best(h, "memorize") >= args.threshold]
    print(f"{len(kids)} children fully evaluated (full score {min(full.values()):.3f}-{max(full.values()):.3f}); "
          f"{len(passers)} pass the filter at some rate")
    print("\n| children | tasks | settings | steps | Spearman rho [95 %] |")
    print("|---|---|---|---|---|")
    for label, group in (("all", kids), ("filter passers", passers)):
        y = [full[h] for h in group]
        for tset in [(t,) for t in tasks] + [tasks]:
            for n in map(int, args.settings.split(",")):
                for point in range(args.points):
                    scale = {t: max(rung(base, t, 1, point), 1e-9) for t in tset}
                    x = [min(rung(h, t, n, point) / scale[t] for t in tset) for h in group]
                    lo, hi = spearman_interval(x, y)
                    print(f"| {label} ({len(group)}) | {'+'.join(tset)} | {n} | {every * (point + 1)} | "
                          f"{spearman(x, y):.3f} [{lo:.3f}, {hi:.3f}] |", flush=True)


if __name__ == "__main__":
    main()
