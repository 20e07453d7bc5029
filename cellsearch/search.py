"""The search (Jozefowicz et al. §3.1-3.2): pool, staged evaluation, resume.

One step of the search either re-evaluates a pool member on new settings, or proposes a
child (strategy in :mod:`cellsearch.strategies`) and evaluates it in stages:

1. **dedup**: a child whose structural or functional hash is already in the store is
   recorded as a ``duplicate`` and not trained;
2. **filter**: memorisation (§3.3), best of ``filter_settings`` settings of the filter grid;
   below ``filter_threshold`` (95 %) the child is ``filtered``;
3. **hurdle**: the first task with ``settings_per_task`` settings (the parent's best
   ``carry_over`` settings among them, §3.2 [S1]); below ``hurdle`` (90 %) of the
   *baseline's* best the child stops (``hurdle``);
4. **all tasks**: the rest, then ``score = min over tasks of best(cell) / best(GRU)``
   (:mod:`cellsearch.results`) and the strategy decides whether it enters the pool.

A stage whose every setting crashed makes the child ``error`` (with the message), never a
score. The first steps evaluate the pool seeds and the baseline on every task with
``init_settings`` settings; if the baseline then has no usable result on a task (every
setting crashed or diverged), the search stops with :class:`~cellsearch.errors.SearchStopped`.

Each step draws every random number from ``numpy.random.default_rng([seed, step])``, so a
search is reproducible with one worker and a resumed step proposes the same child;
evaluations already in the store are read back, never repeated. Steps are generators that
yield evaluation jobs, so ``workers`` steps can be in flight while the driver alone writes
the store. A job lost to its worker (a process that died, a Ray task lost) is retried
``retries`` times; if it is still lost, its step is left unfinished (nothing stored), and
a resumed search runs it again.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from cellsearch.canon import structural_hash
from cellsearch.config import DEFAULT_DB, SearchConfig
from cellsearch.errors import ConfigError, MutationFailed, SearchStopped
from cellsearch.graph import from_json, to_json
from cellsearch.hparams import HParams, seeded
from cellsearch.mutate import mutate_live
from cellsearch.results import MIN_BASELINE, Scores, SearchSummary, best_score, ratio, summarize
from cellsearch.spaces import load_space
from cellsearch.storage import Store, open_search_store
from cellsearch.strategies import PoolView, make_strategy
from cellsearch.tasks import get_task, task_options


def filter_settings(cfg: SearchConfig, rng: np.random.Generator) -> list[HParams]:
    """The memorisation filter's settings: ``filter_settings`` different points of the filter
    grid, with their initialisation seeds derived from the search seed."""
    return [seeded(h, cfg.seed) for h in cfg.filter_hparams.sample_distinct(rng, cfg.filter_settings)]


def check_tasks(cfg: SearchConfig) -> None:
    """Builds every task once, so a missing data file or a bad task option stops the search
    before it starts (with the message saying what to fix) instead of failing evaluations."""
    for t in (cfg.filter_task, *cfg.tasks):
        get_task(t, task_options(t, cfg.task_options.get(t), cfg.data_dir))


def _liveness(cfg: SearchConfig) -> Callable:
    """The liveness probe at the filter's first initialisation scale and parameter budget."""
    from cellsearch.probe import ProbeConfig, liveness

    h = cfg.filter_hparams
    pc = ProbeConfig(budget=h.param_budget[0], init_scale=min(h.init_scale), seed=cfg.seed)
    return lambda g: liveness(g, pc)


@dataclass
class Outcome:
    kind: str
    cell: str | None
    outcome: str
    detail: dict = field(default_factory=dict)
    status: tuple[str, float | None] | None = None
    pool_add: list[str] = field(default_factory=list)
    pool_remove: list[str] = field(default_factory=list)


class Search:
    """A search bound to a store; :meth:`step` builds the generator of step ``k``."""

    def __init__(self, config: SearchConfig, store: Store):
        self.cfg, self.store = config, store
        self.space = load_space(config.space)
        self.strategy = make_strategy(config)
        names = list(dict.fromkeys([*self.space.pool_seeds, self.space.baseline]))
        self.seed_graphs = {n: self.space.seed(n) for n in names}
        self.seed_hashes = [structural_hash(self.seed_graphs[n]) for n in self.space.pool_seeds]
        self.baseline = structural_hash(self.seed_graphs[self.space.baseline])
        self.n_init = len(names)
        self.view = PoolView(store, lambda: Scores(store, config), self.seed_hashes)
        self.defer_admit = config.population > 1  # rounds admit their children at the round's end
        self.probe = _liveness(config) if config.probe else None

    def score(self, cell_hash: str) -> float | None:
        """The cell's score (:mod:`cellsearch.results`); ``None`` if a task has no result."""
        ratios = [ratio(self.store.best(cell_hash, t), self.store.best(self.baseline, t)) for t in self.cfg.tasks]
        return None if any(r is None for r in ratios) else min(ratios)

    def baseline_bar(self, task: str, n: int) -> float:
        """What the hurdle compares a child with: the baseline's best over its **first** ``n``
        settings on ``task`` (those of its seed step, in the order they were stored; a
        diverged setting counts 0), as a child's best is over its ``n`` settings. The
        baseline's overall best is not used: it is a best over more settings, and it rises
        each time the baseline is re-evaluated as a pool member, so a child's fate would
        depend on when it was proposed."""
        ev = self.store.evaluations(self.baseline, task)[:n]
        return max((e["score"] for e in ev if e["status"] == "ok"), default=0.0)

    def admit(self, cell_hash: str, score: float) -> tuple[list[str], list[str]]:
        """The strategy's pool change for a scored child; a child below the pool's floor (the
        hurdle, as a ratio to the baseline) never enters, even while the pool is not full."""
        if not score >= self.cfg.hurdle:
            return [], []
        return self.strategy.admit(self.view, cell_hash, score)

    def check_baseline(self) -> None:
        """Raises :class:`SearchStopped` if the baseline has no usable result on a task."""
        name = self.space.baseline
        for t in self.cfg.tasks:
            st = self.store.statuses(self.baseline, t)
            best = self.store.best(self.baseline, t)
            if not st or (best is not None and best >= MIN_BASELINE):
                continue
            n = sum(st.values())
            if best is None:
                why = f"all {n} of its settings crashed ({self.store.first_error(self.baseline, t)})"
            elif st.get("diverged", 0) == n - st.get("error", 0):
                why = f"all {n} of its settings diverged or crashed"
            else:
                why = f"its best score is {best:.3g}"
            raise SearchStopped(f"the baseline {name} failed on task {t!r}: {why}; no score relative to it would "
                                "mean anything, so the search stopped (everything stored is kept). Try milder "
                                "settings for this task (lower learning rates, fewer steps) with another --db")

    # -- jobs ------------------------------------------------------------------------------------

    def _settings(self, cell_hash: str, task: str, n: int, rng, step: int, carry: list[HParams] = ()) -> list[HParams]:
        """``n`` settings not evaluated for this cell and task by an earlier step: ``carry``
        first, then random grid points. A setting's seed is derived from its grid point, so
        it is stable; a resumed step chooses exactly the settings it chose before."""
        space = self.cfg.hparam_space(task)
        done = self.store.done_keys(cell_hash, task, before_step=step)
        out: list[HParams] = []
        for h in carry:
            if h.key() not in done and h not in out and len(out) < n:
                out.append(h)
        for _ in range(50 * n):
            if len(out) >= n:
                break
            (h,) = space.sample(rng, 1)
            h = seeded(h, self.cfg.seed)
            if h.key() not in done and h not in out:
                out.append(h)
        return out

    def _job(self, cell_hash: str, graph_json: str, task: str, settings: list[HParams], step: int) -> dict:
        return {"graph": graph_json, "task": task,
                "task_options": task_options(task, self.cfg.task_options.get(task), self.cfg.data_dir),
                "settings": [asdict(h) for h in settings], "train": asdict(self.cfg.train_config(task)),
                "cell": cell_hash, "step": step}

    def _evaluate(self, cell_hash, graph_json, task, settings, step) -> Generator[dict, list[dict], tuple]:
        """Yields the job for the settings not in the store; returns (best, error message or
        ``None``): an error when no setting of the cell on this task finished."""
        done = self.store.done_keys(cell_hash, task)
        todo = [h for h in settings if h.key() not in done]
        if todo:
            yield self._job(cell_hash, graph_json, task, todo, step)
        best = self.store.best(cell_hash, task)
        if best is None:
            return None, self.store.first_error(cell_hash, task) or "no setting was evaluated"
        return best, None

    def _best_settings(self, cell_hash: str, task: str, k: int) -> list[HParams]:
        ev = [e for e in self.store.evaluations(cell_hash, task) if e["status"] == "ok"]
        ev.sort(key=lambda e: -e["score"])
        return [HParams(**e["hparams"]) for e in ev[:k]]

    # -- steps -----------------------------------------------------------------------------------

    def step(self, k: int) -> Generator[dict, list[dict], Outcome]:
        rng = np.random.default_rng([self.cfg.seed, k])
        if k < self.n_init:
            return (yield from self._seed_step(k, rng))
        proposal = self.strategy.propose(self.view, rng)
        if proposal[0] == "reeval":
            return (yield from self._reeval_step(k, proposal[1], rng))
        return (yield from self._child_step(k, proposal[1], proposal[2], rng))

    def _seed_step(self, k, rng):
        from cellsearch.dedup import functional_hash

        name = list(self.seed_graphs)[k]
        g = self.seed_graphs[name]
        h, js = structural_hash(g), to_json(g, None)
        self.store.add_cell(h, js, functional_hash=functional_hash(g), parent=None, edits=[], origin=f"seed:{name}",
                            status="seed", step=k)
        for t in self.cfg.tasks:
            yield from self._evaluate(h, js, t, self._settings(h, t, self.cfg.init_settings, rng, k), k)
        add = [h] if h in self.seed_hashes else []
        return Outcome("seed", h, "seeded", {"name": name}, ("seed", None), pool_add=add)

    def _reeval_step(self, k, h, rng):
        row = self.store.cell(h)
        for t in self.cfg.tasks:
            yield from self._evaluate(h, row["graph"], t, self._settings(h, t, self.cfg.settings_per_task, rng, k), k)
        score = self.score(h)
        return Outcome("reeval", h, "reevaluated", {"score": score}, (row["status"], score))

    def _child_step(self, k, parent_hash, n_mut, rng):
        from cellsearch.dedup import functional_hash

        parent = from_json(self.store.cell(parent_hash)["graph"])
        try:
            child, applied, dead = mutate_live(parent, rng=rng, space=self.space, accept=self.probe, walk=n_mut,
                                               max_rate=self.cfg.mutation_rate, edits=self.cfg.edits)
        except MutationFailed as e:
            return Outcome("child", None, "mutation_failed", {"parent": parent_hash, "error": str(e)})
        edits = [x.to_dict() for x in applied]
        h, js = structural_hash(child), to_json(child, None)
        dead_kinds = {}
        for why in dead:
            kind = why.split(":")[0]
            dead_kinds[kind] = dead_kinds.get(kind, 0) + 1
        me = {"parent": parent_hash, **({"probe_rejected": dead_kinds} if dead_kinds else {})}
        mine = self.store.cells("hash=? AND step=?", (h, k))  # our own row from before a crash
        if self.store.has_structure(h) and not mine:
            return Outcome("child", h, "duplicate", {**me, "layer": "structural"})
        fh = functional_hash(child)
        twin = self.store.functional_twin(fh)
        if twin is not None and twin != h:
            self.store.add_cell(h, js, functional_hash=fh, parent=parent_hash, edits=edits, origin="mutation",
                                status="duplicate", step=k)
            return Outcome("child", h, "duplicate", {**me, "layer": "functional", "twin": twin})
        self.store.add_cell(h, js, functional_hash=fh, parent=parent_hash, edits=edits, origin="mutation",
                            status="candidate", step=k)

        def failed(stage: str, msg: str) -> Outcome:
            return Outcome("child", h, "error", {**me, "stage": stage, "error": msg}, ("error", None))

        # stage 1: memorisation filter (§3.3)
        ft = self.cfg.filter_task
        best, err = yield from self._evaluate(h, js, ft, filter_settings(self.cfg, rng), k)
        if err:
            return failed(ft, err)
        if best < self.cfg.filter_threshold:
            return Outcome("child", h, "filtered", {**me, "filter": best}, ("filtered", None))
        # stage 2: the first task must reach hurdle x the baseline's best (§3.2)
        first, rest = self.cfg.tasks[0], self.cfg.tasks[1:]
        carry = self._best_settings(parent_hash, first, self.cfg.carry_over)
        best, err = yield from self._evaluate(h, js, first, self._settings(h, first, self.cfg.settings_per_task, rng,
                                                                          k, carry), k)
        if err:
            return failed(first, err)
        base = self.baseline_bar(first, self.cfg.settings_per_task)
        if best < self.cfg.hurdle * base:
            return Outcome("child", h, "hurdle", {**me, "first": best, "baseline": base},
                           ("hurdle", None))
        # stage 3: every other task, then the score
        for t in rest:
            carry = self._best_settings(parent_hash, t, self.cfg.carry_over)
            _, err = yield from self._evaluate(h, js, t, self._settings(h, t, self.cfg.settings_per_task, rng, k,
                                                                         carry), k)
            if err:
                return failed(t, err)
        score = self.score(h)
        if score is None:  # cannot happen once the baseline is checked; never store a made-up score
            return failed("score", "no score relative to the baseline")
        if self.defer_admit:
            return Outcome("child", h, "scored", {**me, "score": score}, ("scored", score))
        add, remove = self.admit(h, score)
        return Outcome("child", h, "scored", {**me, "score": score, "pooled": bool(add)},
                       ("scored", score), add, remove)


# ----------------------------------------------------------------------------- driver


def _finish(store: Store, k: int, o: Outcome) -> None:
    """Records finished step ``k``: its outcome, the cell's fate and the pool change."""
    store.finish_step(k, o.kind, o.cell, o.outcome, o.detail, o.status, o.pool_add, o.pool_remove)


def _step_event(store: Store, cfg: SearchConfig, k: int, o: Outcome, t0: float) -> dict:
    """What ``on_event("step", ...)`` is told about finished step ``k``."""
    return {"step": k, "kind": o.kind, "outcome": o.outcome, "cell": o.cell, "detail": o.detail,
            "children": store.children_done(), "target": cfg.candidates, "best": best_score(store, cfg),
            "elapsed": time.perf_counter() - t0}


def rounds(n_init: int, population: int, max_steps: int):
    """The rounds of a population search: the seed steps, then ``population`` steps each."""
    yield 0, range(n_init)
    r, k = 1, n_init
    while k < max_steps:
        yield r, range(k, min(k + population, max_steps))
        r, k = r + 1, k + population


def run_rounds(search: Search, executor, *, deadline: float, max_steps: int, retries: int,
               on_event: Callable[[str, dict], None] | None, t0: float) -> tuple[str, int]:
    """The driver of ``--population P``: steps run in rounds, evaluated together.

    Round 0 holds the seed steps; round ``r >= 1`` holds steps ``n_init + (r-1)P`` to
    ``n_init + rP - 1``. The steps of a round start together, in step order, so each proposes
    from the pool as the previous round left it (a strategy that proposes one child per step,
    as the paper's, thus proposes P children from the same pool: a generation). The jobs of a
    round that share a task are sent as one population job (:func:`cellsearch.executors.
    run_population_job`: one interpreter program for them all); the results go back to each
    step in step order, and the steps go on to their next stage until all have finished.
    Scored children enter the pool at the round's end, in step order, in one transaction
    with the round's mark (:meth:`Store.close_round`). A round starts only while fewer than
    ``candidates`` children are done, and runs only the steps that can still count, so the
    target is never passed.

    Exact resume: a killed round leaves its finished steps and their evaluations stored and
    the pool unchanged; the resumed search runs the round's other steps, which propose from
    the same pool and draw from the same per-step generators, then admits the round's
    children in the same order. Its programs have the same shape as the uninterrupted
    round's, because XLA's rounding depends on it: the member count is the most the round
    can send (``pad``) and the size class and hidden size cover every cell of the round,
    the finished steps' included (``cover``). Returns ``(why it stopped, settings trained)``.
    """
    from cellsearch.executors import is_lost

    store, cfg = search.store, search.cfg
    target = cfg.candidates
    trained = 0

    def pad(task: str, r: int) -> int:
        """A round's programs have a fixed member count (the most its steps can send), so a
        resumed round, which sends fewer, computes the same numbers."""
        if r == 0:
            return search.n_init * cfg.init_settings
        return cfg.population * (cfg.filter_settings if task == cfg.filter_task else cfg.settings_per_task)

    gens: dict[int, Generator] = {}  # the round's unfinished steps
    jobs: dict[int, dict] = {}  # their next jobs
    for r, steps in rounds(search.n_init, cfg.population, max_steps):
        finished = store.finished_steps()
        if r >= 1:
            if r < store.rounds_committed():
                continue  # a closed round: its pool changes are applied
            if time.perf_counter() > deadline:
                return "time", trained
            before = store.children_done(before_step=steps[0])
            if target is not None:
                if before >= target:
                    return "budget", trained
                steps = range(steps[0], min(steps[-1] + 1, steps[0] + target - before))

        def advance(k: int, value) -> None:
            try:
                jobs[k] = gens[k].send(value)
            except StopIteration as stop:
                _finish(store, k, stop.value)
                del gens[k]
                if on_event:
                    on_event("step", _step_event(store, cfg, k, stop.value, t0))

        for k in steps:
            if k not in finished:
                gens[k] = search.step(k)
                advance(k, None)
        # the round's cells, finished steps' included: every program of the round covers them all
        # (size class, hidden size), so a resumed round runs the same programs
        cover = sorted(set(store.graphs_evaluated(k for k in steps if k in finished))
                       | {j["graph"] for j in jobs.values()})
        while gens:
            by_task: dict[str, list[int]] = {}
            for k in sorted(jobs):
                by_task.setdefault(jobs[k]["task"], []).append(k)
            batch = {t: {"population": [jobs.pop(k) for k in ks], "members": pad(t, r),
                         "cover": {"graphs": cover, "budgets": list(cfg.hparam_space(t).param_budget)}}
                     for t, ks in by_task.items()}
            handles = {executor.submit(js): (t, by_task[t], js, 0) for t, js in batch.items()}
            results: dict[int, list[dict]] = {}
            while handles:
                h, res = executor.wait()
                t, ks, js, tries = handles.pop(h)
                if is_lost(res):
                    reason = next(x["metrics"].get("error", "lost") for rs in res for x in rs if x["status"] == "lost")
                    if tries < retries:
                        if on_event:
                            on_event("retry", {"step": ks[0], "task": t, "reason": reason, "try": tries + 1})
                        handles[executor.submit(js)] = (t, ks, js, tries + 1)
                        continue
                    for k in ks:  # left unfinished: a resumed search runs these steps again
                        gens.pop(k).close()
                        jobs.pop(k, None)
                        if on_event:
                            on_event("abandoned", {"step": k, "task": t, "reason": reason})
                    continue
                for k, job, rs in zip(ks, js["population"], res, strict=True):
                    store.add_evaluations(job["cell"], job["task"], rs, k)
                    trained += len(rs)
                    results[k] = rs
            for k in sorted(results):
                if k in gens:
                    advance(k, results[k])
        done = store.finished_steps()
        if any(k not in done for k in steps):
            return "abandoned", trained  # a lost job: the round stays open for a resumed search
        if r == 0:
            search.check_baseline()
        else:
            _admit(store, search, r, steps)
    return "budget", trained


def _admit(store: Store, search: Search, r: int, steps) -> None:
    """Admits the scored children of round ``r`` in step order, each decision seeing the
    pool as the earlier ones left it, all in one transaction with the round's mark."""
    with store.tx():  # the view reads the pool through the same connection: it sees each change
        for o in store.steps_outcomes(steps):
            if o["kind"] == "child" and o["outcome"] == "scored":
                add, remove = search.admit(o["cell"], o["detail"]["score"])
                store.change_pool(o["step"], add, remove)
        store.close_round(r)


def open_store(path: str, config: SearchConfig) -> Store:
    """Opens (or creates) the store for ``config``; refuses a store made by other settings."""
    return open_search_store(path, config.to_json(), lambda text: SearchConfig.from_json(text).identity())


def run_search(
    config: SearchConfig,
    db: str = DEFAULT_DB,
    *,
    workers: int = 1,
    backend: str = "local",
    ray_address: str | None = None,
    compile_cache: str | None = None,
    retries: int = 1,
    executor: Any = None,
    on_event: Callable[[str, dict], None] | None = None,
) -> SearchSummary:
    """Runs (or resumes) a search until ``config.candidates`` children are evaluated or
    ``config.hours`` pass. Every result is in the store ``db`` as soon as it exists.

    The tasks (and their data) are checked before the store is touched, so a refused search
    leaves nothing behind. ``executor`` replaces the backend (anything with ``submit``,
    ``wait`` and ``close``, see :mod:`cellsearch.executors`). ``on_event(kind, info)`` is
    called with ``"start"`` once, ``"step"`` after each finished step, ``"retry"`` when a
    lost job is sent again and ``"abandoned"`` when a step is left for a resumed search.
    """
    from cellsearch.executors import is_lost, make_executor

    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    if retries < 0:
        raise ConfigError(f"retries must be >= 0, got {retries}")
    check_tasks(config)
    store = open_store(db, config)
    t0 = time.perf_counter()
    owned = executor is None
    try:
        search = Search(config, store)
        finished = store.finished_steps()
        if search.n_init <= len(finished) and all(k in finished for k in range(search.n_init)):
            search.check_baseline()
        if owned:
            executor = make_executor(backend, workers, address=ray_address, cache_dir=compile_cache)
        target = config.candidates
        max_steps = search.n_init + (20 * target + 20 if target is not None else 10**9)
        deadline = t0 + config.hours * 3600 if config.hours else math.inf
        next_k = 0
        running: dict[Any, tuple[int, Generator, dict, int]] = {}  # handle -> (step, generator, job, tries)
        in_flight: set[int] = set()
        if on_event:
            unfinished = [k for k in range(max(finished, default=-1)) if k not in finished]
            on_event("start", {"resumed_steps": len(finished), "children": store.children_done(), "target": target,
                               "unfinished": unfinished})

        def can_start() -> bool:
            if time.perf_counter() > deadline or next_k >= max_steps:
                return False
            if target is None or next_k < search.n_init:
                return True
            # seed steps must finish before children are scored against the baseline
            if any(k < search.n_init for k in in_flight):
                return False
            return store.children_done() + len([k for k in in_flight if k >= search.n_init]) < target

        def advance(k: int, gen: Generator, value) -> None:
            try:
                job = gen.send(value)
            except StopIteration as stop:
                _finish(store, k, stop.value)
                in_flight.discard(k)
                if k < search.n_init and not any(j < search.n_init for j in in_flight) and \
                        all(j in store.finished_steps() for j in range(search.n_init)):
                    search.check_baseline()
                if on_event:
                    on_event("step", _step_event(store, config, k, stop.value, t0))
                return
            running[executor.submit(job)] = (k, gen, job, 0)

        stopped, trained = "budget", 0
        if config.population > 1:
            stopped, trained = run_rounds(search, executor, deadline=deadline, max_steps=max_steps, retries=retries,
                                          on_event=on_event, t0=t0)
            return summarize(store, config, time.perf_counter() - t0, stopped, trained)
        while True:
            while len(in_flight) < workers and can_start():
                while next_k in finished:
                    next_k += 1
                if not can_start():
                    break
                k, next_k = next_k, next_k + 1
                in_flight.add(k)
                advance(k, search.step(k), None)
            if not running:
                if not in_flight:
                    stopped = "time" if time.perf_counter() > deadline else "budget"
                    break
                continue
            handle, results = executor.wait()
            k, gen, job, tries = running.pop(handle)
            if is_lost(results):
                reason = results[0]["metrics"].get("error", "lost")
                if tries < retries:
                    if on_event:
                        on_event("retry", {"step": k, "task": job["task"], "reason": reason, "try": tries + 1})
                    running[executor.submit(job)] = (k, gen, job, tries + 1)
                else:  # left unfinished: nothing stored, a resumed search runs this step again
                    gen.close()
                    in_flight.discard(k)
                    if on_event:
                        on_event("abandoned", {"step": k, "task": job["task"], "reason": reason})
                continue
            store.add_evaluations(job["cell"], job["task"], results, k)
            trained += len(results)
            advance(k, gen, results)
        return summarize(store, config, time.perf_counter() - t0, stopped, trained)
    finally:
        if owned and executor is not None:
            executor.close()
        store.close()
