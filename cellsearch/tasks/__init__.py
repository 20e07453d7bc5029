"""Tasks: the :data:`TASKS` table, :func:`make_task` and the cached :func:`get_task`.

``memorize`` (the filter), ``arithmetic``, ``xml``, ``ptb`` and the music sets
``nottingham`` and ``pianomidi``. Options are keyword settings of each task's class
(e.g. ``make_task("arithmetic", max_digits=4)``); every synthetic task also takes
``eval_batches`` and ``eval_batch_size`` (its validation set: 8 batches of 64 rows by default).
No module here imports JAX.

>>> sorted(name for name, info in TASKS.items() if info.data)
['nottingham', 'pianomidi', 'ptb']
>>> make_task("arithmetic", max_digits=2).spec.seq_len
28
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from cellsearch.errors import ConfigError
from cellsearch.tasks.arithmetic import Arithmetic
from cellsearch.tasks.base import Batch, Task, TaskSpec
from cellsearch.tasks.memorize import Memorize
from cellsearch.tasks.music import Music
from cellsearch.tasks.ptb import PTB
from cellsearch.tasks.xml import XML


class TaskInfo(NamedTuple):
    """One task's facts: how to build it, its default recurrent parameter budget (and ``--quick``'s),
    and the data folder it reads under ``--data-dir`` (``None`` for the synthetic tasks)."""

    factory: Callable[..., Task]
    budget: int
    data: str | None = None
    quick_budget: int = 10_000


TASKS: dict[str, TaskInfo] = {
    "memorize": TaskInfo(Memorize, 20_000),
    "arithmetic": TaskInfo(Arithmetic, 20_000),
    "xml": TaskInfo(XML, 20_000),
    "ptb": TaskInfo(PTB, 100_000, "ptb", 50_000),
    "nottingham": TaskInfo(lambda **kw: Music("nottingham", **kw), 20_000, "music"),
    "pianomidi": TaskInfo(lambda **kw: Music("pianomidi", **kw), 20_000, "music"),
}

__all__ = ["TASKS", "Batch", "Task", "TaskInfo", "TaskSpec", "get_task", "make_task", "task_options"]


def make_task(name: str, **options) -> Task:
    """Builds a task by name; unknown names and options raise :class:`ConfigError`."""
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; tasks: {', '.join(TASKS)}")
    options = dict(options)
    n_eval = options.pop("eval_batches", None)
    eval_size = options.pop("eval_batch_size", None)
    try:
        task = TASKS[name].factory(**options)
    except TypeError as e:
        raise ConfigError(f"task {name!r}: bad option ({e})") from None
    except ValueError as e:
        raise ConfigError(f"task {name!r}: {e}") from None
    if n_eval is not None:  # size of the synthetic validation/test sets
        task.eval_batches_n = int(n_eval)
    if eval_size is not None:
        task.batch_size_eval = int(eval_size)
    return task


def task_options(name: str, options: dict[str, Any] | None = None, data_dir: str | None = None) -> dict[str, Any]:
    """``options`` for task ``name``, with ``data_dir`` added for the tasks that read data."""
    opts = dict(options or {})
    if data_dir and name in TASKS and TASKS[name].data:
        opts.setdefault("data_dir", data_dir)
    return opts


_CACHE: dict[str, Task] = {}


def get_task(name: str, options: dict[str, Any]) -> Task:
    """:func:`make_task`, cached per (name, options) in this process: data files are read and
    validation sets drawn once, however many evaluations use them."""
    key = f"{name}:{sorted(options.items())}"
    if key not in _CACHE:
        _CACHE[key] = make_task(name, **options)
    return _CACHE[key]
