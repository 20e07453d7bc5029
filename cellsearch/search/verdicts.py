"""From paired confirmation runs to a verdict: the mean ratio to the baseline, its 95 % interval,
better / tie / worse / unstable per task, and the verdict over tasks.

Per cell and task: the ratio to the baseline of each seed pair, their mean, and a 95 % interval
(Student's t over the pairs, :func:`interval`). **Verdict** (:func:`verdict`): ``better`` if
the interval lies above 1, ``worse`` if below, else ``tie``; a cell's verdict over tasks is
``worse`` if any task is worse, ``better`` if every task is better, else ``tie``; its confirmed
score is the minimum over tasks of the mean ratio, as the search's score is a minimum. A seed
whose baseline run diverged (score 0) has no ratio and is left out (and counted).

A seed on which the **cell** failed (diverged, or crashed) while the baseline trained counts as
ratio 0 in the mean (the mean is what the cell delivers at that setting), and the task's verdict
is ``unstable`` whatever the interval says: an interval over a mix of zeros and ratios near 1 is
wide enough to call almost anything a tie, and a cell that diverges at its own best setting on
fresh seeds is not as good as the baseline there (``benchmarks/README.md``, "Confirmation").
Over tasks, ``worse`` outranks ``unstable``, which outranks ``tie`` and ``better``.

A cell confirmed at **several settings** per task (``confirm --settings N``) is judged at the
one whose seeds gave the best mean (:func:`chosen_runs`), and so is the baseline: a search
ranks a cell by the best of the few settings it drew, and one setting alone confirms the luck
of that draw as much as the cell (``benchmarks/README.md``, "Confirmation").
"""

from __future__ import annotations

import json
import math
import statistics

from cellsearch.hparams import point_key

# two-sided 95 % quantiles of Student's t by degrees of freedom (1.96 beyond 30)
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def interval(ratios: list[float]) -> tuple[float, float, float]:
    """Mean and 95 % interval (Student's t) of paired ratios; a single pair has an infinite one.

    >>> m, lo, hi = interval([1.0, 1.1, 0.9]); round(m, 3), round(lo, 3), round(hi, 3)
    (1.0, 0.752, 1.248)
    """
    n = len(ratios)
    if n == 0:
        return math.nan, math.nan, math.nan
    m = statistics.fmean(ratios)
    if n == 1:
        return m, -math.inf, math.inf
    t = _T975[n - 2] if n - 1 <= len(_T975) else 1.96
    half = t * statistics.stdev(ratios) / math.sqrt(n)
    return m, m - half, m + half


def verdict(lo: float, hi: float) -> str:
    """``better`` if the interval lies above 1, ``worse`` if below, else ``tie``."""
    return "better" if lo > 1.0 else "worse" if hi < 1.0 else "tie"


def overall(verdicts: list[str]) -> str:
    """A cell's verdict over its tasks: worse if any is worse, else unstable if any is, better
    if all are better, else tie."""
    for v in ("worse", "unstable"):
        if v in verdicts:
            return v
    return "better" if verdicts and all(v == "better" for v in verdicts) else "tie"


def chosen_runs(runs: list[dict]) -> tuple[dict[tuple, dict], dict[tuple, dict]]:
    """Each (cell, task)'s runs at the setting it is confirmed at, keyed ``(cell, task, seed)``,
    and per (cell, task) that setting (``hparams`` without the seed) and how many were run.

    A cell confirmed at one setting per task (``confirm --settings 1``, the default) has one
    choice. Confirmed at several, it is judged at the one with the most seeds run and, among
    those, the best mean score over the seeds (a failed run counts 0): what the cell delivers at
    the best of its settings. The baseline chooses the same way on the same seeds, so both sides
    of a pair are a best of the same number of settings (the choice is made on the confirmation
    seeds themselves, which favours both a little, not one of them). Equal means keep the setting
    run first, the better at search time."""
    groups: dict[tuple, dict[str, dict[int, dict]]] = {}
    for r in runs:
        groups.setdefault((r["cell_hash"], r["task"]), {}).setdefault(point_key(r["hparams"]), {})[r["seed"]] = r

    def mean(by_seed: dict[int, dict]) -> float:
        return statistics.fmean(r["score"] if r["status"] == "ok" else 0.0 for r in by_seed.values())

    by, setting = {}, {}
    for (cell, task), per in groups.items():
        key = max(per, key=lambda k: (len(per[k]), mean(per[k])))  # max keeps the first of equals
        for s, r in per[key].items():
            by[(cell, task, s)] = r
        setting[(cell, task)] = {"hparams": json.loads(key), "settings": len(per)}
    return by, setting


def summary(runs: list[dict], baseline: str, tasks: tuple[str, ...]) -> dict[str, dict]:
    """Per confirmed cell: ``tasks`` (per task: mean, lo, hi, pairs, left_out, failed, verdict,
    the ``setting`` it was judged at and how many ``settings`` were run, :func:`chosen_runs`),
    ``score`` (min over tasks of the mean ratio) and ``verdict`` over tasks."""
    steps = max((r["steps"] for r in runs), default=None)
    by, setting = chosen_runs([r for r in runs if r["steps"] == steps])
    out: dict[str, dict] = {}
    for cell in dict.fromkeys(r["cell_hash"] for r in runs if r["cell_hash"] != baseline):
        per = {}
        for t in tasks:
            seeds = sorted(s for c, tt, s in by if c == cell and tt == t)
            pairs, left, failed = [], 0, 0
            for s in seeds:
                b = by.get((baseline, t, s))
                if b is None:
                    continue
                if b["score"] <= 0 or b["status"] != "ok":
                    left += 1
                    continue
                mine = by[(cell, t, s)]
                failed += mine["status"] != "ok"
                pairs.append((mine["score"] if mine["status"] == "ok" else 0.0) / b["score"])
            m, lo, hi = interval(pairs)
            v = "unstable" if failed else verdict(lo, hi) if pairs else "tie"
            chosen = setting.get((cell, t), {"hparams": None, "settings": 0})
            per[t] = {"mean": m, "lo": lo, "hi": hi, "pairs": len(pairs), "left_out": left, "failed": failed,
                      "verdict": v, "setting": chosen["hparams"], "settings": chosen["settings"]}
        if all(p["pairs"] for p in per.values()):
            out[cell] = {"tasks": per, "score": min(p["mean"] for p in per.values()),
                         "verdict": overall([p["verdict"] for p in per.values()]), "steps": steps}
    return out
