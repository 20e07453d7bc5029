"""The paper's table (Jozefowicz et al. §5.2 (a)) at a small budget: seed cells on each task.

Trains Tanh, LSTM, LSTM-f, LSTM-i, LSTM-o, LSTM-b, GRU, MUT1, MUT2 and MUT3 on arithmetic,
XML and PTB, each under the same few hyperparameter settings (vmapped), and prints the best
validation score per cell and task (accuracy; ``exp(-NLL)`` for PTB, with its perplexity) and
the ratio to the GRU, so rankings can be compared with the paper's. The paper's own figures
are unverified (``jozefowicz2015.md`` §5.2) and are not targets.

Default size: about 15-25 minutes on a 2-core CPU. ``--big`` trains longer and larger.

Usage: ``python benchmarks/seed_table.py [--big] [--tasks arithmetic,xml,ptb] [--data-dir DIR]``
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from common import emit, table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CELLS = ["Tanh", "LSTM", "LSTM-f", "LSTM-i", "LSTM-o", "LSTM-b", "GRU", "MUT1", "MUT2", "MUT3"]
SMALL = {
    "arithmetic": dict(budget=10_000, steps=3000, settings=[(0.5, 1.0), (1.0, 1.0), (2.0, 1.0)], opts={"max_digits": 4}),
    "xml": dict(budget=10_000, steps=3000, settings=[(0.5, 1.0), (1.0, 1.0), (2.0, 1.0)], opts={"seq_len": 64}),
    "ptb": dict(budget=40_000, steps=800, settings=[(1.0, 1.0), (2.0, 1.0)], opts={"eval_tokens": 10_000}),
}
BIG = {
    "arithmetic": dict(budget=50_000, steps=6000, settings=[(0.3, 1.0), (0.5, 1.0), (1.0, 1.0), (2.0, 1.0)], opts={"max_digits": 8}),
    "xml": dict(budget=50_000, steps=4000, settings=[(0.3, 1.0), (0.5, 1.0), (1.0, 1.0), (2.0, 1.0)], opts={"seq_len": 100}),
    "ptb": dict(budget=500_000, steps=3000, settings=[(0.5, 1.0), (1.0, 1.0), (2.0, 1.0)], opts={"eval_tokens": 73_000}),
}


def main():
    from cellsearch.config import TrainConfig
    from cellsearch.evolve.spaces import find_seed
    from cellsearch.hparams import HParams
    from cellsearch.nn.train import enable_compilation_cache, train_and_evaluate
    from cellsearch.tasks import make_task

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--big", action="store_true")
    ap.add_argument("--tasks", default="arithmetic,xml,ptb")
    ap.add_argument("--cells", default=",".join(CELLS))
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args()
    enable_compilation_cache()
    plan = BIG if args.big else SMALL
    tasks = args.tasks.split(",")
    best: dict[str, dict[str, float]] = {}
    extra: dict[str, dict[str, float]] = {}
    for t in tasks:
        p = plan[t]
        opts = dict(p["opts"], **({"data_dir": args.data_dir} if t == "ptb" and args.data_dir else {}))
        task = make_task(t, **opts)
        settings = [HParams(learning_rate=lr, init_scale=s, max_grad_norm=5.0, param_budget=p["budget"], seed=i)
                    for i, (lr, s) in enumerate(p["settings"])]
        cfg = TrainConfig(steps=p["steps"], batch_size=20 if t == "ptb" else 32, chunk=50)
        for c in args.cells.split(","):
            t0 = time.perf_counter()
            rs = train_and_evaluate(find_seed(c), task, settings, cfg)
            top = max(rs, key=lambda r: r.score)
            best.setdefault(c, {})[t] = top.score
            if t == "ptb":
                extra.setdefault(c, {})["ptb_ppl"] = top.metrics.get("perplexity", math.inf)
            emit({"bench": "seed_table", "task": t, "cell": c, "score": top.score, "metrics": top.metrics,
                  "statuses": [r.status for r in rs], "seconds": time.perf_counter() - t0})
    rows = []
    for c in best:
        row = {"cell": c, **{t: best[c].get(t) for t in tasks}, **extra.get(c, {})}
        if "GRU" in best:
            ratios = [best[c][t] / max(best["GRU"][t], 1e-12) for t in tasks if t in best[c]]
            row["score_vs_GRU"] = min(ratios)
        rows.append(row)
    print()
    print(table(rows, ["cell", *tasks, *(["ptb_ppl"] if "ptb" in tasks else []), "score_vs_GRU"]))


if __name__ == "__main__":
    main()
