"""Cheap-first screening across children (asynchronous successive halving, ASHA; Li et al. 2020).

A search with a ladder (``SearchConfig.screen``) first trains every child that passes the filter
at a small fidelity: **rung** ``r`` trains ``settings`` settings per screened task (the parent's
best first, the carry-over) for ``share`` of each task's steps. Each rung's result is stored as an
evaluation of a task named ``"<task>@<steps>"`` (so it never mixes with the full evaluations, and a
resumed search reads it back). A child's **rung score** is the minimum over the screened tasks of
its best at that fidelity divided by the baseline's best at the same fidelity (the baseline trains
every rung in its seed step, on its own first settings).

**Promotion.** Children at a rung are ranked by their rung score against every other child at that
rung; a child earns the next rung when it is among the best ``floor(n / eta)`` of the ``n`` children
there (ties broken by the earlier step) and has not earned it yet. Before each step the search asks
:meth:`Ladder.promotion` (highest rung first, as ASHA): if a child is due, the step promotes it
instead of proposing a new one. Above the last screen rung is the **full evaluation**, the stages a
child has without a ladder (the first task, then the rest, ``settings_per_task`` settings at full
steps), so a score means what it always meant. With ``continue_rungs`` (the default) a
promoted child's next stage continues the settings of the rung it was promoted from, from their
training states kept in the store (:mod:`cellsearch.nn.resume`), in programs of the rung's member
count: they reach what training them from scratch in such a program would, without compiling the
cell's programs or training their first steps again (``benchmarks/README.md``, "Cheap-first
screening"). A child that is never promoted keeps its fate
``screened`` with its rung and its rank at the time (``cellsearch show``, ``top --all``, the report).

Decisions read only finished steps before the deciding step, so with one worker a search and its
resume after ``kill -9`` make the same decisions. A population search (``population > 1``) decides
a round's steps together from what finished before the round: its first steps make the promotions
due then (:meth:`Ladder.due`), in order, and the others propose children; a screened child's rank is
among the children screened before its round. A round then makes the same decisions when a
resumed search runs its other steps. There a promoted child trains its next stage from scratch
(:attr:`~cellsearch.search.config.SearchConfig.continues`). This module imports nothing from JAX.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from cellsearch.search.config import SearchConfig
from cellsearch.store.sqlite import Store


class Rung(NamedTuple):
    """One screen rung: its index, settings per task, and steps per screened task."""

    index: int
    settings: int
    steps: dict[str, int]

    def task(self, task: str) -> str:
        """The name its evaluations on ``task`` are stored under, e.g. ``arithmetic@300``."""
        return f"{task}@{self.steps[task]}"


def rung_steps(cfg: SearchConfig, task: str, share: float) -> int:
    """``share`` of the task's steps, rounded up to a validation point (so the curve of a full run
    has a point there too)."""
    tc = cfg.train_config(task)
    every = tc.validation_every
    return min(tc.steps, max(every, math.ceil(share * tc.steps / every) * every))


class Ladder:
    """The screen rungs of a search, its children's standings, and the next promotion."""

    def __init__(self, cfg: SearchConfig, store: Store, baseline: str):
        self.cfg, self.store, self.baseline = cfg, store, baseline
        self.tasks = cfg.tasks[:cfg.screen_tasks] if cfg.screen_tasks else cfg.tasks
        self.rungs = [Rung(i, n, {t: rung_steps(cfg, t, share) for t in self.tasks})
                      for i, (share, n) in enumerate(cfg.screen)]
        self.busy: set[tuple[str, int]] = set()  # (cell, rung) being promoted by a live step

    @property
    def top(self) -> int:
        """The index of the full evaluation (one above the last screen rung)."""
        return len(self.rungs)

    def score(self, cell: str, r: int) -> float:
        """The cell's rung-``r`` score: min over the screened tasks of its best at the rung over the
        baseline's (0 where every setting diverged)."""
        rung = self.rungs[r]
        ratios = []
        for t in self.tasks:
            mine, base = self.store.best(cell, rung.task(t)), self.store.best(self.baseline, rung.task(t))
            ratios.append(0.0 if not mine or not base else mine / base)
        return min(ratios)

    def standings(self, r: int, before_step: int) -> list[dict]:
        """The children screened at rung ``r`` by steps before ``before_step``, best first: each
        ``{"cell", "score", "step", "promoted"}`` (``promoted``: it has earned rung ``r + 1``)."""
        rows = [s for s in self.store.steps_rows() if s["step"] < before_step]
        at = {s["cell_hash"]: s for s in rows if s["outcome"] == "screened" and s["detail"].get("rung") == r}
        up = {s["cell_hash"] for s in rows if s["kind"] == "promote" and s["detail"].get("promoted_from") == r}
        out = [{"cell": c, "score": s["detail"]["rung_score"], "step": s["step"], "promoted": c in up}
               for c, s in at.items()]
        return sorted(out, key=lambda d: (-d["score"], d["step"]))

    def rank(self, score: float, r: int, step: int) -> tuple[int, int]:
        """``(rank, n)``: where a child screened at rung ``r`` by ``step`` with ``score`` stands (1 =
        best) among the ``n`` children at that rung, itself included."""
        table = self.standings(r, step)
        return 1 + sum(d["score"] >= score for d in table), len(table) + 1

    def due(self, before_step: int) -> list[tuple[str, int]]:
        """Every promotion due by the steps before ``before_step``, in the order they are made:
        the highest rung first, at each rung its best unpromoted children among the best
        ``floor(n / eta)``; each ``(cell, the rung it earns)`` (the full evaluation is :attr:`top`)."""
        out = []
        for r in reversed(range(len(self.rungs))):
            table = self.standings(r, before_step)
            out += [(d["cell"], r + 1) for d in table[: len(table) // self.cfg.eta] if not d["promoted"]]
        return out

    def promotion(self, before_step: int) -> tuple[str, int] | None:
        """The promotion a step starting now makes (the first of :meth:`due` that no live step is
        making), or ``None``."""
        return next((p for p in self.due(before_step) if p not in self.busy), None)
