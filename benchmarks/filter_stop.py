"""What the filter saves by stopping a child's job once one setting passes (``filter_train.stop_on_pass``).

From a search's store, the filter jobs of the children that passed the filter (a child step's
settings on the filter task) are trained again, each twice: with ``stop_on_pass`` and without,
the order alternating from child to child so that a drifting machine hurts both alike. Both
runs share the compiled programs (the switch is in the host loop), so the first run of a child
pays its compilation: the seconds compared are the training seconds, compilation left out. The
verdicts (pass or not) must agree; a child that fails the filter trains the same either way.

    python filter_stop.py --db quick.db [--children 20]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

from common import emit


def passing_jobs(st, cfg, limit: int) -> list[tuple[str, list]]:
    """(graph JSON, settings) of up to ``limit`` filter jobs of children that passed the filter."""
    from cellsearch.hparams import HParams

    outcomes = {o["step"]: o for o in st.steps_outcomes(st.finished_steps())}
    jobs: dict[int, tuple[str, list]] = {}
    for r in st.conn.execute("SELECT e.step, e.hparams, c.graph FROM evaluations e JOIN cells c ON c.hash = e.cell_hash "
                             "WHERE e.task = ? ORDER BY e.id", (cfg.filter_task,)):
        o = outcomes.get(r["step"])
        if o and o["kind"] == "child" and o["outcome"] not in ("filtered", "error"):
            jobs.setdefault(r["step"], (r["graph"], []))[1].append(HParams.from_dict(json.loads(r["hparams"])))
    return list(jobs.values())[:limit]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", required=True)
    ap.add_argument("--children", type=int, default=20)
    a = ap.parse_args()
    from cellsearch.cell.graph import from_json
    from cellsearch.nn.train import train_and_evaluate
    from cellsearch.search.results import stored_config
    from cellsearch.store.sqlite import Store
    from cellsearch.tasks import get_task, task_options

    with Store(a.db, write=False) as st:
        cfg = stored_config(st)
        jobs = passing_jobs(st, cfg, a.children)
    task = get_task(cfg.filter_task, task_options(cfg.filter_task, cfg.task_options.get(cfg.filter_task), cfg.data_dir))
    base = replace(cfg.train_config(cfg.filter_task), bar=cfg.filter_threshold)
    total = {True: [0.0, 0], False: [0.0, 0]}
    for i, (graph, settings) in enumerate(jobs):
        runs = {}
        for stop in ((True, False) if i % 2 == 0 else (False, True)):
            rs = train_and_evaluate(from_json(graph), task, settings, replace(base, stop_on_pass=stop))
            runs[stop] = (sum(r.wall_s - r.compile_s for r in rs), max(r.steps for r in rs),
                          max(r.score for r in rs) >= cfg.filter_threshold)
        assert runs[True][2] == runs[False][2], f"job {i}: the verdict changed"
        for stop, (s, steps, _) in runs.items():
            total[stop][0] += s
            total[stop][1] += steps
        emit({"job": i, "seconds_stop": round(runs[True][0], 2), "seconds_full": round(runs[False][0], 2),
              "steps_stop": runs[True][1], "steps_full": runs[False][1], "passed": runs[True][2]})
    (s1, n1), (s0, n0) = total[True], total[False]
    emit({"db": a.db, "jobs": len(jobs), "seconds_stop": round(s1, 1), "seconds_full": round(s0, 1),
          "saved": round(1 - s1 / s0, 3), "steps_saved": round(1 - n1 / n0, 3)})


if __name__ == "__main__":
    main()
