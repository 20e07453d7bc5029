"""Who writes a store, and how far its search has come: the run record and ``cellsearch status``.

A search writes a *run record* (``meta`` key ``run``, JSON) when it starts: its process, host,
start time and the children and steps the store held then; it marks the record ``finished``
or ``stopped`` (with why) when it ends. The writer's lock (``<db>.lock``, see
:class:`~cellsearch.store.sqlite.Store`) tells whether the writer is alive. So a reader can tell a
running search, a finished one, and one whose writer died (killed or crashed: the record still
says ``running`` but nobody holds the lock), and which steps it left unfinished.

This module imports nothing from JAX.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import sqlite3
import threading
import time
from dataclasses import replace

from cellsearch.errors import Interrupted
from cellsearch.search.results import stored_config, summarize
from cellsearch.store.sqlite import Store


@contextlib.contextmanager
def stop_on_signals():
    """While inside, SIGINT and SIGTERM raise :class:`~cellsearch.errors.Interrupted` in the
    main thread, so a search stops at once, cleanly: the transaction in flight rolls back,
    the executor kills its workers, the run record says ``stopped``. Outside the main thread
    it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Interrupted(signal.Signals(signum).name)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def visible_cores() -> int:
    """The CPU cores this process may run on (its affinity, what ``taskset`` sets): XLA's CPU
    runtime sizes its thread pool by it and splits large reductions across that pool, so the
    float rounding of a CPU search, and now and then a close verdict, depends on it."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def begin_run(store: Store, candidates: int | None = None, hours: float | None = None) -> dict:
    """Writes the run record of the search now starting on ``store`` and returns it; its
    budget (``candidates``, ``hours``) may differ from the first run's (a resumed search may
    change it), so the record keeps it. It keeps the cores the search may use, too; when a
    resumed search has other cores than the run before it, the record says how many that
    run had (``cores_before``): from here on the store repeats a search on this core count."""
    before = json.loads(store.meta("run") or "null") or {}
    rec = {"pid": os.getpid(), "host": socket.gethostname(), "started_at": time.time(), "state": "running",
           "children_at_start": store.children_done(), "steps_at_start": len(store.finished_steps()),
           "candidates": candidates, "hours": hours, "cores": visible_cores()}
    if before.get("cores") not in (None, rec["cores"]):
        rec["cores_before"] = before["cores"]
    store.set_meta("run", json.dumps(rec))
    return rec


def end_run(store: Store, rec: dict, state: str, why: str) -> None:
    """Marks the run record ``state`` (``finished``, ``stopped``) with ``why``; a store that
    cannot be written any more (a full disk) keeps the record as it was."""
    try:
        store.set_meta("run", json.dumps(rec | {"state": state, "why": why, "ended_at": time.time()}))
    except sqlite3.Error:
        pass


def writer(path: str) -> str | None:
    """Who holds the writer's lock of the store ``path`` (``"pid 12 on host, since ..."``), or
    ``None`` if no search is writing it."""
    lock = path + ".lock"
    if not os.path.exists(lock):
        return None
    with open(lock) as f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return f.read().strip() or "another process"
        fcntl.flock(f, fcntl.LOCK_UN)
    return None


def _ago(t: float) -> str:
    s = max(time.time() - t, 0.0)
    return f"{s:.0f} s ago" if s < 120 else f"{s / 60:.0f} min ago" if s < 7200 else f"{s / 3600:.1f} h ago"


def _duration(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min" if s < 7200 else f"{s / 3600:.1f} h"


def status(path: str) -> dict:
    """Where the search on ``path`` stands: ``running`` (bool), ``writer``, the run record,
    progress against the budget, an estimate of the time left, the funnel, the unfinished
    steps of a writer that died, and the best cell. ``lines`` says it all in words."""

    holder = writer(path)
    with Store(path, write=False) as store:
        cfg = stored_config(store)
        rec = json.loads(store.meta("run") or "null")
        s = summarize(store, cfg)
        last = store.last_write()
        unfinished = store.unfinished_steps()
    if rec and "candidates" in rec:  # the latest run's budget
        cfg = replace(cfg, candidates=rec["candidates"], hours=rec["hours"])
    out = {"running": holder is not None, "writer": holder, "run": rec, "children": s.children,
           "target": cfg.candidates, "steps": s.steps, "hours": cfg.hours, "last_write": last,
           "unfinished": unfinished if holder is None else [], "best": s.best[:1], "best_origin": s.best_origin,
           "eta_s": None}
    lines = []
    if holder is not None:
        lines.append(f"a search is running on {path} ({holder}; last write {_ago(last) if last else 'none yet'})")
    elif rec and rec.get("state") == "running":
        lines.append(f"no search is running on {path}: the last one (pid {rec['pid']} on {rec['host']}, started "
                     f"{_ago(rec['started_at'])}) ended without closing the store, killed or crashed, after its last "
                     f"write {_ago(last) if last else '(none)'}"
                     + (f"; it left step(s) {', '.join(map(str, unfinished[:10]))} unfinished (their stored "
                        "evaluations are reused)" if unfinished else "")
                     + "; the same `cellsearch search` command resumes it")
        out["died"] = True
    elif rec:
        lines.append(f"no search is running on {path}; the last one {rec['state']} {_ago(rec.get('ended_at', 0))} "
                     f"({rec.get('why', '')})")
    else:
        lines.append(f"no search is running on {path}")
    lines.append(f"settings: space {cfg.space}, tasks {', '.join(cfg.tasks)}, strategy {cfg.strategy}, "
                 f"seed {cfg.seed}")
    budget = [f"{cfg.candidates} children"] if cfg.candidates is not None else []
    budget += [f"{cfg.hours:g} h per run"] if cfg.hours else []
    done = f"{s.children} of {cfg.candidates} children ({100 * s.children / max(cfg.candidates, 1):.0f} %)" \
        if cfg.candidates else f"{s.children} children"
    lines.append(f"progress: {done}, {s.steps} steps; budget {' or '.join(budget) or 'none'}")
    if holder is not None and rec and rec.get("state") == "running":
        elapsed = time.time() - rec["started_at"]
        new = s.children - rec.get("children_at_start", 0)
        rate = new / elapsed * 3600 if elapsed > 0 else 0.0
        left = []
        if cfg.candidates is not None and new > 0:
            left.append((cfg.candidates - s.children) / (rate / 3600))
        if cfg.hours:
            left.append(cfg.hours * 3600 - elapsed)
        if left:
            out["eta_s"] = max(min(left), 0.0)
        lines.append(f"this run: {_duration(elapsed)}, {new} children ({rate:.0f} per hour)"
                     + (f"; about {_duration(out['eta_s'])} left" if out["eta_s"] is not None else
                        "; time left: not known before the first child"))
    lines.append(f"funnel: {s.scored} scored, {s.screened} screened out at a rung, {s.filtered} filtered, "
                 f"{s.hurdle} below the hurdle, {s.diverged} diverged, {s.errors} errors, {s.duplicates} duplicates; "
                 f"{s.probe_rejected} dead at the probe (never trained)")
    if s.best:
        h, sc = s.best[0]
        lines.append(f"best: {h} score {sc:.4f} ({'a seed' if s.best_origin.startswith('seed:') else 'a child'})")
    out["lines"] = lines
    return out
