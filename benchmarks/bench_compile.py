"""Compile cost of a new candidate's training step: first time, in-process cache, persistent cache.

For the seed cells and for mutated cells of growing size (random walks of 1, 3, 6 and 10
mutations from the LSTM), measures the seconds to compile the vmapped training chunk and the
evaluation program of :mod:`cellsearch.nn.train` (4 settings, arithmetic, hidden ~ 10k params):

* ``first``: a fresh process with an empty persistent cache;
* ``in_process``: the same cell again in the same process (the structural-hash cache);
* ``persistent``: a fresh process reading JAX's persistent compilation cache.

Usage: ``python benchmarks/bench_compile.py [--cells 6]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from common import emit, table

HERE = Path(__file__).resolve().parent

CHILD = r"""
import json, sys, time
sys.path.insert(0, {root!r})
from cellsearch.config import TrainConfig
from cellsearch.nn.train import enable_compilation_cache, train_and_evaluate
from cellsearch.cell.graph import from_json
from cellsearch.hparams import HParams
from cellsearch.tasks import make_task
enable_compilation_cache({cache!r})
task = make_task("arithmetic", max_digits=3)
settings = [HParams(learning_rate=1.0, param_budget=10000, seed=s) for s in range(4)]
out = []
for text in json.loads(sys.stdin.read()):
    g = from_json(text)
    cfg = TrainConfig(steps=50, batch_size=32, chunk=50)
    t = time.perf_counter(); r1 = train_and_evaluate(g, task, settings, cfg); first = time.perf_counter() - t
    t = time.perf_counter(); r2 = train_and_evaluate(g, task, settings, cfg); again = time.perf_counter() - t
    out.append({{"compile_s": r1[0].compile_s * 4, "total_s": first, "in_process_compile_s": r2[0].compile_s * 4,
                "in_process_total_s": again}})
print(json.dumps(out))
"""


def run_child(cells: list[str], cache: str) -> list[dict]:
    code = CHILD.format(root=str(HERE.parent), cache=cache)
    r = subprocess.run([sys.executable, "-c", code], input=json.dumps(cells), capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    sys.path.insert(0, str(HERE.parent))
    import numpy as np

    from cellsearch.cell.graph import to_json
    from cellsearch.evolve.mutate import mutate
    from cellsearch.evolve.spaces import find_seed, load_space

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--walks", default="1,3,6,10", help="mutation counts for the mutated cells")
    args = ap.parse_args()
    space = load_space()
    cells = [("LSTM", find_seed("LSTM")), ("GRU", find_seed("GRU")), ("MUT1", find_seed("MUT1"))]
    rng = np.random.default_rng(0)
    for walk in map(int, args.walks.split(",")):
        g = find_seed("LSTM")
        for _ in range(walk):
            g, _ = mutate(g, rng=rng, space=space, max_rate=0.3)
        cells.append((f"LSTM+{walk} mutations", g))
    texts = [to_json(g, None) for _, g in cells]
    with tempfile.TemporaryDirectory() as cache:
        first = run_child(texts, cache)
        persistent = run_child(texts, cache)
    rows = []
    for (name, g), a, b in zip(cells, first, persistent, strict=True):
        rec = {"bench": "compile", "cell": name, "nodes": g.number_of_nodes(), "first_s": a["compile_s"],
               "in_process_s": a["in_process_compile_s"], "persistent_s": b["compile_s"],
               "train_total_first_s": a["total_s"], "train_total_cached_s": a["in_process_total_s"]}
        emit(rec)
        rows.append(rec)
    print()
    print(table(rows, ["cell", "nodes", "first_s", "in_process_s", "persistent_s", "train_total_first_s",
                       "train_total_cached_s"]))


if __name__ == "__main__":
    main()
