"""Which cells a few edits from the tanh RNN beat it? Hand-built steps on the way to a gate, trained as ``--quick`` does.

A rediscovery search can only climb if some cell near its start is better. This trains the tanh
RNN, the GRU and cells one or two edits from the tanh RNN on a ``--quick`` task (its budget, steps
and batch, no rungs; ``--steps N`` for a cheap rung's length), each at the same 4 learning rates (init scale 1, clip 5) on ``--seeds``
seeds, and prints one JSON line per (cell, seed) with each rate's score and the best:

    python climb_paths.py --tasks arithmetic --seeds 3
    python climb_paths.py --cells Tanh,GRU,interp --tasks memorize,xml --seeds 2

The cells (``h`` the state, ``g(b) = sigm(W_x x + W_h h + b)`` a new gate with bias ``b``):
``out_gate`` tanh(...) * g(2) (``add_gate``); ``resid`` h + tanh(...); ``gated_resid``
h + tanh(...) * g(0); ``forget_resid`` h * g(2) + tanh(...); ``h_gate_in`` tanh(W x + W (h * g(2)));
``interp`` z * h + (1 - z) * tanh(...) with z = g(0) (``add_mix`` of the tanh with the state, the
MGU/minGRU shape); ``interp_m2`` the same with z = g(-2) (the mix starting near the parent).
The memorisation filter (``memorize``) is trained at the filter's rates 0.1 / 0.3 / 0.5 / 1 and
its 20k-parameter budget; the other tasks at 0.1 / 0.3 / 1 / 3.
"""

from __future__ import annotations

import argparse
import json
import time

from common import device


def gate(b, x, h, bias):
    return b.sigmoid(b.linear(x, h, bias_init=bias))


def mix(b, x, h, bias):
    z = gate(b, x, h, bias)
    return b.add(b.mul(z, h), b.mul(b.sub(b.const(1.0), z), b.tanh(b.linear(x, h))))


HAND = {
    "out_gate": lambda b, x, h: b.mul(b.tanh(b.linear(x, h)), gate(b, x, h, 2.0)),
    "resid": lambda b, x, h: b.add(h, b.tanh(b.linear(x, h))),
    "gated_resid": lambda b, x, h: b.add(h, b.mul(b.tanh(b.linear(x, h)), gate(b, x, h, 0.0))),
    "forget_resid": lambda b, x, h: b.add(b.mul(h, gate(b, x, h, 2.0)), b.tanh(b.linear(x, h))),
    "h_gate_in": lambda b, x, h: b.tanh(b.linear(x, b.mul(h, gate(b, x, h, 2.0)))),
    "interp": lambda b, x, h: mix(b, x, h, 0.0),
    "interp_m2": lambda b, x, h: mix(b, x, h, -2.0),
}


def build(name: str):
    from cellsearch.cell.graph import CellBuilder
    from cellsearch.evolve.spaces import find_seed

    if name not in HAND:
        return find_seed(name)
    b = CellBuilder(name, states=("h",))
    b.output("h", HAND[name](b, b.x, "h_prev"))
    return b.build()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", default="Tanh,GRU," + ",".join(HAND))
    ap.add_argument("--tasks", default="arithmetic")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=0, help="train this many steps instead of the preset's")
    args = ap.parse_args()
    from dataclasses import replace

    from cellsearch.hparams import HParams
    from cellsearch.nn.train import enable_compilation_cache, train_and_evaluate
    from cellsearch.search.config import quick_config
    from cellsearch.tasks import get_task

    enable_compilation_cache()
    print(f"# device: {device()}", flush=True)
    cfg = quick_config(seed=0)
    for name in args.tasks.split(","):
        task = get_task(name, cfg.task_options.get(name, {}))
        filt = name == cfg.filter_task
        budget = cfg.filter_hparams.param_budget[0] if filt else cfg.budgets[name][0]
        lrs = cfg.filter_hparams.learning_rate if filt else (0.1, 0.3, 1.0, 3.0)
        for cell in args.cells.split(","):
            graph = build(cell)
            for s in range(args.seeds):
                t = time.perf_counter()
                settings = [HParams(learning_rate=lr, init_scale=1.0, max_grad_norm=5.0, param_budget=budget, seed=s)
                            for lr in lrs]
                train = replace(cfg.train_config(name), rungs=(), data_seed=s)
                if args.steps:
                    train = replace(train, steps=args.steps)
                rs = train_and_evaluate(graph, task, settings, train)
                print(json.dumps({"task": name, "cell": cell, "seed": s, "lrs": list(lrs),
                                  "scores": [round(r.score, 4) for r in rs], "best": round(max(r.score for r in rs), 4),
                                  "s": round(time.perf_counter() - t, 1)}), flush=True)


if __name__ == "__main__":
    main()
