"""Calibrating the memorisation filter (§3.3): pass rates of the seeds and of random children.

For each filter (``--filters before,after``) and each of ``--seeds`` search seeds, runs the
filter stage exactly as the search does (:func:`cellsearch.search.steps.filter_settings`, the
search seed's initialisation and data seeds) on the pool seeds and the baseline, then on
``--children`` random children of them (the search's mutation rate). ``before`` is the filter
of the first landing (one setting drawn from lr {1, 2, 3}, 3,000 steps, 95 %; ``--quick``
used lr 2 and 90 %); ``after`` is today's default (``--quick`` shares it).

    python filter_calibration.py --seeds 20 --children 20
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import numpy as np

from common import device

BEFORE = {
    "default": dict(filter_settings=1, filter_threshold=0.95,
                    filter_train=dict(steps=3000, batch_size=32, chunk=100),
                    filter_hparams=dict(learning_rate=(1.0, 2.0, 3.0))),
    "quick": dict(filter_settings=1, filter_threshold=0.9,
                  filter_train=dict(steps=3000, batch_size=32, chunk=100),
                  filter_hparams=dict(learning_rate=(2.0,))),
}


def config(which: str, preset: str):
    from cellsearch.config import TrainConfig
    from cellsearch.search.config import SearchConfig, quick_config

    cfg = quick_config() if preset == "quick" else SearchConfig()
    if which == "after":
        return cfg
    b = BEFORE[preset]
    return replace(cfg, filter_settings=b["filter_settings"], filter_threshold=b["filter_threshold"],
                   filter_train=TrainConfig(**b["filter_train"]),
                   filter_hparams=replace(cfg.filter_hparams, **b["filter_hparams"]))


def run_filter(cfg, graph, seed: int, step: int) -> float:
    from cellsearch.nn.train import train_and_evaluate
    from cellsearch.search.steps import filter_settings
    from cellsearch.tasks import get_task

    cfg = replace(cfg, seed=seed)
    settings = filter_settings(cfg, np.random.default_rng([seed, step]))
    res = train_and_evaluate(graph, get_task(cfg.filter_task, {}), settings, cfg.train_config(cfg.filter_task))
    CURVES.extend(r.metrics["curve"] for r in res if "curve" in r.metrics)
    return max(r.score for r in res)


CURVES: list[list[float]] = []  # every filter curve run (for benchmarks/rungs.py)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--children", type=int, default=20)
    ap.add_argument("--filters", default="before,after")
    ap.add_argument("--presets", default="default,quick")
    ap.add_argument("--curves", default=None, help="append the filter curves here (JSON lines, rungs.py --funnel)")
    args = ap.parse_args()
    from cellsearch.evolve.mutate import mutate
    from cellsearch.evolve.spaces import load_space

    print(f"# device: {device()}")
    space = load_space()
    names = list(dict.fromkeys([*space.pool_seeds, space.baseline]))
    table = []
    for which in args.filters.split(","):
        for preset in args.presets.split(","):
            cfg = config(which, preset)
            if which == "after" and preset == "quick" and "default" in args.presets:
                # --quick shares the default filter: the default rows stand for it
                if config("after", "default").filter_train == cfg.filter_train and \
                        config("after", "default").filter_threshold == cfg.filter_threshold:
                    continue
            t0 = time.perf_counter()
            for name in names:
                scores = [run_filter(cfg, space.seed(name), s, 0) for s in range(args.seeds)]
                passed = sum(s >= cfg.filter_threshold for s in scores)
                row = {"filter": which, "preset": preset, "cell": name, "passed": passed, "of": len(scores),
                       "min": round(min(scores), 4), "scores": [round(s, 4) for s in scores]}
                print(json.dumps(row), flush=True)
                table.append(row)
            rng = np.random.default_rng(12345)
            scores = []
            if not args.children:
                continue
            for k in range(args.children):
                parent = space.seed(names[k % len(names)])
                child, _ = mutate(parent, rng=rng, space=space, max_rate=cfg.mutation_rate)
                scores.append(run_filter(cfg, child, k % args.seeds, 1 + k))
            passed = sum(s >= cfg.filter_threshold for s in scores)
            row = {"filter": which, "preset": preset, "cell": "random children", "passed": passed,
                   "of": len(scores), "min": round(min(scores), 4), "scores": [round(s, 4) for s in scores],
                   "seconds_per_filter": round((time.perf_counter() - t0) / (len(names) * args.seeds + args.children), 2)}
            print(json.dumps(row), flush=True)
            table.append(row)
    if args.curves:
        with open(args.curves, "a") as f:
            f.write(json.dumps({"curves": {str(i): c for i, c in enumerate(CURVES)}}) + "\n")
    print("\n| filter | preset | cell | passed | lowest score |")
    print("|---|---|---|---|---|")
    for r in table:
        print(f"| {r['filter']} | {r['preset']} | {r['cell']} | {r['passed']}/{r['of']} | {r['min']:.3f} |")


if __name__ == "__main__":
    main()
