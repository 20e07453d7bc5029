"""Rediscovery: does the search climb from the tanh RNN alone, and how fast, against random search?

As AutoML-Zero reports rediscovery: for each search space, strategy and search seed, a ``--quick``
search started from one seed cell (``--start``, default the tanh RNN) for ``--hours``; then its top
``--top`` cells are confirmed with ``--confirm-seeds`` fresh paired seeds (each at its best
``--confirm-settings`` settings per task, judged at the best; default 1), together with the start
cell itself, and with ``--verify N`` the best confirmed is re-trained on ``N`` held-out seeds
(``cellsearch confirm --verify``: its verdict without the selection's winner's curse). A search
**succeeds** at ``1.05x`` (``1.1x``) when a child's confirmed score is at least 1.05 (1.1) times
the start cell's confirmed score. Reported per search: the best confirmed
ratio to the start, the minutes and the evaluations (settings trained) until the successful child
was scored, and the pool's lineages (the longest chain of generations each above its parent);
per space and strategy: successes over seeds; per space and seed: which strategy reached 1.1x
first at equal time (``races``). The stores are drawn side by side by
``cellsearch report`` (best score against wall time and against children, the mean and range
over seeds of each strategy: ``compare-<space>.html``), and the best cells are printed with their
equations and the edits that made them.

    python benchmarks/rediscovery.py --out runs/redisc --spaces gates,jozefowicz2015 \\
        --strategies paper,aging,random --seeds 0,1,2 --hours 1 --cores 0,1 --set screen=0.6:4

(``--set screen=0.6:4``: the screen rung that sees a gate's gain, ``benchmarks/README.md``,
"Cheap-first screening".)

Two searches run at a time with ``--cores 0,1`` (one pinned to each core, so the searches of a
pair share the machine but not a core); ``--only-report`` re-reads the stores. The start from the
LSTM and the GRU (``--start LSTM,GRU``) is the same benchmark for the paper's own pool.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import time

from common import device


def run(cmd: list[str], core: str | None, log: str) -> subprocess.Popen:
    pin = ["taskset", "-c", core] if core is not None else []
    with open(log, "a") as f:
        return subprocess.Popen([*pin, sys.executable, "-m", "cellsearch", *cmd], stdout=f, stderr=subprocess.STDOUT)


def searches(args) -> list[dict]:
    out = []
    for space in args.spaces.split(","):
        for strategy in args.strategies.split(","):
            for seed in args.seeds.split(","):
                name = f"{space}-{args.start.replace(',', '+')}-{strategy}-{seed}{args.tag}"
                out.append({"name": name, "space": space, "strategy": strategy, "seed": int(seed),
                            "db": os.path.join(args.out, name + ".db"), "log": os.path.join(args.out, name + ".log")})
    return out


def launch(args, jobs: list[dict]) -> None:
    """Runs the searches, each followed by its confirmation on the same core, two (or
    ``len(cores)``) at a time: a core never waits for another core's confirmation."""
    cores = args.cores.split(",") if args.cores else [None]
    queue = [j for j in jobs if not os.path.exists(j["db"] + ".done")]
    running: dict = {}  # process -> (job, core, phase)
    while queue or running:
        while queue and len(running) < len(cores):
            j = queue.pop(0)
            core = next(c for c in cores if c not in [v[1] for v in running.values()])
            pool = [] if args.start == "LSTM,GRU" else ["--pool-seeds", args.start]
            cmd = ["search", "--quick", "--space", j["space"], *pool, "--strategy", j["strategy"], "--seed",
                   str(j["seed"]), "--hours", str(args.hours), "--db", j["db"],
                   *[a for kv in args.set for a in ("--set", kv)]]
            running[run(cmd, core, j["log"])] = (j, core, "search")
        time.sleep(5)
        for p in list(running):
            if p.poll() is None:
                continue
            j, core, phase = running.pop(p)
            if phase == "confirm":
                open(j["db"] + ".done", "w").close()
                continue
            start = start_hash(j["db"], args.start)
            cells = ["--cells", ",".join(start)] if start else []
            c = run(["confirm", "--db", j["db"], "-k", str(args.top), "--seeds", str(args.confirm_seeds),
                     "--settings", str(args.confirm_settings), "--verify", str(args.verify), *cells],
                    core, j["log"])
            running[c] = (j, core, "confirm")


def start_hash(db: str, start: str) -> list[str]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        names = [f"seed:{s}" for s in start.split(",")]
        marks = ",".join("?" * len(names))
        return [r[0] for r in con.execute(f"SELECT hash FROM cells WHERE origin IN ({marks})", names)]
    finally:
        con.close()


def analyse(j: dict, start: str) -> dict:
    """One search's outcome, from its store."""
    from cellsearch.cell.graph import from_json
    from cellsearch.cell.render import to_equations
    from cellsearch.search.confirm import confirmed, verified
    from cellsearch.search.results import Scores
    from cellsearch.store.sqlite import Store

    with Store(j["db"], write=False) as st:
        scores = Scores(st)
        conf = confirmed(st)
        check = verified(st)
        starts = start_hash(j["db"], start)
        steps = st.steps_rows()
        t0 = min(s["created_at"] for s in steps)
        evals = st.evaluation_rows()
        base = max((conf[h]["score"] for h in starts if h in conf), default=None)
        cells = {r["hash"]: r for r in st.cells()}
        kids = {h: c["score"] for h, c in conf.items() if cells[h]["origin"] == "mutation"}
        best = max(kids, key=kids.get) if kids else None
        out = {"name": j["name"], "space": j["space"], "strategy": j["strategy"], "seed": j["seed"],
               "children": st.children_done(), "scored": sum(1 for r in cells.values() if r["origin"] == "mutation"
                                                             and r["status"] == "scored"),
               "searched_minutes": (max(s["created_at"] for s in steps) - t0) / 60,
               "start_confirmed": base, "best_child": best,
               "verified": {k: check[k] for k in ("cell", "among", "seeds")} | {
                   "score": check["result"]["score"], "verdict": check["result"]["verdict"]}
               if check and check["result"] else None,
               "best_ratio": (kids[best] / base) if best and base else None}
        for level in (1.05, 1.1):
            winners = [h for h, v in kids.items() if base and v >= level * base]
            if winners:  # the first winner to be scored
                when = {h: max(s["created_at"] for s in steps if s["cell_hash"] == h and s["outcome"] == "scored")
                        for h in winners}
                h = min(winners, key=when.get)
                out[f"success_{level}"] = {"cell": h, "minutes": (when[h] - t0) / 60,
                                           "evaluations": sum(e["created_at"] <= when[h] for e in evals)}
            else:
                out[f"success_{level}"] = None
        # lineages: generations back to the seed, each above its parent (score over all its settings)
        def chain(h):
            c = [h]
            while cells[c[-1]]["parent"]:
                c.append(cells[c[-1]]["parent"])
            return c

        longest = 0
        for h in st.pool():
            c = chain(h)
            sc = [scores.score(x) or 0.0 for x in c]
            if all(a > b for a, b in zip(sc, sc[1:], strict=False)):
                longest = max(longest, len(c) - 1)
        out["climbing_generations"] = longest
        if best:
            out["best_equations"] = to_equations(from_json(cells[best]["graph"]))
            out["best_lineage"] = [[e["name"] for e in json.loads(cells[x]["edits"])] for x in reversed(chain(best))]
    return out


def races(rows: list[dict], level: str = "success_1.1") -> list[str]:
    """Which strategy reached ``level`` first, seed by seed, at equal time: a strategy that did not
    reach it counts as slower only where its search ran at least as long as the winner's minutes.

    >>> rows = [{"space": "s", "seed": 0, "strategy": "paper", "searched_minutes": 60, "success_1.1": {"minutes": 9}},
    ...         {"space": "s", "seed": 0, "strategy": "random", "searched_minutes": 60, "success_1.1": None}]
    >>> print("\\n".join(races(rows)))
    <BLANKLINE>
    s, seed 0: paper 9.0 min, random not in 60 min: paper first
    s: first to 1.1x at equal time: paper 1, random 0 (of 1 seeds)
    """
    out = []
    for space in dict.fromkeys(r["space"] for r in rows):
        strategies = list(dict.fromkeys(r["strategy"] for r in rows if r["space"] == space))
        if len(strategies) < 2:
            continue
        first = dict.fromkeys(strategies, 0)
        seeds = sorted({r["seed"] for r in rows if r["space"] == space})
        out.append("")
        for seed in seeds:
            rs = [r for r in rows if (r["space"], r["seed"]) == (space, seed)]
            parts = [f"{r['strategy']} {r[level]['minutes']:.1f} min" if r[level] else
                     f"{r['strategy']} not in {r['searched_minutes']:.0f} min" for r in rs]
            reached = [r for r in rs if r[level]]
            verdict = "none reached it"
            if reached:
                w = min(reached, key=lambda r: r[level]["minutes"])
                t = w[level]["minutes"]
                if any(r is not w and r[level] and r[level]["minutes"] == t for r in rs):
                    verdict = "a tie"
                elif all(r["searched_minutes"] >= t for r in rs):  # every other search ran past the winner's time
                    first[w["strategy"]] += 1
                    verdict = f"{w['strategy']} first"
                else:
                    verdict = "not comparable (a search stopped before the winner's time)"
            out.append(f"{space}, seed {seed}: {', '.join(parts)}: {verdict}")
        out.append(f"{space}: first to {level.split('_')[1]}x at equal time: "
                   f"{', '.join(f'{k} {v}' for k, v in first.items())} (of {len(seeds)} seeds)")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--spaces", default="gates,jozefowicz2015")
    ap.add_argument("--strategies", default="paper,aging,random")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--start", default="Tanh", help="the starting pool (LSTM,GRU: the paper's)")
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--top", type=int, default=3, help="cells confirmed per search")
    ap.add_argument("--confirm-seeds", type=int, default=5)
    ap.add_argument("--confirm-settings", type=int, default=1,
                    help="each cell (and the GRU) confirmed at its best N settings per task, judged at the best")
    ap.add_argument("--verify", type=int, default=0, metavar="N",
                    help="then verify each search's best confirmed cell on N held-out seeds (`confirm --verify`)")
    ap.add_argument("--cores", default=None, help="run one search per listed core at a time (taskset)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a search setting for every search (as `cellsearch search --set`)")
    ap.add_argument("--tag", default="", help="appended to each search's name (a variant's stores)")
    ap.add_argument("--only-report", action="store_true")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    jobs = searches(args)
    print(f"# device: {device()}  {len(jobs)} searches of {args.hours} h from {args.start}", flush=True)
    if not args.only_report:
        launch(args, jobs)
    rows = [analyse(j, args.start) for j in jobs if os.path.exists(j["db"])]
    for r in rows:
        print(json.dumps(r), flush=True)
    print("\n| space | strategy | seeds | success at 1.05x | success at 1.1x | minutes to 1.1x | evaluations to 1.1x | "
          "best confirmed / start | longest climbing lineage |")
    print("|---|---|---|---|---|---|---|---|---|")
    groups = dict.fromkeys((r["space"], r["strategy"]) for r in rows)
    for space, strategy in groups:
        rs = [r for r in rows if (r["space"], r["strategy"]) == (space, strategy)]
        s105 = sum(r["success_1.05"] is not None for r in rs)
        s11 = [r["success_1.1"] for r in rs if r["success_1.1"]]
        ratios = ", ".join(f"{r['best_ratio']:.3f}" if r["best_ratio"] else "-" for r in rs)
        minutes = ", ".join(f"{s['minutes']:.0f}" for s in s11) or "-"
        evals = ", ".join(str(s["evaluations"]) for s in s11) or "-"
        lineages = ", ".join(str(r["climbing_generations"]) for r in rs)
        print(f"| {space} | {strategy} | {len(rs)} | {s105}/{len(rs)} | {len(s11)}/{len(rs)} | {minutes} | {evals} | "
              f"{ratios} | {lineages} |")
    for line in races(rows):
        print(line)
    for r in rows:
        if r.get("verified"):
            v = r["verified"]
            print(f"{r['name']}: verified {v['cell']} (the best confirmed of {len(v['among'])}) on {v['seeds']} "
                  f"held-out seeds: {v['score']:.4f} of the baseline, {v['verdict']}")
    for space in dict.fromkeys(s for s, _ in groups):  # one page per space: its strategies side by side
        dbs = [os.path.join(args.out, r["name"] + ".db") for r in rows if r["space"] == space]
        subprocess.run([sys.executable, "-m", "cellsearch", "report", *dbs, "-o",
                        os.path.join(args.out, f"compare-{space}.html")], check=False)
    for r in rows:
        if r.get("best_equations"):
            print(f"\n{r['name']}: best child {r['best_child']} at {r['best_ratio']:.3f} of the start, edits by "
                  f"generation {r['best_lineage']}")
            print("\n".join("    " + line for line in r["best_equations"]))


if __name__ == "__main__":
    main()
