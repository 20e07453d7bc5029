"""Calibrating the memorisation filter (§3.3) for every lineage: pass rates of the seeds and of their
one-edit children under filter policies, by parent, with intervals.

For every seed of ``--spaces`` (each space's pool seeds first), two measurements, each trained as the
search trains its filter (the filter's steps, validation points and rungs, 32 rows, 20k parameters,
the search seed's initialisation and data seeds), on every learning rate of ``--lrs`` in one program
(a policy that is a subset of them is scored from the same runs):

1. **the seed** on ``--seeds`` search seeds: per learning rate, its best accuracy;
2. **its children**: ``--children`` one-edit children drawn as the search draws them (the space's
   edits, the liveness probe), child ``k`` on search seed ``k % seeds``.

Policies (a child passes when its best over the policy's learning rates reaches 95 %):

* ``grid a,b``: best of a fixed grid (the default filter before issue 32 was ``grid 0.5,1``);
* ``lineage``: the parent's best learning rate on the same search seed (the seed's run in 1), plus
  one other rate of ``--lrs`` drawn at random (the search's ``filter_carry`` with 2 settings): the
  expected pass rate over that draw;
* ``all``: best of every rate.

Rates are Clopper-Pearson 95 % intervals. ``--out`` appends one JSON line per run (curves included)
for ``rungs.py`` and for re-reading without training (``--report FILE``); ``--skip FILE`` (an
earlier ``--out`` at the same ``--lrs``) runs only what that file does not hold, and counts both
in the tables.

    python filter_calibration.py --spaces jozefowicz2015,greff2015 --seeds 20 --children 8 --lrs 0.1,0.3,0.5,1
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import numpy as np
from scipy.stats import beta

from common import device


def interval(k: int, n: int) -> tuple[float, float]:
    """Clopper-Pearson 95 % interval of a rate ``k / n``."""
    lo = 0.0 if k == 0 else beta.ppf(0.025, k, n - k + 1)
    hi = 1.0 if k == n else beta.ppf(0.975, k + 1, n - k)
    return float(lo), float(hi)


def train_filter(cfg, graph, lrs, search_seed: int) -> dict[str, float]:
    """The best filter accuracy at each rate, the filter trained as the search trains it."""
    from cellsearch.hparams import HParams, seeded
    from cellsearch.nn.train import train_and_evaluate
    from cellsearch.tasks import get_task

    base = cfg.filter_hparams.points()[0]
    settings = [seeded(replace(base, learning_rate=lr), search_seed) for lr in lrs]
    train = replace(cfg.train_config(cfg.filter_task), data_seed=search_seed, members=len(lrs))
    res = train_and_evaluate(graph, get_task(cfg.filter_task, {}), settings, train)
    assert all(isinstance(h, HParams) for h in settings)
    return {f"{lr:g}": (r.score if r.status == "ok" else 0.0) for lr, r in zip(lrs, res, strict=True)}, \
        {f"{lr:g}": r.metrics.get("curve", []) for lr, r in zip(lrs, res, strict=True)}


def policies(lrs: list[str]) -> dict:
    """Name -> function(scores, parent's best rate) -> pass probability."""
    out = {"grid 0.5,1": lambda s, p: float(max(s.get("0.5", 0), s.get("1", 0)) >= 0.95),
           "all": lambda s, p: float(max(s.values()) >= 0.95)}

    def lineage(s, p):
        others = [v for v in lrs if v != p]
        return float(np.mean([max(s[p], s[o]) >= 0.95 for o in others]))

    out["lineage"] = lineage
    return out


def report(rows: list[dict], lrs: list[str]) -> None:
    seeds = [r for r in rows if r["what"] == "seed"]
    kids = [r for r in rows if r["what"] == "child"]
    best_lr = {(r["space"], r["cell"], r["search_seed"]): max(lrs, key=lambda v: (r["scores"][v], -lrs.index(v)))
               for r in seeds}
    print("\n| seed | space | search seeds | passes (best of all rates) | passes at grid 0.5,1 | its best rate (count) |")
    print("|---|---|---|---|---|---|")
    for key in dict.fromkeys((r["space"], r["cell"]) for r in seeds):
        rs = [r for r in seeds if (r["space"], r["cell"]) == key]
        n_all = sum(max(r["scores"].values()) >= 0.95 for r in rs)
        n_old = sum(max(r["scores"].get("0.5", 0), r["scores"].get("1", 0)) >= 0.95 for r in rs)
        counts = {}
        for r in rs:
            b = best_lr[(r["space"], r["cell"], r["search_seed"])]
            counts[b] = counts.get(b, 0) + 1
        print(f"| {key[1]} | {key[0]} | {len(rs)} | {n_all}/{len(rs)} | {n_old}/{len(rs)} | "
              f"{', '.join(f'{k} ({v})' for k, v in sorted(counts.items(), key=lambda kv: float(kv[0])))} |")
    pol = policies(lrs)
    print("\n| parent | space | children trained | " + " | ".join(f"passed, {p} [95 % interval]" for p in pol) + " |")
    print("|---|---|---|" + "---|" * len(pol))
    total = {p: [0.0, 0] for p in pol}
    for key in dict.fromkeys((r["space"], r["parent"]) for r in kids):
        rs = [r for r in kids if (r["space"], r["parent"]) == key and r.get("scores")]
        cells = []
        for p, f in pol.items():
            got = sum(f(r["scores"], best_lr.get((r["space"], r["parent"], r["search_seed"]), lrs[-1])) for r in rs)
            total[p][0] += got
            total[p][1] += len(rs)
            lo, hi = interval(round(got), len(rs)) if rs else (0, 0)
            cells.append(f"{got:.1f}/{len(rs)} [{lo:.2f}, {hi:.2f}]")
        print(f"| {key[1]} | {key[0]} | {len(rs)} | " + " | ".join(cells) + " |")
    print("| **all** | | " + str(next(iter(total.values()))[1]) + " | " + " | ".join(
        f"{k:.1f}/{n} ({k / max(n, 1):.0%}) [{interval(round(k), n)[0]:.2f}, {interval(round(k), n)[1]:.2f}]"
        for k, n in total.values()) + " |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spaces", default="jozefowicz2015,greff2015")
    ap.add_argument("--seeds", type=int, default=20, help="search seeds per seed cell")
    ap.add_argument("--children", type=int, default=8, help="one-edit children per seed cell")
    ap.add_argument("--lrs", default="0.1,0.3,0.5,1")
    ap.add_argument("--cells", default=None, help="only these seed cells (comma-separated)")
    ap.add_argument("--part", default="children,seeds", help="what to run, in this order")
    ap.add_argument("--out", default=None, help="append JSON lines here")
    ap.add_argument("--report", default=None, help="only print the tables of a JSON lines file")
    ap.add_argument("--skip", action="append", default=[], metavar="FILE",
                    help="JSON lines of runs done before (an earlier --out at the same --lrs): not run again, "
                         "counted in the tables")
    args = ap.parse_args()
    lrs = [float(v) for v in args.lrs.split(",")]
    names = [f"{v:g}" for v in lrs]
    if args.report:
        with open(args.report) as f:
            report([json.loads(line) for line in f if line.strip()], names)
        return
    from cellsearch.evolve.mutate import mutate_live
    from cellsearch.evolve.spaces import load_space
    from cellsearch.search.config import SearchConfig
    from cellsearch.search.steps import liveness_check

    cfg = SearchConfig()
    probe = liveness_check(cfg)
    out = open(args.out, "a") if args.out else None
    rows = [json.loads(line) for path in args.skip for line in open(path) if line.strip()]
    done = {(r["what"], r["space"], r.get("cell") or r["parent"], r.get("k", r["search_seed"])) for r in rows}
    print(f"# device: {device()}  lrs {lrs}  filter {cfg.filter_train.steps} steps, rungs {cfg.filter_train.rungs}",
          flush=True)

    def emit(row):
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "curves"}), flush=True)
        if out:
            out.write(json.dumps(row) + "\n")
            out.flush()

    for part in args.part.split(","):
        for space_name in args.spaces.split(","):
            space = load_space(space_name)
            order = list(dict.fromkeys([*space.pool_seeds, space.baseline, *space.seeds]))
            if args.cells:
                order = [c for c in order if c in args.cells.split(",")]
            for name in order:
                if part == "seeds":
                    for s in range(args.seeds):
                        if ("seed", space_name, name, s) in done:
                            continue
                        t0 = time.perf_counter()
                        scores, curves = train_filter(cfg, space.seed(name), lrs, s)
                        emit({"what": "seed", "space": space_name, "cell": name, "search_seed": s, "scores": scores,
                              "curves": curves, "seconds": time.perf_counter() - t0})
                    continue
                rng = np.random.default_rng([2026, sum(map(ord, space_name + name))])
                for k in range(args.children):
                    child, edits, dead = mutate_live(space.seed(name), rng=rng, space=space, accept=probe,
                                                     edits=cfg.edits)
                    if ("child", space_name, name, k) in done:  # drawn all the same: the next child's draw follows
                        continue
                    t0 = time.perf_counter()
                    scores, curves = train_filter(cfg, child, lrs, k % args.seeds)
                    emit({"what": "child", "space": space_name, "parent": name, "k": k, "search_seed": k % args.seeds,
                          "edits": [e.name for e in edits], "dead_resampled": len(dead), "scores": scores,
                          "curves": curves, "seconds": time.perf_counter() - t0})
    report(rows, names)


if __name__ == "__main__":
    main()
