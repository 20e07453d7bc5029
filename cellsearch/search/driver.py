"""Driving a search (Jozefowicz et al. §3.1-3.2): steps in flight, the store, resume.

The steps and their stages are in :mod:`cellsearch.search.steps`; this module runs them. The first
steps evaluate the pool seeds and the baseline; if the baseline then has no usable result on
a task (every setting crashed or diverged), the search stops with
:class:`~cellsearch.errors.SearchStopped`. With ``population = 1`` steps run one per worker,
a new one starting as one finishes; with ``population = P > 1`` they run in rounds of P whose
jobs are evaluated together. One driver (:func:`drive`) runs both; the schedules
(:mod:`cellsearch.search.schedules`) say which step starts next and how jobs travel.

Each step draws every random number from ``numpy.random.default_rng([seed, step])``, so a
search is reproducible with one worker and a resumed step proposes the same child;
evaluations already in the store are read back, never repeated. A job lost to its worker (a
process that died, a Ray task lost) is retried ``retries`` times (:func:`_retry`); if it is
still lost, its step is left unfinished (nothing stored), and a resumed search runs it again.

A run writes its run record (:mod:`cellsearch.search.runs`) at the start and marks it finished or
stopped at the end, whatever the end: the budget, the step cap (``20 * candidates + 20``
steps, reached when almost every proposal is a duplicate), an interrupt
(:class:`~cellsearch.errors.Interrupted`), a store that cannot be written (raised as a
:class:`~cellsearch.errors.StorageError` naming the cause, :func:`cellsearch.store.sqlite.explain`).
The executor is closed on every path, so no worker outlives the run.
"""
from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Callable, Generator
from typing import Any

from cellsearch.errors import ConfigError, Interrupted
from cellsearch.search.config import DEFAULT_DB, SearchConfig
from cellsearch.search.executors import is_lost, make_executor
from cellsearch.search.results import SearchSummary, best_score, reference_only, summarize
from cellsearch.search.runs import begin_run, end_run
from cellsearch.search.schedules import PerCell, Rounds
from cellsearch.search.steps import Outcome, Search, check_inputs
from cellsearch.store.sqlite import Store, explain, open_search_store

# ----------------------------------------------------------------------------- driver


def _finish(store: Store, k: int, o: Outcome) -> None:
    """Records finished step ``k``: its outcome, the cell's fate and the pool change."""
    store.finish_step(k, o.kind, o.cell, o.outcome, o.detail, o.status, o.pool_add, o.pool_remove)


def _step_event(store: Store, cfg: SearchConfig, k: int, o: Outcome, t0: float, skip: str | None) -> dict:
    """What ``on_event("step", ...)`` is told about finished step ``k`` (``skip``: the baseline
    kept as the reference, not one of the search's own cells)."""
    return {"step": k, "kind": o.kind, "outcome": o.outcome, "cell": o.cell, "detail": o.detail,
            "children": store.children_done(), "target": cfg.candidates, "best": best_score(store, cfg, skip=skip),
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


def drive(search: Search, executor, schedule, *, retries: int,
          on_event: Callable[[str, dict], None] | None, t0: float) -> tuple[str, int]:
    """Runs steps under ``schedule`` (:mod:`cellsearch.search.schedules`) until it says why the search
    stops. Returns ``(that reason, settings trained)``.

    Each step is a generator of jobs: the driver starts the steps the schedule lets start, sends
    their jobs as the schedule bundles them, stores each job's evaluations as it comes back and
    sends the results to its step, which yields its next job or finishes (its outcome is stored
    with :meth:`Store.finish_step`). A lost job is retried (:func:`_retry`); a job still lost
    leaves its steps unfinished, for a resumed search."""

    store, cfg = search.store, search.cfg
    gens: dict[int, Generator] = {}  # live steps
    jobs: dict[int, dict] = {}  # their next jobs, not sent yet
    running: dict[Any, tuple[list[int], dict, int]] = {}  # handle -> (steps, payload, tries)
    back: dict[int, list[dict]] = {}  # results not yet sent to their steps
    trained = 0
    skip = reference_only(store, cfg) if on_event else None

    def advance(k: int, value) -> None:
        try:
            jobs[k] = gens[k].send(value)
        except StopIteration as stop:
            _finish(store, k, stop.value)
            del gens[k]
            if on_event:
                on_event("step", _step_event(store, cfg, k, stop.value, t0, skip))

    while True:
        while (k := schedule.next(set(gens))) is not None:
            gens[k] = search.step(k)
            advance(k, None)
        if not gens:
            return schedule.reason, trained
        if jobs and not (schedule.batched and running):
            for ks, payload in schedule.bundles(jobs):
                running[executor.submit(payload)] = (ks, payload, 0)
        handle, res = executor.wait()
        ks, payload, tries = running.pop(handle)
        members = schedule.members(payload)
        if is_lost(res):
            if _retry(schedule.unpack(res), ks, members[0]["task"], tries, retries, on_event):
                running[executor.submit(payload)] = (ks, payload, tries + 1)
            else:  # left unfinished: nothing stored, a resumed search runs these steps again
                for k in ks:
                    gens.pop(k).close()
                    jobs.pop(k, None)
            continue
        for k, job, rs in zip(ks, members, schedule.unpack(res), strict=True):
            continued = (job["resume_from"], list(job["resume"])) if job.get("resume") else None
            store.add_evaluations(job["cell"], job.get("store_as", job["task"]), rs, k, continued)
            trained += len(rs)
            back[k] = rs
        if not (schedule.batched and running):  # a batched schedule waits for the whole wave
            for k in sorted(back):
                advance(k, back.pop(k))


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
    ``wait`` and ``close``, see :mod:`cellsearch.search.executors`). ``on_event(kind, info)`` is
    called with ``"start"`` once, ``"step"`` after each finished step, ``"retry"`` when a
    lost job is sent again and ``"abandoned"`` when a step is left for a resumed search.
    """

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
        if on_event:
            unfinished = [k for k in range(max(finished, default=-1)) if k not in finished]
            on_event("start", {"resumed_steps": len(finished), "children": store.children_done(), "target": target,
                               "unfinished": unfinished, "cores": rec["cores"], "cores_before": rec.get("cores_before")})
        schedule = Rounds(search, deadline, max_steps) if config.population > 1 else \
            PerCell(search, workers, deadline, max_steps)
        stopped, trained = drive(search, executor, schedule, retries=retries, on_event=on_event, t0=t0)
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
