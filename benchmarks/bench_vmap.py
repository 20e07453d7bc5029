"""K hyperparameter settings of one cell in one vmapped program vs K sequential runs.

Trains the GRU on arithmetic (10k parameters, batch 32) for a fixed number of steps with
K = 1, 2, 4, 8, 16, 32 settings, once as one vmapped program and once as K programs run one
after another (compile time excluded from both: each is run twice and the second run timed).

Usage: ``python benchmarks/bench_vmap.py [--ks 1,2,4,8,16,32] [--steps 200]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from common import emit, table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main():
    from cellsearch.config import TrainConfig
    from cellsearch.evolve.spaces import find_seed
    from cellsearch.hparams import HParams
    from cellsearch.nn.train import train_and_evaluate
    from cellsearch.tasks import make_task

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ks", default="1,2,4,8,16,32")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--cell", default="GRU")
    args = ap.parse_args()
    g = find_seed(args.cell)
    task = make_task("arithmetic", max_digits=3, eval_batches=1)
    cfg = TrainConfig(steps=args.steps, batch_size=32, chunk=args.steps)
    rows = []

    def timed(settings):
        train_and_evaluate(g, task, settings, cfg)  # compile
        t = time.perf_counter()
        train_and_evaluate(g, task, settings, cfg)
        return time.perf_counter() - t

    one = None
    for k in map(int, args.ks.split(",")):
        settings = [HParams(learning_rate=0.5 + 0.1 * i, param_budget=10_000, seed=i) for i in range(k)]
        vm = timed(settings)
        if one is None:
            one = timed(settings[:1])
        seq = one * k  # K sequential runs of one setting each (the same program K times)
        rec = {"bench": "vmap", "cell": args.cell, "K": k, "vmapped_s": vm, "sequential_s": seq,
               "speedup": seq / vm, "setting_steps_per_s": k * args.steps / vm}
        emit(rec)
        rows.append(rec)
    print()
    print(table(rows, ["K", "vmapped_s", "sequential_s", "speedup", "setting_steps_per_s"]))


if __name__ == "__main__":
    main()
