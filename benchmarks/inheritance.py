"""Weight inheritance: does a child that starts from its parent's trained parameters rank better
at a cheap rung than one trained from scratch?

EXAMM's children inherit their parent's trained weights (Lamarckian inheritance); here a child's
parameter starts from its parent's wherever the node, the operand and the shape match
(``train_and_evaluate(..., inherit_from=...)``), from its own initialisation elsewhere. Under a
fixed parameter budget an edit that adds or removes a weight matrix changes the hidden size, and
then nothing but the biases of unchanged nodes matches: the share of weights inherited is
reported per child.

For each parent (``--parents``, default the LSTM and the GRU) on ``--quick``'s tasks:

* the parent is trained as a ``--quick`` search trains a seed (its ``init_settings`` settings,
  drawn as the search draws them), and its 2 best settings per task are kept with their
  parameters: the settings a child is screened with;
* ``--children`` one-edit live children (the search's edits and liveness probe), each trained on
  those 2 settings three ways: the full evaluation from scratch (its score: min over tasks of its
  best over the GRU's best, as a search scores), the screen rung (``--quick``'s 300 steps) from
  scratch, and the same rung from the parent's parameters.

Printed: Spearman's rho of each rung's score with the full score and a bootstrap 95 % interval,
over all children and over the children that inherited most of their weights, and the seconds.

    python benchmarks/inheritance.py --children 25 --out inheritance.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace

import numpy as np

from common import device, first_settings, spearman, spearman_interval


def best(results) -> float:
    return max((r.score if r.status == "ok" else 0.0) for r in results)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parents", default="LSTM,GRU")
    ap.add_argument("--children", type=int, default=25, help="children per parent")
    ap.add_argument("--seed", type=int, default=0, help="search seed: settings, edits")
    ap.add_argument("--out", default=None, help="JSON lines, one per child (re-read on a rerun: done children are kept)")
    args = ap.parse_args()

    from cellsearch.cell.canon import structural_hash
    from cellsearch.evolve.mutate import mutate_live
    from cellsearch.evolve.spaces import find_seed, load_space
    from cellsearch.hparams import seeded
    from cellsearch.nn.train import train_and_evaluate
    from cellsearch.search.config import quick_config
    from cellsearch.search.ladder import rung_steps
    from cellsearch.search.steps import liveness_check
    from cellsearch.tasks import get_task, task_options

    cfg = quick_config(seed=args.seed)
    space = load_space(cfg.space)
    probe = liveness_check(cfg)
    tasks = {t: get_task(t, task_options(t, cfg.task_options.get(t), cfg.data_dir)) for t in cfg.tasks}
    (share, _), = cfg.screen
    full_tc = {t: replace(cfg.train_config(t), members=2, rungs=()) for t in tasks}
    rung_tc = {t: replace(full_tc[t], steps=rung_steps(cfg, t, share)) for t in tasks}
    print(f"# device: {device()}  parents {args.parents}  {args.children} children each  rung "
          f"{ {t: tc.steps for t, tc in rung_tc.items()} } steps of {cfg.train.steps}", flush=True)

    done = {}
    if args.out and os.path.exists(args.out):
        with open(args.out) as f:
            for line in f:
                r = json.loads(line)
                done[(r["parent"], r["k"])] = r
    out = open(args.out, "a") if args.out else None

    def carried(name):  # the parent's 2 best settings per task, with their trained parameters
        rng = np.random.default_rng([args.seed, 0])
        picks = {}
        for t, task in tasks.items():
            hs = [seeded(h, args.seed) for h in first_settings(cfg, t, rng, cfg.init_settings)]
            rs = train_and_evaluate(find_seed(name), task, hs, replace(full_tc[t], members=len(hs)), keep_params=True)
            top = sorted(range(len(rs)), key=lambda i: -(rs[i].score if rs[i].status == "ok" else 0.0))[:2]
            picks[t] = ([hs[i] for i in top], [rs[i].params for i in top], best(rs))
        return picks

    # the GRU's scale: its full and rung best on its own 2 best settings
    gru = carried("GRU")
    scale = {t: (gru[t][2], best(train_and_evaluate(find_seed("GRU"), tasks[t], gru[t][0], rung_tc[t])))
             for t in tasks}
    rows = list(done.values())
    for parent in args.parents.split(","):
        picks = gru if parent == "GRU" else carried(parent)
        rng = np.random.default_rng([args.seed, sum(map(ord, parent))])
        for k in range(args.children):
            child, edits, _ = mutate_live(find_seed(parent), rng=rng, space=space, accept=probe, edits=cfg.edits)
            if (parent, k) in done:
                continue
            t0 = time.perf_counter()
            row = {"parent": parent, "k": k, "cell": structural_hash(child), "edits": [e.name for e in edits]}
            full, scratch, inherited, shares = {}, {}, {}, []
            for t, task in tasks.items():
                hs, params, _ = picks[t]
                full[t] = best(train_and_evaluate(child, task, hs, full_tc[t])) / scale[t][0]
                scratch[t] = best(train_and_evaluate(child, task, hs, rung_tc[t])) / scale[t][1]
                rs = train_and_evaluate(child, task, hs, rung_tc[t], inherit_from=params)
                inherited[t] = best(rs) / scale[t][1]
                shares += [r.metrics["inherited"] for r in rs]
            row.update(full=min(full.values()), scratch=min(scratch.values()), inherited=min(inherited.values()),
                       share=float(np.mean(shares)), per_task={"full": full, "scratch": scratch, "inherited": inherited},
                       seconds=time.perf_counter() - t0)
            rows.append(row)
            print(json.dumps(row), flush=True)
            if out:
                out.write(json.dumps(row) + "\n")
                out.flush()

    print(f"\n{len(rows)} children; full score {min(r['full'] for r in rows):.3f}-{max(r['full'] for r in rows):.3f}")
    print("\n| children | n | share of weights inherited (mean) | rung from scratch: rho [95 %] | "
          "rung from the parent: rho [95 %] |")
    print("|---|---|---|---|---|")
    for label, sel in (("all", rows), ("inherited >= 50 %", [r for r in rows if r["share"] >= 0.5]),
                       ("inherited < 50 %", [r for r in rows if r["share"] < 0.5])):
        if len(sel) < 4:
            continue
        y = [r["full"] for r in sel]
        cells = []
        for key in ("scratch", "inherited"):
            x = [r[key] for r in sel]
            lo, hi = spearman_interval(x, y)
            cells.append(f"{spearman(x, y):.3f} [{lo:.3f}, {hi:.3f}]")
        print(f"| {label} | {len(sel)} | {np.mean([r['share'] for r in sel]):.2f} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
