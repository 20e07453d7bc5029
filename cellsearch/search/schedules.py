"""When steps start and how their jobs travel: the two schedules of one search driver.

The driver (:func:`cellsearch.search.driver.drive`) runs steps (:meth:`cellsearch.search.steps.Search.step`)
under a schedule that answers four questions: which step starts next (:meth:`next`, which
also says why the search stops), whether jobs wait for a whole wave (:attr:`batched`), how
pending jobs become executor payloads (:meth:`bundles`) and which jobs a payload held
(:meth:`members`).

- :class:`PerCell` (``population = 1``): up to ``workers`` steps in flight, a new one starting
  as one finishes; each job is sent alone as soon as it exists and its results go back to its
  step at once. The seed steps finish before any child starts (children are scored against the
  baseline); a child starts only while the children done and in flight are fewer than
  ``candidates``; after that, the steps that promote screened children
  (:mod:`cellsearch.search.ladder`) still run, one at a time, until none is due.
- :class:`Rounds` (``population = P > 1``): steps run in rounds (:func:`rounds`); the steps of a
  round start together, in step order, so each proposes from the pool as the previous round left
  it (a generation). A round's jobs that share a task travel as one population job
  (:func:`cellsearch.search.executors.run_population_job`), and results go back to the steps in step
  order once the whole wave is back. Scored children enter the pool at the round's end, in step
  order, in one transaction with the round's mark (:func:`admit`). A round starts only while
  fewer than ``candidates`` children are done or a screened child is due for promotion, and
  runs only the steps that can still count: the promotions due when it opens (its first steps,
  :meth:`cellsearch.search.steps.Search.promotions_due`), then at most the children still to do.
  Jobs share a program when they share the task, the rung and the schedule (a child's bars are
  its lineage's, so two children of one round may not).

Exact resume under :class:`Rounds`: a killed round leaves its finished steps and their
evaluations stored and the pool unchanged; the resumed search runs the round's other steps,
which propose from the same pool and draw from the same per-step generators, then admits the
round's children in the same order. Its programs have the same shape as the uninterrupted
round's, because XLA's rounding depends on it: the member count is the most the round can send
(:meth:`Rounds.pad`) and the size class and hidden size cover every cell of the round, the
finished steps' included (the ``cover``).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from cellsearch.store.sqlite import Store

if TYPE_CHECKING:
    from cellsearch.search.steps import Search


def stop_reason(store: Store, target: int | None) -> str:
    """Why a search that ran all its steps stopped: its budget if the children it had to
    evaluate are done, else its step cap (most proposals were duplicates)."""
    return "budget" if target is not None and store.children_done() >= target else "step cap"


def rounds(n_init: int, population: int, max_steps: int):
    """The rounds of a population search: the seed steps, then ``population`` steps each.

    Round 0 holds the seed steps; round ``r >= 1`` holds steps ``n_init + (r-1)P`` to
    ``n_init + rP - 1``."""
    yield 0, range(n_init)
    r, k = 1, n_init
    while k < max_steps:
        yield r, range(k, min(k + population, max_steps))
        r, k = r + 1, k + population


def round_start(n_init: int, population: int, k: int) -> int:
    """The first step of the round that holds step ``k`` (:func:`rounds`)."""
    return 0 if k < n_init else n_init + (k - n_init) // population * population


def admit(store: Store, search: Search, r: int, steps) -> None:
    """Admits the scored children of round ``r`` in step order, each decision seeing the
    pool as the earlier ones left it, all in one transaction with the round's mark."""
    with store.tx():  # the view reads the pool through the same connection: it sees each change
        for o in store.steps_outcomes(steps):
            if o["kind"] in ("child", "promote") and o["outcome"] == "scored":
                add, remove = search.admit(o["cell"], o["detail"]["score"], o["detail"].get("parent"))
                store.change_pool(o["step"], add, remove)
        store.close_round(r)


class PerCell:
    """``population = 1``: steps one per worker, each job alone (see the module docstring)."""

    batched = False

    def __init__(self, search: Search, workers: int, deadline: float, max_steps: int):
        self.search, self.workers, self.deadline, self.max_steps = search, workers, deadline, max_steps
        self.finished = search.store.finished_steps()  # when the run began: a resumed search skips them
        self.next_k = 0
        self.baseline_checked = False
        self.reason: str | None = None

    def _can_start(self, live: set[int]) -> bool:
        s, target = self.search, self.search.cfg.candidates
        if time.perf_counter() > self.deadline or self.next_k >= self.max_steps:
            return False
        if target is None or self.next_k < s.n_init:
            return True
        if any(k < s.n_init for k in live):  # the seed steps finish before children are scored
            return False
        if s.store.children_done() + len([k for k in live if k >= s.n_init]) < target:
            return True
        # every child is proposed: the screened children due for promotion still get their steps,
        # one at a time, so the search ends with its best children fully evaluated
        return not live and s.promotion_pending(self.next_k)

    def next(self, live: set[int]) -> int | None:
        s = self.search
        if not self.baseline_checked and not any(k < s.n_init for k in live):
            done = s.store.finished_steps()
            if all(k in done for k in range(s.n_init)):
                s.check_baseline()  # stops the search if the baseline has no usable result
                self.baseline_checked = True
        if len(live) < self.workers and self._can_start(live):
            while self.next_k in self.finished:
                self.next_k += 1
            if self._can_start(live):
                self.next_k += 1
                return self.next_k - 1
        if not live:
            self.reason = "time" if time.perf_counter() > self.deadline else \
                stop_reason(s.store, s.cfg.candidates) if self.next_k >= self.max_steps else "budget"
        return None

    def bundles(self, jobs: dict[int, dict]) -> list[tuple[list[int], dict]]:
        return [([k], jobs.pop(k)) for k in sorted(jobs)]

    def members(self, payload: dict) -> list[dict]:
        return [payload]

    def unpack(self, results: list) -> list[list[dict]]:
        return [results]


class Rounds:
    """``population = P > 1``: steps in rounds, a round's jobs evaluated together (see the
    module docstring)."""

    batched = True

    def __init__(self, search: Search, deadline: float, max_steps: int):
        self.search, self.deadline = search, deadline
        self._rounds = rounds(search.n_init, search.cfg.population, max_steps)
        self.r: int | None = None  # the open round
        self.steps: range = range(0)
        self.queue: list[int] = []  # its steps still to start
        self.finished_at_open: set[int] = set()
        self.cover: list[str] | None = None
        self.reason: str | None = None

    def pad(self, job: dict) -> int:
        """A round's programs have a fixed member count (the most its steps can send of such a
        job: a filter, a screen rung's or a full evaluation's), so a resumed round, which sends
        fewer, computes the same numbers."""
        cfg = self.search.cfg
        if self.r == 0:
            return self.search.n_init * cfg.init_settings
        if job["task"] == cfg.filter_task:
            return cfg.population * cfg.filter_settings
        if "store_as" in job:  # a screen rung: its settings per cell (stage_train)
            return cfg.population * job["train"]["members"]
        return cfg.population * cfg.settings_per_task

    def next(self, live: set[int]) -> int | None:
        if self.queue:
            return self.queue.pop(0)
        while not live and self.reason is None:
            if self.r is not None and not self._close():
                return None
            self._open()
            if self.queue:
                return self.queue.pop(0)
        return None

    def _close(self) -> bool:
        """Ends the open round: checks the baseline after round 0, admits a later round's
        children. ``False`` (and the reason) when a step of it was abandoned: the round stays
        open for a resumed search."""
        s = self.search
        done = s.store.finished_steps()
        if any(k not in done for k in self.steps):
            self.reason = "abandoned"
            return False
        if self.r == 0:
            s.check_baseline()
        else:
            admit(s.store, s, self.r, self.steps)
        return True

    def _open(self) -> None:
        """Opens the next round that can still count (sets the reason when none can)."""
        s, target = self.search, self.search.cfg.candidates
        for r, steps in self._rounds:
            if r >= 1:
                if r < s.store.rounds_committed():
                    continue  # a closed round: its pool changes are applied
                if time.perf_counter() > self.deadline:
                    self.reason = "time"
                    return
                before = s.store.children_done(before_step=steps[0])
                if target is not None:
                    # the round's first steps make the promotions due (they add no child), the
                    # others propose children while the target is not reached
                    due = min(len(steps), s.promotions_due(steps[0]))
                    if before >= target and not due:
                        self.reason = "budget"
                        return
                    steps = range(steps[0], min(steps[-1] + 1, steps[0] + due + max(0, target - before)))
            finished = s.store.finished_steps()
            self.r, self.steps, self.cover = r, steps, None
            self.finished_at_open = {k for k in steps if k in finished}
            self.queue = [k for k in steps if k not in finished]
            return
        self.reason = stop_reason(s.store, target)

    def bundles(self, jobs: dict[int, dict]) -> list[tuple[list[int], dict]]:
        s = self.search
        if self.cover is None:  # every program of the round covers all its cells (size class, hidden size)
            self.cover = sorted(set(s.store.graphs_evaluated(iter(sorted(self.finished_at_open))))
                                | {j["graph"] for j in jobs.values()})
        groups: dict[tuple, list[int]] = {}  # jobs that can share a program: task, rung, schedule, options
        for k in sorted(jobs):
            j = jobs[k]
            key = (j["task"], j.get("store_as"), json.dumps([j["train"], j["task_options"]], sort_keys=True))
            groups.setdefault(key, []).append(k)
        out = []
        for (t, _, _), ks in groups.items():
            members = self.pad(jobs[ks[0]])
            out.append((ks, {"population": [jobs.pop(k) for k in ks], "members": members,
                             "cover": {"graphs": self.cover, "budgets": list(s.cfg.hparam_space(t).param_budget)}}))
        return out

    def members(self, payload: dict) -> list[dict]:
        return payload["population"]

    def unpack(self, results: list) -> list[list[dict]]:
        return results
