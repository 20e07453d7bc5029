"""Do random children live? Edits per child, dead at the liveness probe, filtered, passed.

For each parent (LSTM, GRU) and ``--children`` random children of it drawn as a search of the
preset draws them (its edit count and mutation rate), records the edits, the probe's verdict
(with its cost) and, for children the probe passes (all children with ``--no-probe``), the
memorisation filter trained as the search trains it (the filter's steps, validation points,
initialisation and data seeds), on every learning rate of ``--lrs`` in one program. A child
passes a filter grid when its best over the grid's learning rates reaches the threshold, so one
run answers for every grid that is a subset of ``--lrs`` (the programs' member count differs from
the search's, which moves results by float rounding only).

Runs on an older checkout too (``PYTHONPATH=OLD python children_funnel.py --before``): there it
uses that code's mutation driver and initialisation, and no probe.

    python children_funnel.py --preset default --children 40 --lrs 0.1,0.3,0.5,1,2
"""

from __future__ import annotations

import argparse
import inspect
import json
import time
from dataclasses import replace
from itertools import combinations

import numpy as np

from common import device


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="default", choices=["default", "quick"])
    ap.add_argument("--children", type=int, default=40)
    ap.add_argument("--parents", default="LSTM,GRU")
    ap.add_argument("--lrs", default="0.1,0.3,0.5,1,2")
    ap.add_argument("--edits", default=None, help="override the preset's edit count (paper, K, K-L)")
    ap.add_argument("--no-probe", action="store_true")
    ap.add_argument("--before", action="store_true", help="the code on PYTHONPATH predates the probe")
    ap.add_argument("--out", default=None, help="JSON lines file")
    args = ap.parse_args()
    from cellsearch.evolve.mutate import mutate
    from cellsearch.evolve.spaces import load_space
    from cellsearch.nn.train import train_and_evaluate
    from cellsearch.search.config import SearchConfig, quick_config
    from cellsearch.search.steps import liveness_check
    from cellsearch.tasks import get_task

    cfg = quick_config() if args.preset == "quick" else SearchConfig()
    if args.edits:
        cfg = replace(cfg, edits=args.edits)
    probe = None
    if not args.before and not args.no_probe:
        probe = liveness_check(cfg)
    kwargs = {"max_rate": cfg.mutation_rate}
    if "edits" in inspect.signature(mutate).parameters:
        kwargs["edits"] = cfg.edits
    lrs = [float(v) for v in args.lrs.split(",")]
    ftask = get_task(cfg.filter_task, {})
    fcfg = replace(cfg.train_config(cfg.filter_task), **({"members": 0} if hasattr(cfg.filter_train, "members") else {}))
    h0 = cfg.filter_hparams.sample(np.random.default_rng(0), 1)[0]
    space = load_space(cfg.space)
    out = open(args.out, "a") if args.out else None
    print(f"# device: {device()}  preset {args.preset}  edits {kwargs.get('edits', 'paper')} rate {cfg.mutation_rate}"
          f"  lrs {lrs}  threshold {cfg.filter_threshold}", flush=True)
    rows = []
    for parent_name in args.parents.split(","):
        parent = space.seed(parent_name)
        rng = np.random.default_rng([12345, sum(map(ord, parent_name))])
        for k in range(args.children):
            t0 = time.perf_counter()
            child, edits = mutate(parent, rng=rng, space=space, **kwargs)
            t_mut = time.perf_counter() - t0
            t0 = time.perf_counter()
            verdict = probe(child) if probe else None
            t_probe = time.perf_counter() - t0
            row = {"preset": args.preset, "before": args.before, "parent": parent_name, "k": k, "edits": len(edits),
                   "probe": (verdict or "alive").split(":")[0], "mutate_s": t_mut, "probe_s": t_probe}
            if verdict is None:
                settings = [replace(h0, learning_rate=lr, seed=1000 * k + i) for i, lr in enumerate(lrs)]
                t0 = time.perf_counter()
                res = train_and_evaluate(child, ftask, settings, fcfg)
                row["filter_s"] = time.perf_counter() - t0
                row["scores"] = {f"{lr:g}": (r.score if r.status == "ok" else 0.0) for lr, r in zip(lrs, res, strict=True)}
                row["curves"] = {f"{lr:g}": r.metrics.get("curve", []) for lr, r in zip(lrs, res, strict=True)}
            rows.append(row)
            print(json.dumps(row), flush=True)
            if out:
                out.write(json.dumps(row) + "\n")
                out.flush()
    summary(rows, lrs, cfg.filter_threshold)


def summary(rows, lrs, threshold):
    print("\n| parent | children | mean edits | dead at probe | trained | passed, by filter grid (best of) |")
    print("|---|---|---|---|---|---|")
    grids = [c for n in (1, 2, 3) for c in combinations([f"{v:g}" for v in lrs], n)]
    for parent in dict.fromkeys(r["parent"] for r in rows):
        rs = [r for r in rows if r["parent"] == parent]
        trained = [r for r in rs if "scores" in r]
        passes = {g: sum(max(r["scores"][v] for v in g) >= threshold for r in trained) for g in grids}
        top = sorted(passes.items(), key=lambda kv: -kv[1])[:6]
        text = ", ".join(f"{{{','.join(g)}}}: {n}" for g, n in top)
        print(f"| {parent} | {len(rs)} | {np.mean([r['edits'] for r in rs]):.2f} | "
              f"{sum(r['probe'] != 'alive' for r in rs)} | {len(trained)} | {text} |")


if __name__ == "__main__":
    main()
