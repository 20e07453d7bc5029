"""Children per hour: the population interpreter against one compiled program per cell.

The same ``--children`` random children (1-3 mutations of LSTM and GRU, all different) are
trained on one stage of the ``--quick`` search (its task options, budget, settings per
task and training schedule), compilation included:

* **per-cell jit**: :func:`cellsearch.nn.train.train_and_evaluate` per child, each child's
  settings vmapped in its own program (what the search does without ``--population``);
* **interpreter**: :func:`cellsearch.nn.population.train_population` over groups of ``P``
  children (every setting of every child a member of one program).

The persistent compilation cache is off and the in-memory caches are cleared before each
contender, so each pays its compilations as a search meeting new cells would. Also reported:
the per-step cost of one training step of the interpreter per member against the compiled
LSTM's (both vmapped over the settings, compiled beforehand).

    python bench_population.py                     # P = 1, 8, 32, 128 on arithmetic
    python bench_population.py --stage memorize    # the filter stage
    python bench_population.py --sizes 8 --children 16 --steps 50   # a minute
"""

from __future__ import annotations

import argparse
import time

from common import device, emit


def children(n: int, seed: int):
    import numpy as np

    from cellsearch.cell.canon import structural_hash
    from cellsearch.evolve.mutate import mutate
    from cellsearch.evolve.spaces import load_space

    space = load_space("jozefowicz2015")
    rng = np.random.default_rng(seed)
    out, seen = [], set()
    while len(out) < n:
        g = space.seed(["LSTM", "GRU"][len(out) % 2])
        for _ in range(int(rng.integers(1, 4))):
            g, _ = mutate(g, rng=rng, space=space, max_rate=0.3)
        h = structural_hash(g)
        if h not in seen:
            seen.add(h)
            out.append(g)
    return out


def clear_caches():
    import jax

    from cellsearch.nn import train

    train._PROGRAMS.clear()
    train._COMPILED.clear()
    jax.clear_caches()


def step_cost(P: int, cells, steps: int = 20) -> dict:
    """Seconds per training step (batch 32, arithmetic's shape) of ``P`` members: the
    interpreter running ``cells`` (cycled), against the compiled LSTM vmapped over P settings
    and against each distinct cell compiled alone (the sum of their steps: what per-cell jit
    pays for the same cells). All compiled beforehand; chunks of ``steps`` steps."""
    from cellsearch.config import TrainConfig
    from cellsearch.evolve.spaces import find_seed
    from cellsearch.hparams import HParams
    from cellsearch.nn.population import train_population
    from cellsearch.nn.train import train_and_evaluate
    from cellsearch.tasks import make_task

    task = make_task("arithmetic", max_digits=3, eval_batches=1, eval_batch_size=32)
    hs = [HParams(learning_rate=1.0, init_scale=1.0, max_grad_norm=5.0, param_budget=10_000, seed=i) for i in range(P)]
    cfg = TrainConfig(steps=steps, batch_size=32, chunk=steps)
    pop = [cells[i % len(cells)] for i in range(P)]
    out = {}
    for name, fn in (("compiled LSTM", lambda: train_and_evaluate(find_seed("LSTM"), task, hs, cfg)),
                     ("interpreter", lambda: train_population(pop, task, [[h] for h in hs], cfg))):
        fn()  # compile
        t = time.perf_counter()
        fn()
        out[name] = (time.perf_counter() - t) / steps
    if len(cells) > 1:
        out["compiled cells"] = 0.0
        for i, g in enumerate(cells[:P]):
            mine = [h for k, h in enumerate(hs) if k % len(cells) == i]
            train_and_evaluate(g, task, mine, cfg)
            t = time.perf_counter()
            train_and_evaluate(g, task, mine, cfg)
            out["compiled cells"] += (time.perf_counter() - t) / steps
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1,8,32,128", help="population sizes P")
    ap.add_argument("--children", type=int, default=128, help="children trained by each contender")
    ap.add_argument("--stage", default="arithmetic", help="arithmetic | xml | memorize (the filter)")
    ap.add_argument("--steps", type=int, default=None, help="training steps (default: the --quick stage's)")
    ap.add_argument("--percell-children", type=int, default=None,
                    help="children timed for per-cell jit (default all; its rate is per child, so fewer suffice)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--step-cost", default=None, metavar="P,...",
                    help="only measure the per-step cost at these P (LSTM population, and mutated children)")
    args = ap.parse_args()
    if args.step_cost:
        from cellsearch.evolve.spaces import find_seed

        for P in (int(s) for s in args.step_cost.split(",")):
            for label, cells in (("LSTM", [find_seed("LSTM")]), ("children", children(max(P, 1), args.seed))):
                r = step_cost(P, cells)
                ratios = {f"interpreter/{k}": r["interpreter"] / v for k, v in r.items() if k != "interpreter"}
                emit({"bench": "population-step", "P": P, "cells": label, **{k + " s/step": v for k, v in r.items()},
                      **ratios})
        return

    from dataclasses import replace

    import numpy as np

    from cellsearch.hparams import seeded
    from cellsearch.nn.population import train_population
    from cellsearch.nn.train import train_and_evaluate
    from cellsearch.search.config import quick_config
    from cellsearch.tasks import make_task, task_options

    cfg = quick_config()
    stage = args.stage
    task = make_task(stage, **task_options(stage, cfg.task_options.get(stage), None))
    train = cfg.train_config(stage)
    if args.steps:
        train = replace(train, steps=args.steps, eval_every=None)
    n_set = cfg.filter_settings if stage == cfg.filter_task else cfg.settings_per_task
    space = cfg.hparam_space(stage)
    cells = children(args.children, args.seed)
    settings = [[seeded(h, i) for h in space.sample_distinct(np.random.default_rng([args.seed, i]), n_set)]
                for i in range(len(cells))]
    info = {"stage": stage, "steps": train.steps, "settings": n_set, "children": len(cells), "device": device()}
    print(info, flush=True)

    n_pc = args.percell_children or len(cells)
    clear_caches()
    t = time.perf_counter()
    for g, hs in zip(cells[:n_pc], settings[:n_pc], strict=True):
        train_and_evaluate(g, task, hs, train)
    per_cell = (time.perf_counter() - t) / n_pc
    emit({"bench": "population", "contender": "per-cell jit", "stage": stage, "steps": train.steps,
          "seconds_per_child": per_cell, "children_per_hour": 3600 / per_cell, "children": n_pc})
    for P in (int(s) for s in args.sizes.split(",")):
        clear_caches()
        t = time.perf_counter()
        compile_s = 0.0
        n = (len(cells) // P) * P or len(cells)
        for k in range(0, n, P):
            res = train_population(cells[k:k + P], task, settings[k:k + P], train)
            compile_s += sum(r.compile_s for rs in res for r in rs)
        sec = (time.perf_counter() - t) / n
        emit({"bench": "population", "contender": "interpreter", "P": P, "stage": stage, "steps": train.steps,
              "seconds_per_child": sec, "children_per_hour": 3600 / sec, "compile_s_per_child": compile_s / n,
              "speedup_vs_per_cell": per_cell / sec, "children": n})


if __name__ == "__main__":
    main()
