"""What a child costs on this machine under a preset's ladder: the filter, each screen rung and the
full evaluation, from measured per-step costs, and the average over children under ASHA's promotion
rate (1 of ``eta`` children at a rung earns the next).

For each task of the preset, a seed cell (``--cell``, default the GRU) is trained for ``--steps``
steps in a program of each member count the ladder uses, twice (the second run is compiled); the
seconds per member-step and the compile time give every stage's cost:

* filter: ``filter_settings`` members x the filter's steps (an upper bound: its rungs stop the dead);
* rung ``r``: ``settings`` members x its steps, on every screened task;
* full: ``settings_per_task`` members x the task's steps, on every task (minus what the rungs did not
  already cover: nothing, a rung's settings are trained again at full length).

    python benchmarks/ladder_cost.py --preset default
    python benchmarks/ladder_cost.py --preset quick
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

from common import device


def per_step(cell, task_name, cfg, members: int, steps: int) -> tuple[float, float]:
    """(seconds per member-step, compile seconds) of ``task_name``'s training at ``members``."""
    from cellsearch.hparams import seeded
    from cellsearch.nn.train import train_and_evaluate
    from cellsearch.tasks import get_task, task_options

    task = get_task(task_name, task_options(task_name, cfg.task_options.get(task_name), cfg.data_dir))
    space = cfg.hparam_space(task_name)
    hs = [seeded(replace(space.points()[0], learning_rate=0.1), cfg.seed, r) for r in range(members)]
    tc = replace(cfg.train_config(task_name), steps=steps, members=members, rungs=(), eval_every=steps)
    t0 = time.perf_counter()
    first = train_and_evaluate(cell, task, hs, tc)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    train_and_evaluate(cell, task, hs, tc)
    warm = time.perf_counter() - t0
    return warm / (members * steps), max(cold - warm, sum(r.compile_s for r in first))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="default", choices=["default", "quick"])
    ap.add_argument("--cell", default="GRU")
    ap.add_argument("--steps", type=int, default=200, help="steps per timing run")
    args = ap.parse_args()
    from cellsearch.evolve.spaces import find_seed
    from cellsearch.search.config import SearchConfig, quick_config
    from cellsearch.search.ladder import rung_steps

    cfg = quick_config() if args.preset == "quick" else SearchConfig()
    cell = find_seed(args.cell)
    print(f"# device: {device()}  preset {args.preset}  cell {args.cell}", flush=True)
    screened = cfg.tasks[:cfg.screen_tasks] if cfg.screen_tasks else cfg.tasks
    cost = {}
    ft = cfg.filter_task
    s, c = per_step(cell, ft, cfg, cfg.filter_settings, args.steps)
    cost["filter"] = cfg.filter_settings * cfg.filter_train.steps * s + c
    print(json.dumps({"stage": "filter", "s_per_member_step": s, "compile_s": c, "seconds": cost["filter"]}), flush=True)
    for r, (share, n) in enumerate(cfg.screen):
        total = 0.0
        for t in screened:
            s, c = per_step(cell, t, cfg, n, args.steps)
            total += n * rung_steps(cfg, t, share) * s + c
            print(json.dumps({"stage": f"rung {r}", "task": t, "steps": rung_steps(cfg, t, share), "settings": n,
                              "s_per_member_step": s, "compile_s": c}), flush=True)
        cost[f"rung {r}"] = total
    total = 0.0
    for t in cfg.tasks:
        n = cfg.settings_per_task
        s, c = per_step(cell, t, cfg, min(n, cfg.train.members or n), args.steps)
        total += n * cfg.train.steps * s + c
        print(json.dumps({"stage": "full", "task": t, "steps": cfg.train.steps, "settings": n, "s_per_member_step": s,
                          "compile_s": c}), flush=True)
    cost["full"] = total
    # the average child: every child the filter; rung r for 1 / eta^r of the filter's passers; the full for
    # 1 / eta^R of them (the filter's pass rate is left at 1: an upper bound)
    eta, stages = cfg.eta, [k for k in cost if k != "filter"]
    avg = cost["filter"] + sum(cost[k] / eta ** i for i, k in enumerate(stages))
    print("\n| stage | seconds per child that reaches it |")
    print("|---|---|")
    for k, v in cost.items():
        print(f"| {k} | {v:,.0f} |")
    print(f"| **average child** (1/{eta} promoted at each rung) | {avg:,.0f} |")


if __name__ == "__main__":
    main()
