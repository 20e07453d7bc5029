"""Where evaluation jobs run: in-process, in a pool of local processes, or on a Ray cluster.

A job is a plain dict (cell JSON, task name and options, settings, training config), so it
pickles cheaply; :func:`run_job` turns it into a list of result dicts and never raises: a
crash of the candidate becomes results with status ``"error"`` and the message (stored: the
same cell would crash again). A job lost to its worker (a process that died, a Ray task
lost) comes back as results with status ``"lost"`` (:func:`is_lost`): the driver sends it
again and never stores it. Only the search driver writes the store; executors just return
results.

Interface: ``submit(job) -> handle``, ``wait() -> (handle, results)`` for some finished job,
``close()``.
"""

from __future__ import annotations

import os
import traceback
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor
from concurrent.futures import wait as wait_futures
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict

from cellsearch.errors import ConfigError


def run_job(job: dict) -> list:
    """Trains one cell on one task under the job's settings; never raises. A population job
    ``{"population": [job, ...]}`` (jobs of one task) trains them together and returns a
    list of results per job (:func:`run_population_job`)."""
    if "population" in job:
        return run_population_job(job["population"], job.get("members"), job.get("cover"))
    from cellsearch.config import TrainConfig
    from cellsearch.graph import from_json
    from cellsearch.hparams import HParams
    from cellsearch.tasks import get_task
    from cellsearch.train import result_to_dict, train_and_evaluate

    settings = [HParams(**h) for h in job["settings"]]
    try:
        results = train_and_evaluate(from_json(job["graph"]), get_task(job["task"], job["task_options"]),
                                     settings, TrainConfig(**job["train"]))
        return [result_to_dict(r) for r in results]
    except Exception as e:  # a crashing candidate is a result, not the end of the search
        return error_results(job, f"{type(e).__name__}: {e}", traceback.format_exc(limit=3))


def run_population_job(jobs: list[dict], members: int | None = None, cover: dict | None = None) -> list[list[dict]]:
    """Trains the jobs' cells together through the population interpreter (one program per
    size class). ``members`` and ``cover`` (``{"graphs": [cell JSON], "budgets": [int]}``)
    fix the programs' member count and shape (see
    :func:`~cellsearch.population.train_population`). If that fails, each job runs alone, so
    an error is recorded against the cell that caused it and the others still get their
    results."""
    from cellsearch.config import TrainConfig
    from cellsearch.graph import from_json
    from cellsearch.hparams import HParams
    from cellsearch.population import train_population
    from cellsearch.tasks import get_task
    from cellsearch.train import result_to_dict

    first = jobs[0]
    if any(j["task"] != first["task"] or j["train"] != first["train"] or j["task_options"] != first["task_options"]
           for j in jobs):
        raise ValueError("a population job's jobs must share the task, its options and the training schedule")
    try:
        results = train_population([from_json(j["graph"]) for j in jobs],
                                   get_task(first["task"], first["task_options"]),
                                   [[HParams(**h) for h in j["settings"]] for j in jobs], TrainConfig(**first["train"]),
                                   members=members,
                                   cover=([from_json(g) for g in cover["graphs"]], cover["budgets"]) if cover else None)
        return [[result_to_dict(r) for r in rs] for rs in results]
    except Exception:  # find the culprit: every job alone
        return [run_job(j) for j in jobs]


def _worker_init(cache_dir: str | None) -> None:
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    if cache_dir:
        from cellsearch.train import enable_compilation_cache

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
        import multiprocessing as mp

        self._args = (workers, cache_dir)
        self._pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"),
                                         initializer=_worker_init, initargs=(cache_dir,))
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
        import multiprocessing as mp

        if getattr(self._pool, "_broken", False):
            self._pool.shutdown(wait=False, cancel_futures=True)
            workers, cache_dir = self._args
            self._pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"),
                                             initializer=_worker_init, initargs=(cache_dir,))

    def close(self):
        self._pool.shutdown(cancel_futures=True)


def error_results(job: dict, msg: str, detail: str | None = None, *, status: str = "error") -> list[dict]:
    """Results with ``status`` (``"error"``: the candidate crashed; ``"lost"``: its worker did)
    for every setting of a job, with the message."""
    from cellsearch.hparams import HParams

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
        if not ray.is_initialized():
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
        pass


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
