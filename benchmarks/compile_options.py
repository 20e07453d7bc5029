"""XLA compiler options for a search's programs: compile and training seconds, and whether results change.

Each option set runs in a fresh process (no program cache shared), one after the other: 6 cells
(the GRU, the LSTM, the tanh RNN and 3 one-edit children of the LSTM and the GRU, drawn as a
search draws them) are each trained as ``--quick``'s rung jobs train: 2 settings, arithmetic and
XML for 300 steps, the filter's memorisation task for 1,000. Per option set: the seconds spent
compiling and training, and whether every score equals the default options' bit for bit. The
search's own choice is ``CPU_COMPILER_OPTIONS`` in ``cellsearch/nn/train.py``; each row's process
replaces it with the row's options (on a CPU: an accelerator compiles with XLA's defaults).

    python compile_options.py                       # {} (XLA's defaults), level 1, no expensive passes
    python compile_options.py --options '{"xla_backend_optimization_level": 0}'
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from common import table

DEFAULT_SETS = ['{}', '{"xla_backend_optimization_level": 1}',
                '{"xla_llvm_disable_expensive_passes": true}']


def probe(opts: dict) -> list[dict]:
    """Trains the cells under ``opts`` in this process; one row per (task, cell)."""
    import numpy as np

    import cellsearch.nn.train as T
    from cellsearch.evolve.mutate import mutate_live
    from cellsearch.evolve.spaces import load_space
    from cellsearch.hparams import seeded
    from cellsearch.search.config import quick_config
    from cellsearch.search.steps import liveness_check
    from cellsearch.tasks import get_task

    T.CPU_COMPILER_OPTIONS = opts  # what the trainer compiles with on a CPU, in this process only
    cfg = quick_config()
    space = load_space(cfg.space)
    probe_fn, rng = liveness_check(cfg), np.random.default_rng(7)
    cells = [(n, space.seed(n)) for n in ("GRU", "LSTM", "Tanh")]
    for i in range(3):
        child, _, _ = mutate_live(space.seed("GRU" if i % 2 else "LSTM"), rng=rng, space=space, accept=probe_fn,
                                  edits=cfg.edits)
        cells.append((f"child {i}", child))
    points = cfg.hparams.points()
    settings = [seeded(points[0], 0), seeded(points[5], 0)]
    rows = []
    for task in ("arithmetic", "xml", cfg.filter_task):
        tc = replace(cfg.train_config(task), steps=1000 if task == cfg.filter_task else 300, members=2, rungs=(),
                     bar=0.0, stop_on_pass=False)
        t = get_task(task, cfg.task_options.get(task, {}))
        for name, g in cells:
            t0 = time.perf_counter()
            res = T.train_and_evaluate(g, t, settings, tc)
            comp = sum(r.compile_s for r in res)
            rows.append({"task": task, "cell": name, "compile": comp, "train": time.perf_counter() - t0 - comp,
                         "scores": [r.score for r in res]})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--options", action="append", default=None, help="a JSON object of XLA options (repeatable)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)  # one option set, in a fresh process
    args = ap.parse_args()
    if args.child is not None:
        print(json.dumps(probe(json.loads(args.child))))
        return
    sets = args.options or DEFAULT_SETS
    runs = {}
    for s in sets:
        out = subprocess.run([sys.executable, Path(__file__).name, "--child", s], capture_output=True, text=True,
                             check=True, cwd=Path(__file__).parent)
        runs[s] = json.loads(out.stdout.strip().splitlines()[-1])
        print(json.dumps({"options": json.loads(s), "rows": runs[s]}), flush=True)
    first = runs[sets[0]]
    summary = [{"options": s, "compile s": sum(r["compile"] for r in rs), "train s": sum(r["train"] for r in rs),
                "scores equal to the first": sum(a["scores"] == b["scores"] for a, b in zip(rs, first, strict=True)),
                "jobs": len(rs)} for s, rs in runs.items()]
    print(table(summary, list(summary[0])))


if __name__ == "__main__":
    main()
