"""Children per hour before and after: one search at each of two commits, same machine, same hour.

Issue 32's throughput target ("children screened per hour at least 5x today's, scored children per
hour not below today's") compares two codes, and this machine's speed changes from hour to hour,
so both run together: each commit is cloned into ``--dir``, and ``python -m cellsearch search
--quick --hours H`` (seed 0, a fresh compilation cache each) runs in each clone, pinned to its own
core with ``taskset``. Then, or for stores that already exist (``--stores``), one row per store:

- **children**: children that got a verdict (duplicates and failed mutations not counted);
- **filtered**, **screened out** (stopped at a cheap rung by their rank there), **below the
  hurdle**, **failed** (diverged or crashed on a task), **scored** (a full evaluation and a score);
- **ranked at a rung**: children that passed the filter and were ranked against the other
  children at the cheap rung (screened out or promoted): what cheap-first screening buys;
- per hour of the run's wall clock (from its run record): children, ranked, scored;
- the minutes its evaluations spent compiling and training.

    python same_hour.py --before 48ec9c0 --after HEAD --hours 1 --dir /tmp/same_hour
    python same_hour.py --stores before.db after.db

It reads stores with ``sqlite3`` alone, so a store written by older code reads the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path

from common import table

REPO = Path(__file__).resolve().parent.parent
NOT_CHILDREN = ("duplicate", "mutation_failed")
FAILURES = ("diverged", "error")  # a child's outcome when a task had no usable setting (search/steps.py)


def run_pair(commits: dict[str, str], hours: float, root: Path, cores: list[int], extra: list[str]) -> list[Path]:
    """Clones the project at each commit under ``root`` and runs the quick search in each clone for
    ``hours``, all at once, each pinned to its core. Returns the stores."""
    root.mkdir(parents=True, exist_ok=True)
    procs, stores = [], []
    for (name, commit), core in zip(commits.items(), cores, strict=True):
        clone = root / name
        if not clone.exists():
            subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        subprocess.run(["git", "-C", str(clone), "checkout", "-q", commit], check=True)
        db, cache = root / f"{name}.db", root / f"cc-{name}"
        cmd = ["taskset", "-c", str(core), "python", "-m", "cellsearch", "search", "--quick", "--hours", str(hours),
               "--db", str(db), "--compile-cache", str(cache), *extra]
        log = open(root / f"{name}.log", "w")  # noqa: SIM115 (open for the child's lifetime)
        print(f"{name} ({commit}) on core {core}: {' '.join(cmd)}", flush=True)
        procs.append((subprocess.Popen(cmd, cwd=clone, stdout=log, stderr=subprocess.STDOUT), log))
        stores.append(db)
    for p, log in procs:
        p.wait()
        log.close()
    return stores


def tally(db: Path) -> dict:
    """One store's verdicts, per-hour rates and time split."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    run = json.loads(dict(con.execute("SELECT key, value FROM meta")).get("run") or "{}")
    steps = list(con.execute("SELECT kind, outcome, cell_hash FROM steps"))
    last = con.execute("SELECT MAX(created_at) FROM steps").fetchone()[0]
    hours = ((run.get("ended_at") or last) - run["started_at"]) / 3600
    child = Counter(o for k, o, _ in steps if k == "child")
    promoted = {h for k, _, h in steps if k == "promote"}
    scored = sum(1 for k, o, _ in steps if o == "scored" and k in ("child", "promote"))
    failed = sum(1 for k, o, _ in steps if o in FAILURES and k in ("child", "promote"))
    compile_s, wall_s = con.execute("SELECT SUM(compile_s), SUM(wall_s) FROM evaluations").fetchone()
    children = sum(n for o, n in child.items() if o not in NOT_CHILDREN)
    ranked = child["screened"]  # every child that reached the rung; the promoted among them are scored later
    out = sum(1 for k, o, h in steps if k == "child" and o == "screened" and h not in promoted)
    return {"store": db.name, "minutes": hours * 60, "children": children, "filtered": child["filtered"],
            "screened out": out, "hurdle": child["hurdle"], "failed": failed, "scored": scored,
            "duplicates": child["duplicate"], "reevaluations": sum(1 for k, _, _ in steps if k == "reeval"),
            "ranked at a rung": ranked, "children / h": children / hours, "ranked / h": ranked / hours,
            "scored / h": scored / hours, "compiling min": (compile_s or 0) / 60,
            "training min": ((wall_s or 0) - (compile_s or 0)) / 60}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stores", nargs="*", type=Path, help="tabulate these stores; run nothing")
    ap.add_argument("--before", default="48ec9c0", help="the code before (default: the commit before issue 32)")
    ap.add_argument("--after", default="HEAD")
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--dir", type=Path, default=Path("same_hour"))
    ap.add_argument("--cores", default="1,0", help="the cores of the before and the after search")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="passed to both searches")
    args = ap.parse_args()
    stores = args.stores
    if not stores:
        if "CELLSEARCH_DATA" not in os.environ:
            print("note: CELLSEARCH_DATA is not set; the searches look for ../shared/data from each clone")
        after = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", args.after],
                               capture_output=True, text=True, check=True).stdout.strip()
        t = time.perf_counter()
        extra = [x for kv in args.set for x in ("--set", kv)]
        stores = run_pair({"before": args.before, "after": after}, args.hours, args.dir.resolve(),
                          [int(c) for c in args.cores.split(",")], extra)
        print(f"both searches done in {(time.perf_counter() - t) / 60:.1f} min")
    rows = [tally(db) for db in stores]
    if len(rows) == 2:
        a, b = rows
        rows.append({"store": "after / before", **{k: b[k] / a[k] if a[k] else float("nan")
                                                    for k in ("children / h", "ranked / h", "scored / h")}})
    print(table(rows, list(rows[0])))


if __name__ == "__main__":
    main()
