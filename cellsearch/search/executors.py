"""Where evaluation jobs run: in-process, in a pool of local processes, or on a Ray cluster.

A job is a plain dict (cell JSON, task name and options, settings, training config), so it
pickles cheaply; :func:`run_job` turns it into a list of result dicts and never raises. Errors
are classified (:func:`is_transient`): a crash of the candidate itself (shape, compile, a bad
option) becomes results with status ``"error"`` and the message (stored: the same cell would
crash again); an error of the host (out of memory, an OS error) and a job lost to its worker
(a process that died, a Ray task lost) come back as results with status ``"lost"``
(:func:`is_lost`): the driver sends them again and never stores them. Only the search driver
writes the store; executors just return results.

No worker outlives its driver: :meth:`close` stops the local processes (and the Ray instance
the executor started), and each local worker watches its parent and exits when it is gone,
so a driver killed with ``kill -9`` leaves nothing running.

Interface: ``submit(job) -> handle``, ``wait() -> (handle, results)`` for some finished job,
``close()``.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time
import traceback
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor
from concurrent.futures import wait as wait_futures
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict

from cellsearch.cell.graph import from_json
from cellsearch.config import TrainConfig
from cellsearch.errors import CellSearchError, ConfigError
from cellsearch.hparams import HParams
from cellsearch.tasks import get_task

_HOST_ERRORS = ("RESOURCE_EXHAUSTED", "out of memory", "Out of memory", "failed to allocate", "CUDA_ERROR")


def is_transient(e: BaseException) -> bool:
    """True for an error of the host rather than of the candidate: out of memory (Python's or
    XLA's ``RESOURCE_EXHAUSTED``), a device error, an OS error (disk, files). Such a job is
    ``lost`` (sent again), not the cell's ``error``."""
    if isinstance(e, CellSearchError):
        return False
    return isinstance(e, (MemoryError, OSError)) or any(m in str(e) for m in _HOST_ERRORS)


def _failed(job: dict, e: Exception) -> list:
    """A job's results after ``e``: ``lost`` if the host is to blame, else the candidate's ``error``."""
    msg = f"{type(e).__name__}: {e}"
    if is_transient(e):
        return error_results(job, f"host error: {msg}", status="lost")
    return error_results(job, msg, traceback.format_exc(limit=3))


def run_job(job: dict) -> list:
    """Trains one cell on one task under the job's settings; never raises. A population job
    ``{"population": [job, ...]}`` (jobs of one task) trains them together and returns a
    list of results per job (:func:`run_population_job`)."""
    if "population" in job:
        return run_population_job(job["population"], job.get("members"), job.get("cover"))
    from cellsearch.nn.train import result_to_dict, train_and_evaluate

    settings = [HParams(**h) for h in job["settings"]]
    save = job.get("save")  # a folder: keep each setting's parameters there (train --save's layout)
    try:
        graph = from_json(job["graph"])
        states = job.get("resume") or {}  # setting key -> the training state it continues (cellsearch.nn.resume)
        results = train_and_evaluate(graph, get_task(job["task"], job["task_options"]), settings,
                                     TrainConfig(**job["train"]), keep_params=bool(save),
                                     resume=[states.get(h.key()) for h in settings] if states else None,
                                     keep_state=bool(job.get("keep_state")))
        out = [result_to_dict(r) for r in results]
        if save:
            from cellsearch.nn.checkpoint import save_trained

            for r, d in zip(results, out, strict=True):
                if r.params is not None:
                    where = save if len(results) == 1 else os.path.join(save, f"seed-{r.hparams.seed}")
                    save_trained(where, graph, job["task"], r, job["train"])
                    d["metrics"]["saved"] = where
        return out
    except Exception as e:  # a crashing candidate is a result, not the end of the search
        return _failed(job, e)


def run_population_job(jobs: list[dict], members: int | None = None, cover: dict | None = None) -> list[list[dict]]:
    """Trains the jobs' cells together through the population interpreter (one program per
    size class). ``members`` and ``cover`` (``{"graphs": [cell JSON], "budgets": [int]}``)
    fix the programs' member count and shape (see
    :func:`~cellsearch.nn.population.train_population`). If the group fails on the host (out of
    memory), every job is ``lost``. If it fails otherwise, each job runs alone through the
    interpreter, in a program of the same members and shape (so the same numbers as in the
    group), so the error is recorded against the cell that caused it; those results say so
    in their metrics (``population``), never mixed silently with per-cell numerics."""
    from cellsearch.nn.population import train_population
    from cellsearch.nn.train import result_to_dict

    first = jobs[0]
    if any(j["task"] != first["task"] or j["train"] != first["train"] or j["task_options"] != first["task_options"]
           for j in jobs):
        raise ValueError("a population job's jobs must share the task, its options and the training schedule")
    def train(group: list[dict]) -> list[list[dict]]:
        results = train_population([from_json(j["graph"]) for j in group],
                                   get_task(first["task"], first["task_options"]),
                                   [[HParams(**h) for h in j["settings"]] for j in group], TrainConfig(**first["train"]),
                                   members=members,
                                   cover=([from_json(g) for g in cover["graphs"]], cover["budgets"]) if cover else None)
        return [[result_to_dict(r) for r in rs] for rs in results]

    try:
        return train(jobs)
    except Exception as e:
        if is_transient(e) or len(jobs) == 1:
            return [_failed(j, e) for j in jobs]
        why = f"trained alone in the interpreter after the group failed ({type(e).__name__}: {e})"
    out = []
    for j in jobs:  # find the culprit: each job alone, in a program of the same shape
        try:
            rs = train([j])[0]
            for r in rs:
                r["metrics"]["population"] = why
        except Exception as e:
            rs = _failed(j, e)
        out.append(rs)
    return out


def _exit_with_parent(parent: int, poll_s: float = 1.0) -> None:
    """Exits this process as soon as its parent, the driver ``parent`` (a pid), is gone (a
    driver killed with ``kill -9`` cannot stop its workers; they notice they were orphaned
    and stop). The pid is the driver's own, not read here: a worker that starts after the
    driver died must not take its new parent (init) for the driver."""

    def watch():
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, name="cellsearch-parent-watch", daemon=True).start()


def _worker_init(cache_dir: str | None, parent: int | None = None) -> None:

    if parent is not None:
        _exit_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the driver stops the workers
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    if cache_dir:
        from cellsearch.nn.train import enable_compilation_cache

        enable_compilation_cache(cache_dir)


class InlineExecutor:
    """Runs each job in this process when submitted (the default; one worker)."""

    def __init__(self):
        self._done: deque = deque()
        self._n = 0

    def submit(self, job: dict):
        self._n += 1
        self._done.append((self._n, run_job(job)))
        return self._n

    def wait(self):
        return self._done.popleft()

    def close(self):
        pass


class ProcessExecutor:
    """``workers`` local processes (spawned, so each has its own JAX runtime)."""

    def __init__(self, workers: int, cache_dir: str | None = None):

        self._args = (workers, cache_dir)
        self._pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"),
                                         initializer=_worker_init, initargs=(cache_dir, os.getpid()))
        self._futures: dict = {}

    def submit(self, job: dict):
        fut = self._pool.submit(run_job, job)
        self._futures[fut] = job
        return fut

    def wait(self):
        done, _ = wait_futures(list(self._futures), return_when=FIRST_COMPLETED)
        fut = next(iter(done))
        job = self._futures.pop(fut)
        try:
            return fut, fut.result()
        except BrokenProcessPool as e:  # a worker died (e.g. out of memory): record it, restart the pool
            self._restart()
            return fut, error_results(job, f"worker process died: {e}", status="lost")

    def _restart(self) -> None:

        if getattr(self._pool, "_broken", False):
            self._pool.shutdown(wait=False, cancel_futures=True)
            workers, cache_dir = self._args
            self._pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"),
                                             initializer=_worker_init, initargs=(cache_dir, os.getpid()))

    def close(self):
        """Stops the pool now: queued jobs are dropped and running workers are killed (a job
        in flight is lost, and a resumed search runs its step again)."""
        procs = list((getattr(self._pool, "_processes", None) or {}).values())
        self._pool.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            if p.is_alive():
                p.kill()
        for p in procs:
            p.join(timeout=10)
        self._futures.clear()


def error_results(job: dict, msg: str, detail: str | None = None, *, status: str = "error") -> list[dict]:
    """Results with ``status`` (``"error"``: the candidate crashed; ``"lost"``: its worker did)
    for every setting of a job, with the message."""

    if "population" in job:
        return [error_results(j, msg, detail, status=status) for j in job["population"]]
    metrics = {"error": msg, **({"traceback": detail} if detail else {})}
    return [{"hparams": asdict(h), "hp_key": h.key(), "status": status, "score": 0.0, "metrics": metrics,
             "wall_s": 0.0, "compile_s": 0.0} for h in (HParams(**d) for d in job["settings"])]


def is_lost(results: list) -> bool:
    """True if a job's results (or a population job's lists of results) say its worker was
    lost (retry it; do not store it)."""
    return any(is_lost(r) if isinstance(r, list) else r["status"] == "lost" for r in results)


class RayExecutor:
    """Sends jobs to a Ray cluster as remote tasks (``ray start --head``; ``address`` as for
    ``ray.init``, e.g. ``"auto"``, or ``None`` for a local instance). Needs the ``ray`` extra."""

    def __init__(self, workers: int, address: str | None = None, cache_dir: str | None = None):
        try:
            import ray
        except ImportError:
            raise ConfigError("--backend ray needs Ray: pip install 'cellsearch[ray]'") from None
        self.ray = ray
        self._started = not ray.is_initialized()  # close() shuts down only what this executor started
        if self._started:
            kwargs = {"address": address} if address else {"num_cpus": max(workers, 1)}
            ray.init(include_dashboard=False, ignore_reinit_error=True, log_to_driver=False, **kwargs)
        self.num_gpus = gpu_share(ray.cluster_resources().get("GPU", 0.0), workers)
        self._remote = ray.remote(num_cpus=1, num_gpus=self.num_gpus)(_ray_job).options(max_retries=1)
        self._cache_dir = cache_dir
        self._refs: dict = {}

    def submit(self, job: dict):
        ref = self._remote.remote(job, self._cache_dir)
        self._refs[ref] = job
        return ref

    def wait(self):
        (ref,), _ = self.ray.wait(list(self._refs), num_returns=1)
        job = self._refs.pop(ref)
        try:
            return ref, self.ray.get(ref)
        except Exception as e:  # the task or its worker failed
            return ref, error_results(job, f"ray task failed: {e}", status="lost")

    def close(self):
        """Cancels the tasks in flight and shuts down the local Ray instance if this executor
        started it (a cluster given by ``address`` is left running, its tasks cancelled)."""
        for ref in list(self._refs):
            try:
                self.ray.cancel(ref, force=True)
            except Exception:  # already finished, or the cluster is gone
                pass
        self._refs.clear()
        if self._started and self.ray.is_initialized():
            self.ray.shutdown()


def _ray_job(job: dict, cache_dir: str | None) -> list[dict]:
    _worker_init(cache_dir)
    return run_job(job)


def gpu_share(gpus: float, workers: int) -> float:
    """The GPU share each Ray task asks for: the cluster's GPUs split over the workers (at
    most one each), so ``workers`` evaluations run at once and each sees its device; 0 on a
    cluster without GPUs.

    >>> gpu_share(0, 4), gpu_share(1, 4), gpu_share(8, 4)
    (0.0, 0.25, 1.0)
    """
    return 0.0 if gpus <= 0 else min(1.0, float(gpus) / max(workers, 1))


def deterministic() -> None:
    """Makes XLA's GPU kernels deterministic (``--xla_gpu_deterministic_ops``), so a search on a
    GPU repeats; call before JAX starts (the CLI's ``--deterministic``; workers inherit it)."""
    flag = "--xla_gpu_deterministic_ops=true"
    flags = os.environ.get("XLA_FLAGS", "")
    if flag not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {flag}".strip()


def make_executor(backend: str, workers: int, *, address: str | None = None, cache_dir: str | None = None):
    if backend == "local":
        return InlineExecutor() if workers == 1 else ProcessExecutor(workers, cache_dir)
    if backend == "ray":
        return RayExecutor(workers, address, cache_dir)
    raise ConfigError(f"backend must be 'local' or 'ray', got {backend!r}")
