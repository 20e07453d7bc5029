"""Does unrolling the time loop make the search's own training cheaper? (``lax.scan`` unroll)

Trains a seed cell on each stage of a ``--quick`` search exactly as the search trains a child
(the filter's 2 settings on memorisation, 4 of the task settings on arithmetic and XML, in one
program each, 10k/20k parameters, batch 32; 1,000 filter steps, 600 task steps), once per
unroll factor, each from empty program caches, and prints the compile seconds and the
training seconds (wall less compile). The settings' scores are printed too: they must not
depend on the unroll factor beyond float rounding.

    python bench_unroll.py [--cell GRU] [--unrolls 1,2,4,8,100]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np

from common import emit, table


def main() -> None:
    from cellsearch.evolve.spaces import find_seed
    from cellsearch.nn.train import _COMPILED, _PROGRAMS, train_and_evaluate
    from cellsearch.search.config import quick_config
    from cellsearch.tasks import make_task

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cell", default="GRU")
    ap.add_argument("--unrolls", default="1,2,4,8,100")
    a = ap.parse_args()
    cfg, g, rows = quick_config(), find_seed(a.cell), []
    for name in (cfg.filter_task, *cfg.tasks):
        tc = cfg.train_config(name)
        steps = 1000 if name == cfg.filter_task else 600
        task = make_task(name, **cfg.task_options.get(name, {}))
        settings = cfg.hparam_space(name).sample(np.random.default_rng(0), tc.members)
        for u in map(int, a.unrolls.split(",")):
            _COMPILED.clear()
            _PROGRAMS.clear()
            c = replace(tc, unroll=u, steps=steps, eval_every=0, rungs=())
            t = time.perf_counter()
            rs = train_and_evaluate(g, task, settings, c)
            wall = time.perf_counter() - t
            comp = sum(r.compile_s for r in rs)
            rec = {"bench": "unroll", "cell": a.cell, "task": name, "unroll": u, "members": len(settings),
                   "steps": steps, "compile_s": round(comp, 2), "train_s": round(wall - comp, 2),
                   "scores": [round(r.score, 3) for r in rs]}
            emit(rec)
            rows.append(rec)
    print()
    print(table(rows, ["task", "unroll", "members", "steps", "compile_s", "train_s", "scores"]))


if __name__ == "__main__":
    main()
