"""How much a start's ratio to the baseline swings with the settings a search happens to draw.

A search scores a cell against the baseline (the GRU) at the settings each drew: at ``--quick``,
``init_settings`` (4) grid points per task out of 54. Which 4 decides both the start's ratio
and the denominator of every score (``benchmarks/README.md``, "Rediscovery": the same tanh RNN
was 0.74 of the GRU in one store and 0.96 in another). This script trains each cell
(``--cells``) on every point of ``--quick``'s grid on each task, once (the point's seed for search
seed 0), and stores the scores as JSON lines (``--grid``; an interrupted run goes on where it
stopped). It then draws ``--draws`` searches' initial settings under each rule of
:meth:`cellsearch.hparams.HParamSpace.sample` (``uniform``: independent points, as searches drew
them before ``spread_rates``; ``spread``: learning rates not yet drawn first) and reports the
distribution of the first cell's score against the second's (the lowest task's ratio of their
best scores, as a search scores it), how often the baseline missed its best learning rate, and
both of its best two, on each task, and how far its best drawn is from its best on the whole grid.

    python start_settings.py train --cells Tanh,GRU --grid /tmp/grid.jsonl   # one process per cell fits 2 cores
    python start_settings.py simulate --cells Tanh,GRU --grid /tmp/grid.jsonl
    python start_settings.py simulate --grid /tmp/grid.jsonl --inits 0.5,1,2   # the grid before 2026-12-07

``--replicate R`` trains each point again with another seed (its replicate R); the simulation
then takes one replicate of each drawn point at random, so the swing it reports is the
settings' and the seeds' together.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from common import device, first_settings, preset_config

TASKS = ("arithmetic", "xml")


def quick(inits: str):
    """``--quick``'s search config, its grid's initial scales replaced by ``inits`` (if given)."""
    from dataclasses import replace

    cfg = preset_config("quick", 0)
    if inits:
        cfg = replace(cfg, hparams=replace(cfg.hparams, init_scale=tuple(float(v) for v in inits.split(","))))
    return cfg


def train(cells: list[str], grid: Path, replicate: int, inits: str) -> None:
    from cellsearch.evolve.spaces import find_seed
    from cellsearch.hparams import seeded
    from cellsearch.nn.train import enable_compilation_cache, train_and_evaluate
    from cellsearch.tasks import get_task

    enable_compilation_cache()
    cfg = quick(inits)
    done = {(r["cell"], r["task"], r["key"], r.get("replicate", 0)) for r in _read(grid)}
    print(f"# device: {device()}; {len(done)} runs stored in {grid}", flush=True)
    for task_name in TASKS:
        task = get_task(task_name, cfg.task_options.get(task_name, {}))
        points = [seeded(h, cfg.seed, replicate) for h in cfg.hparam_space(task_name).points()]
        for cell in cells:
            todo = [h for h in points if (cell, task_name, _point(h), replicate) not in done]
            members = cfg.train.members
            for i in range(0, len(todo), members):
                t = time.perf_counter()
                batch = todo[i:i + members]
                results = train_and_evaluate(find_seed(cell), task, batch, cfg.train_config(task_name))
                with grid.open("a") as f:
                    for h, r in zip(batch, results, strict=True):
                        f.write(json.dumps({"cell": cell, "task": task_name, "key": _point(h), "replicate": replicate,
                                            "learning_rate": h.learning_rate, "score": r.score,
                                            "diverged": r.status == "diverged"}) + "\n")
                print(f"{cell} {task_name} {i + len(batch)}/{len(todo)} {time.perf_counter() - t:.1f}s", flush=True)


def simulate(cells: list[str], grid: Path, draws: int, seed: int, inits: str) -> None:
    cfg = quick(inits)
    runs: dict[tuple, list[float]] = {}
    for r in _read(grid):
        runs.setdefault((r["cell"], r["task"], r["key"]), []).append(0.0 if r["diverged"] else r["score"])
    start, base = cells
    n = cfg.init_settings
    best_two, grid_best, reps = {}, {}, min(len(v) for v in runs.values())
    for t in TASKS:
        pts = [_point(h) for h in cfg.hparam_space(t).points()]
        missing = sorted({(c, t) for c in cells for p in pts if (c, t, p) not in runs})
        if missing:
            raise SystemExit(f"{grid} lacks runs of {missing}; run `train` first")
        by_lr: dict[float, float] = {}
        for p in pts:
            lr = json.loads(p)["learning_rate"]
            by_lr[lr] = max(by_lr.get(lr, 0.0), float(np.mean(runs[(base, t, p)])))
        best_two[t] = sorted(by_lr, key=by_lr.get)[-2:]  # its best two rates, the best last
        grid_best[t] = max(by_lr.values())
        print(f"# {t}: {base}'s best per learning rate (mean of replicates) "
              f"{json.dumps({k: round(v, 4) for k, v in by_lr.items()})}", flush=True)
    print(f"# {reps} replicate(s) per point; each draw takes one replicate of each point at random")
    for rule in ("uniform", "spread"):
        rng = np.random.default_rng(seed)
        ratios, missed, missed2 = [], {t: 0 for t in TASKS}, {t: 0 for t in TASKS}
        share = {t: [] for t in TASKS}  # the baseline's best drawn, over its best on the whole grid
        for _ in range(draws):
            per_task = []
            for t in TASKS:
                best = {}
                for c in cells:
                    hs = first_settings(cfg, t, rng, n, spread=rule == "spread")
                    best[c] = max(runs[(c, t, _point(h))][rng.integers(reps)] for h in hs)
                    if c == base:
                        share[t].append(best[c] / grid_best[t])
                        drawn = {h.learning_rate for h in hs}
                        missed[t] += best_two[t][-1] not in drawn
                        missed2[t] += not drawn & set(best_two[t])
                per_task.append(best[start] / best[base])
            ratios.append(min(per_task))
        r = np.array(ratios)
        q = np.quantile(r, [0.05, 0.25, 0.5, 0.75, 0.95])
        print(json.dumps({"rule": rule, "draws": draws, "settings": n, "mean": round(float(r.mean()), 4),
                          "sd": round(float(r.std(ddof=1)), 4), "q05_25_50_75_95": [round(float(v), 4) for v in q],
                          "baseline_missed_best_lr": {t: round(missed[t] / draws, 3) for t in TASKS},
                          "baseline_missed_best_2_lrs": {t: round(missed2[t] / draws, 3) for t in TASKS},
                          "baseline_share_of_grid_best": {t: round(float(np.mean(share[t])), 3) for t in TASKS},
                          "baseline_below_0.95_of_it": {t: round(float(np.mean(np.array(share[t]) < 0.95)), 3)
                                                        for t in TASKS}}), flush=True)


def _point(h) -> str:
    from dataclasses import replace

    return replace(h, seed=0).key()


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("phase", choices=("train", "simulate"))
    ap.add_argument("--cells", default="Tanh,GRU", help="the start, then the baseline (train: any seed cells)")
    ap.add_argument("--grid", type=Path, required=True, help="JSON lines of the grid's runs")
    ap.add_argument("--draws", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--inits", default="", help="the grid's initial scales instead of the preset's, e.g. 0.5,1,2")
    ap.add_argument("--replicate", type=int, default=0, help="train: the point's replicate seed (0: search seed 0's)")
    args = ap.parse_args()
    cells = args.cells.split(",")
    if args.phase == "train":
        train(cells, args.grid, args.replicate, args.inits)
    else:
        if len(cells) != 2:
            raise SystemExit("simulate: --cells names the start and the baseline, e.g. Tanh,GRU")
        simulate(cells, args.grid, args.draws, args.seed, args.inits)


if __name__ == "__main__":
    main()
