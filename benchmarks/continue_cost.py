"""What a promoted child's full evaluation costs when it continues its rung, against training from scratch.

For each promoted child of a ``--quick`` store (``--db``), in one process on this machine, each
task the rung screens is trained as the search trains it:

1. **the rung** (not timed): the rung's stored settings, its steps, one program of its settings,
   keeping their training states (``cellsearch.nn.resume``);
2. **continued** (``continue_rungs = True``): the full evaluation's stored settings, the rung's
   continued from their states and the others from scratch, in programs of the rung's member count
   (the rung's programs, already compiled);
3. **from scratch** (``continue_rungs = False``, the code before): the same settings in programs of
   the full evaluation's member count, compiled for this cell.

Both full evaluations train under the stage's bar as the search would set it now (the hurdle's on
the first task, the pool floor's on the others), so their own rungs stop settings as in the search.
Per child and task: seconds (compile and training) both ways, training steps, and the largest
difference between the two ways' scores (they differ by float rounding only: a program's member
count changes XLA's rounding). Run it pinned to one core with nothing else running.

    python continue_cost.py --db quick.db [--children 9] [--out rows.jsonl]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time

from common import table


def measure(db: str, children: int | None) -> list[dict]:
    from cellsearch.cell.graph import from_json
    from cellsearch.hparams import HParams
    from cellsearch.nn.train import train_and_evaluate
    from cellsearch.search.results import stored_config
    from cellsearch.search.steps import Search, stage_train
    from cellsearch.store.sqlite import Store
    from cellsearch.tasks import get_task, task_options

    tmp = tempfile.mkdtemp()
    shutil.copy(db, f"{tmp}/s.db")  # Search may write its meta; never touch the user's store
    store = Store(f"{tmp}/s.db")
    cfg = stored_config(store)
    search = Search(cfg, store)
    ladder = search.ladder
    if ladder is None:
        raise SystemExit(f"{db}: this search has no screen rungs (screen=())")
    top = ladder.rungs[-1]
    promoted = [r["cell_hash"] for r in store.steps_rows() if r["kind"] == "promote"][:children]
    rows = []
    for h in promoted:
        cell = store.cell(h)
        graph = from_json(cell["graph"])
        for t in ladder.tasks:
            task = get_task(t, task_options(t, cfg.task_options.get(t), cfg.data_dir))
            rung = [HParams(**e["hparams"]) for e in store.evaluations(h, top.task(t))]
            # the promotion's settings: the first stored (a pool member's re-evaluations come later)
            full = [HParams(**e["hparams"]) for e in store.evaluations(h, t)][:cfg.settings_per_task]
            if not rung or not full:
                continue
            bar = search.bar(t, cell["parent"])
            states = train_and_evaluate(graph, task, rung, stage_train(cfg, t, steps=top.steps[t], settings=len(rung)),
                                        keep_state=True)
            kept = {r.hparams.key(): r.state for r in states}
            t0 = time.perf_counter()
            cont = train_and_evaluate(graph, task, full, stage_train(cfg, t, bar, continued=len(kept)),
                                      resume=[kept.get(s.key()) for s in full])
            t1 = time.perf_counter()
            scratch = train_and_evaluate(graph, task, full, stage_train(cfg, t, bar))
            t2 = time.perf_counter()
            rows.append({"cell": h, "task": t, "continued_s": round(t1 - t0, 2),
                         "continued_compile_s": round(sum(r.compile_s for r in cont), 2),
                         "scratch_s": round(t2 - t1, 2), "scratch_compile_s": round(sum(r.compile_s for r in scratch), 2),
                         "continued_steps": sum(r.steps - r.metrics.get("continued_from", 0) for r in cont),
                         "scratch_steps": sum(r.steps for r in scratch),
                         "best_continued": max(r.score for r in cont), "best_scratch": max(r.score for r in scratch),
                         "max_diff": max(abs(a.score - b.score) for a, b in zip(cont, scratch, strict=True))})
            print(json.dumps(rows[-1]), flush=True)
    store.close()
    shutil.rmtree(tmp)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", required=True, help="a --quick store with promoted children")
    ap.add_argument("--children", type=int, default=None, help="the first N promoted children (default: all)")
    ap.add_argument("--out", default=None, help="also write the rows here (JSON lines)")
    a = ap.parse_args()
    rows = measure(a.db, a.children)
    if a.out:
        with open(a.out, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    by_task = {}
    for r in rows:
        by_task.setdefault(r["task"], []).append(r)
    out = []
    for t, rs in [*by_task.items(), ("all", rows)]:
        c, s = sum(r["continued_s"] for r in rs), sum(r["scratch_s"] for r in rs)
        out.append({"task": t, "jobs": len(rs), "continued s": round(c, 1),
                    "of which compiling": round(sum(r["continued_compile_s"] for r in rs), 1),
                    "from scratch s": round(s, 1), "of which compiling ": round(sum(r["scratch_compile_s"] for r in rs), 1),
                    "continued / scratch": round(c / s, 3) if s else None,
                    "steps continued / scratch": round(sum(r["continued_steps"] for r in rs)
                                                       / max(sum(r["scratch_steps"] for r in rs), 1), 3),
                    "largest score difference": max((r["max_diff"] for r in rs), default=0.0)})
    print(table(out, list(out[0])))


if __name__ == "__main__":
    main()
