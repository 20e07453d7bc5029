"""Driving a search (Jozefowicz et al. §3.1-3.2): steps in flight, the store, resume.

The steps and their stages are in :mod:`cellsearch.steps`; this module runs them. The first
steps evaluate the pool seeds and the baseline; if the baseline then has no usable result on
a task (every setting crashed or diverged), the search stops with
:class:`~cellsearch.errors.SearchStopped`. With ``population = 1`` steps run one per worker,
a new one starting as one finishes; with ``population = P > 1`` they run in rounds of P whose
jobs are evaluated together (:func:`run_rounds`).

Each step draws every random number from ``numpy.random.default_rng([seed, step])``, so a
search is reproducible with one worker and a resumed step proposes the same child;
evaluations already in the store are read back, never repeated. A job lost to its worker (a
process that died, a Ray task lost) is retried ``retries`` times (:func:`_retry`, for both
drivers); if it is still lost, its step is left unfinished (nothing stored), and a resumed
search runs it again.

A run writes its run record (:mod:`cellsearch.runs`) at the start and marks it finished or
stopped at the end, whatever the end: the budget, the step cap (``20 * candidates + 20``
steps, reached when almost every proposal is a duplicate), an interrupt
(:class:`~cellsearch.errors.Interrupted`), a store that cannot be written (raised as a
:class:`~cellsearch.errors.StorageError` naming the cause, :func:`cellsearch.store_errors.explain`).
The executor is closed on every path, so no worker outlives the run.
"""
from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Callable, Generator
from typing import Any

from cellsearch.config import DEFAULT_DB, SearchConfig
from cellsearch.errors import ConfigError, Interrupted
from cellsearch.results import SearchSummary, best_score, summarize
from cellsearch.runs import begin_run, end_run
from cellsearch.steps import Outcome, Search, check_inputs, filter_settings, liveness_check  # noqa: F401 (re-exported)
from cellsearch.storage import Store, open_search_store
from cellsearch.store_errors import explain

# ----------------------------------------------------------------------------- driver


def _finish(store: Store, k: int, o: Outcome) -> None:
    """Records finished step ``k``: its outcome, the cell's fate and the pool change."""
    store.finish_step(k, o.kind, o.cell, o.outcome, o.detail, o.status, o.pool_add, o.pool_remove)


def _step_event(store: Store, cfg: SearchConfig, k: int, o: Outcome, t0: float) -> dict:
    """What ``on_event("step", ...)`` is told about finished step ``k``."""
    return {"step": k, "kind": o.kind, "outcome": o.outcome, "cell": o.cell, "detail": o.detail,
            "children": store.children_done(), "target": cfg.candidates, "best": best_score(store, cfg),
            "elapsed": time.perf_counter() - t0}


def _retry(results: list[list[dict]], steps: list[int], task: str, tries: int, retries: int,
           on_event: Callable[[str, dict], None] | None) -> bool:
    """What to do with a lost job (the results of its steps): ``True`` to send it again (while
    ``tries < retries``), else ``False``: its steps are abandoned, left for a resumed search.
    Tells ``on_event`` either way."""
    reason = next((x["metrics"].get("error", "lost") for rs in results for x in rs if x["status"] == "lost"), "lost")
    if tries < retries:
        if on_event:
            on_event("retry", {"step": steps[0], "task": task, "reason": reason, "try": tries + 1})
        return True
    if on_event:
        for k in steps:
            on_event("abandoned", {"step": k, "task": task, "reason": reason})
    return False


def _budget_or_cap(store: Store, target: int | None) -> str:
    """Why a search that ran all its steps stopped: its budget if the children it had to
    evaluate are done, else its step cap (most proposals were duplicates)."""
    return "budget" if target is not None and store.children_done() >= target else "step cap"


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
                    if _retry(res, ks, t, tries, retries, on_event):
                        handles[executor.submit(js)] = (t, ks, js, tries + 1)
                        continue
                    for k in ks:  # left unfinished: a resumed search runs these steps again
                        gens.pop(k).close()
                        jobs.pop(k, None)
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
    return _budget_or_cap(store, target), trained


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
    check_inputs(config)
    try:
        store = open_store(db, config)
        rec = begin_run(store, config.candidates, config.hours)
    except sqlite3.Error as e:
        raise explain(db, e) from None
    t0 = time.perf_counter()
    owned = executor is None
    ending = ("stopped", "an error")
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
            ending = ("finished", stopped)
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
                    stopped = "time" if time.perf_counter() > deadline else \
                        _budget_or_cap(store, target) if next_k >= max_steps else "budget"
                    break
                continue
            handle, results = executor.wait()
            k, gen, job, tries = running.pop(handle)
            if is_lost(results):
                if _retry([results], [k], job["task"], tries, retries, on_event):
                    running[executor.submit(job)] = (k, gen, job, tries + 1)
                else:  # left unfinished: nothing stored, a resumed search runs this step again
                    gen.close()
                    in_flight.discard(k)
                continue
            store.add_evaluations(job["cell"], job["task"], results, k)
            trained += len(results)
            advance(k, gen, results)
        ending = ("finished", stopped)
        return summarize(store, config, time.perf_counter() - t0, stopped, trained)
    except sqlite3.Error as e:
        ending = ("stopped", f"the store failed: {e}")
        raise explain(db, e) from None
    except BaseException as e:  # an interrupt (Interrupted names its signal) or any other error
        ending = ("stopped", e.signal if isinstance(e, Interrupted) else f"{type(e).__name__}: {e}")
        raise
    finally:
        if owned and executor is not None:
            executor.close()
        end_run(store, rec, *ending)
        store.close()
