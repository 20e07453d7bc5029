"""Search throughput: children fully evaluated per hour with the ``--quick`` preset.

Runs the quick search (fresh store, persistent compilation cache off) with 1 and 2 workers
and reports children per hour and the share of wall time spent compiling, training
(including evaluation) and in the search itself (mutation, dedup, store, Python).

Usage: ``python benchmarks/bench_search.py [--candidates 8] [--workers 1,2]``
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from common import emit, table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main():
    from cellsearch.search.config import quick_config
    from cellsearch.search.driver import run_search

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--candidates", type=int, default=8)
    ap.add_argument("--workers", default="1,2")
    args = ap.parse_args()
    rows = []
    for w in map(int, args.workers.split(",")):
        with tempfile.TemporaryDirectory() as d:
            db = f"{d}/s.db"
            t = time.perf_counter()
            s = run_search(quick_config(candidates=args.candidates), db, workers=w)
            wall = time.perf_counter() - t
            con = sqlite3.connect(db)
            compile_s, train_s = con.execute("SELECT SUM(compile_s), SUM(wall_s) FROM evaluations").fetchone()
            con.close()
        busy = w * wall  # worker-seconds available
        rec = {"bench": "search", "preset": "quick", "workers": w, "children": s.children, "scored": s.scored,
               "evaluations": s.evaluations, "wall_s": wall, "children_per_hour": s.children / wall * 3600,
               "compile_share": compile_s / busy, "train_share": (train_s - compile_s) / busy,
               "search_share": max(0.0, 1 - train_s / busy)}
        emit(rec)
        rows.append(rec)
    print()
    print(table(rows, ["workers", "children", "scored", "evaluations", "wall_s", "children_per_hour",
                       "compile_share", "train_share", "search_share"]))


if __name__ == "__main__":
    main()
