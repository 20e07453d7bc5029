"""Where a search's time goes: the cost of a step by its outcome, stage by stage, from a store.

For each finished step (a scored child, a filtered one, one stopped at the hurdle, a
re-evaluation, a seed) it sums the wall and compile seconds of the evaluations the step ran
(``wall_s`` and ``compile_s`` as stored per setting; a job's settings share one program, so
their sum is the job's time), and prints per outcome: how many, seconds per step (mean),
the compile share and each task's seconds, and the share of the search's training time.
Then, from the filter's stored curves, the training steps the filter's jobs ran against the
steps two "stop on success" rules would have left (the filter is pass/fail, so training past
the threshold cannot change a verdict): each setting stopping at the first validation point
where its best reaches the threshold (a job runs until its last setting stops), and the
whole job stopping as soon as any of its settings does (the child has passed).

    python child_cost.py --db quick.db [--db other.db ...]

One worker (the default) runs steps one after the other, so these seconds add up to the
search's time less the driver's own (proposals, the probe, the store).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

from common import table


def step_costs(st) -> list[dict]:
    """One row per finished step of the open store ``st``: its outcome and seconds per task."""
    steps = {r["step"]: r for r in st.conn.execute("SELECT step, kind, outcome FROM steps")}
    per = defaultdict(lambda: defaultdict(lambda: [0.0, 0.0]))
    for step, task, wall, comp in st.conn.execute("SELECT step, task, wall_s, compile_s FROM evaluations"):
        per[step][task][0] += wall
        per[step][task][1] += comp
    rows = []
    for k, s in sorted(steps.items()):
        outcome = s["outcome"] if s["kind"] == "child" else s["kind"]
        tasks = per.get(k, {})
        rows.append({"step": k, "outcome": outcome, "wall": sum(v[0] for v in tasks.values()),
                     "compile": sum(v[1] for v in tasks.values()), "tasks": {t: v[0] for t, v in tasks.items()}})
    return rows


def filter_steps(st, cfg) -> tuple[int, int, int, int]:
    """(jobs, program steps the filter's jobs ran, steps with each setting stopping at the
    threshold, steps with the job stopping at its first setting to reach it), from the curves
    stored in ``st`` under the search's settings ``cfg``; a job is the settings one step trained
    on the filter task together. A diverged setting counts the steps up to the validation point
    after its last one (the store keeps its curve, not the step it diverged at), so the steps
    ran are an upper bound."""
    threshold, every, steps = cfg.filter_threshold, cfg.filter_train.validation_every, cfg.filter_train.steps
    jobs = defaultdict(list)
    for step, metrics, status in st.conn.execute("SELECT step, metrics, status FROM evaluations WHERE task=?",
                                                 (cfg.filter_task,)):
        jobs[step].append({**json.loads(metrics), "diverged": status == "diverged"})
    ran = each = first = 0
    for ms in jobs.values():
        now, reached = [], []
        for m in ms:
            curve = m.get("curve") or []
            # where it stopped: a rung, else a divergence (by the next validation point), else the end
            stopped = "stopped_at" in m or m["diverged"]
            now.append(min((len(curve) + m["diverged"]) * every, steps) if stopped else steps)
            best, at = 0.0, None
            for i, v in enumerate(curve):
                best = max(best, v)
                if best >= threshold and (i + 1) * every < steps:
                    at = (i + 1) * every
                    break
            reached.append(at)
        ran += max(now)
        each += max(a if a is not None else n for a, n in zip(reached, now, strict=True))
        hits = [a for a in reached if a is not None]
        first += min(hits) if hits else max(now)
    return len(jobs), ran, each, first


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", action="append", required=True)
    a = ap.parse_args()
    from cellsearch.search.results import stored_config
    from cellsearch.store.sqlite import Store

    for db in a.db:
        with Store(db, write=False) as st:
            cfg = stored_config(st)
            rows, (n, ran, each, first) = step_costs(st), filter_steps(st, cfg)
        total = sum(r["wall"] for r in rows) or 1.0
        groups = defaultdict(list)
        for r in rows:
            groups[r["outcome"]].append(r)
        tasks = [cfg.filter_task, *cfg.tasks]
        out = []
        for name, rs in sorted(groups.items(), key=lambda kv: -sum(r["wall"] for r in kv[1])):
            w = sum(r["wall"] for r in rs)
            row = {"outcome": name, "steps": len(rs), "s per step": round(w / len(rs), 1),
                   "compile share": f"{sum(r['compile'] for r in rs) / (w or 1):.0%}",
                   "share of time": f"{w / total:.0%}"}
            for t in tasks:
                row[f"{t} s"] = round(sum(r["tasks"].get(t, 0.0) for r in rs) / len(rs), 1)
            out.append(row)
        print(f"\n{db}: {total:.0f} s of evaluations")
        print(table(out, list(out[0])))
        if ran:
            print(f"filter: {n} jobs ran {ran} program steps; stopping each setting at the threshold would "
                  f"leave {each} ({1 - each / ran:.0%} fewer), stopping a job at its first setting there "
                  f"{first} ({1 - first / ran:.0%} fewer)")


if __name__ == "__main__":
    main()
